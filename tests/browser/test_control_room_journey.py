"""In Chromium, as each role: sign in at /admin/login/, land in the control room, reach
Production in one click, see who is signed in on every page, and log out (issue 12, item 7).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dashboard.approvals.services.requests import migration_request_create
from dashboard.environments.services import alembic_script, environment_status_refresh
from dashboard.migrator.plan import compute_plan
from tests.conftest import save_screenshot
from tests.dashboard.approvals_support import make_environment
from tests.dashboard.environments_helpers import migrate_target

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
SCREEN = {"width": 1024, "height": 768}


@pytest.fixture
def production(tmp_path: Path, developer: Any) -> Any:
    """Production three revisions behind, read, with the developer's request waiting."""
    order = compute_plan(alembic_script(), current_heads=(), target="heads", direction="upgrade")
    url = f"sqlite:///{tmp_path / 'production.sqlite3'}"
    migrate_target(url, order.revisions[-4])
    env = make_environment(slug="production", url=url, directory=tmp_path, position=3)
    environment_status_refresh(environment=env, check_drift=False)
    return migration_request_create(
        environment=env,
        actor=developer,
        direction="upgrade",
        target="heads",
        reason="the spring release",
    )


@pytest.mark.parametrize("role", ["developer", "lead", "auditor"])
def test_each_role_lands_in_the_control_room_reaches_production_and_logs_out(
    role: str,
    live_server: Any,
    browser: Any,
    production: Any,
    developer: Any,
    lead: Any,
    auditor: Any,
) -> None:
    base = live_server.url
    context = browser.new_context(viewport=SCREEN)
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.goto(f"{base}/admin/login/")  # no ?next=: where Django's admin sends people
    page.fill("#id_username", role)
    page.fill("#id_password", "pw")
    page.click("input[type=submit]")
    page.wait_for_selector("#control-environments")

    assert page.url == f"{base}/admin/"
    assert page.locator("h1").first.inner_text() == "Control room"
    assert page.inner_text("#signed-in-user") == role
    card = page.locator('#control-environments article[data-env="production"]')
    assert "Pending upgrades" in card.inner_text()
    waiting = page.locator(f'#control-waiting tr[data-request="{production.pk}"]')
    assert waiting.count() == (1 if role == "lead" else 0)
    assert page.locator("#control-admin").count() == 1  # model lists stay, below
    save_screenshot(page, f"control-room-{role}")

    card.locator("h2 a").click()  # one click to Production
    page.wait_for_selector("#plan li[data-revision]")
    assert page.locator("h1").first.inner_text().startswith("Production")
    assert page.inner_text("#signed-in-user") == role
    page.wait_for_selector(f'#requests tr[data-request="{production.pk}"]')
    assert "Waiting for approval" in page.inner_text("#requests")

    page.click("#logout-form button")
    page.wait_for_selector("text=Log in again")
    assert page.locator("#signed-in-user").count() == 0
    page.goto(f"{base}/")
    assert "/admin/login/" in page.url
    save_screenshot(page, f"control-room-{role}-logged-out")
    context.close()
