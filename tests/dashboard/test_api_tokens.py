"""Personal API tokens: created in the admin, shown once, stored hashed, revocable."""
# ruff: noqa: F811  (fixtures imported from tests.dashboard.api_support)

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from dashboard.api.models import ApiToken
from dashboard.audit.models import AuditEvent
from tests.dashboard.api_support import bearer, make_token  # noqa: F401

TOKEN_RE = re.compile(r'value="(mqd_[A-Za-z0-9_\-]{43})"')
ENVIRONMENTS = "/api/v1/environments"


def _logged_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _create_in_admin(client: Client, name: str = "GitLab CI") -> str:
    response = client.post(reverse("admin:api_apitoken_add"), {"name": name})
    assert response.status_code == 200
    match = TOKEN_RE.search(response.content.decode())
    assert match, "the new token is shown on the page"
    return match.group(1)


@pytest.mark.django_db
def test_it_shows_a_new_token_once_and_stores_only_its_hash(developer: Any) -> None:
    client = _logged_in(developer)
    plaintext = _create_in_admin(client)

    token = ApiToken.objects.get()
    assert token.user == developer and token.name == "GitLab CI"
    assert token.token_hash == hashlib.sha256(plaintext.encode()).hexdigest()
    assert token.prefix == plaintext[:12]
    # Nowhere to be seen again: not on the list, not on the token's page.
    for url in (
        reverse("admin:api_apitoken_changelist"),
        reverse("admin:api_apitoken_change", args=[token.pk]),
    ):
        page = client.get(url).content.decode()
        assert token.prefix in page
        assert plaintext not in page
    event = AuditEvent.objects.get(action="dashboard.api.token_created")
    assert event.actor_username == "developer"
    assert event.payload["prefix"] == token.prefix
    assert plaintext not in str(event.payload)
    # And it works.
    assert Client().get(ENVIRONMENTS, **bearer(plaintext)).status_code == 200


@pytest.mark.django_db
def test_a_revoked_token_stops_working_at_once(developer: Any) -> None:
    client = _logged_in(developer)
    plaintext = _create_in_admin(client)
    token = ApiToken.objects.get()
    assert Client().get(ENVIRONMENTS, **bearer(plaintext)).status_code == 200

    response = client.post(
        reverse("admin:api_apitoken_changelist"),
        {"action": "revoke_tokens", "_selected_action": [token.pk]},
        follow=True,
    )
    assert "1 token(s) revoked" in response.content.decode()

    answer = Client().get(ENVIRONMENTS, **bearer(plaintext))
    assert answer.status_code == 401
    assert answer.json()["detail"]
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert AuditEvent.objects.filter(
        action="dashboard.api.token_revoked", actor_username="developer"
    ).exists()
    # The row stays for the record: the admin offers no delete.
    assert client.post(reverse("admin:api_apitoken_delete", args=[token.pk])).status_code == 403


@pytest.mark.django_db
def test_people_see_and_revoke_only_their_own_tokens(
    developer: Any, lead: Any, make_user: Callable[..., Any], make_token: Callable[..., str]
) -> None:
    lead_token = make_token(lead, "lead's pipeline")
    lead_row = ApiToken.objects.get(user=lead)
    developer_client = _logged_in(developer)

    listing = developer_client.get(reverse("admin:api_apitoken_changelist")).content.decode()
    assert "lead&#x27;s pipeline" not in listing and "lead's pipeline" not in listing
    change = developer_client.get(reverse("admin:api_apitoken_change", args=[lead_row.pk]))
    assert change.status_code == 302  # the admin's "does not exist" redirect
    developer_client.post(
        reverse("admin:api_apitoken_changelist"),
        {"action": "revoke_tokens", "_selected_action": [lead_row.pk]},
    )
    lead_row.refresh_from_db()
    assert lead_row.revoked_at is None
    assert Client().get(ENVIRONMENTS, **bearer(lead_token)).status_code == 200

    boss = make_user("boss", superuser=True)
    listing = _logged_in(boss).get(reverse("admin:api_apitoken_changelist")).content.decode()
    assert lead_row.prefix in listing


@pytest.mark.django_db
def test_people_without_a_role_cannot_create_tokens(outsider: Any) -> None:
    response = _logged_in(outsider).post(reverse("admin:api_apitoken_add"), {"name": "x"})
    assert response.status_code == 403
    assert not ApiToken.objects.exists()


@pytest.mark.django_db
def test_it_records_the_last_use_at_most_once_a_minute(
    developer: Any, make_token: Callable[..., str]
) -> None:
    plaintext = make_token(developer)
    token = ApiToken.objects.get()
    assert token.last_used_at is None

    Client().get(ENVIRONMENTS, **bearer(plaintext))
    token.refresh_from_db()
    first = token.last_used_at
    assert first is not None and timezone.now() - first < timedelta(seconds=30)

    Client().get(ENVIRONMENTS, **bearer(plaintext))
    token.refresh_from_db()
    assert token.last_used_at == first  # no write within the minute

    ApiToken.objects.filter(pk=token.pk).update(last_used_at=first - timedelta(minutes=2))
    Client().get(ENVIRONMENTS, **bearer(plaintext))
    token.refresh_from_db()
    assert token.last_used_at > first


@pytest.mark.django_db
def test_a_token_of_a_deactivated_user_gets_401(
    developer: Any, make_token: Callable[..., str]
) -> None:
    plaintext = make_token(developer)
    developer.is_active = False
    developer.save()
    assert Client().get(ENVIRONMENTS, **bearer(plaintext)).status_code == 401


@pytest.mark.django_db
@pytest.mark.parametrize(
    "header",
    ["", "Bearer", "Bearer mqd_nope", "Token abc", "Basic ZGV2ZWxvcGVyOnB3", "Bearer  "],
)
def test_missing_or_bad_credentials_get_401_json(header: str) -> None:
    extra = {"HTTP_AUTHORIZATION": header} if header else {}
    response = Client().get(ENVIRONMENTS, **extra)
    assert response.status_code == 401
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["detail"]
    assert response["WWW-Authenticate"].startswith("Bearer")
