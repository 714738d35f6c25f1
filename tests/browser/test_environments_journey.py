"""In Chromium: a developer sees the pipeline, opens staging, refreshes it, picks a downgrade plan."""

from __future__ import annotations

from pathlib import Path

import pytest

from dashboard.environments.services import alembic_script, environment_status_refresh
from tests.conftest import browser_login, save_screenshot
from tests.dashboard.environments_helpers import make_environment, migrate_target

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_developer_reads_the_pipeline_and_a_plan(
    live_server: object,
    page: object,
    developer: object,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    script = alembic_script()
    head = script.get_current_head()
    behind = script.get_revision(script.get_revision(head).down_revision).down_revision
    for position, (slug, target) in enumerate((("dev", "heads"), ("staging", behind)), 1):
        url = f"sqlite:///{tmp_path / slug}.sqlite3"
        migrate_target(url, target)
        env = make_environment(monkeypatch, slug, url, position=position)
        environment_status_refresh(environment=env)
    migrate_target(f"sqlite:///{tmp_path / 'staging'}.sqlite3", "heads")  # moved since last read

    base = live_server.url  # type: ignore[attr-defined]
    browser_login(page, base, "developer")
    page.goto(f"{base}/")  # type: ignore[attr-defined]
    staging_card = page.locator('article[data-env="staging"]')  # type: ignore[attr-defined]
    assert "2 revisions" in staging_card.inner_text()
    page.set_viewport_size({"width": 1024, "height": 768})  # type: ignore[attr-defined]
    save_screenshot(page, "environments-overview")

    staging_card.locator("h2 a").click()
    page.wait_for_selector("#plan li[data-revision]")  # type: ignore[attr-defined]
    assert page.locator("#plan li[data-revision]").count() == 2  # type: ignore[attr-defined]

    page.click("#status button")  # type: ignore[attr-defined]
    page.wait_for_selector('#status [data-state="up_to_date"]')  # type: ignore[attr-defined]
    assert "nothing, up to date" in page.inner_text("#status")  # type: ignore[attr-defined]

    page.select_option("#id_direction", "downgrade")  # type: ignore[attr-defined]
    page.fill("#id_target", behind)  # type: ignore[attr-defined]
    page.click("#plan button")  # type: ignore[attr-defined]
    page.wait_for_selector("#plan >> text=Downgrade to")  # type: ignore[attr-defined]
    assert page.locator("#plan li[data-revision]").count() == 2  # type: ignore[attr-defined]
    assert "direction=downgrade" in page.url  # type: ignore[attr-defined]
    page.locator("#plan details summary").first.click()  # type: ignore[attr-defined]
    save_screenshot(page, "environments-journey")
