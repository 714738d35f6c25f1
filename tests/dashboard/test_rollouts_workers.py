"""Fleet rollouts carried out by two real worker processes over real PostgreSQL tenants.

Two ``celery worker`` processes with different node names (threads pool, four
threads each: eight slots, twice the rollouts' parallelism, so the scheduler,
not the worker count, is what bounds the targets in flight) serve the test's
queue for both runs and io, for the whole module. Tenants are databases cloned
from one template migrated to ``a`` (``CREATE DATABASE ... TEMPLATE``) and
dropped after each test.

No beat runs here: a rollout is stepped only by its events (the approval, each
target's run ending, a resume), so these tests also show that the event-driven
path alone carries a rollout to its end. The recovery paths that beat drives
(the reaper, the tick, re-dispatch) are in ``test_rollouts_faults.py``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, inspect, pool, text

from dashboard.approvals.models import MigrationRequest, Run
from dashboard.audit.models import AuditEvent
from dashboard.migrator.locks import advisory_lock_key
from dashboard.rollouts.services.actions import rollout_resume
from tests.dashboard.approvals_support import (
    HEARTBEAT_SECONDS,
    Worker,
    audit_actions,
    broker,
    drop_queue_keys,
    migrate_target,
    target_heads,
    wait_for,
)
from tests.dashboard.rollouts_support import (
    TenantTemplate,
    child_runs,
    make_fleet,
    max_overlap,
    roll_out,
    rollout_in,
    rollout_settled,
    target_states,
    tenant_url,
)
from tests.migrator.execution_project import write_project

pytestmark = pytest.mark.django_db(transaction=True)
REDIS = os.environ["TEST_REDIS_URL"]
ENDED = ("succeeded", "halted", "cancelled")


@pytest.fixture(scope="module")
def project_ini(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_project(tmp_path_factory.mktemp("rollout_workers_project"))


@pytest.fixture(scope="module")
def template(project_ini: Path) -> Iterator[TenantTemplate]:
    databases = TenantTemplate(ini=project_ini, revision="a", prefix="rw")
    yield databases
    databases.close()


@pytest.fixture
def tenants(template: TenantTemplate) -> Iterator[TenantTemplate]:
    yield template
    template.drop_clones()


@pytest.fixture(scope="module")
def queue() -> Iterator[str]:
    name = f"test-rollwork-{uuid.uuid4().hex[:10]}"
    with broker(REDIS, name):
        yield name
    drop_queue_keys(REDIS, name)


@pytest.fixture(scope="module")
def workers(
    django_db_setup: None, project_ini: Path, queue: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[Worker]]:
    logs = tmp_path_factory.mktemp("rollout_workers")
    started: list[Worker] = []
    try:
        for index in range(2):
            started.append(
                Worker(
                    broker_url=REDIS,
                    queue=queue,
                    ini=project_ini,
                    log=logs / f"worker{index}.log",
                    pool="threads",
                    # celery's CLI reads CELERY_<COMMAND>_<OPTION>: --concurrency=4
                    extra_env={"CELERY_WORKER_CONCURRENCY": "4"},
                )
            )
        yield started
    finally:
        for worker in started:
            worker.stop()


@pytest.fixture(autouse=True)
def alembic_project(settings: Any, project_ini: Path) -> None:
    settings.ALEMBIC_CONFIG = str(project_ini)
    settings.DASHBOARD_RUN_HEARTBEAT = timedelta(seconds=HEARTBEAT_SECONDS)


def test_thirty_tenants_roll_out_wave_by_wave_on_two_workers(
    workers: list[Worker],
    tenants: TenantTemplate,
    tmp_path: Path,
    developer: Any,
    lead: Any,
    lead2: Any,
) -> None:
    names = [f"t{i:02d}" for i in range(30)]
    urls = tenants.clone(names)
    fleet = make_fleet(
        slug="tenants",
        names=names,
        url_template=urls,
        directory=tmp_path,
        waves=[1, "20%", "100%"],
        parallelism=4,
    )
    request = roll_out(fleet, developer, (lead, lead2), "c")

    rollout = rollout_in(request, *ENDED)
    assert rollout.state == "succeeded", (rollout.halted_reason, target_states(rollout))
    assert rollout.waves == [1, 6, 30]
    assert {name: target_heads(tenant_url(urls, name)) for name in names} == {
        name: ("c",) for name in names
    }
    request.refresh_from_db()
    assert request.status == "succeeded"

    runs = child_runs(request)
    assert len(runs) == 30 and len({row.pk for row, _, _ in runs}) == 30  # one child each
    assert all(run is not None and run.outcome == "succeeded" for _, _, run in runs)
    by_wave: dict[int, list[Run]] = {}
    for row, _, run in runs:
        by_wave.setdefault(row.wave, []).append(run)
    assert sorted((wave, len(rs)) for wave, rs in by_wave.items()) == [(1, 1), (2, 5), (3, 24)]
    for wave in (1, 2):  # no target of the next wave started before this wave had finished
        last_end = max(run.finished_at for run in by_wave[wave])
        first_start = min(run.started_at for run in by_wave[wave + 1])
        assert last_end < first_start, (wave, last_end, first_start)
    intervals = [(run.started_at, run.finished_at) for _, _, run in runs]
    peak = max_overlap(intervals)
    assert 2 <= peak <= 4, peak  # parallel, never beyond the fleet's parallelism
    assert len({run.worker for _, _, run in runs}) == 2  # both workers took targets
    for row, child, _ in runs:  # auditors see each target's run, named, under its request
        events = AuditEvent.objects.filter(request_id=child.pk).order_by("seq")
        assert [event.action for event in events] == [
            "dashboard.run.started",
            "dashboard.run.succeeded",
        ]
        assert {(e.payload["target"], e.payload["parent_request"]) for e in events} == {
            (row.name, request.pk)
        }


def test_a_conflicting_tenant_halts_after_its_wave_and_resume_finishes_the_rest(
    workers: list[Worker],
    tenants: TenantTemplate,
    tmp_path: Path,
    developer: Any,
    lead: Any,
    lead2: Any,
) -> None:
    names = [f"t{i}" for i in range(10)]
    urls = tenants.clone(names)
    conflict = tenant_url(urls, "t3")
    _execute(conflict, "CREATE TABLE tags (id integer PRIMARY KEY)")  # what revision c creates
    fleet = make_fleet(
        slug="tenants",
        names=names,
        url_template=urls,
        directory=tmp_path,
        waves=[1, "50%", "100%"],
        parallelism=4,
        halt_after_failures=1,
    )
    request = roll_out(fleet, developer, (lead, lead2), "c")

    rollout = rollout_settled(rollout_in(request, *ENDED))
    assert rollout.state == "halted" and rollout.current_wave == 2
    assert "t3" in rollout.halted_reason
    rows = {row.name: row for row in rollout.targets.all()}
    assert rows["t3"].wave == 2 and rows["t3"].state == "failed"
    assert "tags" in rows["t3"].error and "already exists" in rows["t3"].error
    # The tenant is as it was: one transaction, rolled back (b's items.note is not there).
    assert target_heads(conflict) == ("a",)
    assert "note" not in _columns(conflict, "items")
    for name in ("t0", "t1", "t2", "t4"):  # waves 1 and 2 ran to their end
        assert rows[name].state == "succeeded" and target_heads(tenant_url(urls, name)) == ("c",)
    wave3 = [name for name, row in rows.items() if row.wave == 3]
    assert wave3 == ["t5", "t6", "t7", "t8", "t9"]
    for name in wave3:  # never touched: no child request, still at the old heads
        assert rows[name].state == "pending" and rows[name].request_id is None
        assert target_heads(tenant_url(urls, name)) == ("a",)
    assert not MigrationRequest.objects.filter(
        parent=request, environment__target_name__in=wave3
    ).exists()

    _execute(conflict, "DROP TABLE tags")
    assert rollout_resume(rollout=rollout, actor=lead) == 1

    rollout = rollout_in(request, "succeeded", "cancelled")
    assert rollout.state == "succeeded", (rollout.halted_reason, target_states(rollout))
    assert {name: target_heads(tenant_url(urls, name)) for name in names} == {
        name: ("c",) for name in names
    }
    retried = rollout.targets.get(name="t3")
    assert retried.attempts == 2 and retried.state == "succeeded"
    attempts = [(child.status, run.outcome) for _, child, run in child_runs(request)]
    assert len(attempts) == 11  # ten targets, one retried
    assert attempts.count(("failed", "failed")) == 1
    actions = audit_actions(request)
    assert actions.index("dashboard.rollout.halted") < actions.index("dashboard.rollout.resumed")


def test_a_tenant_moved_by_hand_after_approval_is_refused_as_stale_and_the_others_go_on(
    workers: list[Worker],
    tenants: TenantTemplate,
    project_ini: Path,
    tmp_path: Path,
    developer: Any,
    lead: Any,
    lead2: Any,
) -> None:
    names = [f"t{i}" for i in range(6)]
    urls = tenants.clone(names)
    fleet = make_fleet(
        slug="tenants",
        names=names,
        url_template=urls,
        directory=tmp_path,
        waves=[1, "100%"],
        parallelism=4,
        halt_after_failures=2,
    )
    # Hold the canary's migration lock so wave 1 cannot end before the tenant is moved.
    holder = create_engine(tenant_url(urls, "t0"), poolclass=pool.NullPool).connect()
    holder.execute(
        text("SELECT pg_advisory_lock(:k)"), {"k": advisory_lock_key("public.alembic_version")}
    )
    holder.commit()
    try:
        request = roll_out(fleet, developer, (lead, lead2), "c")
        wait_for(
            lambda: Run.objects.filter(
                request__parent=request, phase="waiting for the target lock"
            ).exists(),
            timeout=30,
        )
        moved = tenant_url(urls, "t2")
        migrate_target(project_ini, moved, "b")  # someone migrates one wave-2 tenant by hand
    finally:
        holder.close()
        holder.engine.dispose()

    rollout = rollout_settled(rollout_in(request, *ENDED))
    assert rollout.state == "succeeded", (rollout.halted_reason, target_states(rollout))
    stale = rollout.targets.get(name="t2")
    assert stale.wave == 2 and stale.state == "failed"
    assert "stale plan" in stale.error and "the plan was pinned at a" in stale.error
    assert stale.request is not None and stale.request.run.reason == "stale_plan"
    assert target_heads(moved) == ("b",)  # refused under the lock: nothing ran on it
    assert target_states(rollout) == {name: "succeeded" for name in names} | {"t2": "failed"}
    for name in ("t0", "t1", "t3", "t4", "t5"):
        assert target_heads(tenant_url(urls, name)) == ("c",)
    # Every wave ran, but a target did not migrate: the request says so.
    request.refresh_from_db()
    assert request.status == "failed"
    assert request.status_note.startswith("every wave ran, 1 target(s) did not migrate")


def _execute(url: str, sql: str) -> None:
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.begin() as conn:
        conn.execute(text(sql))
    engine.dispose()


def _columns(url: str, table: str) -> list[str]:
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as conn:
        columns = [column["name"] for column in inspect(conn).get_columns(table)]
    engine.dispose()
    return columns
