"""A developer finds a stale request and asks again (issue 12, items 1, 2 and 5), in Chromium.

The stale request says why and offers "Request again with the current plan";
the form opens with the plan from the cached status and its age (no
connection to the target), *Preview* reads the database, *Submit* pins it.
Choosing an environment that needs no approver says so instead of promising
approvers. Nothing runs (no worker): task messages land on a queue of this
test, dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dashboard.approvals.services.requests import migration_request_create
from dashboard.environments.services import environment_status_refresh
from tests.conftest import browser_login, save_screenshot
from tests.dashboard.approvals_support import (
    broker,
    drop_queue_keys,
    make_environment,
    migrate_target,
)
from tests.migrator.execution_project import write_project

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
REDIS = os.environ["TEST_REDIS_URL"]
SCREEN = {"width": 1024, "height": 768}


@pytest.fixture
def world(tmp_path: Path, settings: Any, developer: Any) -> Iterator[dict[str, Any]]:
    ini = write_project(tmp_path / "project")
    settings.ALEMBIC_CONFIG = str(ini)
    queue = f"test-form-{uuid.uuid4().hex[:8]}"
    with broker(REDIS, queue):
        envs = {}
        for slug, approvals, position in (("dev", 0, 1), ("staging", 1, 2)):
            url = f"sqlite:///{tmp_path / f'{slug}.sqlite3'}"
            migrate_target(ini, url, "a")
            env = make_environment(
                slug=slug,
                url=url,
                directory=tmp_path,
                required_approvals=approvals,
                group=None if approvals == 0 else "Tech leads",
                position=position,
            )
            envs[slug] = (environment_status_refresh(environment=env, check_drift=False), url)
        staging, staging_url = envs["staging"]
        stale = migration_request_create(
            environment=staging, actor=developer, direction="upgrade", target="c", reason="tags"
        )
        migrate_target(ini, staging_url, "b")  # applied by hand with plain Alembic
        environment_status_refresh(environment=staging, check_drift=False)  # the periodic read
        yield {"stale": stale}
    drop_queue_keys(REDIS, queue)


def test_a_stale_request_is_asked_again_with_the_current_plan(
    live_server: Any, browser: Any, world: dict[str, Any]
) -> None:
    base = live_server.url
    context = browser.new_context(viewport=SCREEN)
    context.set_default_timeout(15_000)
    page = context.new_page()
    browser_login(page, base, "developer")
    stale = world["stale"]

    page.goto(f"{base}/requests/{stale.pk}/")
    assert page.inner_text("#request-status") == "Stale"
    assert "Stale: the environment moved from a to b after this was requested." in page.inner_text(
        "#stale"
    )
    save_screenshot(page, "request-stale-1024")
    page.click("#request-again")

    # The form, pre-filled, with the plan from the cached status and how old it is.
    page.wait_for_selector("#plan-source")
    assert page.input_value("#id_environment") == "staging"
    assert page.input_value("#id_target") == "c"
    assert "status read" in page.inner_text("#plan-source")
    assert page.locator("#preview li[data-revision]").all_inner_texts()[0].startswith("c ")
    assert page.locator("#preview li[data-revision]").count() == 1
    assert "Needs 1 approval" in page.inner_text("#approval-policy")

    # Picking dev (no approvers) updates the plan in place; no approvers are promised.
    page.select_option("#id_environment", "dev")
    page.wait_for_selector("#approval-policy:has-text('No approval required for Dev')")
    assert "approvers will have to confirm" not in page.inner_text("#preview")
    assert page.locator("#preview li[data-revision]").count() == 2  # dev is still at a
    save_screenshot(page, "request-form-dev-1024")
    page.select_option("#id_environment", "staging")
    page.wait_for_selector("#approval-policy:has-text('Needs 1 approval')")

    # Preview reads staging's database now; Submit pins the plan.
    page.click("#preview-button")
    page.wait_for_selector("#plan-source:has-text('just now')")
    assert "CREATE TABLE tags" in page.text_content("#preview-sql")
    save_screenshot(page, "request-form-preview-1024")
    page.fill("#id_reason", "tags again, from where staging is now")
    page.click("#submit-request")
    page.wait_for_selector("#request-status")
    assert page.inner_text("#request-status") == "Waiting for approval"
    assert "from b to c" in page.inner_text(".req-meta")
    assert page.locator("#stale").count() == 0
    save_screenshot(page, "request-again-1024")
    context.close()
