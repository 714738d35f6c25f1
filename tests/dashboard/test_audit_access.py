"""Who may approve is decided by groups and flags: every change of them is audited."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group, Permission
from django.test import Client
from django.urls import reverse

from dashboard.audit.models import AuditEvent

pytestmark = pytest.mark.django_db


def _events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("seq"))


def test_putting_someone_in_tech_leads_through_the_admin_is_audited_with_the_admin_as_actor(
    make_user: Any, developer: Any
) -> None:
    admin = make_user("boss", superuser=True)
    client = Client()
    client.force_login(admin)
    leads = Group.objects.get(name="Tech leads")
    form = {
        "username": "developer",
        "is_active": "on",
        "is_staff": "on",
        "groups": [str(leads.pk)],
        "last_login_0": "",
        "last_login_1": "",
        "date_joined_0": "2026-01-01",
        "date_joined_1": "00:00:00",
        "initial-date_joined_0": "2026-01-01",
        "initial-date_joined_1": "00:00:00",
    }
    response = client.post(reverse("admin:auth_user_change", args=[developer.pk]), form)
    assert response.status_code == 302, response.content[:2000]

    added = [e for e in _events("dashboard.auth.groups_changed") if e.payload.get("added")]
    assert added[-1].payload == {"user": "developer", "added": ["Tech leads"]}
    assert added[-1].actor_username == "boss"


def test_flags_and_permissions_are_audited_even_from_a_shell(developer: Any) -> None:
    developer.is_superuser = True
    developer.save()
    approve = Permission.objects.get(codename="approve_migration")
    developer.user_permissions.add(approve)

    changed = _events("dashboard.auth.user_changed")[-1]
    assert changed.payload == {"user": "developer", "changed": {"is_superuser": [False, True]}}
    granted = _events("dashboard.auth.permissions_changed")[-1]
    assert granted.payload == {"user": "developer", "added": ["dashboard.approve_migration"]}


def test_the_role_sync_after_migrate_writes_no_event() -> None:
    from django.core.management import call_command

    before = AuditEvent.objects.count()
    call_command("migrate", verbosity=0)
    assert AuditEvent.objects.count() == before
