"""The rollout page, the fleet's request page and form, the leads' actions, the grouped timeline.

Most tests build a rollout's rows directly (``RolloutFactory``: the fleet
through the TOML loader, then the request, its plan, its targets in waves,
child requests and runs in the states a test needs), so a page can be read
in every state and at 10 or 200 targets without running 200 migrations.
The actions run for real on a small fleet of SQLite tenants, stepped in this
process (``eager_celery``): a tenant with a conflicting table halts the
rollout, a lead resumes it after the table is dropped. The people: the
developer (requester), two tech leads, an auditor, an outsider.
"""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from dashboard.approvals.models import MigrationRequest, Run
from dashboard.approvals.planning import plan_pin_at
from dashboard.audit.models import AuditEvent
from dashboard.environments.fleet import wave_ends, wave_of_positions
from dashboard.environments.models import Environment
from dashboard.rollouts.models import Rollout, RolloutPlan, RolloutTarget
from tests.dashboard.approvals_support import approve, create_request, migrate_target, target_heads
from tests.dashboard.rollouts_support import make_fleet, refresh_targets, target_states
from tests.migrator.execution_project import write_project

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def project_ini(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_project(tmp_path_factory.mktemp("rollout_pages_project"))


@pytest.fixture(autouse=True)
def alembic_project(settings: Any, project_ini: Path) -> None:
    settings.ALEMBIC_CONFIG = str(project_ini)
    settings.DASHBOARD_RUN_HEARTBEAT = timedelta(seconds=1)


def _client(user: Any, **kwargs: Any) -> Client:
    client = Client(**kwargs)
    client.force_login(user)
    return client


def _text(html: str) -> str:
    """The page's words without tags, whitespace collapsed."""
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))


class RolloutFactory:
    """A fleet of ``size`` targets and one rollout of it, as rows (see the module docstring)."""

    def __init__(
        self,
        tmp_path: Path,
        requester: Any,
        size: int,
        *,
        slug: str = "tenants",
        waves: tuple[int | str, ...] = (1, "10%", "100%"),
    ) -> None:
        directory = tmp_path / slug
        directory.mkdir(exist_ok=True)
        self.names = [f"t{i:03d}" for i in range(size)]
        self.fleet = make_fleet(
            slug=slug,
            names=self.names,
            url_template=f"sqlite:///{directory}/tenant_{{target}}.sqlite3",
            directory=directory,
            waves=waves,
        )
        self.requester = requester
        self.waves = list(waves)

    def rollout(
        self,
        *,
        state: str = "running",
        current_wave: int = 1,
        request_status: str = "running",
        **fields: Any,
    ) -> Rollout:
        targets = list(Environment.objects.targets_of(self.fleet))
        # The real plan a -> c of the test project, pinned as a fleet request pins it
        # (offline: SQL, findings, file hashes), so that a resume finds its files unchanged.
        pinned = plan_pin_at(
            environment=targets[0],
            url=targets[0].database_url(),
            heads=["a"],
            direction="upgrade",
            target="c",
        )
        self.steps = pinned.steps
        request = MigrationRequest.objects.create(
            environment=self.fleet,
            requested_by=self.requester,
            direction="upgrade",
            target="c",
            reason="tags for the spring release",
            dialect="sqlite",
            from_heads=["a"],
            to_heads=["c"],
            steps=pinned.steps,
            sql=pinned.sql,
            sql_sha256=pinned.sql_sha256,
            required_approvals=2,
            status=request_status,
            env_sha256=pinned.env_sha256,
        )
        rollout = Rollout.objects.create(
            request=request,
            state=state,
            waves=wave_ends(self.waves, len(targets)),
            wave_spec=self.waves,
            parallelism=4,
            halt_after_failures=1,
            current_wave=current_wave,
            started_at=None if state == "pending" else timezone.now() - timedelta(seconds=75),
            **fields,
        )
        self.plan = RolloutPlan.objects.create(
            rollout=rollout,
            index=0,
            target="c",
            from_heads=["a"],
            to_heads=["c"],
            steps=pinned.steps,
            sql=pinned.sql,
            sql_sha256=pinned.sql_sha256,
            findings=pinned.findings,
            target_count=len(targets),
        )
        numbers = wave_of_positions(self.waves, len(targets))
        RolloutTarget.objects.bulk_create(
            RolloutTarget(
                rollout=rollout,
                environment=env,
                name=env.target_name,
                position=env.fleet_position,
                wave=wave,
                plan=self.plan,
                from_heads=["a"],
                to_heads=["c"],
                total_steps=2,
            )
            for env, wave in zip(targets, numbers, strict=True)
        )
        return rollout

    def target(
        self,
        rollout: Rollout,
        name: str,
        state: str,
        *,
        applied: int = 0,
        error: str = "",
        seconds: float = 3.0,
    ) -> RolloutTarget:
        """Give target ``name`` the state ``state``, with a child request and run when it ran."""
        row = rollout.targets.select_related("environment").get(name=name)
        if state in ("pending", "skipped"):
            RolloutTarget.objects.filter(pk=row.pk).update(state=state, error=error)
            return row
        status = {"queued": "approved", "running": "running", "gate_failed": "succeeded"}.get(
            state, state
        )
        child = MigrationRequest.objects.create(
            environment=row.environment,
            parent=rollout.request,
            requested_by=self.requester,
            direction="upgrade",
            target="c",
            reason="r",
            dialect="sqlite",
            from_heads=["a"],
            to_heads=["c"],
            steps=self.steps,
            sql="",
            sql_sha256="e" * 64,
            status=status,
        )
        started = timezone.now() - timedelta(seconds=seconds)
        if state != "queued":
            Run.objects.create(
                request=child,
                total_steps=2,
                applied=["b", "c"][:applied],
                outcome="succeeded" if state == "gate_failed" else state,
                started_at=started,
                error=error,
                finished_at=None if state == "running" else timezone.now(),
            )
        RolloutTarget.objects.filter(pk=row.pk).update(
            state="succeeded" if state == "gate_failed" else state,
            request=child,
            attempts=1,
            applied=applied,
            error=error,
            started_at=started,
            gate_passed=False if state == "gate_failed" else None,
            finished_at=None if state in ("queued", "running") else timezone.now(),
            final_heads=["c"] if state in ("succeeded", "gate_failed") else None,
        )
        return row


