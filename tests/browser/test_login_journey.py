"""A tech lead logs in through the browser and lands in the control room."""

from __future__ import annotations

import pytest

from tests.conftest import browser_login, save_screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_lead_logs_in_and_sees_the_admin_index(page, live_server, lead) -> None:  # type: ignore[no-untyped-def]
    browser_login(page, live_server.url, "lead")
    page.goto(f"{live_server.url}/admin/")
    assert page.locator("#site-name").inner_text() == "Magnetiq2 migrations"
    assert page.locator("h1").first.inner_text() == "Control room"
    assert "lead" in page.locator("#user-tools").inner_text().lower()
    save_screenshot(page, "login-admin-index")


def test_a_wrong_password_keeps_the_user_on_the_login_page(page, live_server, lead) -> None:  # type: ignore[no-untyped-def]
    browser_login(page, live_server.url, "lead", password="wrong")
    assert "/admin/login/" in page.url
    assert (
        "Please enter the correct username and password" in page.locator(".errornote").inner_text()
    )
