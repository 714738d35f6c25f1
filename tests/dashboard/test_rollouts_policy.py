"""A fleet rollout's policy as a user sees it: waves, plans per head set, halt, resume,
cancel, soak, gates, roll back, lapsed approvals and duplicate steps.

In-process and fast: SQLite tenant files, the generated test project, and
Celery in eager mode. ``DASHBOARD_DISPATCH_WAIT`` is long enough that
``run_dispatch`` waits for the eager task it publishes from its thread, so an
approval (or a resume, or "proceed now") returns once the rollout has gone as
far as it can: each child run's ``after_run`` steps the rollout again, exactly
the chain a worker follows. Tests that must see a rollout mid-wave turn eager
mode off (messages go to the test run's filesystem broker, which no worker
reads) and step it with ``rollout_advance`` themselves. Real workers, Redis and
PostgreSQL tenants are the business of the smoke and chaos tests.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.utils import timezone
from sqlalchemy import create_engine, inspect, pool, text

from dashboard.approvals.models import MigrationRequest
from dashboard.approvals.services.decisions import DecisionRefused, migration_request_approve
from dashboard.approvals.services.execution import run_start
from dashboard.audit.models import AuditEvent
from dashboard.celery import app
from dashboard.environments.models import Environment
from dashboard.environments.services import environments_refresh_all
from dashboard.rollouts.models import Rollout, RolloutTarget
from dashboard.rollouts.services.actions import (
    RolloutActionRefused,
    rollout_cancel,
    rollout_proceed,
    rollout_resume,
)
from dashboard.rollouts.services.pinning import (
    migrated_targets,
    rollback_refusal,
    rollback_request_create,
)
from dashboard.rollouts.services.scheduler import rollout_advance, rollouts_tick
from tests.dashboard.approvals_support import approve, create_request, migrate_target, target_heads
from tests.dashboard.rollouts_support import make_fleet, refresh_targets, target_states
from tests.migrator.execution_project import write_project

pytestmark = [
    pytest.mark.django_db(transaction=True),
    # Status reads after a run are queued with send_task, which eager mode leaves queued
    # (the run's recorded heads already updated the status the tests read).
    pytest.mark.filterwarnings("ignore::celery.exceptions.AlwaysEagerIgnored"),
]


@pytest.fixture(scope="module")
def project_ini(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_project(tmp_path_factory.mktemp("policy_project"))


@pytest.fixture(autouse=True)
def in_process(settings: Any, project_ini: Path, eager_celery: None) -> None:
    settings.ALEMBIC_CONFIG = str(project_ini)
    settings.DASHBOARD_RUN_HEARTBEAT = timedelta(seconds=1)
    # run_dispatch waits for its (eager) publication: the whole chain ends before it returns.
    settings.DASHBOARD_DISPATCH_WAIT = timedelta(seconds=60)


@pytest.fixture(autouse=True)
def no_leftover_sessions(transactional_db: None) -> Iterator[None]:
    """Eager tasks ran in dispatch threads, whose Django connections nobody closes (a worker
    thread in production never opens one there): end those idle sessions of this run's
    test database, or dropping it at the end of the session is refused."""
    yield
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid() AND state = 'idle'"
        )


# --- helpers -------------------------------------------------------------------------------


class Tenants:
    """SQLite tenant files under one directory, addressed by the fleet's URL template."""

    def __init__(self, directory: Path, ini: Path) -> None:
        self.template = f"sqlite:///{directory}/tenant_{{target}}.sqlite3"
        self.ini = ini

    def url(self, name: str) -> str:
        return self.template.replace("{target}", name)

    def at(self, name: str, revision: str) -> None:
        migrate_target(self.ini, self.url(name), revision)

    def heads(self, name: str) -> tuple[str, ...]:
        return target_heads(self.url(name))

    def execute(self, name: str, statement: str) -> Any:
        engine = create_engine(self.url(name), poolclass=pool.NullPool)
        with engine.begin() as conn:
            result = conn.execute(text(statement))
            value = result.scalar() if result.returns_rows else None
        engine.dispose()
        return value

    def tables(self, name: str) -> set[str]:
        engine = create_engine(self.url(name), poolclass=pool.NullPool)
        with engine.connect() as conn:
            names = set(inspect(conn).get_table_names())
        engine.dispose()
        return names


