"""Requests with pinned plans and the approval policy, through pages and services (no worker)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.core import mail
from django.db import IntegrityError
from django.test import Client
from django.urls import reverse

from dashboard.approvals.models import Approval, MigrationRequest
from dashboard.approvals.services.requests import RequestRefused, migration_request_create
from dashboard.audit.models import AuditEvent
from tests.dashboard.approvals_support import make_environment, migrate_target
from tests.migrator.execution_project import throwaway_postgres, write_project

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def project_ini(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_project(tmp_path_factory.mktemp("approvals_project"))


@pytest.fixture(scope="module")
def target_url(project_ini: Path) -> Iterator[str]:
    """One target at revision ``a`` for the module: creating requests never changes it."""
    with throwaway_postgres("policy") as url:
        migrate_target(project_ini, url, "a")
        yield url


@pytest.fixture(autouse=True)
def alembic_project(settings: Any, project_ini: Path) -> None:
    settings.ALEMBIC_CONFIG = str(project_ini)


@pytest.fixture
def production(target_url: str, tmp_path: Path) -> Any:
    return make_environment(slug="production", url=target_url, directory=tmp_path)


def _request(
    env: Any, user: Any, *, target: str = "c", direction: str = "upgrade"
) -> MigrationRequest:
    return migration_request_create(
        environment=env, actor=user, direction=direction, target=target, reason="ship it"
    )


def _client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _actions(request: MigrationRequest) -> list[str]:
    return list(
        AuditEvent.objects.filter(request_id=request.pk)
        .order_by("seq")
        .values_list("action", flat=True)
    )


def test_it_pins_the_plan_and_tells_the_approvers(
    production: Any,
    developer: Any,
    lead: Any,
    lead2: Any,
    project_ini: Path,
    django_capture_on_commit_callbacks: Any,
    eager_celery: None,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        request = _request(production, developer)

    assert request.status == "pending"
    assert request.from_heads == ["a"] and request.to_heads == ["c"]
    assert request.revisions == ["b", "c"]
    b_file = project_ini.parent / "versions" / "b_revision.py"
    assert request.steps[0]["sha256"] == hashlib.sha256(b_file.read_bytes()).hexdigest()
    assert "CREATE TABLE tags" in request.sql
    assert request.sql_sha256 == hashlib.sha256(request.sql.encode()).hexdigest()
    assert request.dialect == "postgresql"
    assert _actions(request) == ["dashboard.request.created"]
    assert sorted(mail.outbox[0].to) == ["lead2@example.com", "lead@example.com"]


@pytest.mark.parametrize(
    ("target", "direction", "why"),
    [("nope", "upgrade", "does not exist"), ("a", "upgrade", "nothing to do")],
)
def test_it_refuses_a_bad_target_and_creates_nothing(
    production: Any, developer: Any, target: str, direction: str, why: str
) -> None:
    with pytest.raises(RequestRefused, match=why):
        _request(production, developer, target=target, direction=direction)

    assert not MigrationRequest.objects.exists()
    assert not AuditEvent.objects.filter(action="dashboard.request.created").exists()


def test_it_refuses_an_unreachable_environment(developer: Any, tmp_path: Path) -> None:
    env = make_environment(
        slug="gone", url="postgresql+psycopg://postgres@127.0.0.1:1/nothing", directory=tmp_path
    )

    with pytest.raises(RequestRefused, match="unreachable"):
        _request(env, developer)

    assert not MigrationRequest.objects.exists()


def test_it_refuses_while_another_request_is_approved(
    production: Any, developer: Any, lead: Any, lead2: Any
) -> None:
    first = _request(production, developer)
    _client(lead).post(reverse("approvals:approve", args=[first.pk]))
    _client(lead2).post(reverse("approvals:approve", args=[first.pk]))
    first.refresh_from_db()
    assert first.status == "approved"

    with pytest.raises(RequestRefused, match=f"request #{first.pk}"):
        _request(production, developer)

    assert MigrationRequest.objects.count() == 1


def test_it_forbids_self_approval_by_page_post_and_htmx(production: Any, lead: Any) -> None:
    request = _request(production, lead)
    client = _client(lead)
    url = reverse("approvals:approve", args=[request.pk])

    page = client.get(reverse("approvals:detail", args=[request.pk]))
    plain = client.post(url)
    htmx = client.post(url, headers={"HX-Request": "true"})

    assert page.status_code == 200 and b">Approve</button>" not in page.content
    assert plain.status_code == 403 and htmx.status_code == 403
    request.refresh_from_db()
    assert request.status == "pending" and not Approval.objects.exists()
    assert _actions(request) == ["dashboard.request.created"]


def test_the_database_refuses_self_approval_too(production: Any, lead: Any) -> None:
    request = _request(production, lead)

    with pytest.raises(IntegrityError):
        Approval.objects.create(request=request, approver=lead, requester=lead, decision="approve")


def test_it_forbids_developers_and_approvers_outside_the_group(
    production: Any, developer: Any, lead: Any, lead2: Any, make_user: Any
) -> None:
    releasers = Group.objects.create(name="Release managers")
    releasers.user_set.add(lead2)
    production.approver_group = releasers
    production.save()
    request = _request(production, make_user("dev2", "Developers"))
    url = reverse("approvals:approve", args=[request.pk])

    assert _client(developer).post(url).status_code == 403
    assert _client(lead).post(url).status_code == 403
    assert _client(lead2).post(url).status_code == 302
    assert list(Approval.objects.values_list("approver__username", flat=True)) == ["lead2"]


def test_it_approves_after_the_last_required_approval_and_dispatches_once(
    production: Any, developer: Any, lead: Any, lead2: Any, django_capture_on_commit_callbacks: Any
) -> None:
    request = _request(production, developer)

    with django_capture_on_commit_callbacks() as first:
        _client(lead).post(reverse("approvals:approve", args=[request.pk]))
    request.refresh_from_db()
    assert request.status == "pending" and first == []

    with django_capture_on_commit_callbacks(execute=True) as last:
        _client(lead2).post(reverse("approvals:approve", args=[request.pk]))
    request.refresh_from_db()
    assert request.status == "approved" and len(last) == 1
    assert request.dispatch_attempts == 1 and request.dispatched_at is not None
    assert _actions(request) == [
        "dashboard.request.created",
        "dashboard.request.approved",
        "dashboard.request.approved",
    ]


def test_nobody_approves_twice(production: Any, developer: Any, lead: Any) -> None:
    request = _request(production, developer)
    client = _client(lead)
    client.post(reverse("approvals:approve", args=[request.pk]))

    again = client.post(reverse("approvals:approve", args=[request.pk]))

    assert again.status_code == 403
    assert Approval.objects.count() == 1


def test_a_rejection_needs_a_comment_and_ends_the_request(
    production: Any,
    developer: Any,
    lead: Any,
    django_capture_on_commit_callbacks: Any,
    eager_celery: None,
) -> None:
    request = _request(production, developer)
    url = reverse("approvals:reject", args=[request.pk])
    client = _client(lead)

    client.post(url, {"comment": "  "})
    request.refresh_from_db()
    assert request.status == "pending"

    with django_capture_on_commit_callbacks(execute=True):
        with_comment = client.post(url, {"comment": "not during the sale"}, follow=True)
    request.refresh_from_db()
    assert request.status == "rejected"
    assert mail.outbox[-1].to == ["developer@example.com"] and "rejected" in mail.outbox[-1].subject
    assert b"not during the sale" in with_comment.content
    assert _actions(request)[-1] == "dashboard.request.rejected"


def test_only_the_requester_cancels_a_pending_request(
    production: Any, developer: Any, lead: Any
) -> None:
    request = _request(production, developer)
    url = reverse("approvals:cancel", args=[request.pk])

    status_url = reverse("approvals:status", args=[request.pk])
    polling = _client(lead).get(status_url, headers={"HX-Request": "true"})
    assert polling.status_code == 200 and b'hx-trigger="every 1s"' in polling.content

    assert _client(lead).post(url).status_code == 403
    _client(developer).post(url)

    request.refresh_from_db()
    assert request.status == "cancelled"
    stopped = _client(lead).get(status_url, headers={"HX-Request": "true"})
    assert stopped.status_code == 286 and b"hx-trigger" not in stopped.content
    assert b"Cancelled" in stopped.content
    assert _actions(request)[-1] == "dashboard.request.cancelled"


def test_old_approvals_expire_and_fresh_ones_are_needed(
    production: Any, developer: Any, lead: Any, lead2: Any
) -> None:
    production.approval_ttl = timedelta(hours=1)
    production.save()
    request = _request(production, developer)
    _client(lead).post(reverse("approvals:approve", args=[request.pk]))
    Approval.objects.update(created_at=request.created_at - timedelta(hours=2))

    _client(lead2).post(reverse("approvals:approve", args=[request.pk]))
    request.refresh_from_db()
    assert request.status == "pending"
    assert "dashboard.request.expired" in _actions(request)

    _client(lead).post(reverse("approvals:approve", args=[request.pk]))
    request.refresh_from_db()
    assert request.status == "approved"


def test_a_downgrade_needs_the_approver_to_tick_that_they_read_the_sql(
    production: Any, developer: Any, lead: Any
) -> None:
    request = _request(production, developer, target="base", direction="downgrade")
    client = _client(lead)
    page = client.get(reverse("approvals:detail", args=[request.pk]))
    assert b"Warning:" in page.content and b"I have read the SQL" in page.content

    refused = client.post(reverse("approvals:approve", args=[request.pk]), follow=True)
    assert b"tick that you read the SQL" in refused.content
    assert not Approval.objects.exists()

    client.post(reverse("approvals:approve", args=[request.pk]), {"sql_acknowledged": "on"})
    assert Approval.objects.get().sql_acknowledged


def test_zero_required_approvals_lets_the_requester_run_it(
    target_url: str, tmp_path: Path, developer: Any, django_capture_on_commit_callbacks: Any
) -> None:
    dev = make_environment(slug="dev", url=target_url, directory=tmp_path, required_approvals=0)

    with django_capture_on_commit_callbacks() as callbacks:
        request = _request(dev, developer)

    assert request.status == "approved" and len(callbacks) == 1


def test_the_pages_show_the_plan_and_the_lists(
    production: Any, developer: Any, lead: Any, outsider: Any, make_user: Any
) -> None:
    def make_superuser() -> Any:
        return make_user("root", superuser=True)

    # "Preview plan and SQL" reads the target: a POST (a GET shows the cached status only).
    preview = _client(developer).post(
        reverse("approvals:create"),
        {"environment": "production", "direction": "upgrade", "target": "c", "action": "preview"},
        headers={"HX-Request": "true"},
    )
    assert b"CREATE TABLE tags" in preview.content and b"<form" not in preview.content

    created = _client(developer).post(
        reverse("approvals:create"),
        {"environment": "production", "direction": "upgrade", "target": "c", "reason": "tags"},
    )
    request = MigrationRequest.objects.get()
    assert created.status_code == 302 and created["Location"] == reverse(
        "approvals:detail", args=[request.pk]
    )
    assert f"#{request.pk}".encode() in _client(developer).get(reverse("approvals:mine")).content
    waiting = _client(lead).get(reverse("approvals:waiting"))
    assert f"#{request.pk}".encode() in waiting.content
    assert _client(outsider).get(reverse("approvals:detail", args=[request.pk])).status_code == 403
    assert _client(outsider).get(reverse("approvals:waiting")).status_code == 403
    form = _client(developer).get(reverse("approvals:create"), {"environment": "production"})
    assert b'<option value="boom">' in form.content  # the target picker lists revisions
    admin_index = _client(make_superuser()).get(reverse("admin:index"))
    assert b"1 request(s) waiting for approval" in admin_index.content
    anonymous = Client().get(reverse("approvals:detail", args=[request.pk]))
    assert anonymous.status_code == 302 and "/admin/login/" in anonymous["Location"]


def test_the_beat_expires_old_approvals_and_knows_the_reaper(
    production: Any, developer: Any, lead: Any, settings: Any
) -> None:
    from dashboard.approvals.services.decisions import migration_requests_expire_approvals
    from dashboard.celery import app

    request = _request(production, developer)
    _client(lead).post(reverse("approvals:approve", args=[request.pk]))
    Approval.objects.update(created_at=request.created_at - production.approval_ttl * 2)

    assert migration_requests_expire_approvals() == 1
    assert Approval.objects.get().expired_at is not None
    assert _actions(request)[-1] == "dashboard.request.expired"
    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert {"approvals.reap_lost_runs", "approvals.redispatch_approved"} <= scheduled
    app.loader.import_default_modules()  # what a worker or beat does at start-up
    assert {"approvals.reap_lost_runs", "approvals.execute_request"} <= set(app.tasks)


def test_approving_asks_for_the_password_again_after_ten_minutes(
    production: Any, developer: Any, lead: Any
) -> None:
    from dashboard.security import SESSION_AUTH_AT

    request = _request(production, developer)
    client = _client(lead)
    session = client.session
    session[SESSION_AUTH_AT] -= 11 * 60
    session.save()
    url = reverse("approvals:approve", args=[request.pk])
    detail = reverse("approvals:detail", args=[request.pk])

    stale = client.post(url)
    htmx = client.post(url, headers={"HX-Request": "true"})

    assert stale.status_code == 302
    assert stale["Location"].startswith(reverse("dashboard:reauthenticate"))
    assert htmx["HX-Redirect"] == stale["Location"]
    assert not Approval.objects.exists()
    confirmed = client.post(stale["Location"], {"password": "pw", "next": detail})
    assert confirmed["Location"] == detail
    assert client.post(url).status_code == 302
    assert list(Approval.objects.values_list("approver__username", flat=True)) == ["lead"]


def test_the_lists_cost_the_same_queries_however_many_requests_there_are(
    production: Any, make_user: Any, lead: Any
) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def queries(url: str, user: Any) -> int:
        client = _client(user)
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url).status_code == 200
        return len(captured)

    author = make_user("author", "Developers")
    _request(production, author)
    one = (queries(reverse("approvals:waiting"), lead), queries(reverse("approvals:mine"), author))
    for _ in range(4):
        MigrationRequest.objects.filter(status="pending").update(status="cancelled")
        _request(production, author)
    five = (queries(reverse("approvals:waiting"), lead), queries(reverse("approvals:mine"), author))
    assert five == one


def test_a_request_pinned_from_a_live_read_is_not_stale_against_an_older_cached_status(
    production: Any, developer: Any, lead: Any
) -> None:
    """The cache said base (read before someone migrated); the live read pins a."""
    from dashboard.approvals.services.decisions import request_staleness

    production.status_state = "pending"
    production.current_heads = []
    production.save()
    request = _request(production, developer)
    request.refresh_from_db()
    production.refresh_from_db()

    assert request.from_heads == ["a"] and production.current_heads == ["a"]
    assert request_staleness(request) is None
    page = _client(lead).get(reverse("approvals:detail", args=[request.pk]))
    assert b"Stale:" not in page.content


def test_a_sqlite_plan_is_linted_on_its_postgresql_rendering(
    settings: Any, tmp_path: Path, developer: Any
) -> None:
    """SQLite's batch mode widens a column by copying the table: say what it means."""
    from tests.dashboard import environments_helpers

    settings.ALEMBIC_CONFIG = str(Path(__file__).resolve().parents[2] / "alembic.ini")
    url = f"sqlite:///{tmp_path / 'dev.sqlite3'}"
    environments_helpers.migrate_target(url, "7a3d18be60f4")
    dev = make_environment(slug="dev", url=url, directory=tmp_path, required_approvals=1)
    request = _request(dev, developer, target="0c5f7e3a9d28")

    summary = [line for finding in request.findings for line in finding["summary"]]
    assert "DROP TABLE user_sessions" in request.sql  # what SQLite runs (copy and move)
    assert any("changes the type of user_sessions.ip_address" in line for line in summary)
    assert not any(line.startswith("drops table user_sessions") for line in summary)
