"""Fleet rollouts under real faults: a worker killed mid-wave, Redis restarted, a host cut off.

Each test starts its own worker processes, because each one breaks them
(``--pool=solo`` where a test must know which process runs a target). The
host cut off comes back once the rollout has been resumed and finished on
this host: its worker's late report must not claim the retry's work. Tenants are PostgreSQL databases cloned from one template
migrated to ``c``; the rollouts go to the project's ``slow`` revision, which
sleeps ``SLOW_SECONDS`` on PostgreSQL inside the migration's transaction, so a
fault lands while targets are migrating.

Beat: nothing runs ``celery beat`` here. A :class:`~tests.dashboard.rollouts_support.Beat`
thread in the test process calls what beat's tasks call -- ``runs_reap()``,
``rollouts_tick()``, ``approved_requests_redispatch()`` -- every 0.25 s, with
``DASHBOARD_REDISPATCH_AFTER`` at 3 s (also in the workers' environment): the
same code on the same database as a beat process, without its start-up time
and its 2-3 s schedule, so the tests measure the product's recovery and finish
in seconds. Messages go through the real broker to the real workers.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import connection as django_connection
from sqlalchemy.engine import make_url

from dashboard.approvals.models import Run, RunLogLine
from dashboard.audit.models import AuditEvent
from dashboard.rollouts.services.actions import rollout_resume
from tests.dashboard.approvals_support import (
    HEARTBEAT_SECONDS,
    Worker,
    broker,
    drop_queue_keys,
    target_heads,
    target_lock_holder,
    wait_for,
)
from tests.dashboard.network_support import SecondHost, free_port, namespaces_available
from tests.dashboard.rollouts_support import (
    Beat,
    TenantTemplate,
    child_runs,
    cut_off,
    make_fleet,
    roll_out,
    rollout_in,
    rollout_settled,
    target_states,
    tenant_url,
)
from tests.dashboard.test_execution_broker import PrivateRedis
from tests.migrator.execution_project import SLOW_SECONDS, write_project

pytestmark = pytest.mark.django_db(transaction=True)
REDIS = os.environ["TEST_REDIS_URL"]
ENDED = ("succeeded", "halted", "cancelled")
REDISPATCH_AFTER = "3s"


@pytest.fixture(scope="module")
def project_ini(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_project(tmp_path_factory.mktemp("rollout_faults_project"))


@pytest.fixture(scope="module")
def template(project_ini: Path) -> Iterator[TenantTemplate]:
    databases = TenantTemplate(ini=project_ini, revision="c", prefix="rf")
    yield databases
    databases.close()


@pytest.fixture
def tenants(template: TenantTemplate) -> Iterator[TenantTemplate]:
    yield template
    template.drop_clones()


@pytest.fixture
def queue() -> Iterator[str]:
    name = f"test-rollfault-{uuid.uuid4().hex[:10]}"
    yield name
    drop_queue_keys(REDIS, name)


@pytest.fixture(autouse=True)
def alembic_project(settings: Any, project_ini: Path) -> None:
    settings.ALEMBIC_CONFIG = str(project_ini)
    settings.DASHBOARD_RUN_HEARTBEAT = timedelta(seconds=HEARTBEAT_SECONDS)
    settings.DASHBOARD_RUN_REAP_AFTER = timedelta(seconds=6 * HEARTBEAT_SECONDS)
    settings.DASHBOARD_REDISPATCH_AFTER = timedelta(seconds=3)


def _worker(project_ini: Path, log: Path, *, broker_url: str, queue: str, **kw: Any) -> Worker:
    extra = {"DASHBOARD_REDISPATCH_AFTER": REDISPATCH_AFTER, **kw.pop("extra_env", {})}
    return Worker(
        broker_url=broker_url, queue=queue, ini=project_ini, log=log, extra_env=extra, **kw
    )


def _name(worker: Worker) -> str:
    """What ``Run.worker`` says for this worker's runs: ``host:pid`` of its main process."""
    return f"{os.uname().nodename}:{worker.process.pid}"


