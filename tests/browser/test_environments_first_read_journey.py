"""In Chromium, with a real Celery worker: a production environment nobody has read yet reads
itself when it is opened, and its page then opens with the risk summary and fits in a few
screens at 1024 px (issue 12, items 8 and 9).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from dashboard.environments.models import Environment
from dashboard.environments.services import alembic_script
from dashboard.migrator.plan import compute_plan
from tests.conftest import browser_login, save_screenshot
from tests.dashboard.approvals_support import Worker, make_environment
from tests.dashboard.environments_helpers import migrate_target
from tests.dashboard.refresh_support import environments_queue

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
REDIS = os.environ["TEST_REDIS_URL"]
SCREEN = {"width": 1024, "height": 768}


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[Worker]:
    queue = f"test-first-read-{uuid.uuid4().hex[:8]}"
    with environments_queue(REDIS, queue):
        process = Worker(
            broker_url=REDIS,
            queue=queue,
            ini=Path(settings.ALEMBIC_CONFIG),
            log=tmp_path / "worker.log",
        )
        yield process
        process.stop()


def test_a_never_read_production_reads_itself_and_opens_with_its_risk(
    live_server: Any, browser: Any, worker: Worker, auditor: Any, tmp_path: Path
) -> None:
    order = compute_plan(alembic_script(), current_heads=(), target="heads", direction="upgrade")
    url = f"sqlite:///{tmp_path / 'production.sqlite3'}"
    migrate_target(url, order.revisions[-9])  # eight revisions behind, as in the demo
    production = make_environment(slug="production", url=url, directory=tmp_path, position=3)
    assert production.status_refreshed_at is None

    context = browser.new_context(viewport=SCREEN)
    context.set_default_timeout(30_000)
    page = context.new_page()
    # The auditor may not press "Refresh now", yet the first read happens for them too.
    browser_login(page, live_server.url, "auditor")
    page.goto(f"{live_server.url}/environments/production/")
    page.wait_for_selector('#status[data-first-read="queued"]')
    assert "Reading the database for the first time" in page.inner_text("#status")
    assert page.locator("#status button").count() == 0

    page.wait_for_selector('#status [data-state="pending"]')
    assert page.get_attribute("#status", "hx-trigger") is None  # polling stopped
    assert "8: " in page.inner_text("#status")
    page.wait_for_selector("#risk-summary")  # the plan section reloaded itself
    summary = page.inner_text("#risk-summary .dash-risk-line")
    assert summary.startswith("8 revisions · 2 destructive · 2 take ACCESS EXCLUSIVE")
    assert "est. lock targets: user_sessions, pages, webinar_registrations" in summary
    assert page.locator("#plan li[data-revision]").count() == 8
    assert page.locator("#plan details[open]").count() == 0  # findings and SQL collapsed
    page.wait_for_selector("#requests:has-text('No migration requests')")
    assert Environment.objects.get(pk=production.pk).status_refresh_queued_at is None

    height = page.evaluate("document.documentElement.scrollHeight")
    assert height <= 4 * SCREEN["height"], f"{height} px: more than four screens at 1024 px"
    page.locator('#plan li[data-revision="9c41d7e2f0ab"] details.dash-findings summary').click()
    save_screenshot(page, "environments-first-read-production")
    context.close()