@pytest.fixture
def factory(tmp_path: Path, developer: Any) -> RolloutFactory:
    return RolloutFactory(tmp_path, developer, 12)


def _rollout_page(user: Any, rollout: Rollout, **headers: Any) -> Any:
    return _client(user).get(reverse("rollouts:rollout", args=[rollout.request_id]), **headers)


class Tenants:
    """SQLite tenant databases at ``at``; ``execute`` runs a statement on one, by hand."""

    def __init__(self, ini: Path, directory: Path, names: list[str], at: str = "a") -> None:
        self.template = f"sqlite:///{directory}/tenant_{{target}}.sqlite3"
        for name in names:
            migrate_target(ini, self.url(name), at)

    def url(self, name: str) -> str:
        return self.template.replace("{target}", name)

    def execute(self, name: str, statement: str) -> None:
        engine = sa.create_engine(self.url(name), poolclass=sa.pool.NullPool)
        with engine.begin() as conn:
            conn.exec_driver_sql(statement)
        engine.dispose()


def _work(rollout: Rollout, *, rounds: int = 20) -> Rollout:
    """What the workers do, in this process: step the rollout, run each queued target, again.

    The same services as ``rollouts.advance`` and ``approvals.execute_request``
    (the broker's messages go to the test settings' filesystem queue, unread).
    """
    from dashboard.approvals.services.execution import run_execute, run_start
    from dashboard.rollouts.services.scheduler import rollout_advance

    for _ in range(rounds):
        rollout_advance(rollout_id=rollout.pk)
        queued = list(
            rollout.targets.filter(state="queued", request__isnull=False).values_list(
                "request_id", flat=True
            )
        )
        if not queued:
            break
        for request_id in queued:
            run = run_start(request_id=request_id)
            assert run is not None
            run_execute(run_id=run.pk)
    rollout.refresh_from_db()
    return rollout


