"""The request pages as people read them: staleness, no-approval environments, the risk first,
refused decisions that keep what was typed, the run in words, cached plans on the form.

Real services: PostgreSQL and SQLite targets of the generated project
(``tests/migrator/execution_project.py``), runs executed in this process by
the worker's own service (``run_start``/``run_execute``), squawk when it is
installed. The people: the developer (requester), two tech leads, an outsider.
"""

from __future__ import annotations

import contextlib
import inspect
import re
import socket
import sys
import threading
from collections.abc import Iterator
from datetime import timedelta
from html import unescape
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from dashboard.approvals import transitions, views
from dashboard.approvals.models import Approval, MigrationRequest, Run
from dashboard.approvals.services.decisions import migration_request_approve
from dashboard.approvals.services.execution import run_execute, run_start
from dashboard.approvals.services.requests import migration_request_create
from dashboard.audit.models import AuditEvent
from dashboard.environments.models import Environment
from dashboard.environments.services import environment_status_refresh
from tests.dashboard.approvals_support import make_environment, migrate_target
from tests.migrator.execution_project import throwaway_postgres, write_project

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def project_ini(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_project(tmp_path_factory.mktemp("request_pages_project"))


@pytest.fixture(scope="module")
def pg_url(project_ini: Path) -> Iterator[str]:
    """A PostgreSQL target at ``a`` for the module: creating requests never changes it."""
    with throwaway_postgres("reqpages") as url:
        migrate_target(project_ini, url, "a")
        yield url


@pytest.fixture(autouse=True)
def alembic_project(settings: Any, project_ini: Path) -> None:
    settings.ALEMBIC_CONFIG = str(project_ini)


@pytest.fixture
def production(pg_url: str, tmp_path: Path) -> Environment:
    env = make_environment(slug="production", url=pg_url, directory=tmp_path)
    return environment_status_refresh(environment=env, check_drift=False)


def _sqlite_env(tmp_path: Path, project_ini: Path, slug: str, at: str, **fields: Any) -> Any:
    url = f"sqlite:///{tmp_path / f'{slug}.sqlite3'}"
    migrate_target(project_ini, url, at)
    env = make_environment(slug=slug, url=url, directory=tmp_path, **fields)
    return environment_status_refresh(environment=env, check_drift=False), url


def _client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _request(env: Any, user: Any, target: str = "c", direction: str = "upgrade") -> Any:
    return migration_request_create(
        environment=env, actor=user, direction=direction, target=target, reason="ship it"
    )


def _page(user: Any, request: Any) -> str:
    response = _client(user).get(reverse("approvals:detail", args=[request.pk]))
    assert response.status_code == 200
    return response.content.decode()


def _run_in_process(request: Any) -> Run:
    """What a worker does with an approved request (the same services, in this process)."""
    run = run_start(request_id=request.pk)
    assert run is not None
    return run_execute(run_id=run.pk)


def _text(html: str) -> str:
    """The page's words without tags, whitespace collapsed."""
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))


# --- 1. stale requests -------------------------------------------------------------------