def _fleet(
    tmp_path: Path, ini: Path, at: dict[str, str | None], *, read: bool = True, **policy: Any
) -> tuple[Environment, Tenants]:
    """A fleet of SQLite tenants at the given revisions (None: never migrated), statuses read."""
    tenants = Tenants(tmp_path, ini)
    for name, revision in at.items():
        if revision is None:  # a database nobody migrated: no version table
            tenants.execute(name, "create table notes (id integer primary key)")
        else:
            tenants.at(name, revision)
    fleet = make_fleet(
        slug="tenants", names=list(at), url_template=tenants.template, directory=tmp_path, **policy
    )
    if read:
        refresh_targets(fleet)
    return fleet, tenants


def _approved(fleet: Environment, developer: Any, *leads: Any, target: str = "c") -> Rollout:
    request = create_request(fleet, developer, target)
    for lead in leads:
        approve(lead, request)
    return Rollout.objects.get(request=request)


def _row(rollout: Rollout, name: str) -> RolloutTarget:
    return rollout.targets.select_related("plan", "request").get(name=name)


def _children(rollout: Rollout) -> list[MigrationRequest]:
    return list(MigrationRequest.objects.filter(parent_id=rollout.request_id).order_by("pk"))


def _events(rollout: Rollout, action: str) -> list[AuditEvent]:
    rows = AuditEvent.objects.filter(request_id=rollout.request_id, action=action)
    return list(rows.order_by("seq"))


def _queue_only() -> None:
    """From here on tasks are only queued (no worker reads this run's filesystem broker)."""
    app.conf.task_always_eager = False


# --- 1. waves and order --------------------------------------------------------------------


def test_it_rolls_out_a_canary_then_waves_each_after_the_previous_ended(
    project_ini: Path, tmp_path: Path, developer: Any, lead: Any, lead2: Any
) -> None:
    names = [f"t{i}" for i in range(6)]
    fleet, tenants = _fleet(
        tmp_path, project_ini, dict.fromkeys(names, "a"), waves=[1, "50%", "100%"], parallelism=2
    )

    rollout = _approved(fleet, developer, lead, lead2)

    rollout.refresh_from_db()
    assert rollout.state == "succeeded", (rollout.halted_reason, target_states(rollout))
    assert rollout.waves == [1, 3, 6]
    waves = dict(rollout.targets.values_list("name", "wave"))
    assert waves == {"t0": 1, "t1": 2, "t2": 2, "t3": 3, "t4": 3, "t5": 3}
    assert [tenants.heads(name) for name in names] == [("c",)] * 6
    started = _events(rollout, "dashboard.rollout.wave_started")
    assert [(e.payload["wave"], e.payload["targets"]) for e in started] == [(1, 1), (2, 2), (3, 3)]
    # No child request of a wave exists before every target of the wave before it ended.
    for wave in (2, 3):
        earlier = rollout.targets.filter(wave=wave - 1).select_related("request__run")
        later = rollout.targets.filter(wave=wave).select_related("request")
        last_end = max(row.request.run.finished_at for row in earlier)
        first_child = min(row.request.created_at for row in later)
        assert first_child >= last_end, (wave, first_child, last_end)
    assert rollout.request.status == "succeeded"
    assert len(_children(rollout)) == 6


# --- 2. one plan per head set ----------------------------------------------------------------