def _csrf_post(client: Client, page_url: str, url: str, data: dict[str, str] | None = None) -> Any:
    """POST ``url`` with the CSRF token of the page at ``page_url``, as the browser would."""
    page = client.get(page_url)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode())
    assert token, "the page has no form with a CSRF token"
    return client.post(url, {"csrfmiddlewaretoken": token.group(1), **(data or {})})


# --- the rollout page, state by state ----------------------------------------------------


def test_a_halted_rollout_says_why_lists_the_failed_target_with_its_error_and_its_run(
    factory: RolloutFactory, lead: Any
) -> None:
    rollout = factory.rollout(
        state="halted",
        current_wave=2,
        halted_reason="wave 2 reached 1 failed target(s) (halt_after_failures = 1): t001",
    )
    factory.target(rollout, "t000", "succeeded", applied=2)
    failed = factory.target(
        rollout, "t001", "failed", error="(sqlite3.OperationalError) table tags already exists"
    )
    factory.target(
        rollout, "t002", "gate_failed", applied=2, error="gate_sql returned false on t002"
    )
    html = _rollout_page(lead, rollout).content.decode()
    text = _text(html)
    assert 'id="rollout-state">Halted<' in html
    assert "Halted: wave 2 reached 1 failed target(s) (halt_after_failures = 1): t001." in text
    assert "3 of 12 targets done" in text
    assert "1 failed 1 gate failed 1 succeeded 9 pending" in text
    assert "2 targets need attention" in text
    gate = re.search(r'<tr data-target="t002">(.*?)</tr>', html, re.S)
    assert gate and "Gate failed" in gate.group(1) and "gate_sql returned false" in gate.group(1)
    row = re.search(r'<tr data-target="t001">(.*?)</tr>', html, re.S)
    assert row and "table tags already exists" in row.group(1)
    child = RolloutTarget.objects.get(pk=failed.pk).request_id
    assert f'href="/requests/{child}/">Open its run' in row.group(1)
    # Per wave: the canary done, wave 2 ended with its failure, wave 3 begun.
    assert re.search(r'id="wave-1"[^>]*data-summary="done"', html)
    assert re.search(r'id="wave-2"[^>]*data-summary="ended with failures" class="current"', html)
    assert re.search(r'id="wave-3"[^>]*data-summary="in progress"', html)
    # A lead may resume or cancel, and roll back the canary, which migrated (with a reason).
    assert re.search(r'<button type="submit" class="button default" id="resume">', html)
    assert 'id="cancel-rest"' in html
    assert 'name="reason" id="rollback-reason" required' in html
    assert re.search(r'<button type="submit" class="button" id="rollback">Roll back the', html)
    assert "this rollout is cancelled first" in text


@pytest.mark.parametrize(
    ("state", "request_status", "said"),
    [
        ("pending", "pending", "0 of 2 approvals so far"),
        ("pending", "rejected", "Not started: request rejected"),
        ("running", "running", "Wave 2 of 3 running: 0 of 1 target of this wave done."),
        ("succeeded", "succeeded", "Every wave ran: 12 targets migrated."),
        ("cancelled", "cancelled", "Cancelled in wave 2 of 3: targets not started were skipped."),
    ],
)
def test_each_state_is_said_in_words(
    factory: RolloutFactory, developer: Any, state: str, request_status: str, said: str
) -> None:
    rollout = factory.rollout(
        state=state,
        current_wave=2,
        request_status=request_status,
        ended_at=timezone.now() if state in ("succeeded", "cancelled") else None,
    )
    if state == "succeeded":
        rollout.targets.update(state="succeeded", applied=2, final_heads=["c"])
    html = _rollout_page(developer, rollout).content.decode()
    assert said in _text(html)
    polling = 'hx-trigger="every 2s"' in html
    assert polling is (state in ("pending", "running") and request_status != "rejected")