def test_it_shows_a_stale_request_refuses_approval_and_offers_to_request_again(
    tmp_path: Path, project_ini: Path, developer: Any, lead: Any, lead2: Any
) -> None:
    staging, url = _sqlite_env(tmp_path, project_ini, "staging", "a", required_approvals=1)
    request = _request(staging, developer, target="c")
    migrate_target(project_ini, url, "b")  # someone applied b by hand
    # The cached status as a reader stored it, before the approvals app reacted to it.
    Environment.objects.filter(pk=staging.pk).update(status_state="pending", current_heads=["b"])

    html = _page(lead, request)
    text = _text(html)
    assert "Stale: the environment moved from a to b after this was requested." in text
    assert re.search(r'<button type="submit" class="button default" id="approve" disabled', html)
    link = re.search(r'<a class="button" id="request-again" href="([^"]+)"', html)
    assert link and "Request again with the current plan" in html
    again = link[1].replace("&amp;", "&")
    assert again == f"{reverse('approvals:create')}?environment=staging&direction=upgrade&target=c"

    refused = _client(lead).post(
        reverse("approvals:approve", args=[request.pk]), {"comment": "ok", "sql_acknowledged": "on"}
    )
    assert refused.status_code == 400
    assert refused.content.decode().count("Request it again with the current plan") == 1
    assert not Approval.objects.exists()
    api = _client(lead).get(reverse("api:request", kwargs={"request_id": request.pk})).json()
    assert api["stale"] == "the environment moved from a to b after this was requested"
    assert api["status"] == "pending" and api["status_note"] == ""

    # The periodic read makes it stale for good (audited); the page says why from its note.
    environment_status_refresh(environment=staging, check_drift=False)
    request.refresh_from_db()
    assert request.status == "stale"
    html = _page(developer, request)
    assert 'data-status="stale" id="request-status"' in html
    assert "Stale: the environment moved from a to b after this was requested." in _text(html)
    assert 'id="decision-form"' not in html and 'id="request-again"' in html
    api = _client(lead).get(reverse("api:request", kwargs={"request_id": request.pk})).json()
    assert api["status"] == "stale" and api["stale"] == request.status_note

    form = _client(developer).get(again).content.decode()
    assert '<option value="staging" selected>' in form
    assert 'name="target" value="c"' in form
    assert re.search(r'data-revision="c"', form) and not re.search(r'data-revision="b"', form)


# --- 2. no approval required --------------------------------------------------------------


def test_it_says_no_approval_required_and_the_run_leaves_a_timeline(
    tmp_path: Path, project_ini: Path, developer: Any
) -> None:
    dev, _ = _sqlite_env(tmp_path, project_ini, "dev", "a", required_approvals=0, group=None)

    form = _client(developer).get(
        reverse("approvals:create"),
        {"environment": "dev", "direction": "downgrade", "target": "base"},
    )
    form_text = _text(form.content.decode())
    assert "No approval required for Dev" in form_text
    assert "approvers will have to confirm" not in form_text

    request = _request(dev, developer)
    assert request.status == "approved"
    run = _run_in_process(request)
    assert run.outcome == "succeeded"
    html = _page(developer, request)
    text = _text(html)

    assert "No approval required for Dev" in text
    assert "Approvals (0 of 0)" not in text and "No decision yet" not in text
    assert "Upgraded Dev from a to c." in text and "committed:" not in text
    timeline = re.search(r'<table id="run-timeline".*?</table>', html, re.S)
    assert timeline, "no per-revision timeline"
    rows = re.findall(
        r'<tr data-revision="(\w+)"><td>(\d)</td>.*?<td>\+[\d.]+ s</td><td>([\d.]+) s</td>',
        timeline[0],
    )
    assert [(revision, index) for revision, index, _ in rows] == [("b", "1"), ("c", "2")]


def test_a_downgrade_record_says_downgraded_from_and_to(
    tmp_path: Path, project_ini: Path, developer: Any
) -> None:
    dev, _ = _sqlite_env(tmp_path, project_ini, "dev", "c", required_approvals=0, group=None)
    request = _request(dev, developer, target="b", direction="downgrade")

    assert _run_in_process(request).outcome == "succeeded"
    text = _text(_page(developer, request))

    assert "Downgraded Dev from c to b." in text
    assert "committed" not in text.lower().replace("not committed", "")


# --- 3. the form reads the cached status; Preview reads the target ------------------------