def test_it_pins_one_plan_per_head_set_and_plans_unread_targets_at_their_turn(
    project_ini: Path, tmp_path: Path, developer: Any, lead: Any, lead2: Any
) -> None:
    at: dict[str, str | None] = {
        "a1": "a",
        "b1": "b",
        "a2": "a",
        "done": "c",
        "late": "b",  # not read when requested, read before its turn
        "b2": "b",
        "a3": "a",
        "never": "a",  # its status is never read
        "bare": None,  # read after the request: no version table, no plan starts there
        "moved": "c",  # read after the request: already at the target by then
    }
    fleet, tenants = _fleet(
        tmp_path, project_ini, at, read=False, halt_after_failures=5, parallelism=4
    )
    targets = Environment.objects.targets_of(fleet)
    read_later = ["late", "bare", "moved"]
    environments_refresh_all(
        environments=list(targets.exclude(target_name__in=[*read_later, "never"]))
    )
    request = create_request(fleet, developer, "c")
    environments_refresh_all(environments=list(targets.filter(target_name__in=read_later)))
    for approver in (lead, lead2):
        approve(approver, request)
    rollout = Rollout.objects.get(request=request)

    plans = list(rollout.plans.values_list("index", "from_heads", "to_heads", "target_count"))
    assert plans == [(0, ["a"], ["c"], 3), (1, ["b"], ["c"], 2)]
    assert "-- plan 1: 3 target(s) at a -> c" in request.sql
    assert "-- plan 2: 2 target(s) at b -> c" in request.sql
    rollout.refresh_from_db()
    assert rollout.state == "succeeded", rollout.halted_reason
    states = target_states(rollout)
    assert {name: states[name] for name in ("a1", "a2", "a3", "b1", "b2", "late")} == dict.fromkeys(
        ("a1", "a2", "a3", "b1", "b2", "late"), "succeeded"
    )
    done = _row(rollout, "done")
    assert (done.state, done.request) == ("skipped", None)
    assert "already at 'c'" in done.error
    late = _row(rollout, "late")
    assert late.plan is not None and late.plan.from_heads == ["b"]
    assert tenants.heads("late") == ("c",)
    never = _row(rollout, "never")
    assert (never.state, never.request) == ("failed", None)
    assert "not known when this was requested" in never.error
    bare = _row(rollout, "bare")
    assert (bare.state, bare.request) == ("failed", None)
    assert "no pinned plan starts at this target's heads (base)" in bare.error
    moved = _row(rollout, "moved")
    assert (moved.state, moved.request, moved.error) == (
        "skipped",
        None,
        "skipped: already at the target",
    )
    assert tenants.heads("never") == ("a",)


# --- 3. halt -------------------------------------------------------------------------------


def test_a_failing_canary_halts_the_rollout_before_the_next_wave(
    project_ini: Path, tmp_path: Path, developer: Any, lead: Any, lead2: Any
) -> None:
    names = ["t0", "t1", "t2", "t3"]
    fleet, tenants = _fleet(tmp_path, project_ini, dict.fromkeys(names, "c"), waves=[1, "100%"])

    rollout = _approved(fleet, developer, lead, lead2, target="boom")

    rollout.refresh_from_db()
    assert rollout.state == "halted"
    assert "wave 1" in rollout.halted_reason and "t0" in rollout.halted_reason
    canary = _row(rollout, "t0")
    assert canary.state == "failed" and "boom" in canary.error
    assert [row.request for row in rollout.targets.filter(wave=2)] == [None] * 3
    assert set(rollout.targets.filter(wave=2).values_list("state", flat=True)) == {"pending"}
    assert len(_children(rollout)) == 1
    rollout.request.refresh_from_db()
    assert rollout.request.status == "running"  # open: a lead resumes or cancels it
    [halted] = _events(rollout, "dashboard.rollout.halted")
    assert halted.payload["failed_targets"][0]["target"] == "t0"
    assert [tenants.heads(name) for name in names] == [("c",)] * 4
    # Nothing moved, so there is nothing to roll back.
    assert rollback_refusal(rollout) == (
        "no target of this rollout migrated: there is nothing to roll back"
    )


# --- 4. resume -----------------------------------------------------------------------------


def _halted_on_a_conflict(
    tmp_path: Path, ini: Path, developer: Any, *leads: Any
) -> tuple[Rollout, Tenants]:
    """t0, the canary, already has a ``tags`` table: revision c cannot create it there."""
    tenants = Tenants(tmp_path, ini)
    names = ["t0", "t1", "t2"]
    for name in names:
        tenants.at(name, "b")
    tenants.execute("t0", "create table tags (id integer primary key)")
    fleet = make_fleet(
        slug="tenants",
        names=names,
        url_template=tenants.template,
        directory=tmp_path,
        waves=[1, "100%"],
    )
    refresh_targets(fleet)
    rollout = _approved(fleet, developer, *leads)
    rollout.refresh_from_db()
    assert rollout.state == "halted", target_states(rollout)
    return rollout, tenants