def test_a_soak_counts_down_to_the_next_wave_and_a_lead_may_proceed_now(
    factory: RolloutFactory, lead: Any
) -> None:
    rollout = factory.rollout(
        state="soaking",
        current_wave=1,
        soak=timedelta(minutes=10),
        soak_until=timezone.now() + timedelta(minutes=4, seconds=30),
    )
    factory.target(rollout, "t000", "succeeded", applied=2)
    html = _rollout_page(lead, rollout).content.decode()
    text = _text(html)
    assert re.search(r"soaking: the next wave starts in 4 min (29|30) s \(at ", text), text
    assert "soak 10 min 00 s after each wave" in text
    assert re.search(r'<button type="submit" class="button" id="proceed">Proceed now', html)
    assert re.search(r'id="resume" disabled', html)
    assert "Resume: only a halted rollout resumes; this one is soaking." in text
    assert re.search(r'id="rollback" disabled title="Roll back a rollout once it has', html)
    assert "Roll back: roll back a rollout once it has halted or ended." in text

    client = _client(lead)
    response = _csrf_post(
        client,
        reverse("rollouts:rollout", args=[rollout.request_id]),
        reverse("rollouts:proceed", args=[rollout.request_id]),
    )
    assert response.status_code == 302
    rollout.refresh_from_db()
    assert rollout.state == "running" and rollout.soaked_wave == 1
    assert AuditEvent.objects.filter(
        action="dashboard.rollout.proceeded", actor_username="lead"
    ).exists()
    page = client.get(response.url)
    assert "Soak ended: the next wave starts now." in _text(page.content.decode())


def test_a_running_target_shows_its_runs_progress_before_the_scheduler_copied_it(
    factory: RolloutFactory, developer: Any
) -> None:
    rollout = factory.rollout(state="running", current_wave=3)
    target = factory.target(rollout, "t005", "running", applied=1, seconds=12)
    # The scheduler has not stepped since the worker claimed it: the row still says queued.
    RolloutTarget.objects.filter(pk=target.pk).update(state="queued", applied=0)
    factory.target(rollout, "t006", "queued")  # dispatched, no worker has claimed it yet
    html = _rollout_page(developer, rollout).content.decode()
    row = re.search(r'<div class="rollout-running" id="running-targets">(.*?)</div>', html, re.S)
    assert row, "no running section"
    text = _text(row.group(1))
    assert "Running now: 1 · 1 queued" in text
    assert re.search(r"t005 3 revision 2 of 2 1[23]\.\d s its run", text), text
    assert "Queued, waiting for a worker: t006 ." in text  # a link each
    assert 'title="t005: running · revision 2 of 2 · 1' in html


def test_the_live_fragment_polls_until_nothing_can_move_then_stops_htmx(
    factory: RolloutFactory, developer: Any
) -> None:
    rollout = factory.rollout(state="running", current_wave=1)
    live = reverse("rollouts:live", args=[rollout.request_id])
    client = _client(developer)
    assert client.get(live).status_code == 302  # a person who opens it gets the page
    fragment = client.get(live, HTTP_HX_REQUEST="true")
    assert fragment.status_code == 200
    html = fragment.content.decode()
    assert html.lstrip().startswith('<section id="rollout-live"') and "<html" not in html
    assert f'hx-get="{live}" hx-trigger="every 2s"' in html

    Rollout.objects.filter(pk=rollout.pk).update(state="cancelled", ended_at=timezone.now())
    running = factory.target(rollout, "t000", "running", applied=1)
    still = client.get(live, HTTP_HX_REQUEST="true")
    assert still.status_code == 200 and "hx-trigger" in still.content.decode()  # its run finishes
    Run.objects.filter(request_id=RolloutTarget.objects.get(pk=running.pk).request_id).update(
        outcome="succeeded", finished_at=timezone.now(), applied=["b", "c"]
    )
    ended = client.get(live, HTTP_HX_REQUEST="true")
    assert ended.status_code == 286
    assert "hx-trigger" not in ended.content.decode()


