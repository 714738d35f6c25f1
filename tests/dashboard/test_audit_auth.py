"""Logins, failed logins and logouts are written to the audit log."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from dashboard.audit.models import AuditEvent

pytestmark = pytest.mark.django_db
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) Chromium/130"


def _client() -> Client:
    return Client(REMOTE_ADDR="192.0.2.10", HTTP_USER_AGENT=BROWSER)


def test_it_records_a_login_with_the_client_address(developer: object) -> None:
    response = _client().post(reverse("admin:login"), {"username": "developer", "password": "pw"})

    assert response.status_code == 302
    event = AuditEvent.objects.get(action="dashboard.auth.login")
    assert (event.actor_type, event.actor_id, event.actor_username) == (
        "user",
        developer.pk,
        "developer",
    )
    assert (event.client_ip, event.user_agent) == ("192.0.2.10", BROWSER)


def test_it_records_a_failed_login_with_the_username_tried_but_not_the_password(
    developer: object,
) -> None:
    response = _client().post(
        reverse("admin:login"), {"username": "developer", "password": "wrong-guess-42"}
    )

    assert response.status_code == 200  # the form again
    event = AuditEvent.objects.get(action="dashboard.auth.login_failed")
    assert event.actor_type == "anonymous" and event.actor_id is None
    assert event.payload == {"username": "developer"}
    assert event.client_ip == "192.0.2.10"
    assert "wrong-guess-42" not in str(event.chain_fields())
    assert not AuditEvent.objects.filter(action="dashboard.auth.login").exists()


def test_it_records_a_logout(developer: object) -> None:
    client = _client()
    client.post(reverse("admin:login"), {"username": "developer", "password": "pw"})

    client.post(reverse("admin:logout"))

    actions = list(AuditEvent.objects.order_by("seq").values_list("action", "actor_username"))
    assert actions == [
        ("dashboard.auth.login", "developer"),
        ("dashboard.auth.logout", "developer"),
    ]