def test_a_lead_resumes_after_the_fix_with_a_new_attempt_then_the_waves_go_on(
    project_ini: Path, tmp_path: Path, developer: Any, lead: Any, lead2: Any
) -> None:
    rollout, tenants = _halted_on_a_conflict(tmp_path, project_ini, developer, lead, lead2)
    first = _row(rollout, "t0").request
    assert first is not None and first.status == "failed"

    with pytest.raises(PermissionDenied):
        rollout_resume(rollout=rollout, actor=developer)
    rollout.refresh_from_db()
    assert rollout.state == "halted" and len(_children(rollout)) == 1
    assert not _events(rollout, "dashboard.rollout.resumed")

    tenants.execute("t0", "drop table tags")
    assert rollout_resume(rollout=rollout, actor=lead) == 1

    rollout.refresh_from_db()
    assert rollout.state == "succeeded", (rollout.halted_reason, target_states(rollout))
    canary = _row(rollout, "t0")
    assert canary.attempts == 2 and canary.request is not None
    assert canary.request.pk != first.pk and canary.request.status == "succeeded"
    first.refresh_from_db()
    assert first.status == "failed"  # the first attempt stays as history
    assert MigrationRequest.objects.filter(environment=canary.environment).count() == 2
    assert [tenants.heads(name) for name in ("t0", "t1", "t2")] == [("c",)] * 3
    [resumed] = _events(rollout, "dashboard.rollout.resumed")
    assert resumed.actor_username == "lead" and resumed.payload["retried_targets"] == ["t0"]


def test_a_resume_is_refused_when_a_pinned_revision_file_changed(
    settings: Any, tmp_path: Path, developer: Any, lead: Any, lead2: Any
) -> None:
    ini = write_project(tmp_path / "project")
    settings.ALEMBIC_CONFIG = str(ini)
    rollout, tenants = _halted_on_a_conflict(tmp_path, ini, developer, lead, lead2)
    tenants.execute("t0", "drop table tags")
    revision_c = ini.parent / "versions" / "c_revision.py"
    revision_c.write_text(revision_c.read_text() + "\n# edited after approval\n")

    changed = r"the files changed since this was approved \(versions/c_revision.py \(revision c\)\)"
    with pytest.raises(RolloutActionRefused, match=changed):
        rollout_resume(rollout=rollout, actor=lead)

    rollout.refresh_from_db()
    assert rollout.state == "halted"
    assert len(_children(rollout)) == 1 and _row(rollout, "t0").attempts == 1
    assert not _events(rollout, "dashboard.rollout.resumed")
    assert tenants.heads("t0") == ("b",)


# --- 5. cancel the rest (and resume refused while running) ----------------------------------


def test_cancel_skips_what_did_not_start_and_ends_the_request_cancelled(
    project_ini: Path, tmp_path: Path, developer: Any, lead: Any, lead2: Any
) -> None:
    names = ["t0", "t1", "t2", "t3", "t4"]
    fleet, tenants = _fleet(
        tmp_path, project_ini, dict.fromkeys(names, "a"), waves=[2, "100%"], parallelism=2
    )
    _queue_only()
    rollout = _approved(fleet, developer, lead, lead2)
    assert rollout_advance(rollout_id=rollout.pk) == "running"
    assert target_states(rollout) == {
        "t0": "queued",
        "t1": "queued",
        "t2": "pending",
        "t3": "pending",
        "t4": "pending",
    }

    with pytest.raises(RolloutActionRefused, match="only a halted one resumes"):
        rollout_resume(rollout=rollout, actor=lead)
    with pytest.raises(PermissionDenied):
        rollout_cancel(rollout=rollout, actor=developer)

    rollout_cancel(rollout=rollout, actor=lead)

    rollout.refresh_from_db()
    assert rollout.state == "cancelled"
    assert set(target_states(rollout).values()) == {"skipped"}
    assert {child.status for child in _children(rollout)} == {"cancelled"}
    assert rollout.request.status == "cancelled"
    [cancelled] = _events(rollout, "dashboard.rollout.cancelled")
    assert cancelled.actor_username == "lead"
    # The queued messages are delivered late: the withdrawn targets do not run.
    assert [run_start(request_id=child.pk) for child in _children(rollout)] == [None, None]
    assert [tenants.heads(name) for name in names] == [("a",)] * 5