def test_the_page_takes_the_same_queries_for_10_targets_as_for_200(
    tmp_path: Path, developer: Any, lead: Any
) -> None:
    counts = []
    for size in (10, 200):
        built = RolloutFactory(tmp_path, developer, size, slug=f"fleet{size}")
        rollout = built.rollout(state="halted", current_wave=2, halted_reason="wave 2 …")
        built.target(rollout, built.names[0], "succeeded", applied=2)
        built.target(rollout, built.names[1], "failed", error="boom")
        built.target(rollout, built.names[-1], "running", applied=1)
        for user in (lead, developer):
            client = _client(user)
            url = reverse("rollouts:rollout", args=[rollout.request_id])
            live = reverse("rollouts:live", args=[rollout.request_id])
            client.get(url)  # warm up the session and the permission caches
            with CaptureQueriesContext(connection) as page:
                assert client.get(url).status_code == 200
            with CaptureQueriesContext(connection) as fragment:
                assert client.get(live, HTTP_HX_REQUEST="true").status_code == 200
            with CaptureQueriesContext(connection) as request_page:
                assert (
                    client.get(reverse("approvals:detail", args=[rollout.request_id])).status_code
                    == 200
                )
            counts.append((size, user.username, len(page), len(fragment), len(request_page)))
    by_user = {(user, size): rest for size, user, *rest in counts}
    for user in ("lead", "developer"):
        assert by_user[(user, 10)] == by_user[(user, 200)], counts
    assert by_user[("lead", 200)][1] < 20, counts


# --- who may do what ---------------------------------------------------------------------


def test_only_the_fleets_leads_act_a_developer_gets_403_and_nothing_changes(
    factory: RolloutFactory, developer: Any, auditor: Any, outsider: Any
) -> None:
    rollout = factory.rollout(state="halted", current_wave=2, halted_reason="wave 2 …")
    factory.target(rollout, "t001", "failed", error="boom")
    for user in (developer, auditor):
        html = _rollout_page(user, rollout).content.decode()
        assert "t001" in html and "Halted:" in _text(html)
        assert 'id="resume"' not in html and 'id="cancel-rest"' not in html
        assert 'id="rollback' not in html
        assert "A member of Tech leads resumes it once the cause is fixed" in _text(html)
    page = reverse("rollouts:rollout", args=[rollout.request_id])
    for action in ("resume", "cancel", "proceed", "rollback"):
        url = reverse(f"rollouts:{action}", args=[rollout.request_id])
        for user in (developer, auditor):
            response = _client(user).post(url, {"reason": "undo"})
            assert response.status_code == 403, (action, user)
            said = _text(response.content.decode())
            assert "Only a tech lead may resume, cancel or hurry a rollout." in said
    assert _client(outsider).get(page).status_code == 403
    assert Client().get(page).status_code == 302  # to the login page
    rollout.refresh_from_db()
    assert rollout.state == "halted"
    assert target_states(rollout)["t001"] == "failed"
    assert not AuditEvent.objects.filter(action__startswith="dashboard.rollout.").exists()
    assert MigrationRequest.objects.filter(direction="downgrade").count() == 0


def test_actions_need_the_csrf_token(factory: RolloutFactory, lead: Any) -> None:
    rollout = factory.rollout(state="running", current_wave=1)
    client = _client(lead, enforce_csrf_checks=True)
    url = reverse("rollouts:cancel", args=[rollout.request_id])
    assert client.post(url).status_code == 403
    rollout.refresh_from_db()
    assert rollout.state == "running"
    response = _csrf_post(client, reverse("rollouts:rollout", args=[rollout.request_id]), url)
    assert response.status_code == 302
    rollout.refresh_from_db()
    assert rollout.state == "cancelled"
    assert set(target_states(rollout).values()) == {"skipped"}


