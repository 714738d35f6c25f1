"""A fleet rolled out in the browser (issue 13): request it, two leads approve, watch it, resume it.

Six SQLite tenants at ``b``; the plan is ``c`` (creates ``tags``) then
``nap`` (a test-only revision that sleeps a moment online, so a person, and
this test, can watch targets run). One tenant, initech, has a ``tags`` table
made by hand: its run fails in wave 2 and the rollout halts. The lead opens
initech's run from the rollout page, drops the table, goes back and clicks
*Resume*; the page fills in wave by wave, without a reload, and ends in
*Succeeded*. A real Celery worker runs everything (no beat: each step is
sent by the event before it).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.conftest import browser_login, save_screenshot
from tests.dashboard.approvals_support import (
    HEARTBEAT_SECONDS,
    Worker,
    broker,
    drop_queue_keys,
    migrate_target,
    target_heads,
)
from tests.dashboard.rollouts_support import make_fleet, refresh_targets
from tests.migrator.execution_project import write_project

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
REDIS = os.environ["TEST_REDIS_URL"]
SCREEN = {"width": 1024, "height": 768}
NAMES = ["acme", "globex", "initech", "umbrella", "hooli", "vandelay"]
NAP = '''"""nap: a moment's pause online (only this test's project has it)"""
import time

from alembic import op

revision = "nap"
down_revision = "c"
branch_labels = None
depends_on = None


def upgrade():
    if not op.get_context().as_sql:
        time.sleep(1.5)


def downgrade():
    pass
'''


@pytest.fixture
def project_ini(tmp_path: Path, settings: Any) -> Path:
    ini = write_project(tmp_path / "project")
    (ini.parent / "versions" / "nap_revision.py").write_text(NAP)
    settings.ALEMBIC_CONFIG = str(ini)
    settings.DASHBOARD_RUN_HEARTBEAT = timedelta(seconds=HEARTBEAT_SECONDS)
    return ini


@pytest.fixture
def worker(project_ini: Path, tmp_path: Path) -> Iterator[Worker]:
    queue = f"test-rollout-journey-{uuid.uuid4().hex[:8]}"
    with broker(REDIS, queue):
        process = Worker(
            broker_url=REDIS, queue=queue, ini=project_ini, log=tmp_path / "w.log", pool="threads"
        )
        yield process
        process.stop()
    drop_queue_keys(REDIS, queue)


def _tenant_sql(url: str, statement: str) -> None:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        conn.exec_driver_sql(statement)
    engine.dispose()


def _as(browser: Any, base: str, username: str) -> Any:
    context = browser.new_context(viewport=SCREEN)
    context.set_default_timeout(30_000)
    page = context.new_page()
    browser_login(page, base, username)
    return page


def test_a_developer_requests_the_fleet_leads_approve_and_resume_it_after_a_halt(
    live_server: Any,
    browser: Any,
    worker: Worker,
    project_ini: Path,
    tmp_path: Path,
    developer: Any,
    lead: Any,
    lead2: Any,
) -> None:
    base = live_server.url
    template = f"sqlite:///{tmp_path}/tenant_{{target}}.sqlite3"
    for name in NAMES:
        migrate_target(project_ini, template.replace("{target}", name), "b")
    initech = template.replace("{target}", "initech")
    _tenant_sql(initech, "CREATE TABLE tags (id INTEGER PRIMARY KEY)")  # c creates tags
    fleet = make_fleet(
        slug="tenants",
        names=NAMES,
        url_template=template,
        directory=tmp_path,
        waves=[1, "50%", "100%"],
        parallelism=2,
    )
    refresh_targets(fleet)

    # The developer picks the fleet and sees what will happen before submitting.
    page = _as(browser, base, "developer")
    page.goto(f"{base}/requests/new/?environment=tenants&target=nap")
    head_sets = page.inner_text("#fleet-head-sets")
    assert "6" in head_sets and "pins a plan: 2 revisions, b → nap" in head_sets
    waves = page.inner_text("#fleet-waves")
    assert "wave 1: 1 target (canary: acme) · wave 2: 2 targets (globex, initech)" in waves
    assert "wave 3: 3 targets (umbrella, hooli, vandelay)" in waves
    page.fill("#id_reason", "tags for the spring release")
    page.click("input[type=submit][value='Submit request']")
    page.wait_for_selector("#request-status")
    request_url = page.url
    assert "Pinned plans: 1 for 6 targets" in page.inner_text("#plan")
    page.context.close()

    for username in ("lead", "lead2"):
        approver = _as(browser, base, username)
        approver.goto(request_url)
        approver.fill("#id_comment", f"fine by {username}")
        approver.click("#approve")
        approver.wait_for_selector(f"#decisions li:has-text('Approved by {username}')")
        if username == "lead":
            approver.context.close()

    # The last approver follows the link to the rollout page and watches it, never reloading.
    page = approver
    page.click("#rollout-link")
    page.wait_for_selector("#rollout-live")
    rollout_url = page.url
    loads: list[str] = []
    page.on("load", lambda: loads.append(page.url))
    page.wait_for_selector("#wave-1[data-summary='done']", timeout=30_000)
    page.wait_for_selector("#rollout-state[data-status='halted']", timeout=30_000)
    page.wait_for_selector("#failed-targets tr[data-target='initech']")
    assert loads == []  # it filled in by itself
    halted = page.inner_text("#halted")
    assert "wave 2 reached 1 failed target(s)" in halted and "initech" in halted
    assert "tags" in page.inner_text("#failed-targets tr[data-target='initech'] .rollout-error")
    assert page.is_enabled("#resume") and page.is_enabled("#cancel-rest")
    assert page.get_attribute("#rollout-live", "hx-trigger") == "every 2s"
    # What a lead types survives the page's polling (the fragment is swapped every 2 s).
    page.fill("#rollback-reason", "tags clash with the search index")
    with page.expect_response(lambda response: "/rollout/live/" in response.url):
        pass
    page.wait_for_timeout(100)  # the swap after the response
    assert page.input_value("#rollback-reason") == "tags clash with the search index"
    page.fill("#rollback-reason", "")
    page.locator("#rollback-reason").blur()
    save_screenshot(page, "rollout-halted")

    # Its run is one click away: the log says why.
    page.click("#failed-targets tr[data-target='initech'] a.rollout-log-link")
    page.wait_for_selector("#run-error")
    assert "tags" in page.inner_text("#run-error")
    assert "Target initech of the fleet's request" in page.inner_text("#rollout-parent")
    assert target_heads(initech) == ("b",)

    _tenant_sql(initech, "DROP TABLE tags")  # the fix the halted page asks for
    page.goto(rollout_url)
    page.click("#resume")
    page.wait_for_selector(".messagelist li:has-text('Resumed: 1 failed target is retried')")
    loads.clear()
    page.wait_for_selector("#wave-3 .rt[data-state='running']", timeout=30_000)
    page.wait_for_selector("#rollout-state[data-status='succeeded']", timeout=60_000)
    assert loads == []
    assert "6 of 6 targets done" in page.inner_text("#rollout-done")
    assert "Every wave ran: 6 targets migrated." in page.inner_text("#rollout-said")
    assert page.get_attribute("#rollout-live", "hx-trigger") is None  # polling stopped
    assert page.locator("#failed-targets").count() == 0
    save_screenshot(page, "rollout-succeeded")
    page.context.close()
    assert {target_heads(template.replace("{target}", name)) for name in NAMES} == {("nap",)}
