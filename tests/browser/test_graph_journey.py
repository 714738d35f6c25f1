"""A developer opens the graph of a two-head history and reads one revision's detail."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import browser_login, save_screenshot
from tests.dashboard.test_graph_pages import two_head_project

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_developer_sees_both_heads_and_opens_a_revision(  # type: ignore[no-untyped-def]
    page, live_server, developer, settings, tmp_path: Path
) -> None:
    settings.ALEMBIC_CONFIG = str(two_head_project(tmp_path))
    browser_login(page, live_server.url, "developer")
    page.goto(f"{live_server.url}/graph/")

    heads = page.locator(".graph-head-list")
    assert "0a1b2c3d4e03" in heads.inner_text()
    assert "0a1b2c3d4e04" in heads.inner_text()
    warning = page.locator(".graph-warning")
    assert "alembic upgrade head will fail: merge or use heads" in warning.inner_text()
    assert page.locator("svg.graph-svg .graph-node").count() == 4

    page.click("#rev-0a1b2c3d4e02 a.rev-id")
    detail = page.locator("#revision-detail article.revision-detail")
    detail.wait_for()
    assert page.url == f"{live_server.url}/graph/"  # no page load: htmx swapped the panel
    assert "Revision 0a1b2c3d4e02" in detail.locator("h2").inner_text()
    assert "add slugs" in detail.inner_text()
    upgrade = detail.locator(".rev-source").first
    assert "def upgrade() -> None:" in upgrade.inner_text()
    assert 'op.create_table("t_0a1b2c3d4e02"' in upgrade.inner_text()
    assert upgrade.locator(".highlight .k").count() > 0  # syntax-highlighted

    detail.locator("dd a", has_text="0a1b2c3d4e04").click()
    page.locator('#revision-detail article[data-revision="0a1b2c3d4e04"]').wait_for()
    assert "index page translations" in page.locator("#revision-detail").inner_text()
    save_screenshot(page, "graph-two-heads-detail")
