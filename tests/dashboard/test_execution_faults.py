"""Execution under faults, with real Celery worker processes, Redis and PostgreSQL targets.

Each test reproduces a defect found by probing the first round's execution
core (issue 11) and checks what a user would notice: the run's outcome, the
target's version table, the audit chain, the lock.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import connection as django_connection
from sqlalchemy import create_engine, pool, text

from dashboard.approvals import transitions
from dashboard.approvals.models import AppendOnlyError, MigrationRequest, Run, RunLogLine
from dashboard.approvals.services.recovery import run_cancel, runs_reap
from dashboard.audit.models import AuditEvent
from dashboard.migrator.locks import advisory_lock_key
from dashboard.migrator.runner import executed_sql_sha256
from tests.dashboard.approvals_support import (
    HEARTBEAT_SECONDS,
    Worker,
    approve,
    audit_actions,
    broker,
    create_request,
    drop_queue_keys,
    make_environment,
    migrate_target,
    request_ended,
    run_migrating,
    target_heads,
    target_lock_holder,
    wait_for,
)
from tests.migrator.execution_project import SLOW_SECONDS, throwaway_postgres, write_project

pytestmark = pytest.mark.django_db(transaction=True)
REDIS = os.environ["TEST_REDIS_URL"]
RUN_TIMEOUT = 60


@pytest.fixture(scope="module")
def project_ini(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_project(tmp_path_factory.mktemp("faults_project"))


@pytest.fixture(scope="module")
def queue() -> Iterator[str]:
    name = f"test-faults-{uuid.uuid4().hex[:10]}"
    with broker(REDIS, name):
        yield name
    drop_queue_keys(REDIS, name)


@pytest.fixture(scope="module")
def worker(
    django_db_setup: None, project_ini: Path, queue: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Worker]:
    log = tmp_path_factory.mktemp("faults_worker") / "worker.log"
    process = Worker(broker_url=REDIS, queue=queue, ini=project_ini, log=log)
    yield process
    process.stop()


@pytest.fixture(autouse=True)
def alembic_project(settings: Any, project_ini: Path) -> None:
    settings.ALEMBIC_CONFIG = str(project_ini)
    settings.DASHBOARD_RUN_HEARTBEAT = timedelta(seconds=HEARTBEAT_SECONDS)
    settings.DASHBOARD_RUN_REAP_AFTER = timedelta(seconds=6 * HEARTBEAT_SECONDS)


@pytest.fixture
def target_url() -> Iterator[str]:
    with throwaway_postgres("faults") as url:
        yield url


@pytest.fixture
def production(target_url: str, tmp_path: Path) -> Any:
    return make_environment(
        slug="production", url=target_url, directory=tmp_path, required_approvals=1
    )


# --- 1. liveness is the database's clock and the target's lock ------------------------


def test_a_run_whose_heartbeats_are_late_is_not_reaped_while_its_session_holds_the_lock(
    project_ini: Path,
    queue: str,
    production: Any,
    target_url: str,
    developer: Any,
    lead: Any,
    tmp_path: Path,
) -> None:
    # This worker beats every 30 s (a slow dashboard database, a clock that lags):
    # judged by beats alone it looks dead after 1.5 s.
    late = Worker(
        broker_url=REDIS,
        queue=f"{queue}-late",
        ini=project_ini,
        log=tmp_path / "late.log",
        extra_env={"DASHBOARD_RUN_HEARTBEAT": "30s"},
    )
    try:
        migrate_target(project_ini, target_url, "c")
        with broker(REDIS, f"{queue}-late"):
            request = create_request(production, developer, "slow")
            approve(lead, request)
        run_migrating(request)
        reaped: list[int] = []
        deadline = time.monotonic() + SLOW_SECONDS + 20
        while time.monotonic() < deadline:
            reaped += runs_reap()  # what beat does every 2 s, here as often as it can
            request.refresh_from_db()
            if request.status in MigrationRequest.ENDED_STATUSES:
                break
            time.sleep(0.2)
    finally:
        late.stop()
        drop_queue_keys(REDIS, f"{queue}-late")

    assert reaped == []
    assert request.status == "succeeded" and request.run.final_heads == ["slow"]
    assert audit_actions(request)[-2:] == ["dashboard.run.started", "dashboard.run.succeeded"]
    assert target_heads(target_url) == ("slow",)


def test_a_worker_that_finishes_after_being_reaped_records_the_truth(
    worker: Worker, production: Any, target_url: str, project_ini: Path, developer: Any, lead: Any
) -> None:
    migrate_target(project_ini, target_url, "c")
    request = create_request(production, developer, "slow")
    approve(lead, request)
    run = run_migrating(request)
    # A reaper that gave up on the run (a partition, an old dashboard version).
    transitions.run_finished(
        run,
        transitions.RunRecord(
            outcome="interrupted", final_heads=["c"], reason="heartbeat_lost", error="lost"
        ),
    )

    def corrected() -> bool:
        return "dashboard.run.corrected" in audit_actions(request)

    wait_for(corrected, timeout=RUN_TIMEOUT)
    request.refresh_from_db()
    run.refresh_from_db()
    assert request.status == "succeeded" and run.outcome == "succeeded"
    assert run.final_heads == ["slow"] and run.committed == ["slow"]
    assert target_heads(target_url) == ("slow",)
    event = AuditEvent.objects.get(request_id=request.pk, action="dashboard.run.corrected")
    assert event.payload["previous_outcome"] == "interrupted"
    assert event.payload["outcome"] == "succeeded" and event.payload["source"] == "worker"
    assert event.to_revision_list == ["slow"]


def test_a_run_waiting_to_retry_the_lock_is_not_reaped_and_a_lost_retry_is_sent_again(
    production: Any,
    target_url: str,
    project_ini: Path,
    queue: str,
    developer: Any,
    lead: Any,
    tmp_path: Path,
) -> None:
    production.lock_wait = timedelta(seconds=1)
    production.save()
    holder_engine = create_engine(target_url, poolclass=pool.NullPool)
    holder = holder_engine.connect()
    holder.execute(
        text("SELECT pg_advisory_lock(:k)"), {"k": advisory_lock_key("public.alembic_version")}
    )
    holder.commit()
    first = Worker(
        broker_url=REDIS,
        queue=f"{queue}-retry",
        ini=project_ini,
        log=tmp_path / "first.log",
        extra_env={"DASHBOARD_RUN_LOCK_RETRY_DELAY": "4s"},
    )
    second = None
    try:
        with broker(REDIS, f"{queue}-retry"):
            request = create_request(production, developer, "c")
            approve(lead, request)
            wait_for(
                lambda: Run.objects.filter(request=request, retry_at__isnull=False), timeout=30
            )
            first.kill()  # its retry (an ETA message held by that worker) is lost with it
            holder.close()  # the lock is free now; only a retry can use it
            reaped: list[int] = []
            deadline = time.monotonic() + 4 + 2 * HEARTBEAT_SECONDS + 3
            while time.monotonic() < deadline:
                reaped += runs_reap()
                time.sleep(0.3)
            second = Worker(
                broker_url=REDIS, queue=f"{queue}-retry", ini=project_ini, log=tmp_path / "2.log"
            )
            ended = request_ended(request)
    finally:
        for process in (first, second):
            if process:
                process.stop()
        holder.close()
        holder_engine.dispose()
        drop_queue_keys(REDIS, f"{queue}-retry")

    assert reaped == []
    assert ended.status == "succeeded", ended.run.error
    assert ended.run.attempt == 1 and target_heads(target_url) == ("c",)


# --- 3. a run that must stop ------------------------------------------------------------


def test_a_tech_lead_cancels_a_running_migration_and_the_target_is_unchanged(
    worker: Worker,
    production: Any,
    target_url: str,
    project_ini: Path,
    developer: Any,
    lead: Any,
) -> None:
    migrate_target(project_ini, target_url, "c")
    request = create_request(production, developer, "slow")
    approve(lead, request)
    run_migrating(request)

    said = run_cancel(request=request, actor=lead)
    ended = request_ended(request, timeout=SLOW_SECONDS + 10)

    assert "cancelling" in said
    assert ended.status == "cancelled" and ended.run.reason == "cancelled"
    assert ended.run.final_heads == ["c"] and ended.run.committed == []
    assert target_heads(target_url) == ("c",)
    assert ended.run.log_lines.filter(text__contains="cancelled the run's session").exists()
    actions = audit_actions(request)
    assert actions[-2:] == ["dashboard.run.cancel_requested", "dashboard.run.cancelled"]
    wait_for(lambda: target_lock_holder(target_url) is None, timeout=10)


def test_a_developer_cannot_cancel_a_run(
    worker: Worker, production: Any, developer: Any, lead: Any
) -> None:
    from django.core.exceptions import PermissionDenied

    request = create_request(production, developer, "c")
    with pytest.raises(PermissionDenied):
        run_cancel(request=request, actor=developer)


def test_a_run_past_its_deadline_is_stopped_and_rolled_back(
    worker: Worker,
    production: Any,
    target_url: str,
    project_ini: Path,
    developer: Any,
    lead: Any,
) -> None:
    migrate_target(project_ini, target_url, "c")
    production.run_timeout = timedelta(seconds=2)
    production.save()
    request = create_request(production, developer, "slow")
    approve(lead, request)
    ended = request_ended(request, timeout=SLOW_SECONDS + 15)

    assert ended.status == "failed" and ended.run.reason == "run_timeout"
    assert "run timeout" in ended.run.error
    assert target_heads(target_url) == ("c",)
    assert ended.run.log_lines.filter(text__contains="passed its deadline").exists()


# --- 7. the executed SQL is evidence ------------------------------------------------------


def test_the_run_records_the_hash_of_the_sql_it_sent_and_keeps_it(
    worker: Worker, production: Any, target_url: str, developer: Any, lead: Any
) -> None:
    request = create_request(production, developer, "c")
    approve(lead, request)
    run = request_ended(request).run

    sent = list(run.log_lines.filter(kind="sql").order_by("id").values_list("text", flat=True))
    event = AuditEvent.objects.get(request_id=request.pk, action="dashboard.run.succeeded")
    assert run.executed_statements == len(sent) > 0
    assert run.executed_sql_sha256 == executed_sql_sha256(sent) == event.sql_sha256
    assert event.sql_sha256 != request.sql_sha256  # online statements, not the offline render
    assert event.payload["approved_sql_sha256"] == request.sql_sha256
    assert event.payload["applied"] == ["a", "b", "c"] == event.payload["approved_revisions"]
    with pytest.raises(AppendOnlyError):
        run.log_lines.all().delete()
    with django_connection.cursor() as cursor, pytest.raises(Exception, match="append-only"):
        cursor.execute("DELETE FROM approvals_runlogline WHERE run_id = %s", [run.pk])
    assert RunLogLine.objects.filter(run=run, kind="sql").count() == len(sent)


# --- 8. mail never holds the lock ---------------------------------------------------------


class SilentSMTP:
    """A TCP server that accepts and never says a word (a hung mail relay)."""

    def __init__(self) -> None:
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(16)
        self.port = self.server.getsockname()[1]
        self.clients: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            self.clients.append(client)

    def close(self) -> None:
        for client in self.clients:
            client.close()
        self.server.close()


def test_mail_to_a_silent_smtp_server_does_not_keep_the_target_locked(
    project_ini: Path,
    queue: str,
    production: Any,
    target_url: str,
    developer: Any,
    lead: Any,
    tmp_path: Path,
    settings: Any,
) -> None:
    smtp = SilentSMTP()
    runs_queue, io_queue = f"{queue}-mail", f"{queue}-mail-io"
    mail = {
        "DJANGO_EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "DJANGO_EMAIL_HOST": "127.0.0.1",
        "DJANGO_EMAIL_PORT": str(smtp.port),
        "DJANGO_EMAIL_TIMEOUT": "15",
        "DASHBOARD_RUNS_QUEUE": runs_queue,
        "DASHBOARD_IO_QUEUE": io_queue,
    }
    workers = [
        Worker(
            broker_url=REDIS,
            queue=runs_queue,
            ini=project_ini,
            log=tmp_path / "runs.log",
            extra_env=mail,
        ),
        Worker(
            broker_url=REDIS,
            queue=io_queue,
            ini=project_ini,
            log=tmp_path / "io.log",
            extra_env=mail,
            pool="threads",
        ),
    ]
    try:
        with broker(REDIS, runs_queue):
            settings.DASHBOARD_IO_QUEUE = io_queue
            request = create_request(production, developer, "c")
            approve(lead, request)
            ended = request_ended(request)
            holder_right_after = target_lock_holder(target_url)
            wait_for(lambda: len(smtp.clients) >= 2, timeout=30)  # approvers', then requester's
    finally:
        for process in workers:
            process.stop()
        smtp.close()
        for name in (runs_queue, io_queue):
            drop_queue_keys(REDIS, name)

    assert ended.status == "succeeded"
    assert holder_right_after is None


# --- 11. the settings in force are the ones that were approved ----------------------------


def test_settings_changed_after_the_request_are_refused_as_stale(
    worker: Worker, production: Any, target_url: str, developer: Any, lead: Any
) -> None:
    request = create_request(production, developer, "c")
    production.lock_timeout = timedelta(seconds=30)  # someone relaxed production's guard
    production.save()
    approve(lead, request)
    ended = request_ended(request)

    assert ended.status == "failed" and ended.run.reason == "settings_changed"
    assert "lock_timeout_ms: 2000 → 30000" in ended.run.error
    assert target_heads(target_url) == ()
    event = AuditEvent.objects.get(request_id=request.pk, action="dashboard.run.failed")
    assert event.payload["reason"] == "settings_changed"


# --- 4. a thread-pool worker on the runs queue does not cross-wire runs ---------------------


def test_two_runs_on_a_thread_pool_worker_each_reach_their_own_database(
    project_ini: Path, queue: str, developer: Any, tmp_path: Path
) -> None:
    threaded = Worker(
        broker_url=REDIS,
        queue=f"{queue}-threads",
        ini=project_ini,
        log=tmp_path / "threads.log",
        pool="threads",
        extra_env={"DASHBOARD_RUN_LOCK_RETRIES": "4", "DASHBOARD_RUN_LOCK_RETRY_DELAY": "1s"},
    )
    try:
        with throwaway_postgres("thr_a") as url_a, throwaway_postgres("thr_b") as url_b:
            envs = []
            for slug, url in (("tenant-a", url_a), ("tenant-b", url_b)):
                migrate_target(project_ini, url, "c")
                envs.append(
                    make_environment(
                        slug=slug, url=url, directory=tmp_path, required_approvals=0, group=None
                    )
                )
            with broker(REDIS, f"{queue}-threads"):
                requests = [create_request(env, developer, "slow") for env in envs]
                ended = [
                    request_ended(request, timeout=3 * SLOW_SECONDS + 40) for request in requests
                ]
            heads = [target_heads(url_a), target_heads(url_b)]
            tables = []
            for url in (url_a, url_b):
                engine = create_engine(url, poolclass=pool.NullPool)
                with engine.connect() as conn:
                    tables.append(conn.execute(text("SELECT to_regclass('slow_done')")).scalar())
                engine.dispose()
    finally:
        threaded.stop()
        drop_queue_keys(REDIS, f"{queue}-threads")

    assert [r.status for r in ended] == ["succeeded", "succeeded"], [r.run.error for r in ended]
    assert heads == [("slow",), ("slow",)]
    assert all(tables)  # each run's DDL reached its own database