class CountingListener:
    """A TCP port on loopback that accepts connections, counts them and closes them at once."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError, OSError):
                conn, _ = self.sock.accept()
                self.accepted += 1
                conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[CountingListener]:
    server = CountingListener()
    yield server
    server.close()


def test_the_form_shows_the_cached_plan_on_get_and_reads_the_target_only_on_preview(
    production: Environment, developer: Any, listener: CountingListener
) -> None:
    # The status was read (at a); now the database's address answers nothing useful.
    Path(production.url_file).write_text(
        f"postgresql+psycopg://postgres@127.0.0.1:{listener.port}/x"
    )
    client = _client(developer)
    url = reverse("approvals:create")
    query = {"environment": "production", "direction": "upgrade", "target": "c"}

    page = client.get(url, query)
    fragment = client.get(url, query, headers={"HX-Request": "true"})
    assert listener.accepted == 0, "a GET of the request form connected to the target"
    assert page.status_code == 200 and fragment.status_code == 200
    text = _text(page.content.decode())
    assert "From the cached status (status read less than a minute ago" in text
    assert "CREATE TABLE tags" in page.content.decode()
    assert b"<form" not in fragment.content and b"CREATE TABLE tags" in fragment.content

    preview = client.post(url, {**query, "reason": "", "action": "preview"})
    assert listener.accepted >= 1, "Preview did not read the target"
    assert preview.status_code == 200
    assert "Preview refused: environment production is unreachable" in _text(
        preview.content.decode()
    )
    assert not MigrationRequest.objects.exists()


def test_the_form_says_how_old_the_cached_status_is(
    production: Environment, developer: Any
) -> None:
    read_at = production.status_refreshed_at - timedelta(minutes=3)
    Environment.objects.filter(pk=production.pk).update(status_refreshed_at=read_at)

    page = _client(developer).get(reverse("approvals:create"), {"environment": "production"})

    assert "(status read 3 min ago," in _text(page.content.decode())


def test_preview_reads_the_plan_live_and_submit_pins_it(
    production: Environment, developer: Any
) -> None:
    client = _client(developer)
    url = reverse("approvals:create")
    query = {"environment": "production", "direction": "upgrade", "target": "c", "reason": "tags"}

    preview = client.post(url, {**query, "action": "preview"}, headers={"HX-Request": "true"})
    assert preview.status_code == 200 and b"<form" not in preview.content
    assert b"Read from Production's database just now" in preview.content
    assert b"CREATE TABLE tags" in preview.content and not MigrationRequest.objects.exists()

    created = client.post(url, query)
    request = MigrationRequest.objects.get()
    assert created.status_code == 302 and created["Location"] == reverse(
        "approvals:detail", args=[request.pk]
    )


def test_the_create_view_is_as_short_as_the_others() -> None:
    assert len(inspect.getsource(views.create).splitlines()) <= 20


# --- 4. risk first, findings and SQL collapsed, the SQL as a file --------------------------


def test_the_request_page_opens_with_the_risk_summary_and_keeps_the_sql_behind_a_click(
    production: Environment, developer: Any, lead: Any, outsider: Any
) -> None:
    request = _request(production, developer, target="c")
    html = _page(lead, request)

    positions = [
        html.index(marker)
        for marker in ('id="risk-summary"', 'id="status"', 'id="decisions"', 'id="plan"')
    ]
    assert positions == sorted(positions), "the risk summary does not come first"
    assert "2 revisions" in _text(html[positions[0] : positions[1]])
    assert re.search(r'<details id="plan-sql-details"><summary>', html), (
        "the whole SQL is not collapsed"
    )
    assert len(re.findall(r'<details class="req-sql-details">', html)) == 2
    assert "<details open" not in html
    assert 'data-status="pending" id="request-status"' in html

    download = _client(developer).get(reverse("approvals:sql", args=[request.pk]))
    assert download.status_code == 200
    assert (
        download["Content-Disposition"]
        == f'attachment; filename="request-{request.pk}-upgrade.sql"'
    )
    assert download.content.decode() == request.sql
    assert _client(outsider).get(reverse("approvals:sql", args=[request.pk])).status_code == 403
    anonymous = Client().get(reverse("approvals:sql", args=[request.pk]))
    assert anonymous.status_code == 302 and "/admin/login/" in anonymous["Location"]


def test_a_plan_pinned_without_squawk_says_it_was_not_linted_once(
    production: Environment,
    developer: Any,
    lead: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    # No squawk anywhere: not beside this interpreter, not on PATH.
    monkeypatch.setattr(sys, "executable", str(tmp_path / "bin" / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    request = _request(production, developer, target="c")
    monkeypatch.undo()
    assert request.destructive  # not linted counts as destructive

    text = _text(_page(lead, request))

    assert text.count("Not linted: squawk could not check this plan (squawk is not installed") == 1
    assert "not linted: squawk" not in text  # not repeated under every revision
    assert "Warning: this plan is not linted." in text
    assert text.count("lint unavailable") == 2  # each revision keeps its badge


# --- 5. a refused decision keeps what was typed --------------------------------------------


def test_a_refused_approval_keeps_the_comment_and_says_why_once(
    production: Environment, developer: Any, lead: Any
) -> None:
    request = _request(production, developer, target="base", direction="downgrade")
    client = _client(lead)

    refused = client.post(
        reverse("approvals:approve", args=[request.pk]), {"comment": "looked at it twice"}
    )
    html = refused.content.decode()

    assert refused.status_code == 400
    assert html.count("tick that you read the SQL") == 1
    assert re.search(r"<textarea[^>]*>\s*looked at it twice</textarea>", html)
    assert not Approval.objects.exists()
    assert '<label for="id_comment">Comment</label>' in html
    assert (
        '<label for="id_sql_acknowledged" class="vCheckboxLabel">I have read the SQL</label>'
        in html
    )
    order = [
        html.index(m)
        for m in ('id="id_comment"', 'id="id_sql_acknowledged"', 'id="approve"', 'id="reject"')
    ]
    assert order == sorted(order)
    assert re.search(r'class="button default" id="approve"', html)
    assert re.search(r'class="button req-danger" id="reject"', html)


def test_a_conflicting_approval_answers_409_and_keeps_the_tick(
    production: Environment, developer: Any, lead: Any
) -> None:
    production.required_approvals = 1
    production.save()
    waiting = _request(production, developer, target="base", direction="downgrade")
    first = _request(production, developer, target="c")
    migration_request_approve(request=first, actor=lead)

    refused = _client(lead).post(
        reverse("approvals:approve", args=[waiting.pk]),
        {"comment": "after the other one", "sql_acknowledged": "on"},
    )
    html = refused.content.decode()

    assert refused.status_code == 409
    assert html.count(f"request #{first.pk} for production is approved") == 1
    assert re.search(r'<input type="checkbox" name="sql_acknowledged"[^>]* checked', html)
    assert "after the other one</textarea>" in html
    assert not waiting.approvals.exists()


def test_a_rejection_without_a_comment_is_refused_on_the_page(
    production: Environment, developer: Any, lead: Any
) -> None:
    request = _request(production, developer)

    refused = _client(lead).post(reverse("approvals:reject", args=[request.pk]), {"comment": " "})

    assert refused.status_code == 400
    assert refused.content.decode().count("a rejection needs a comment") == 1
    request.refresh_from_db()
    assert request.status == "pending"


# --- 6. the run in words, and Cancel run ----------------------------------------------------


def _running(env: Any, developer: Any, lead: Any, lead2: Any) -> tuple[Any, Run]:
    request = _request(env, developer, target="c")
    for approver in (lead, lead2):
        migration_request_approve(request=request, actor=approver)
    run = run_start(request_id=request.pk)
    assert run is not None
    return request, run


def test_the_live_run_says_which_revision_runs_in_which_phase(
    production: Environment, developer: Any, lead: Any, lead2: Any, outsider: Any
) -> None:
    request, run = _running(production, developer, lead, lead2)
    # Where a worker's recorder would be halfway through (the worker writes these fields).
    Run.objects.filter(pk=run.pk).update(phase="migrating", current_revision="c", applied=["b"])
    status_url = reverse("approvals:status", args=[request.pk])

    fragment = _client(lead).get(status_url, headers={"HX-Request": "true"}).content.decode()
    text = _text(fragment)

    assert "revision 2 of 2: c revision c" in text
    assert re.search(r"Migrating · [\d.]+ s elapsed", text)
    assert 'id="cancel-run"' in fragment
    assert (
        'id="cancel-run"'
        not in _client(developer).get(status_url, headers={"HX-Request": "true"}).content.decode()
    )

    Run.objects.filter(pk=run.pk).update(
        phase="waiting for the target lock", current_revision="", applied=[]
    )
    text = _text(_client(lead).get(status_url, headers={"HX-Request": "true"}).content.decode())
    assert "0 of 2 revisions applied" in text
    assert "Waiting for the target lock" in text


def test_a_lead_cancels_a_run_and_the_page_says_what_happens(
    production: Environment, developer: Any, lead: Any, lead2: Any
) -> None:
    request, run = _running(production, developer, lead, lead2)
    url = reverse("approvals:cancel_run", args=[request.pk])

    assert _client(developer).post(url).status_code == 403
    assert _client(lead).get(url).status_code == 405
    page = _client(lead).post(url, follow=True).content.decode()

    assert (
        _text(page).count(
            "Cancelling: the run's session on the target is stopped within a few seconds."
        )
        == 1
    )
    run.refresh_from_db()
    assert run.cancel_requested_by == lead
    assert AuditEvent.objects.filter(action="dashboard.run.cancel_requested").count() == 1
    assert 'id="run-cancelling"' in page and 'id="cancel-run"' not in page


def test_a_run_cancelled_while_waiting_for_the_lock_reads_cancelled(
    production: Environment, developer: Any, lead: Any, lead2: Any
) -> None:
    request, run = _running(production, developer, lead, lead2)
    # The worker found the lock busy and parked the run until its retry.
    Run.objects.filter(pk=run.pk).update(phase="waiting to retry the lock", retry_at=run.started_at)

    page = _client(lead).post(reverse("approvals:cancel_run", args=[request.pk]), follow=True)
    text = _text(page.content.decode())

    assert "Cancelled: the run had not started migrating." in text
    assert "Cancelled by lead" in text
    assert 'data-status="cancelled" id="request-status"' in page.content.decode()


def test_an_unknown_outcome_says_how_it_is_settled(
    production: Environment, developer: Any, lead: Any, lead2: Any
) -> None:
    request, run = _running(production, developer, lead, lead2)
    transitions.run_finished(
        run,
        transitions.RunRecord(outcome="unknown", final_heads=None, reason="heads_unreadable"),
    )

    text = _text(_page(lead, request))

    assert (
        "Outcome unknown: the version table could not be read after the run;"
        " it is settled by the next status read." in text
    )


# --- 7. drift as a list ----------------------------------------------------------------------


def test_drift_at_request_time_is_a_list_of_differences(
    production: Environment, developer: Any, lead: Any
) -> None:
    Environment.objects.filter(pk=production.pk).update(
        drift={"state": "drift", "operations": ["add_table stray", "remove_column items.old"]}
    )
    production.refresh_from_db()
    request = _request(production, developer)

    html = _page(lead, request)
    drift = re.search(r'<section id="drift".*?</section>', html, re.S)[0]

    assert re.findall(r"<li>([^<]+)</li>", drift) == ["add_table stray", "remove_column items.old"]
    assert "{&#x27;" not in drift and "{'" not in drift


def test_what_was_typed_survives_the_password_confirmation(
    production: Environment, developer: Any, lead: Any
) -> None:
    from dashboard.security import SESSION_AUTH_AT

    request = _request(production, developer, target="base", direction="downgrade")
    client = _client(lead)
    session = client.session
    session[SESSION_AUTH_AT] -= 11 * 60
    session.save()

    asked = client.post(
        reverse("approvals:approve", args=[request.pk]),
        {"comment": "checked the downgrade", "sql_acknowledged": "on"},
    )
    assert asked.status_code == 302 and asked["Location"].startswith(
        reverse("dashboard:reauthenticate")
    )
    client.post(
        asked["Location"],
        {"password": "pw", "next": reverse("approvals:detail", args=[request.pk])},
    )
    html = client.get(reverse("approvals:detail", args=[request.pk])).content.decode()

    assert "checked the downgrade</textarea>" in html
    assert re.search(r'<input type="checkbox" name="sql_acknowledged"[^>]* checked', html)
    assert html.count("Confirm your password, then approve again.") <= 1
    assert not Approval.objects.exists()