def _slow_fleet(tenants: TenantTemplate, tmp_path: Path, names: list[str], **policy: Any) -> Any:
    urls = tenants.clone(names)
    fleet = make_fleet(slug="tenants", names=names, url_template=urls, directory=tmp_path, **policy)
    return fleet, urls


def _migrating(request: Any, names: list[str]) -> list[Run]:
    return list(
        Run.objects.filter(
            request__parent=request,
            request__environment__target_name__in=names,
            outcome="running",
            ddl_started_at__isnull=False,
        )
    )


def _assert_each_target_ran_once(request: Any, retried: tuple[str, ...] = ()) -> None:
    """One child request per attempt, one run per child, one ``run.started`` per child."""
    runs = child_runs(request)
    by_target: dict[str, list[tuple[Any, Any]]] = {}
    for row, child, run in runs:
        assert run is not None, f"{row.name}: child #{child.pk} never ran"
        by_target.setdefault(row.name, []).append((child, run))
    for name, attempts in by_target.items():
        assert len(attempts) == (2 if name in retried else 1), (name, attempts)
        row = next(row for row, _, _ in runs if row.name == name)
        assert row.attempts == len(attempts)
    started = AuditEvent.objects.filter(
        action="dashboard.run.started", request_id__in=[child.pk for _, child, _ in runs]
    )
    assert started.count() == len(runs)


# --- a worker SIGKILLed in the middle of a wave ----------------------------------------


def test_a_worker_killed_mid_wave_leaves_its_target_interrupted_and_resume_retries_it(
    tenants: TenantTemplate,
    project_ini: Path,
    queue: str,
    tmp_path: Path,
    developer: Any,
    lead: Any,
    lead2: Any,
) -> None:
    names = ["t0", "t1", "t2", "t3"]
    wave2 = names[1:]
    fleet, urls = _slow_fleet(
        tenants, tmp_path, names, waves=[1, "100%"], parallelism=3, halt_after_failures=1
    )
    doomed = _worker(project_ini, tmp_path / "doomed.log", broker_url=REDIS, queue=queue)
    survivor = _worker(project_ini, tmp_path / "survivor.log", broker_url=REDIS, queue=queue)
    try:
        with broker(REDIS, queue), Beat():
            request = roll_out(fleet, developer, (lead, lead2), "slow")

            def both_migrating() -> dict[str, Run] | None:
                by_worker = {run.worker: run for run in _migrating(request, wave2)}
                return by_worker if len(by_worker) == 2 else None

            victim = wait_for(both_migrating, timeout=60)[_name(doomed)]
            victim_url = tenant_url(urls, victim.request.environment.target_name)
            time.sleep(0.5)  # inside the slow revision's pg_sleep
            doomed.kill()
            killed_at = time.monotonic()
            # The server keeps the dead client's session (and its lock) until its
            # pg_sleep returns; from then on the reaper has the target's word.
            wait_for(lambda: target_lock_holder(victim_url) is None, timeout=SLOW_SECONDS + 10)
            freed_at = time.monotonic()
            wait_for(
                lambda: Run.objects.filter(pk=victim.pk).exclude(outcome="running").exists(),
                timeout=10,
                interval=0.05,
            )
            noticed_after = time.monotonic() - freed_at
            ended_after_kill = time.monotonic() - killed_at
            rollout = rollout_settled(rollout_in(request, *ENDED))

            victim.refresh_from_db()
            rows = {row.name: row for row in rollout.targets.all()}
            victim_name = victim.request.environment.target_name
            assert victim.outcome == "interrupted" and victim.reason == "heartbeat_lost"
            assert noticed_after <= 2 * HEARTBEAT_SECONDS, noticed_after
            assert ended_after_kill <= SLOW_SECONDS + 2 * HEARTBEAT_SECONDS, ended_after_kill
            assert "stopped sending heartbeats" in rows[victim_name].error
            assert target_lock_holder(victim_url) is None
            assert target_heads(victim_url) == ("c",)  # its transaction died with it
            assert rollout.state == "halted" and victim_name in rollout.halted_reason
            for name in wave2:  # the survivor finished the wave's other targets
                if name != victim_name:
                    row = rows[name]
                    assert row.state == "succeeded", (name, row.error)
                    assert row.request.run.worker == _name(survivor)

            assert rollout_resume(rollout=rollout, actor=lead) == 1
            rollout = rollout_in(request, "succeeded", "cancelled")
    finally:
        doomed.kill()
        survivor.stop()

    assert rollout.state == "succeeded", (rollout.halted_reason, target_states(rollout))
    assert {name: target_heads(tenant_url(urls, name)) for name in names} == {
        name: ("slow",) for name in names
    }
    _assert_each_target_ran_once(request, retried=(victim_name,))
    retry = rollout.targets.get(name=victim_name).request
    assert retry.run.outcome == "succeeded" and retry.run.worker == _name(survivor)