def test_a_refused_action_comes_back_as_a_message_also_from_htmx(
    factory: RolloutFactory, lead: Any
) -> None:
    rollout = factory.rollout(state="running", current_wave=1)
    client = _client(lead)
    url = reverse("rollouts:resume", args=[rollout.request_id])
    page = reverse("rollouts:rollout", args=[rollout.request_id])
    response = client.post(url)
    assert response.status_code == 302 and response.url == page
    said = _text(client.get(page).content.decode())
    assert "Not resumed: the rollout is running; only a halted one resumes." in said
    clicked = client.post(url, HTTP_HX_REQUEST="true")
    assert clicked.status_code == 200 and clicked["HX-Redirect"] == page
    proceeded = client.post(reverse("rollouts:proceed", args=[rollout.request_id]))
    assert proceeded.status_code == 302
    said = _text(client.get(page).content.decode())
    assert "Not proceeded: the rollout is not soaking: there is nothing to skip." in said
    rollback = client.post(reverse("rollouts:rollback", args=[rollout.request_id]), {"reason": "x"})
    assert rollback.status_code == 302
    said = _text(client.get(page).content.decode())
    assert "No rollback requested: roll back a rollout once it has halted or ended." in said
    rollout.refresh_from_db()
    assert rollout.state == "running"


def test_a_second_click_on_resume_is_refused_not_run_twice(
    factory: RolloutFactory, lead: Any
) -> None:
    rollout = factory.rollout(state="halted", current_wave=2, halted_reason="wave 2 …")
    factory.target(rollout, "t001", "failed", error="boom")
    client = _client(lead)
    url = reverse("rollouts:resume", args=[rollout.request_id])
    assert client.post(url).status_code == 302
    assert client.post(url).status_code == 302
    said = _text(
        client.get(reverse("rollouts:rollout", args=[rollout.request_id])).content.decode()
    )
    assert "Resumed: 1 failed target is retried, then the remaining waves go on." in said
    assert "Not resumed: the rollout is running; only a halted one resumes." in said
    assert AuditEvent.objects.filter(action="dashboard.rollout.resumed").count() == 1


# --- the request form and the request page of a fleet ------------------------------------


@pytest.mark.django_db(transaction=True)  # the status reads run in threads
def test_the_form_shows_what_a_fleet_request_will_do_and_approvers_see_every_plan(
    project_ini: Path, tmp_path: Path, developer: Any, lead: Any
) -> None:
    names = ["acme", "globex", "initech", "umbrella", "hooli"]
    tenants = Tenants(project_ini, tmp_path, names[:2])
    migrate_target(project_ini, tenants.url("initech"), "b")
    migrate_target(project_ini, tenants.url("umbrella"), "c")
    (tmp_path / "tenant_hooli.sqlite3").mkdir()  # a file SQLite cannot open: unreachable
    fleet = make_fleet(
        slug="tenants",
        names=names,
        url_template=tenants.template,
        directory=tmp_path,
        waves=[1, "50%", "100%"],
        parallelism=2,
    )
    refresh_targets(fleet)
    developer_client = _client(developer)
    form_url = reverse("approvals:create")
    html = developer_client.get(f"{form_url}?environment=tenants&target=c").content.decode()
    text = _text(html)
    assert '<option value="tenants" selected>' in html
    assert "tenants--acme" not in html  # people request the fleet, not its targets
    assert "Tenants: 5 targets, upgrade to c" in text
    assert "a 2 acme, globex pins a plan: 2 revisions, a → c" in text
    assert "b 1 initech pins a plan: 1 revision, b → c" in text
    assert "c 1 umbrella already there: skipped" in text
    assert "not known 1 hooli unreachable or never read" in text
    assert (
        "Waves: wave 1: 1 target (canary: acme) · wave 2: 2 targets (globex, initech)"
        " · wave 3: 2 targets (umbrella, hooli)." in text
    )
    assert "2 at a time; a wave that reaches 1 failed target halts the rollout." in text
    assert "Needs 2 approvals from Tech leads, once for the whole fleet." in text
    # "Preview" reads no target live for a fleet: the same preview, from the cache.
    preview = developer_client.post(
        form_url,
        {"environment": "tenants", "direction": "upgrade", "target": "c", "action": "preview"},
        HTTP_HX_REQUEST="true",
    )
    assert "a 2 acme, globex pins a plan: 2 revisions, a → c" in _text(preview.content.decode())

    submitted = developer_client.post(
        form_url,
        {"environment": "tenants", "direction": "upgrade", "target": "c", "reason": "tags"},
    )
    assert submitted.status_code == 302, _text(submitted.content.decode())[:2000]
    request = MigrationRequest.objects.get(environment=fleet)
    assert submitted.url == reverse("approvals:detail", args=[request.pk])

    html = _client(lead).get(submitted.url).content.decode()
    text = _text(html)
    assert "5 targets, 2 pinned plans, 3 waves on sqlite" in text
    assert "Pinned plans: 2 for 5 targets" in text
    assert "Plan 1: 2 targets from a to c , 2 revisions" in text
    assert "Plan 2: 1 target from b to c , 1 revision" in text
    plan_one = re.search(r'<section class="fleet-plan" id="plan-1".*?</section>', html, re.S)
    assert plan_one and 'data-revision="b"' in plan_one.group(0)
    assert "ADD COLUMN note" in unescape(re.sub(r"<[^>]+>", "", plan_one.group(0)))
    assert "1 target already at c : skipped (umbrella)." in text
    assert "1 target had no known status when this was requested (hooli)" in text
    assert re.search(r'<tr data-wave="1"><th scope="row">Wave 1 <small>canary</small>', html)
    assert "-- plan 1: 2 target(s) at a -> c" in unescape(html)  # the SQL approvers approve
    assert 'id="approve">Approve</button>' in html  # the same decision form
    assert "Rollout: 5 targets in 3 waves" in text and "0 of 2 approvals so far" not in text
    assert f'href="/requests/{request.pk}/rollout/">Open the rollout page' in html


