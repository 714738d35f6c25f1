"""The whole journey in Chromium: a developer requests a production upgrade, two leads approve,
the page shows the run's progress and ends in success (with a real Celery worker)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import browser_login, save_screenshot
from tests.dashboard.approvals_support import (
    HEARTBEAT_SECONDS,
    Worker,
    broker,
    drop_queue_keys,
    make_environment,
    target_heads,
)
from tests.migrator.execution_project import throwaway_postgres, write_project

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
REDIS = os.environ["TEST_REDIS_URL"]


@pytest.fixture
def project_ini(tmp_path: Path, settings: Any) -> Path:
    ini = write_project(tmp_path / "project")
    settings.ALEMBIC_CONFIG = str(ini)
    settings.DASHBOARD_RUN_HEARTBEAT = timedelta(seconds=HEARTBEAT_SECONDS)
    return ini


@pytest.fixture
def worker(project_ini: Path, tmp_path: Path) -> Iterator[Worker]:
    queue = f"test-journey-{uuid.uuid4().hex[:8]}"
    with broker(REDIS, queue):
        process = Worker(broker_url=REDIS, queue=queue, ini=project_ini, log=tmp_path / "w.log")
        yield process
        process.stop()
    drop_queue_keys(REDIS, queue)


def _approve_as(browser: Any, base: str, username: str, detail_url: str) -> Any:
    context = browser.new_context(viewport={"width": 1024, "height": 768})
    context.set_default_timeout(30_000)
    page = context.new_page()
    browser_login(page, base, username)
    page.goto(detail_url)
    page.fill("#id_comment", f"fine by {username}")
    page.click("#approve")
    page.wait_for_selector(f"#decisions li:has-text('Approved by {username}')")
    return page


def test_developer_requests_two_leads_approve_and_the_run_succeeds(
    live_server: Any,
    page: Any,
    browser: Any,
    worker: Worker,
    tmp_path: Path,
    developer: Any,
    lead: Any,
    lead2: Any,
) -> None:
    base = live_server.url
    with throwaway_postgres("journey") as url:
        make_environment(slug="production", url=url, directory=tmp_path)

        browser_login(page, base, "developer")
        page.goto(f"{base}/requests/new/?environment=production&target=slow")
        assert "never read" in page.inner_text("#plan-source")  # GET reads only the cache
        page.click("text=Preview plan and SQL")  # reads the database now
        page.wait_for_selector("#plan-source:has-text('just now')")
        assert "CREATE TABLE tags" in page.text_content("#preview-sql")
        page.fill("#id_reason", "tags for the spring release")
        page.click("input[type=submit][value='Submit request']")
        page.wait_for_selector("#request-status")
        assert page.inner_text("#request-status") == "Waiting for approval"
        detail_url = page.url

        first = _approve_as(browser, base, "lead", detail_url)
        assert "Approved by lead" in first.inner_text("#decisions")
        first.context.close()
        last = _approve_as(browser, base, "lead2", detail_url)

        # The slow revision sleeps a few seconds: the live view shows it running.
        last.wait_for_selector("#run-progress:has-text('revision 4 of 4: slow')", timeout=60_000)
        assert last.inner_text("#request-status") == "Running"
        assert "revision 4 of 4: slow revision slow" in last.inner_text("#run-progress")
        assert "Migrating" in last.inner_text("#run-phase")
        last.wait_for_selector("#request-status:has-text('Succeeded')", timeout=60_000)
        assert "4 of 4 revisions applied" in last.inner_text("#run-progress")
        assert "Upgraded Production from base to slow." in last.inner_text("#run-record")
        # Even the sub-second revisions leave a readable record: one row each, with durations.
        rows = last.locator("#run-timeline tbody tr")
        assert rows.count() == 4
        assert [rows.nth(i).get_attribute("data-revision") for i in range(4)] == [
            "a",
            "b",
            "c",
            "slow",
        ]
        assert rows.nth(3).locator("td").nth(3).inner_text().endswith(" s")
        assert "CREATE TABLE tags" in last.text_content("#run-log")
        assert last.get_attribute("#status", "hx-trigger") is None  # polling stopped
        save_screenshot(last, "approval_journey")
        last.context.close()
        assert target_heads(url) == ("slow",)
