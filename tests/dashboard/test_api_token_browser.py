"""A developer creates an API token in the admin and sees it exactly once (Chromium)."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from dashboard.api.models import ApiToken
from tests.conftest import browser_login, save_screenshot


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_a_developer_creates_a_token_and_copies_it_from_the_page_shown_once(
    live_server: Any, page: Any, developer: Any
) -> None:
    browser_login(page, live_server.url, "developer")
    page.goto(f"{live_server.url}/admin/api/apitoken/add/")
    page.fill("#id_name", "GitLab CI: upgrade staging")
    page.click("input[name=_save]")

    shown = page.input_value("#api-token")
    assert shown.startswith("mqd_") and len(shown) == 47
    assert page.get_by_text("shown only this once").is_visible()
    save_screenshot(page, "api-token-shown-once")
    token = ApiToken.objects.get()
    assert token.token_hash == hashlib.sha256(shown.encode()).hexdigest()

    page.click("text=Done")
    page.wait_for_load_state()
    assert "GitLab CI: upgrade staging" in page.content()
    assert shown not in page.content()

    # The API documentation renders under the strict CSP (Swagger UI from our static files).
    page.goto(f"{live_server.url}/api/v1/docs")
    page.get_by_text("Ask for a migration").first.wait_for()
    save_screenshot(page, "api-docs")