# --- Redis restarted during a rollout ----------------------------------------------------


def test_a_rollout_goes_on_after_redis_restarts_and_no_target_runs_twice(
    tenants: TenantTemplate,
    project_ini: Path,
    queue: str,
    tmp_path: Path,
    developer: Any,
    lead: Any,
    lead2: Any,
) -> None:
    names = [f"t{i}" for i in range(5)]
    fleet, urls = _slow_fleet(
        tenants, tmp_path, names, waves=[1, "100%"], parallelism=2, halt_after_failures=1
    )
    server = PrivateRedis(free_port())  # stopping the shared Redis would disturb others
    server.start()
    workers = [
        _worker(project_ini, tmp_path / f"w{i}.log", broker_url=server.url, queue=queue)
        for i in range(2)
    ]
    try:
        with broker(server.url, queue), Beat():
            request = roll_out(fleet, developer, (lead, lead2), "slow")
            wait_for(lambda: _migrating(request, names[1:]), timeout=60)
            rollout = rollout_in(request, "running")
            pending_at_restart = rollout.targets.filter(state="pending").count()
            server.stop()  # queued messages are gone; runs in flight end while it is away
            time.sleep(SLOW_SECONDS + 1)
            server.start()
            rollout = rollout_in(request, *ENDED)
    finally:
        for worker in workers:
            worker.stop()
        server.stop()

    assert pending_at_restart >= 2  # the restart really fell in the middle of the rollout
    assert rollout.state == "succeeded", (rollout.halted_reason, target_states(rollout))
    assert {name: target_heads(tenant_url(urls, name)) for name in names} == {
        name: ("slow",) for name in names
    }
    _assert_each_target_ran_once(request)
    assert all(run.outcome == "succeeded" for _, _, run in child_runs(request))


# --- a worker on another host, cut off while its target migrates -------------------------


def _reported_late(run: Run) -> tuple[bool, str] | None:
    """(corrected?, its log line) once the run's worker has reported after the reaper."""
    corrected = AuditEvent.objects.filter(
        request_id=run.request_id, action="dashboard.run.corrected"
    ).exists()
    line = RunLogLine.objects.filter(run_id=run.pk, text__contains="after this run was recorded")
    text = line.values_list("text", flat=True).first() or ""
    return (corrected, text) if corrected or text else None


@pytest.fixture
def second_host() -> Iterator[SecondHost]:
    why_not = namespaces_available()
    if why_not:
        pytest.skip(f"cannot make a second host here: {why_not}")
    host = SecondHost()
    yield host
    host.close()