# --- 6. soak -------------------------------------------------------------------------------


def test_a_soak_waits_after_a_wave_unless_a_lead_proceeds(
    project_ini: Path, tmp_path: Path, developer: Any, lead: Any, lead2: Any
) -> None:
    fleet, tenants = _fleet(
        tmp_path,
        project_ini,
        dict.fromkeys(["t0", "t1", "t2"], "a"),
        waves=[1, 2, "100%"],
        extra='soak = "2s"',
    )

    rollout = _approved(fleet, developer, lead, lead2)

    rollout.refresh_from_db()
    assert rollout.state == "soaking" and rollout.current_wave == 1
    assert rollout.soak_until is not None
    ahead = (rollout.soak_until - timezone.now()).total_seconds()
    assert 0 < ahead <= 2.0
    assert rollouts_tick() >= 1
    rollout.refresh_from_db()
    assert rollout.state == "soaking" and len(_children(rollout)) == 1
    with pytest.raises(PermissionDenied):
        rollout_proceed(rollout=rollout, actor=developer)

    rollout_proceed(rollout=rollout, actor=lead)

    rollout.refresh_from_db()
    [proceeded] = _events(rollout, "dashboard.rollout.proceeded")
    assert proceeded.actor_username == "lead" and proceeded.payload["wave"] == 1
    assert [tenants.heads(name) for name in ("t0", "t1", "t2")] == [("c",), ("c",), ("a",)]
    # Wave 2 soaks too; nobody proceeds this time: beat's tick ends it when time is up.
    assert rollout.state == "soaking" and rollout.current_wave == 2
    assert rollout.soak_until is not None
    time.sleep(max((rollout.soak_until - timezone.now()).total_seconds(), 0) + 0.2)
    rollouts_tick()
    rollout.refresh_from_db()
    # No soak after the last wave: nothing waits for it.
    assert rollout.state == "succeeded" and rollout.current_wave == 3
    assert [tenants.heads(name) for name in ("t0", "t1", "t2")] == [("c",)] * 3
    assert len(_events(rollout, "dashboard.rollout.proceeded")) == 1


# --- 7. gate_sql ---------------------------------------------------------------------------


def test_a_gate_that_is_false_on_a_target_halts_the_rollout(
    project_ini: Path, tmp_path: Path, developer: Any, lead: Any, lead2: Any
) -> None:
    names = ["t0", "t1", "t2", "t3"]
    tenants = Tenants(tmp_path, project_ini)
    for name in names:
        tenants.at(name, "a")
    tenants.execute("t1", "insert into items (name) values ('left over')")
    fleet = make_fleet(
        slug="tenants",
        names=names,
        url_template=tenants.template,
        directory=tmp_path,
        waves=[2, "100%"],
        extra='gate_sql = "select count(*) = 0 from items"',
    )
    refresh_targets(fleet)

    rollout = _approved(fleet, developer, lead, lead2)

    rollout.refresh_from_db()
    assert rollout.state == "halted" and "t1" in rollout.halted_reason
    t0, t1 = _row(rollout, "t0"), _row(rollout, "t1")
    assert (t0.state, t0.gate_passed) == ("succeeded", True)
    assert (t1.state, t1.gate_passed) == ("succeeded", False)
    assert t1.error.startswith("gate_sql returned") and "not true" in t1.error
    assert [row.request for row in rollout.targets.filter(wave=2)] == [None, None]
    assert [tenants.heads(name) for name in names] == [("c",), ("c",), ("a",), ("a",)]

    # Fixed by hand; a resume reads the failed gate again (nothing re-runs) and goes on.
    tenants.execute("t1", "delete from items")
    rollout_resume(rollout=rollout, actor=lead)

    rollout.refresh_from_db()
    assert rollout.state == "succeeded", (rollout.halted_reason, target_states(rollout))
    t1 = _row(rollout, "t1")
    assert (t1.gate_passed, t1.error, t1.attempts) == (True, "", 1)
    assert set(rollout.targets.values_list("gate_passed", flat=True)) == {True}
    assert [tenants.heads(name) for name in names] == [("c",)] * 4


