"""A tech lead reviews the demo's production request at 1024 px (issue 12, items 4, 5, 9, 13).

The page opens with the one-glance risk, fits in a few screens with findings
and SQL collapsed, gives the pinned SQL as a file, and the decision form is
keyboard-friendly: a refused approval keeps the comment and says why once;
Approve and Reject look like the primary and the danger action.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from tests.conftest import browser_login, save_screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
REPO_ROOT = Path(__file__).resolve().parents[2]
SCREEN = {"width": 1024, "height": 768}
DROP_COLUMN_REVISION = "9c41d7e2f0ab"


@pytest.fixture
def demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The demo's data (``make demo-setup``) on SQLite targets; its production request waits."""
    from dashboard.approvals.models import MigrationRequest

    for slug in ("dev", "staging", "production"):
        monkeypatch.setenv(f"MAGNETIQ_{slug.upper()}_URL", f"sqlite:///{tmp_path / slug}.sqlite3")
    call_command("demo_setup", environments=str(REPO_ROOT / "environments.toml"))
    return MigrationRequest.objects.get(environment__slug="production", status="pending")


def _focused(page: Any) -> str:
    return page.evaluate("() => document.activeElement.id")


def test_a_lead_reviews_the_production_request_and_approves_it_with_the_keyboard(
    live_server: Any, browser: Any, demo: Any
) -> None:
    base = live_server.url
    context = browser.new_context(viewport=SCREEN, accept_downloads=True)
    context.set_default_timeout(15_000)
    page = context.new_page()
    browser_login(page, base, "lead", password="demo")
    page.goto(f"{base}/requests/{demo.pk}/")

    # The risk at a glance, first; then the status and the decision.
    summary = page.locator("#risk-summary")
    assert "8 revisions" in summary.inner_text() and "destructive" in summary.inner_text()
    boxes = [page.locator(s).bounding_box() for s in ("#risk-summary", "#status", "#decisions")]
    assert [box["y"] for box in boxes] == sorted(box["y"] for box in boxes)
    assert page.locator("#decisions").bounding_box()["y"] < SCREEN["height"]
    # Findings and SQL collapsed: the whole page is a few screens.
    assert page.locator("details[open]").count() == 0
    assert not page.locator("#plan-sql").is_visible()
    height = page.evaluate("() => document.documentElement.scrollHeight")
    assert height <= 3.5 * SCREEN["height"], f"the request page is {height} px high"
    assert page.locator("#plan li[data-revision]").count() == 8
    assert "destructive" in page.inner_text(f'#plan li[data-revision="{DROP_COLUMN_REVISION}"]')
    assert "{'" not in page.inner_text("#drift")

    with page.expect_download() as download:
        page.click("#download-sql")
    assert download.value.suggested_filename == f"request-{demo.pk}-upgrade.sql"
    assert Path(download.value.path()).read_text(encoding="utf-8") == demo.sql

    # The primary and the danger action look like it.
    colours = page.evaluate(
        """() => ['approve', 'reject'].map(id => getComputedStyle(document.getElementById(id)).backgroundColor)"""
    )
    root = page.evaluate(
        """() => ['--default-button-bg', '--delete-button-bg'].map(
            name => getComputedStyle(document.documentElement).getPropertyValue(name).trim())"""
    )
    assert colours[0] != colours[1]
    probe = page.evaluate(
        """(values) => values.map(v => { const el = document.createElement('i');
            el.style.color = v; document.body.append(el);
            const c = getComputedStyle(el).color; el.remove(); return c; })""",
        root,
    )
    assert colours == probe, (colours, root)

    # Keyboard: comment, the tick, Approve, Reject, in that order.
    page.focus("#id_comment")
    page.keyboard.type("read every statement; the drop is expected")
    page.keyboard.press("Tab")
    assert _focused(page) == "id_sql_acknowledged"
    page.keyboard.press("Tab")
    assert _focused(page) == "approve"
    page.keyboard.press("Tab")
    assert _focused(page) == "reject"

    # Approve without the tick: refused, the comment kept, the reason said once.
    page.focus("#approve")
    page.keyboard.press("Enter")
    page.wait_for_selector("#decision-error")
    assert "tick that you read the SQL" in page.inner_text("#decision-error")
    assert page.content().lower().count("tick that you read the sql") == 1
    assert page.locator(".messagelist").count() == 0
    assert page.input_value("#id_comment") == "read every statement; the drop is expected"
    save_screenshot(page, "request-review-refused-1024")

    page.focus("#id_sql_acknowledged")
    page.keyboard.press("Space")
    assert page.is_checked("#id_sql_acknowledged")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    page.wait_for_selector("#decisions li:has-text('Approved by lead')")
    assert "Approvals (1 of 2)" in page.inner_text("#decisions")
    assert "read the SQL" in page.inner_text("#decisions li")
    assert page.inner_text("#request-status") == "Waiting for approval"
    save_screenshot(page, "request-review-1024")
    context.close()
