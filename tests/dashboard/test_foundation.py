"""The foundation: settings, roles, login wall, health endpoint, demo set-up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

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


# --- the frame: who is signed in, a way out, a favicon (issue 12, items 7 and 16) ---


@pytest.mark.django_db
def test_every_page_says_who_is_signed_in_and_logs_out_with_a_post(developer) -> None:  # type: ignore[no-untyped-def]
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(developer)
    for url in ("/", "/graph/", "/requests/", "/requests/new/", "/admin/", "/reauthenticate/"):
        html = client.get(url).content.decode()
        assert 'Signed in as <strong id="signed-in-user">developer</strong>' in html, url
        form = html[html.index('<form id="logout-form"') :]
        form = form[: form.index("</form>")]
        assert 'method="post" action="/admin/logout/"' in form, url
        assert 'name="csrfmiddlewaretoken"' in form and ">Log out</button>" in form, url
    token = client.cookies["csrftoken"].value
    assert client.get("/admin/logout/").status_code == 405  # Django 5: no logout by GET
    assert client.post("/admin/logout/").status_code == 403  # no CSRF token: refused
    assert client.post("/admin/logout/", {"csrfmiddlewaretoken": token}).status_code == 200
    assert client.get("/")["Location"].startswith("/admin/login/")


@pytest.mark.django_db
def test_the_favicon_is_linked_from_the_frame_and_is_a_static_file(developer) -> None:  # type: ignore[no-untyped-def]
    from django.contrib.staticfiles import finders
    from django.test import Client

    client = Client()
    client.force_login(developer)
    assert '<link rel="icon" type="image/svg+xml" href="/static/dashboard/favicon.svg">' in (
        client.get("/").content.decode()
    )
    login = Client().get("/admin/login/").content.decode()
    assert 'rel="icon"' in login and "Signed in as" not in login
    path = finders.find("dashboard/favicon.svg")
    assert path and Path(path).read_text().startswith("<svg")


# --- one look for statuses, one format for dates (issue 12, item 11) ------------


def test_status_badges_use_the_words_of_the_models_and_have_a_colour_and_symbol_each() -> None:
    from dashboard.approvals.models import MigrationRequest, Run
    from dashboard.templatetags.dashboard_extras import STATUS_STYLES

    css = (REPO_ROOT / "dashboard" / "static" / "dashboard" / "dashboard.css").read_text()
    for value, label in [*MigrationRequest.Status.choices, *Run.Outcome.choices]:
        words, tone = STATUS_STYLES[value]
        assert words == label, value
        assert tone in ("ok", "danger", "warn", "info", "muted"), value
        assert f'.dash-status[data-status="{value}"]::before' in css, value
    failed = {value for value, (_, tone) in STATUS_STYLES.items() if tone == "danger"}
    assert failed == {"failed", "interrupted"}


def test_status_badge_renders_one_partial() -> None:
    from django.template import Context, Template

    html = Template('{% load dashboard_extras %}{% status_badge "interrupted" %}').render(Context())
    assert html.strip() == (
        '<span class="dash-badge dash-status danger" data-status="interrupted">Interrupted</span>'
    )
    with_id = Template(
        '{% load dashboard_extras %}{% status_badge "pending" element_id="request-status" %}'
    ).render(Context())
    assert 'id="request-status">Waiting for approval</span>' in with_id


def test_dates_are_local_time_with_the_zone_and_relative_only_as_an_addition(settings) -> None:  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime, timedelta

    from django.template import Context, Template
    from django.utils import timezone

    settings.TIME_ZONE = "Europe/Paris"
    template = Template("{% load dashboard_extras %}{{ moment|when }}|{{ moment|when:'ago' }}")
    with timezone.override("Europe/Paris"):
        winter = template.render(Context({"moment": datetime(2026, 12, 4, 13, 3, tzinfo=UTC)}))
        summer = template.render(Context({"moment": "2026-07-01T10:00:00+00:00"}))
        recent = template.render(Context({"moment": timezone.now() - timedelta(minutes=5)}))
        none = template.render(Context({"moment": None}))
    plain, with_ago = winter.split("|")
    assert plain == '<time datetime="2026-12-04T14:03:00+01:00">2026-12-04 14:03 CET</time>'
    assert with_ago.startswith(plain + ' <span class="dash-ago">(')
    assert "2026-07-01 12:00 CEST" in summer
    assert '<span class="dash-ago">(5\xa0minutes ago)</span>' in recent
    assert none == "—|—"


# --- the control room: /admin/ is a landing page (issue 12, item 7) --------------


@pytest.mark.django_db
def test_the_control_room_shows_environments_what_waits_for_me_and_what_runs(
    developer, lead, auditor, outsider
) -> None:  # type: ignore[no-untyped-def]
    from django.test import Client

    from dashboard.approvals.models import MigrationRequest, Run
    from dashboard.environments.models import Environment

    production = Environment.objects.create(
        slug="production", name="Production", position=3, url_env="UNUSED",
        approver_group=Group.objects.get(name="Tech leads"),
    )  # fmt: skip
    common = {"environment": production, "requested_by": developer, "direction": "upgrade",
              "reason": "r", "dialect": "postgresql", "sql_sha256": "0" * 64}  # fmt: skip
    waiting = MigrationRequest.objects.create(target="heads", status="pending", **common)
    running = MigrationRequest.objects.create(target="c", status="running", **common)
    Run.objects.create(request=running, worker="w@host", current_revision="b", total_steps=2)

    def page(user):  # type: ignore[no-untyped-def]
        client = Client()
        client.force_login(user)
        response = client.get("/admin/")
        assert response.status_code == 200
        return response.content.decode()

    as_lead = page(lead)
    assert "<h1>Control room</h1>" in as_lead
    cards = as_lead[as_lead.index('id="control-environments"') :]
    assert '<a href="/environments/production/">Production</a>' in cards  # one click away
    mine = as_lead[as_lead.index('id="control-waiting"') : as_lead.index('id="control-runs"')]
    assert f'href="/requests/{waiting.pk}/"' in mine and f"/requests/{running.pk}/" not in mine
    runs = as_lead[as_lead.index('id="control-runs"') :]
    assert f'href="/requests/{running.pk}/"' in runs and 'data-status="running"' in runs
    assert "now at <code>b</code>" in runs
    assert 'id="control-admin"' in as_lead  # the model lists stay, below

    as_developer = page(developer)
    assert 'id="control-waiting"' not in as_developer  # may not approve
    assert '<a href="/environments/production/">Production</a>' in as_developer
    as_auditor = page(auditor)
    assert f'href="/requests/{running.pk}/"' in as_auditor
    as_outsider = page(outsider)
    assert "/environments/production/" not in as_outsider and "control-runs" not in as_outsider
    assert "You do not have permission to see environments" in as_outsider


@pytest.mark.django_db
def test_request_lists_use_the_shared_badges_and_dates(developer, lead) -> None:  # type: ignore[no-untyped-def]
    from django.test import Client

    from dashboard.approvals.models import MigrationRequest
    from dashboard.environments.models import Environment

    env = Environment.objects.create(slug="dev", name="Dev", url_env="UNUSED")
    for status in ("pending", "succeeded", "failed", "interrupted", "stale", "unknown"):
        MigrationRequest.objects.create(
            environment=env, requested_by=developer, direction="upgrade", target="heads",
            reason="r", status=status, dialect="sqlite", sql_sha256="0" * 64,
        )  # fmt: skip
    client = Client()
    client.force_login(developer)
    html = client.get("/requests/").content.decode()
    for value, words in [
        ("pending", "Waiting for approval"),
        ("succeeded", "Succeeded"),
        ("failed", "Failed"),
        ("interrupted", "Interrupted"),
        ("stale", "Stale"),
        ("unknown", "Outcome unknown"),
    ]:
        assert f'data-status="{value}">{words}</span>' in html, value
    assert html.count(" UTC</time>") == 6  # DJANGO_TIME_ZONE defaults to UTC


def test_a_page_someone_may_not_see_says_why_in_the_frame(make_user: Any) -> None:
    from django.test import Client

    developer = make_user("dev-user", "Developers")
    client = Client()
    client.force_login(developer)
    page = client.get("/audit/")

    assert page.status_code == 403
    text = page.content.decode()
    assert "Not allowed" in text and "signed in as <strong>dev-user</strong> (Developers)" in text
    assert "Auditors read the audit log" in text and 'action="/admin/logout/"' in text


def test_an_unknown_request_number_is_a_framed_not_found(make_user: Any) -> None:
    from django.test import Client

    client = Client()
    client.force_login(make_user("lead-user", "Tech leads"))
    page = client.get("/requests/999999/")

    assert page.status_code == 404
    assert "No such request." in page.content.decode()