@pytest.mark.parametrize(
    ("gate", "says"),
    [
        ("select count(*) = 0 from nowhere", "no such table: nowhere"),
        ("delete from items returning id", "readonly database"),
        ("create table sneaky (id integer)", "readonly database"),
    ],
    ids=["error", "delete", "create"],
)
def test_a_gate_that_errors_says_so_and_gates_change_nothing(
    project_ini: Path,
    tmp_path: Path,
    developer: Any,
    lead: Any,
    lead2: Any,
    gate: str,
    says: str,
) -> None:
    tenants = Tenants(tmp_path, project_ini)
    tenants.at("t0", "a")
    tenants.execute("t0", "insert into items (name) values ('kept')")
    fleet = make_fleet(
        slug="tenants",
        names=["t0"],
        url_template=tenants.template,
        directory=tmp_path,
        extra=f'gate_sql = "{gate}"',
    )
    refresh_targets(fleet)

    rollout = _approved(fleet, developer, lead, lead2)

    rollout.refresh_from_db()
    assert rollout.state == "halted"
    row = _row(rollout, "t0")
    assert row.gate_passed is False
    assert row.error.startswith("gate_sql failed:") and says in row.error, row.error
    assert tenants.execute("t0", "select count(*) from items") == 1
    assert "sneaky" not in tenants.tables("t0")


# --- 8. roll back what migrated ------------------------------------------------------------


def test_it_rolls_back_exactly_the_targets_that_migrated(
    project_ini: Path,
    tmp_path: Path,
    make_user: Any,
    developer: Any,
    lead: Any,
    lead2: Any,
) -> None:
    # From b (not a): b's downgrade is a batch operation that SQLite cannot render offline.
    names = [f"t{i}" for i in range(6)]
    tenants = Tenants(tmp_path, project_ini)
    for name in names:
        tenants.at(name, "b")
    tenants.execute("t2", "insert into items (name) values ('left over')")
    fleet = make_fleet(
        slug="tenants",
        names=names,
        url_template=tenants.template,
        directory=tmp_path,
        waves=[3, "100%"],
        extra='gate_sql = "select count(*) = 0 from items"',
    )
    refresh_targets(fleet)
    rollout = _approved(fleet, developer, lead, lead2)
    rollout.refresh_from_db()
    assert rollout.state == "halted"
    assert [tenants.heads(name) for name in names] == [("c",)] * 3 + [("b",)] * 3
    assert sorted(row.name for row in migrated_targets(rollout)) == ["t0", "t1", "t2"]
    tenants.execute("t2", "delete from items")
    lead3 = make_user("lead3", "Tech leads")

    back = rollback_request_create(rollout=rollout, actor=lead, reason="undo release 42")

    rollout.refresh_from_db()
    assert rollout.state == "cancelled"
    assert set(rollout.targets.filter(wave=2).values_list("state", flat=True)) == {"skipped"}
    assert (back.environment_id, back.direction, back.status) == (fleet.pk, "downgrade", "pending")
    undo = Rollout.objects.get(request=back)
    assert undo.rolls_back_id == rollout.pk
    assert sorted(undo.targets.values_list("name", flat=True)) == ["t0", "t1", "t2"]
    assert list(undo.plans.values_list("from_heads", "to_heads", "target_count")) == [
        (["c"], ["b"], 3)
    ]

    approve(lead2, back, sql_acknowledged="on")  # a downgrade: "I have read the SQL"
    approve(lead3, back, sql_acknowledged="on")

    undo.refresh_from_db()
    assert undo.state == "succeeded", (undo.halted_reason, target_states(undo))
    assert [tenants.heads(name) for name in names] == [("b",)] * 6
    assert {child.direction for child in _children(undo)} == {"downgrade"}
    for name in ("t3", "t4", "t5"):  # never ran: no request of either rollout touched them
        assert not MigrationRequest.objects.filter(environment__target_name=name).exists()


