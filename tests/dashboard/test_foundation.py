"""The foundation: settings, roles, login wall, health endpoint, demo set-up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.urls import reverse

REPO_ROOT = Path(__file__).resolve().parents[2]


def _start_django(env_overrides: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "DASHBOARD_", "CELERY_"))
    }
    env.update({"DJANGO_SETTINGS_MODULE": "dashboard.settings", "DJANGO_DEBUG": "1"})
    env.update(env_overrides)
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DJANGO_DEBUG", "maybe"),
        ("DASHBOARD_DATABASE_URL", "not-a-url"),
        ("DASHBOARD_SESSION_IDLE", "half an hour"),
        ("DJANGO_HSTS_SECONDS", "-1"),
    ],
)
def test_it_stops_start_up_on_a_malformed_variable_naming_it(
    name: str, value: str, tmp_path: Path
) -> None:
    result = _start_django({name: value, "DASHBOARD_VAR_DIR": str(tmp_path)})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert name in result.stderr


def test_it_requires_a_secret_key_when_debug_is_off(tmp_path: Path) -> None:
    result = _start_django({"DJANGO_DEBUG": "0", "DASHBOARD_VAR_DIR": str(tmp_path)})
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY must be set" in result.stderr


def test_it_starts_with_the_embedded_defaults(tmp_path: Path) -> None:
    result = _start_django({"DASHBOARD_VAR_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


@pytest.mark.django_db
def test_it_creates_the_three_roles_with_their_permissions() -> None:
    def perms(group: str) -> set[str]:
        return {
            f"{p.content_type.app_label}.{p.codename}"
            for p in Group.objects.get(name=group).permissions.all()
        }

    assert {"dashboard.request_migration"} <= perms("Developers")
    assert "dashboard.approve_migration" not in perms("Developers")
    assert {"dashboard.request_migration", "dashboard.approve_migration"} <= perms("Tech leads")
    assert {"dashboard.view_auditlog", "dashboard.export_auditlog"} <= perms("Auditors")
    assert "dashboard.request_migration" not in perms("Auditors")
    assert "dashboard.approve_migration" not in perms("Auditors")


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/", "/admin/"])
def test_it_sends_anonymous_visitors_to_the_login_page(client, url: str) -> None:  # type: ignore[no-untyped-def]
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


@pytest.mark.django_db
def test_it_reports_health_without_leaking_anything(client, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from dashboard.celery import app

    monkeypatch.setitem(app.conf, "broker_url", os.environ["TEST_REDIS_URL"])
    response = client.get("/healthz")
    body = json.loads(response.content)
    assert response.status_code == 200
    assert body == {"status": "ok", "database": "ok", "broker": "ok"}


@pytest.mark.django_db
def test_it_says_degraded_when_the_broker_does_not_answer(client) -> None:  # type: ignore[no-untyped-def]
    from dashboard.celery import app

    previous = app.conf.broker_url
    app.conf.broker_url = "redis://127.0.0.1:9/0"  # discard port: nothing listens
    try:
        response = client.get("/healthz")
    finally:
        app.conf.broker_url = previous
    assert response.status_code == 503
    assert json.loads(response.content) == {
        "status": "degraded",
        "database": "ok",
        "broker": "unavailable",
    }
    assert b"127.0.0.1" not in response.content


# transaction=True: demo_targets refreshes statuses from threads with their own connections.
@pytest.mark.django_db(transaction=True)
def test_it_sets_up_the_demo_twice_without_error(capsys) -> None:  # type: ignore[no-untyped-def]
    from django.contrib.auth import get_user_model

    call_command("demo_setup")
    call_command("demo_setup")
    for username, group in [
        ("developer", "Developers"),
        ("lead", "Tech leads"),
        ("lead2", "Tech leads"),
        ("auditor", "Auditors"),
    ]:
        user = get_user_model().objects.get(username=username)
        assert user.check_password("demo"), username
        assert user.is_staff
        assert list(user.groups.values_list("name", flat=True)) == [group]
    admin = get_user_model().objects.get(username="admin")
    assert admin.check_password("demo")
    assert admin.is_superuser
