"""Security hardening: deploy checks, login throttling, sessions, headers, re-authentication."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.urls import reverse

from dashboard.security import SESSION_AUTH_AT

REPO_ROOT = Path(__file__).resolve().parents[2]

PRODUCTION_ENV = {
    "PATH": os.environ["PATH"],
    "DJANGO_SETTINGS_MODULE": "dashboard.settings",
    "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
    "DJANGO_ALLOWED_HOSTS": "dashboard.example.com",
    "DJANGO_SECURE_SSL_REDIRECT": "1",
    "DJANGO_HSTS_SECONDS": "31536000",
}


def _run_django(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**PRODUCTION_ENV, "DASHBOARD_VAR_DIR": str(tmp_path)}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_it_passes_the_deploy_checks_with_production_settings(tmp_path: Path) -> None:
    result = _run_django(["check", "--deploy", "--fail-level", "WARNING"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_production_cookies_are_secure_and_http_only(tmp_path: Path) -> None:
    code = (
        "from django.conf import settings as s; "
        "print(s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SESSION_COOKIE_HTTPONLY, s.DEBUG)"
    )
    result = _run_django(["shell", "-c", code], tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-4:] == ["True", "True", "True", "False"]


def _fail_login(client, username: str) -> None:  # type: ignore[no-untyped-def]
    client.post(reverse("admin:login"), {"username": username, "password": "wrong"})


@pytest.mark.django_db
def test_it_locks_an_account_after_five_failed_logins_and_audits_it(client, lead) -> None:  # type: ignore[no-untyped-def]
    from dashboard.audit.models import AuditEvent

    for _ in range(4):
        _fail_login(client, "lead")
    # Four failures: the right password still works.
    response = client.post(reverse("admin:login"), {"username": "lead", "password": "pw"})
    assert response.status_code == 302
    client.logout()
    for _ in range(5):
        _fail_login(client, "lead")
    locked = AuditEvent.objects.filter(action="dashboard.auth.locked_out")
    assert locked.count() == 1  # the lock itself, at the fifth failure
    assert locked.get().payload["username"] == "lead"
    response = client.post(reverse("admin:login"), {"username": "lead", "password": "pw"})
    assert response.status_code == 429
    assert b"Too many failed logins" in response.content
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_sessions_end_after_thirty_idle_minutes_and_approvers_at_browser_close(
    client, developer, lead, settings
) -> None:  # type: ignore[no-untyped-def]
    assert settings.SESSION_COOKIE_AGE == 30 * 60
    assert settings.SESSION_SAVE_EVERY_REQUEST
    client.post(reverse("admin:login"), {"username": "developer", "password": "pw"})
    cookie = client.cookies[settings.SESSION_COOKIE_NAME]
    assert cookie["max-age"] == 30 * 60
    client.logout()
    client.post(reverse("admin:login"), {"username": "lead", "password": "pw"})
    cookie = client.cookies[settings.SESSION_COOKIE_NAME]
    assert cookie["max-age"] == ""  # a browser-session cookie
    assert client.session.get_expire_at_browser_close()


@pytest.mark.django_db
def test_pages_send_the_security_headers(client, developer) -> None:  # type: ignore[no-untyped-def]
    client.force_login(developer)
    response = client.get("/")
    assert response.status_code == 200
    csp = response["Content-Security-Policy"]
    script_src = re.search(r"script-src ([^;]+)", csp).group(1)
    assert script_src.strip() == "'self'"
    assert "frame-ancestors 'none'" in csp
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Content-Type-Options"] == "nosniff"
    # No inline script anywhere on the page: every <script> has a src.
    scripts = re.findall(rb"<script\b[^>]*>", response.content)
    assert scripts
    assert all(b"src=" in tag for tag in scripts), scripts


@pytest.mark.django_db
def test_reauthentication_asks_for_the_password_and_returns_to_next(client, lead) -> None:  # type: ignore[no-untyped-def]
    client.post(reverse("admin:login"), {"username": "lead", "password": "pw"})
    session = client.session
    session[SESSION_AUTH_AT] = time.time() - 11 * 60
    session.save()
    url = reverse("dashboard:reauthenticate") + "?next=/graph/"
    response = client.post(url, {"password": "wrong", "next": "/graph/"})
    assert response.status_code == 200
    assert b"That password is not correct." in response.content
    response = client.post(url, {"password": "pw", "next": "/graph/"})
    assert response.status_code == 302
    assert response["Location"] == "/graph/"
    assert time.time() - client.session[SESSION_AUTH_AT] < 5


@pytest.mark.django_db
def test_reauthentication_never_redirects_off_site(client, lead) -> None:  # type: ignore[no-untyped-def]
    client.force_login(lead)
    response = client.post(
        reverse("dashboard:reauthenticate"), {"password": "pw", "next": "https://evil.example/"}
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("dashboard:overview")