# --- 9. approvals lapse mid-rollout --------------------------------------------------------


def test_approvals_that_lapse_between_waves_halt_the_rollout(
    project_ini: Path,
    tmp_path: Path,
    make_user: Any,
    developer: Any,
    lead: Any,
    lead2: Any,
) -> None:
    fleet, tenants = _fleet(
        tmp_path,
        project_ini,
        dict.fromkeys(["t0", "t1", "t2"], "a"),
        waves=[1, "100%"],
        extra='soak = "2s"',
    )
    rollout = _approved(fleet, developer, lead, lead2)
    rollout.refresh_from_db()
    assert rollout.state == "soaking"
    tech_leads = Group.objects.get(name="Tech leads")

    lead2.groups.remove(tech_leads)
    rollout_proceed(rollout=rollout, actor=lead)

    rollout.refresh_from_db()
    assert rollout.state == "halted"
    assert rollout.halted_reason.startswith(
        "approvals no longer meet the policy (1 of 2 still count; no longer counted: lead2)"
    )
    assert len(_children(rollout)) == 1
    assert [row.request for row in rollout.targets.filter(wave=2)] == [None, None]
    assert [tenants.heads(name) for name in ("t0", "t1", "t2")] == [("c",), ("a",), ("a",)]
    assert _events(rollout, "dashboard.rollout.halted")[-1].payload["reason"] == (
        rollout.halted_reason
    )
    # The running request takes no fresh approval, so the reason must not ask for one.
    with pytest.raises(DecisionRefused, match="is running"):
        migration_request_approve(request=rollout.request, actor=make_user("lead3", "Tech leads"))
    assert "restore the approvers' rights and resume" in rollout.halted_reason

    rollout_resume(rollout=rollout, actor=lead)  # still lapsed: halts again, nothing runs
    rollout.refresh_from_db()
    assert rollout.state == "halted" and len(_children(rollout)) == 1

    lead2.groups.add(tech_leads)
    rollout_resume(rollout=rollout, actor=lead)

    rollout.refresh_from_db()
    assert (rollout.state, rollout.current_wave) == ("succeeded", 2), rollout.halted_reason
    assert [tenants.heads(name) for name in ("t0", "t1", "t2")] == [("c",)] * 3


# --- 10. exactly once under duplicates -----------------------------------------------------


def test_concurrent_steps_dispatch_each_target_once_and_respect_parallelism(
    project_ini: Path, tmp_path: Path, developer: Any, lead: Any, lead2: Any
) -> None:
    names = [f"t{i}" for i in range(8)]
    fleet, _ = _fleet(tmp_path, project_ini, dict.fromkeys(names, "a"), parallelism=3)
    _queue_only()
    rollout = _approved(fleet, developer, lead, lead2)
    assert rollout.state == "pending"

    def step_concurrently(count: int) -> list[str]:
        barrier = threading.Barrier(count)
        results: list[str] = []
        errors: list[BaseException] = []

        def step() -> None:
            try:
                barrier.wait(timeout=10)
                results.append(rollout_advance(rollout_id=rollout.pk))
            except BaseException as exc:  # reported below, on the test's thread
                errors.append(exc)
            finally:
                connection.close()

        threads = [threading.Thread(target=step) for _ in range(count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert not errors, errors
        return results

    assert step_concurrently(8) == ["running"] * 8
    assert step_concurrently(8) == ["running"] * 8

    children = _children(rollout)
    assert len(children) == 3
    assert len({child.environment_id for child in children}) == 3
    assert rollout.targets.filter(state__in=RolloutTarget.IN_FLIGHT).count() == 3
    assert rollout.targets.filter(state="pending").count() == 5
    assert list(rollout.targets.values_list("attempts", flat=True)).count(1) == 3
    assert len(_events(rollout, "dashboard.rollout.started")) == 1
    assert len(_events(rollout, "dashboard.rollout.wave_started")) == 1