@pytest.mark.django_db(transaction=True)  # the status reads run in threads
def test_a_conflict_halts_the_rollout_a_lead_resumes_after_the_fix_then_rolls_it_back(
    project_ini: Path, tmp_path: Path, developer: Any, lead: Any, lead2: Any, auditor: Any
) -> None:
    names = ["acme", "globex", "initech", "umbrella"]
    tenants = Tenants(project_ini, tmp_path, names, at="b")
    tenants.execute("globex", "CREATE TABLE tags (id INTEGER PRIMARY KEY)")  # c creates tags
    fleet = make_fleet(
        slug="tenants",
        names=names,
        url_template=tenants.template,
        directory=tmp_path,
        waves=[1, "100%"],
        parallelism=2,
    )
    refresh_targets(fleet)
    request = create_request(fleet, developer, "c")
    approve(lead, request)
    approve(lead2, request)
    rollout = _work(Rollout.objects.get(request=request))
    assert rollout.state == "halted", target_states(rollout)
    assert target_heads(tenants.url("globex")) == ("b",)  # nothing of c stayed

    client = _client(lead)
    page = reverse("rollouts:rollout", args=[request.pk])
    html = client.get(page).content.decode()
    row = re.search(r'<tr data-target="globex">(.*?)</tr>', html, re.S)
    assert row and "tags already exists" in row.group(1)
    assert "Halted: wave 2 reached 1 failed target(s)" in _text(html)

    tenants.execute("globex", "DROP TABLE tags")
    resumed = _csrf_post(client, page, reverse("rollouts:resume", args=[request.pk]))
    assert resumed.status_code == 302
    rollout = _work(rollout)
    assert rollout.state == "succeeded", target_states(rollout)
    assert [target_heads(tenants.url(name)) for name in names] == [("c",)] * 4
    html = client.get(page).content.decode()
    assert "Resumed: 1 failed target is retried" in _text(html)
    assert "Every wave ran: 4 targets migrated." in _text(html)
    assert "4 of 4 targets done" in _text(html) and "hx-trigger" not in html

    # The auditor's timeline: the rollout with its targets under it, globex run twice.
    timeline = _client(auditor).get(reverse("audit:timeline") + "?environment=tenants")
    text = _text(timeline.content.decode())
    assert f"4 targets of #{request.pk}: 4 succeeded (5 runs: some were retried)" in text
    assert "resumed by lead" in text
    assert "executed without an approval" not in text and "started without" not in text
    assert (
        AuditEvent.objects.filter(
            action="dashboard.run.started", payload__parent_request=request.pk
        ).count()
        == 5
    )

    # Roll back what migrated: a downgrade request of its own, for all four.
    refused = _csrf_post(client, page, reverse("rollouts:rollback", args=[request.pk]))
    assert refused.status_code == 302 and refused.url == page
    assert "No rollback requested: a reason is required." in _text(
        client.get(page).content.decode()
    )
    rolled = _csrf_post(
        client,
        page,
        reverse("rollouts:rollback", args=[request.pk]),
        {"reason": "tags broke search"},
    )
    back = MigrationRequest.objects.get(direction="downgrade", parent__isnull=True)
    assert rolled.status_code == 302 and rolled.url == reverse("approvals:detail", args=[back.pk])
    text = _text(client.get(rolled.url).content.decode())
    assert f"Rollback requested as request #{back.pk}" in text
    assert "Plan 1: 4 targets from c to b , 1 revision" in text
    assert back.rollout.rolls_back_id == rollout.pk

    # The developer's own list shows the two fleet requests, not the 5 target runs.
    mine = _text(_client(developer).get(reverse("approvals:mine")).content.decode())
    assert f"#{request.pk}" in mine
    assert MigrationRequest.objects.filter(parent=request).count() == 5
    listed = re.findall(r"#(\d+)", mine)
    assert {int(pk) for pk in listed} <= {request.pk, back.pk}