def test_a_worker_on_another_host_cut_off_mid_run_is_resumed_here_and_its_late_report_ignored(
    second_host: SecondHost,
    tenants: TenantTemplate,
    project_ini: Path,
    queue: str,
    tmp_path: Path,
    developer: Any,
    lead: Any,
    lead2: Any,
) -> None:
    names = ["t0", "t1", "t2"]
    host = second_host
    redis_port = make_url(REDIS.replace("redis://", "postgresql://")).port or 6379
    redis_fwd = host.forward(listen_ip=host.services_ip, to_port=redis_port)
    db_fwd = host.forward(listen_ip=host.services_ip, to_port=5432)
    target_fwd = host.forward(listen_ip=host.targets_ip, to_port=5432)
    urls = tenants.clone(names)
    # One URL template for both hosts: through the link from there, a local address here.
    urls = urls.replace("@127.0.0.1:5432/", f"@{host.targets_ip}:{target_fwd}/")
    fleet = make_fleet(
        slug="tenants",
        names=names,
        url_template=urls,
        directory=tmp_path,
        waves=[1, "100%"],
        parallelism=2,
        halt_after_failures=1,
        extra='idle_in_transaction_timeout = "2s"',
    )
    database = django_connection.settings_dict
    far = _worker(
        project_ini,
        tmp_path / "far.log",
        broker_url=f"redis://{host.services_ip}:{redis_fwd}/{REDIS.rsplit('/', 1)[1]}",
        queue=queue,
        command_prefix=host.command_prefix,
        extra_env={
            "DASHBOARD_DATABASE_URL": (
                f"postgresql://{database['USER']}@{host.services_ip}:{db_fwd}/{database['NAME']}"
            ),
            "DASHBOARD_STATUS_TIMEOUT": "2",
        },
    )
    near: Worker | None = None
    restore = None
    try:
        with broker(REDIS, queue), Beat():
            request = roll_out(fleet, developer, (lead, lead2), "slow")
            (far_run,) = wait_for(lambda: _migrating(request, ["t0"]), timeout=60)
            time.sleep(0.5)  # inside the slow revision's pg_sleep
            restore = cut_off(host)
            near = _worker(
                project_ini,
                tmp_path / "near.log",
                broker_url=REDIS,
                queue=queue,
                pool="threads",  # wave 2's two targets at once
                extra_env={"CELERY_WORKER_CONCURRENCY": "2"},
            )
            far_run = wait_for(
                lambda: Run.objects.filter(pk=far_run.pk).exclude(outcome="running").first(),
                timeout=SLOW_SECONDS + 30,
            )
            rollout = rollout_settled(rollout_in(request, *ENDED))
            canary_heads = target_heads(tenant_url(urls, "t0"))
            if rollout.state == "halted":
                assert rollout_resume(rollout=rollout, actor=lead) == 1
            rollout = rollout_in(request, "succeeded", "cancelled")
            # The partition heals: the far worker's run notices its dead session (its TCP
            # keepalive, default timeout) and reports, from heads the retry here has moved.
            restore()
            restore = None
            if far_run.outcome == "interrupted":
                wait_for(lambda: _reported_late(far_run), timeout=60, interval=0.5)
            far.kill()
            far_run.refresh_from_db()
    finally:
        far.kill()
        if near is not None:
            near.stop()
        if restore is not None:
            restore()

    # The record says what the heads say: interrupted and rolled back, or (had its
    # COMMIT got through before the cut) succeeded.
    assert far_run.worker == _name(far)
    assert far_run.final_heads == list(canary_heads)
    assert far_run.outcome in ("interrupted", "succeeded")
    assert (far_run.outcome == "succeeded") == (canary_heads == ("slow",))
    # Its late report is kept in its log, and does not claim the retry's work.
    if far_run.outcome == "interrupted":
        report = _reported_late(far_run)
        assert report is not None
        corrected, late_report = report
        assert not corrected and far_run.committed == []
        assert "reported succeeded" in late_report and "not taken" in late_report
    assert rollout.state == "succeeded", (rollout.halted_reason, target_states(rollout))
    assert {name: target_heads(tenant_url(urls, name)) for name in names} == {
        name: ("slow",) for name in names
    }
    retried = ("t0",) if far_run.outcome == "interrupted" else ()
    _assert_each_target_ran_once(request, retried=retried)
    runs = [run for _, _, run in child_runs(request)]
    assert [run.worker for run in runs].count(_name(far)) == 1
    assert all(run.worker == _name(near) for run in runs if run.pk != far_run.pk)
