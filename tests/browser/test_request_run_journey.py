"""Progress you can see, and a *Cancel run* button (issue 12, item 12), in Chromium.

A real Celery worker runs a revision that sleeps on PostgreSQL; the lead
watches "revision 1 of 1: sleepy …", the phase and the elapsed time, clicks
*Cancel run*, and the page ends in *Cancelled* with where the database was
left, and the run's log.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from dashboard.approvals.services.requests import migration_request_create
from dashboard.environments.services import environment_status_refresh
from tests.conftest import browser_login, save_screenshot
from tests.dashboard.approvals_support import (
    HEARTBEAT_SECONDS,
    Worker,
    broker,
    drop_queue_keys,
    make_environment,
    migrate_target,
    target_heads,
)
from tests.migrator.execution_project import throwaway_postgres, write_project

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
REDIS = os.environ["TEST_REDIS_URL"]
SCREEN = {"width": 1024, "height": 768}
SLEEPY = '''"""sleepy: a long statement (only this test's project has it)"""
import sqlalchemy as sa
from alembic import op

revision = "sleepy"
down_revision = "c"
branch_labels = None
depends_on = None


def upgrade():
    op.execute("SELECT pg_sleep(60)")
    op.create_table("sleepy_done", sa.Column("id", sa.Integer, primary_key=True))


def downgrade():
    op.drop_table("sleepy_done")
'''


@pytest.fixture
def project_ini(tmp_path: Path, settings: Any) -> Path:
    ini = write_project(tmp_path / "project")
    (ini.parent / "versions" / "sleepy_revision.py").write_text(SLEEPY)
    settings.ALEMBIC_CONFIG = str(ini)
    settings.DASHBOARD_RUN_HEARTBEAT = timedelta(seconds=HEARTBEAT_SECONDS)
    return ini


@pytest.fixture
def worker(project_ini: Path, tmp_path: Path) -> Iterator[Worker]:
    queue = f"test-run-view-{uuid.uuid4().hex[:8]}"
    with broker(REDIS, queue):
        process = Worker(broker_url=REDIS, queue=queue, ini=project_ini, log=tmp_path / "w.log")
        yield process
        process.stop()
    drop_queue_keys(REDIS, queue)


def test_a_lead_watches_a_run_and_cancels_it(
    live_server: Any,
    browser: Any,
    worker: Worker,
    project_ini: Path,
    tmp_path: Path,
    developer: Any,
    lead: Any,
) -> None:
    base = live_server.url
    with throwaway_postgres("runview") as url:
        migrate_target(project_ini, url, "c")
        env = make_environment(slug="production", url=url, directory=tmp_path, required_approvals=1)
        environment_status_refresh(environment=env, check_drift=False)
        request = migration_request_create(
            environment=env, actor=developer, direction="upgrade", target="sleepy", reason="r"
        )
        context = browser.new_context(viewport=SCREEN)
        context.set_default_timeout(30_000)
        page = context.new_page()
        browser_login(page, base, "lead")
        page.goto(f"{base}/requests/{request.pk}/")
        if page.locator("#id_sql_acknowledged").count():
            page.check("#id_sql_acknowledged")
        page.click("#approve")

        page.wait_for_selector("#run-progress:has-text('revision 1 of 1: sleepy')")
        assert "a long statement" in page.inner_text("#run-progress")
        page.wait_for_selector("#run-phase:has-text('Migrating')")
        assert "elapsed" in page.inner_text("#run-phase")
        save_screenshot(page, "request-run-live-1024")
        page.click("#cancel-run")
        page.wait_for_selector(".messagelist li:has-text('Cancelling')")
        assert page.locator(".messagelist li").count() == 1

        page.wait_for_selector("#request-status:has-text('Cancelled')", timeout=30_000)
        assert "Cancelled by lead" in page.inner_text("#run")
        assert "Nothing changed: Production is still at c." in page.inner_text("#run-record")
        assert "pg_sleep" in page.text_content("#run-log")
        assert page.get_attribute("#status", "hx-trigger") is None  # polling stopped
        save_screenshot(page, "request-run-cancelled-1024")
        context.close()
        assert target_heads(url) == ("c",)