def test_the_timeline_checks_each_targets_start_against_the_parents_approvals(
    developer: Any, lead: Any, lead2: Any, auditor: Any
) -> None:
    from types import SimpleNamespace

    from dashboard.audit.services import audit_record

    fleet = SimpleNamespace(pk=1, slug="tenants")

    def event(
        action: str, actor: Any, request_id: int, environment: Any = fleet, **payload: Any
    ) -> None:
        audit_record(
            action=action,
            actor=actor,
            environment=environment,
            request=SimpleNamespace(pk=request_id),
            from_revisions=["a"],
            to_revisions=["c"],
            sql_sha256="f" * 64,
            payload={"direction": "upgrade", **payload},
        )

    def target_run(name: str, request_id: int, outcome: str) -> None:
        env = SimpleNamespace(pk=10 + request_id, slug=f"tenants--{name}")
        ids = {"fleet": "tenants", "target": name, "parent_request": 1}
        event("dashboard.run.started", None, request_id, env, **ids, approved_revisions=["b", "c"])
        event(
            f"dashboard.run.{outcome}",
            None,
            request_id,
            env,
            **ids,
            applied=["b", "c"],
            committed=["b", "c"],
            approved_revisions=["b", "c"],
            executed_statements=0,
        )

    event("dashboard.request.created", developer, 1, revisions=["b", "c"])
    event("dashboard.request.approved", lead, 1)
    event("dashboard.request.approved", lead2, 1)
    event("dashboard.rollout.started", None, 1)
    target_run("acme", 2, "succeeded")
    target_run("globex", 3, "failed")
    event("dashboard.rollout.halted", None, 1, reason="wave 2 reached 1 failed target(s)")
    event("dashboard.request.reopened", None, 1, note="1 of 2 approvals still count")
    target_run("initech", 4, "succeeded")  # started although the approvals lapsed

    html = _client(auditor).get(reverse("audit:timeline") + "?environment=tenants").content.decode()
    text = _text(html)
    assert "3 targets of #1: 2 succeeded, 1 failed" in text
    assert "⚠ target initech started without an approval that still counted" in text
    assert "target acme" not in text.split("3 targets of #1")[0]  # only initech is flagged
    rows = re.findall(r'<tr id="request-(\d+)" data-target="(\w+)">', html)
    assert rows == [("2", "acme"), ("3", "globex"), ("4", "initech")]
    assert "halted " in text and "wave 2 reached 1 failed target(s)" in text
    # A target's own timeline says whose rollout it ran in; approved through it, not flagged.
    own = _text(
        _client(auditor)
        .get(reverse("audit:timeline") + "?environment=tenants--acme")
        .content.decode()
    )
    assert "target acme of #1" in own and "through #1" in own
    assert "executed without an approval" not in own
