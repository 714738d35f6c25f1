"""The five-minute tour of README in Chromium, on the demo's own data (``demo_setup``).

Three SQLite targets, the demo history, a real Celery worker. The developer
reads the overview, the graph and production's pending plan and asks for
staging; the two tech leads approve the production request the demo left
waiting and watch it run; the auditor filters the log, opens an event and
downloads the CSV. Viewport screenshots go to test-artifacts/tour-*.png
(``make screenshots`` copies them to docs/screenshots/ for README).
"""

from __future__ import annotations

import csv
import io
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from tests.conftest import ARTIFACTS, browser_login
from tests.dashboard.approvals_support import Worker, broker, drop_queue_keys

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
REPO_ROOT = Path(__file__).resolve().parents[2]
REDIS = os.environ["TEST_REDIS_URL"]
DROP_COLUMN_REVISION = "9c41d7e2f0ab"


def _shot(page: Any, name: str) -> None:
    """A viewport-sized screenshot (README keeps these, so no full-page images)."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"tour-{name}.png"), full_page=False)


@pytest.fixture
def demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Worker]:
    """The demo as ``make demo-setup`` leaves it, and a worker on a per-run Redis queue."""
    for slug in ("dev", "staging", "production"):
        monkeypatch.setenv(f"MAGNETIQ_{slug.upper()}_URL", f"sqlite:///{tmp_path / slug}.sqlite3")
    # The tenants fleet too, as the Makefile sets it (the overview screenshot shows its card).
    monkeypatch.setenv("MAGNETIQ_TENANT_URL", f"sqlite:///{tmp_path}/tenants/{{target}}.sqlite3")
    call_command("demo_setup", environments=str(REPO_ROOT / "environments.toml"))
    queue = f"test-tour-{uuid.uuid4().hex[:8]}"
    with broker(REDIS, queue):
        worker = Worker(
            broker_url=REDIS, queue=queue, ini=REPO_ROOT / "alembic.ini", log=tmp_path / "w.log"
        )
        yield worker
        worker.stop()
    drop_queue_keys(REDIS, queue)


def _login(browser: Any, base: str, username: str) -> Any:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(30_000)
    page = context.new_page()
    browser_login(page, base, username, password="demo")
    return page


def test_the_five_minute_tour(live_server: Any, browser: Any, demo: Worker) -> None:
    from dashboard.approvals.models import MigrationRequest

    base = live_server.url
    waiting = MigrationRequest.objects.get(
        environment__slug="production", status=MigrationRequest.Status.PENDING
    )

    # 1. Developer: overview, graph, production's plan, then a request for staging.
    page = _login(browser, base, "developer")
    page.goto(f"{base}/")
    assert "Up to date" in page.inner_text('article[data-env="dev"]')
    assert "3 revisions" in page.inner_text('article[data-env="staging"]')
    assert "8 revisions" in page.inner_text('article[data-env="production"]')
    _shot(page, "overview")
    page.goto(f"{base}/graph/")
    page.wait_for_selector("svg.graph-svg .graph-node")
    _shot(page, "graph")
    page.goto(f"{base}/")
    page.locator('article[data-env="production"] h2 a').click()
    page.wait_for_selector("#plan li[data-revision]")
    assert page.locator("#plan li[data-revision]").count() == 8
    assert "destructive" in page.inner_text(f'#plan li[data-revision="{DROP_COLUMN_REVISION}"]')
    # The request history arrives by htmx (served by the approvals app); left by the demo.
    page.wait_for_selector("#requests:has-text('Waiting for approval')")
    page.goto(f"{base}/requests/new/?environment=staging&target=heads")
    assert "status read" in page.inner_text("#plan-source")  # the cached status, at once
    page.click("text=Preview plan and SQL")
    page.wait_for_selector("#plan-source:has-text('just now')")
    page.fill("#id_reason", "Audit logs for the next release")
    page.click("input[type=submit][value='Submit request']")
    page.wait_for_selector("#request-status")
    assert page.inner_text("#request-status") == "Waiting for approval"
    page.context.close()

    # 2. Tech leads: both approve the production request; the worker runs it live.
    detail = f"{base}/requests/{waiting.pk}/"
    for username in ("lead", "lead2"):
        lead = _login(browser, base, username)
        if username == "lead":
            # The control room (/admin/) leads to production's waiting request in one click.
            lead.goto(f"{base}/admin/")
            assert f"#{waiting.pk}" in lead.inner_text("#control-waiting")
            _shot(lead, "control-room")
        lead.goto(detail)
        assert "destructive" in lead.inner_text("#decisions")
        if username == "lead":
            assert "8 revisions" in lead.inner_text("#risk-summary")
            _shot(lead, "request-review")
        lead.fill("#id_comment", f"read the SQL, fine by {username}")
        lead.check("#id_sql_acknowledged")
        lead.click("#decision-form button:has-text('Approve')")
        lead.wait_for_selector(f"#decisions li:has-text('Approved by {username}')")
        if username == "lead":
            lead.context.close()
    lead.wait_for_selector("#request-status:has-text('Succeeded')", timeout=60_000)
    assert "8 of 8 revisions applied" in lead.inner_text("#run-progress")
    assert lead.locator("#run-timeline tbody tr").count() == 8
    assert DROP_COLUMN_REVISION in lead.inner_text("#run")
    lead.locator("#status").scroll_into_view_if_needed()
    lead.evaluate("window.scrollTo(0, document.querySelector('#status').offsetTop - 20)")
    _shot(lead, "request-run")
    lead.context.close()

    # 3. Auditor: filter by production, open the run's event, download the CSV.
    page = _login(browser, base, "auditor")
    page.goto(f"{base}/audit/")
    page.fill("#id_environment", "production")
    page.click("#audit-filters button[type=submit]")
    page.wait_for_selector("#audit-table tbody tr:has-text('dashboard.run.succeeded')")
    assert "intact" in page.inner_text("#audit-verification")
    _shot(page, "audit-log")
    page.click("#audit-table tbody tr:has-text('dashboard.run.succeeded') td:first-child a")
    page.wait_for_selector("#event-hash")
    assert "hash matches contents" in page.content()
    page.go_back()
    page.wait_for_selector("#export-csv")
    with page.expect_download() as download_info:
        page.click("#export-csv")
    rows = list(
        csv.DictReader(io.StringIO(Path(download_info.value.path()).read_text(encoding="utf-8")))
    )
    assert {row["environment_slug"] for row in rows} == {"production"}
    assert "dashboard.run.succeeded" in {row["action"] for row in rows}
    page.context.close()

    # 4. A tech lead opens the tenants fleet's halted rollout: why, and what to do.
    fleet_request = MigrationRequest.objects.get(environment__slug="tenants", parent__isnull=True)
    lead = _login(browser, base, "lead")
    lead.goto(f"{base}/requests/{fleet_request.pk}/rollout/")
    assert "Stopped in wave 2" in lead.inner_text("#rollout-said")
    assert "initech" in lead.inner_text("body") and "audit_logs" in lead.inner_text("body")
    assert "make demo-fix-tenant" in lead.inner_text("body")
    _shot(lead, "rollout-halted")
    lead.context.close()
