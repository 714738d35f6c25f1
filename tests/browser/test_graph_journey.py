"""A developer reads the revision graph: heads, one revision's detail, and a graph that remembers."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from alembic import command
from alembic.config import Config
from playwright.sync_api import expect

from tests.conftest import browser_login, save_screenshot
from tests.dashboard.test_graph_pages import two_head_project
from tests.migrator.execution_project import ENV_PY
from tests.migrator.graph_histories import write_ini, write_revision

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

REVISIONS = 36
WEBINAR = (9, 4)  # the revisions whose message mentions webinars (old: far down the graph)


def rev(n: int) -> str:
    return f"c0ffee{n:06d}"


def long_project(root: Path) -> Path:
    """A linear history of 36 revisions (taller than the graph's box at 1024 x 800), runnable."""
    for n in range(1, REVISIONS + 1):
        topic = "webinar banner" if n in WEBINAR else "pages"
        message = f"step {n}: {topic} table"
        write_revision(
            root / "versions", rev(n), rev(n - 1) if n > 1 else None, message=message, order=n
        )
    (root / "env.py").write_text(ENV_PY)
    return write_ini(root, "%(here)s")


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
    # No page load (htmx swapped the panel), but the address names the revision.
    page.wait_for_url(f"{live_server.url}/graph/?revision=0a1b2c3d4e02")
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


def _open(page: Any, revision: str) -> None:
    page.locator(f'#revision-detail article[data-revision="{revision}"]').wait_for()


# The row is fully visible: inside the viewport and inside the graph's scroll box.
IN_VIEW = """selector => {
    const el = document.querySelector(selector);
    const box = el.getBoundingClientRect();
    const frame = el.closest('.graph-body').getBoundingClientRect();
    return box.top >= Math.max(0, frame.top) && box.bottom <= Math.min(innerHeight, frame.bottom);
}"""


def _in_view(page: Any, selector: str) -> bool:
    return page.evaluate(IN_VIEW, selector)


def _lines(locator: Any) -> int:
    return locator.evaluate(
        "b => { const r = document.createRange(); r.selectNodeContents(b); return r.getClientRects().length; }"
    )


def test_the_graph_remembers_the_open_revision_and_finds_revisions(  # type: ignore[no-untyped-def]
    page, live_server, developer, settings, tmp_path: Path
) -> None:
    from dashboard.environments.models import Environment

    ini = long_project(tmp_path / "project")
    settings.ALEMBIC_CONFIG = str(ini)
    # One SQLite target at head; only staging's (the downgrade's) is ever read.
    target = tmp_path / "staging.sqlite3"
    config = Config(str(ini))
    config.set_main_option("sqlalchemy.url", f"sqlite:///{target}")
    command.upgrade(config, "heads")
    (tmp_path / "staging.url").write_text(f"sqlite:///{target}")
    head = rev(REVISIONS)
    for position, (slug, name) in enumerate(
        [("dev", "Development"), ("staging", "Staging"), ("production", "Production")], start=1
    ):
        Environment.objects.create(
            slug=slug,
            name=name,
            position=position,
            url_file=str(tmp_path / "staging.url"),
            current_heads=[head] if slug != "production" else [rev(20)],
            required_approvals=0 if slug == "dev" else 1,
        )
    base = live_server.url
    page.set_viewport_size({"width": 1024, "height": 800})
    browser_login(page, base, "developer")
    page.goto(f"{base}/graph/")

    # 1. Opening a revision changes the address; its row is marked.
    page.click(f"#rev-{rev(30)} a.rev-id")
    _open(page, rev(30))
    page.wait_for_url(f"{base}/graph/?revision={rev(30)}")
    # The mark is set by graph.js after the swap: wait for it, do not race it.
    expect(page.locator(f"#rev-{rev(30)}")).to_have_class(re.compile(r"\bis-selected\b"))
    page.locator("#revision-detail dd a", has_text=rev(29)).click()
    _open(page, rev(29))
    page.wait_for_url(f"{base}/graph/?revision={rev(29)}")

    # 2. Back and forward step through what was opened, back to the bare graph.
    page.go_back()
    page.wait_for_url(f"{base}/graph/?revision={rev(30)}")
    _open(page, rev(30))
    page.go_back()
    page.wait_for_url(f"{base}/graph/")
    page.locator("#revision-detail", has_text="Click a revision to see its detail.").wait_for()
    assert page.locator("#revision-detail article").count() == 0
    page.go_forward()
    page.wait_for_url(f"{base}/graph/?revision={rev(30)}")
    _open(page, rev(30))

    # 3. A shared link opens that revision, shows its row, and survives a reload.
    page.goto(f"{base}/graph/?revision={rev(3)}")
    _open(page, rev(3))
    assert _in_view(page, f"#rev-{rev(3)}")
    page.reload()
    _open(page, rev(3))
    expect(page.locator(f"#rev-{rev(3)}")).to_have_class(re.compile(r"\bis-selected\b"))

    # 4. Search highlights every match in the graph and scrolls to the first.
    page.goto(f"{base}/graph/")
    first = f"#rev-{rev(WEBINAR[0])}"
    assert not _in_view(page, first)  # far below the fold of the graph's box
    page.fill("input[name=q]", "webinar")
    page.locator(f".graph-row.search-match{first}").wait_for()
    page.wait_for_function(IN_VIEW, arg=first)  # scrolled there, the search field still in view
    marked = page.locator(".graph-row.search-match").evaluate_all("rows => rows.map(r => r.id)")
    assert marked == [f"rev-{rev(n)}" for n in WEBINAR]
    assert page.locator("svg.graph-svg .graph-node.search-match").count() == len(WEBINAR)
    field = page.locator("input[name=q]").bounding_box()
    assert field["y"] >= 0 and field["y"] + field["height"] <= 800  # still on screen
    page.wait_for_url(f"{base}/graph/?q=webinar")  # the search is in the address too
    save_screenshot(page, "graph-search-highlight")
    # Opening a result and going back returns to the search, highlighted again.
    page.locator(".graph-search-results a", has_text="details").first.click()
    _open(page, rev(WEBINAR[0]))
    page.wait_for_url(f"{base}/graph/?q=webinar&revision={rev(WEBINAR[0])}")
    page.go_back()
    page.wait_for_url(f"{base}/graph/?q=webinar")
    page.locator("#revision-detail", has_text="Click a revision to see its detail.").wait_for()
    assert page.locator("input[name=q]").input_value() == "webinar"
    page.locator(f".graph-row.search-match{first}").wait_for()

    # 5. The request buttons keep their shape at 1024 px; a downgrade asks where.
    chosen = rev(REVISIONS - 2)
    page.click(f"#rev-{chosen} a.rev-id")
    _open(page, chosen)
    panel = page.locator("#revision-detail").bounding_box()
    buttons = page.locator("#revision-detail .rev-actions .button")
    assert buttons.count() == 2
    heights = set()
    for index in range(2):
        button = buttons.nth(index)
        box = button.bounding_box()
        assert _lines(button) == 1, button.inner_text()  # the label is on one line
        assert box["x"] >= panel["x"] and box["x"] + box["width"] <= panel["x"] + panel["width"]
        heights.add(round(box["height"]))
    assert len(heights) == 1
    environment = page.locator("#rev-request-environment")
    assert environment.input_value() == ""  # no environment chosen for the user
    save_screenshot(page, "graph-revision-request-1024")
    page.click("#revision-detail button[value=downgrade]")
    assert environment.evaluate("s => s.validity.valueMissing")  # the browser asks for it
    assert page.url == f"{base}/graph/?q=webinar&revision={chosen}"
    environment.select_option("staging")
    page.click("#revision-detail button[value=downgrade]")
    page.wait_for_url(f"{base}/requests/new/?**")
    query = parse_qs(urlsplit(page.url).query)
    assert query == {
        "target": [chosen],
        "environment": ["staging"],
        "direction": ["downgrade"],
    }
    assert page.locator("#id_environment").input_value() == "staging"
    assert page.locator("#id_direction").input_value() == "downgrade"
    assert page.locator("#id_target").input_value() == chosen
    save_screenshot(page, "graph-downgrade-request")
