"""Execution by real Celery worker processes on Redis against throw-away PostgreSQL targets."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import connection as django_connection
from django.db import transaction
from django.test import Client
from django.urls import reverse
from sqlalchemy import create_engine, pool, text

from dashboard.approvals import transitions
from dashboard.approvals.models import Approval, Run
from dashboard.approvals.services.dispatch import run_dispatch_on_commit
from dashboard.approvals.services.recovery import runs_reap
from dashboard.approvals.tasks import execute_request
from dashboard.migrator.locks import advisory_lock_key
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
    target_heads,
    target_lock_holder,
    wait_for,
)
from tests.migrator.execution_project import throwaway_postgres, write_project

pytestmark = pytest.mark.django_db(transaction=True)
REDIS = os.environ["TEST_REDIS_URL"]
RUN_TIMEOUT = 60


@pytest.fixture(scope="module")
def project_ini(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_project(tmp_path_factory.mktemp("execution_project"))


@pytest.fixture(scope="module")
def queue() -> Iterator[str]:
    name = f"test-exec-{uuid.uuid4().hex[:10]}"
    with broker(REDIS, name):
        yield name
    drop_queue_keys(REDIS, name)


@pytest.fixture(scope="module")
def worker(
    django_db_setup: None, project_ini: Path, queue: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Worker]:
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    process = Worker(broker_url=REDIS, queue=queue, ini=project_ini, log=log)
    yield process
    process.stop()


@pytest.fixture(autouse=True)
def alembic_project(settings: Any, project_ini: Path) -> None:
    settings.ALEMBIC_CONFIG = str(project_ini)
    settings.DASHBOARD_RUN_HEARTBEAT = timedelta(seconds=HEARTBEAT_SECONDS)


@pytest.fixture
def target_url() -> Iterator[str]:
    with throwaway_postgres("exec") as url:
        yield url


@pytest.fixture
def production(target_url: str, tmp_path: Path) -> Any:
    return make_environment(slug="production", url=target_url, directory=tmp_path)


def test_a_production_upgrade_and_downgrade_with_two_approvals(
    worker: Worker, production: Any, target_url: str, developer: Any, lead: Any, lead2: Any
) -> None:
    upgrade = create_request(production, developer, "c")
    approve(lead, upgrade)
    approve(lead2, upgrade)

    assert request_ended(upgrade).status == "succeeded", upgrade.run.error
    assert target_heads(target_url) == ("c",)
    run = upgrade.run
    assert run.final_heads == ["c"] and run.committed == ["a", "b", "c"] == run.applied
    assert [p.revision for p in run.progress.all()] == ["a", "b", "c"]
    assert run.log_lines.filter(kind="sql", text__contains="CREATE TABLE tags").exists()
    assert audit_actions(upgrade) == [
        "dashboard.request.created",
        "dashboard.request.approved",
        "dashboard.request.approved",
        "dashboard.run.started",
        "dashboard.run.succeeded",
    ]

    downgrade = create_request(production, developer, "a", "downgrade")
    approve(lead, downgrade, sql_acknowledged="on")
    approve(lead2, downgrade, sql_acknowledged="on")

    assert request_ended(downgrade).status == "succeeded", downgrade.run.error
    assert target_heads(target_url) == ("a",)
    assert audit_actions(downgrade)[-2:] == ["dashboard.run.started", "dashboard.run.succeeded"]


def test_two_approvers_at_the_same_instant_make_one_task_and_one_run(
    worker: Worker, production: Any, developer: Any, lead: Any, lead2: Any
) -> None:
    request = create_request(production, developer, "c")
    barrier = threading.Barrier(2)
    statuses: list[int] = []

    def approve(user: Any) -> None:
        client = Client()
        client.force_login(user)
        barrier.wait(timeout=10)
        statuses.append(client.post(reverse("approvals:approve", args=[request.pk])).status_code)
        django_connection.close()

    threads = [threading.Thread(target=approve, args=(u,)) for u in (lead, lead2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert statuses == [302, 302]
    assert request_ended(request).status == "succeeded"
    assert request.dispatch_attempts == 1
    assert Run.objects.filter(request=request).count() == 1
    assert audit_actions(request).count("dashboard.run.started") == 1


def test_the_same_task_delivered_twice_runs_once(
    worker: Worker, target_url: str, tmp_path: Path, developer: Any
) -> None:
    dev = make_environment(slug="dev", url=target_url, directory=tmp_path, required_approvals=0)
    request = create_request(dev, developer, "c")  # approved at once, dispatched after commit
    execute_request.apply_async(args=[request.pk])
    execute_request.apply_async(args=[request.pk])

    assert request_ended(request).status == "succeeded"
    time.sleep(1)  # let the duplicates be consumed
    assert Run.objects.filter(request=request).count() == 1
    assert audit_actions(request).count("dashboard.run.started") == 1
    assert target_heads(target_url) == ("c",)


def test_a_table_lock_makes_the_run_fail_on_lock_timeout(
    worker: Worker,
    production: Any,
    target_url: str,
    project_ini: Path,
    developer: Any,
    lead: Any,
    lead2: Any,
) -> None:
    migrate_target(project_ini, target_url, "a")
    production.lock_timeout = timedelta(milliseconds=500)
    production.save()
    request = create_request(production, developer, "b")
    blocker_engine = create_engine(target_url, poolclass=pool.NullPool)
    blocker = blocker_engine.connect()
    blocker.execute(text("LOCK TABLE items IN ACCESS EXCLUSIVE MODE"))
    try:
        approve(lead, request)
        approve(lead2, request)
        request_ended(request)
    finally:
        blocker.rollback()
        blocker.close()
        blocker_engine.dispose()

    assert request.status == "failed"
    assert request.run.reason == "lock_timeout"
    assert "lock timeout at revision b" in request.run.error
    assert target_heads(target_url) == ("a",)
    assert audit_actions(request)[-1] == "dashboard.run.failed"


def test_a_failing_revision_rolls_the_whole_plan_back(
    worker: Worker,
    production: Any,
    target_url: str,
    project_ini: Path,
    developer: Any,
    lead: Any,
    lead2: Any,
) -> None:
    migrate_target(project_ini, target_url, "a")
    request = create_request(production, developer, "boom")  # b, c, boom
    approve(lead, request)
    approve(lead2, request)

    assert request_ended(request).status == "failed"
    assert "boom: this revision always fails" in request.run.error
    assert target_heads(target_url) == ("a",)
    assert request.run.committed == [] and request.run.final_heads == ["a"]
    assert request.run.log_lines.filter(text__contains="failed at revision boom").exists()


def test_files_edited_after_approval_are_refused(
    worker: Worker,
    production: Any,
    target_url: str,
    project_ini: Path,
    developer: Any,
    lead: Any,
    lead2: Any,
) -> None:
    request = create_request(production, developer, "c")
    revision_file = project_ini.parent / "versions" / "b_revision.py"
    original = revision_file.read_text()
    revision_file.write_text(original + "\n# edited after approval\n")
    try:
        approve(lead, request)
        approve(lead2, request)
        request_ended(request)
    finally:
        revision_file.write_text(original)

    assert request.status == "failed"
    assert request.run.reason == "files_changed"
    assert "files changed since approval: b" in request.run.error
    assert target_heads(target_url) == ()


def test_an_environment_moved_after_approval_is_a_stale_plan(
    worker: Worker,
    production: Any,
    target_url: str,
    project_ini: Path,
    developer: Any,
    lead: Any,
    lead2: Any,
) -> None:
    request = create_request(production, developer, "c")
    migrate_target(project_ini, target_url, "a")  # someone else moved it

    approve(lead, request)
    approve(lead2, request)

    assert request_ended(request).status == "failed"
    assert request.run.reason == "stale_plan"
    assert "stale plan" in request.run.error
    assert target_heads(target_url) == ("a",)


def test_a_second_request_cannot_be_approved_while_another_runs_and_goes_stale_after_it(
    worker: Worker,
    production: Any,
    target_url: str,
    project_ini: Path,
    developer: Any,
    lead: Any,
) -> None:
    migrate_target(project_ini, target_url, "c")
    production.required_approvals = 1
    production.save()
    first = create_request(production, developer, "slow")
    second = create_request(production, developer, "slow")
    approve(lead, first)
    wait_for(lambda: Run.objects.filter(request=first, ddl_started_at__isnull=False), timeout=30)

    client = Client()
    client.force_login(lead)
    page = client.post(reverse("approvals:approve", args=[second.pk]), follow=True)

    assert f"request #{first.pk} for production is running".encode() in page.content
    second.refresh_from_db()
    assert second.status == "pending" and second.approvals.count() == 0
    assert request_ended(first).status == "succeeded"
    # The run moved production from c to slow: the waiting request's plan is stale now.
    assert request_ended(second).status == "stale"
    assert "moved from c to slow" in second.status_note
    assert audit_actions(second)[-1] == "dashboard.request.stale"


def test_two_requests_approved_at_once_never_run_together(
    worker: Worker,
    production: Any,
    target_url: str,
    project_ini: Path,
    queue: str,
    developer: Any,
    lead: Any,
    tmp_path: Path,
) -> None:
    """Approvals refuse a second approved request, but the lock is the last word: two
    requests approved anyway (as before this check existed) run one after the other."""
    second_worker = Worker(broker_url=REDIS, queue=queue, ini=project_ini, log=tmp_path / "w2.log")
    try:
        migrate_target(project_ini, target_url, "c")
        production.required_approvals = 1
        production.save()
        first = create_request(production, developer, "slow")
        second = create_request(production, developer, "slow")
        with transaction.atomic():
            for request in (first, second):
                Approval.objects.create(
                    request=request, approver=lead, requester=developer, decision="approve"
                )
                transitions.request_approval_recorded(
                    request, actor=lead, http_request=None, approvals=1, final=True
                )
                run_dispatch_on_commit(request_id=request.pk)
        ended = [request_ended(first), request_ended(second)]
    finally:
        second_worker.stop()

    runs = sorted((r.run for r in ended), key=lambda run: run.lock_acquired_at)
    assert runs[0].finished_at <= runs[1].lock_acquired_at
    assert sorted(r.status for r in ended) == ["failed", "succeeded"]
    assert "stale plan" in next(r.run.error for r in ended if r.status == "failed")
    assert target_heads(target_url) == ("slow",)


def test_a_killed_worker_leaves_the_target_unchanged_and_the_run_interrupted(
    production: Any,
    target_url: str,
    project_ini: Path,
    queue: str,
    developer: Any,
    lead: Any,
    lead2: Any,
    tmp_path: Path,
) -> None:
    doomed = Worker(
        broker_url=REDIS, queue=f"{queue}-chaos", ini=project_ini, log=tmp_path / "w.log"
    )
    try:
        migrate_target(project_ini, target_url, "c")
        with broker(REDIS, f"{queue}-chaos"):
            request = create_request(production, developer, "slow")
            approve(lead, request)
            approve(lead2, request)

        def migrating() -> bool:
            run = Run.objects.filter(request=request).first()
            return bool(run and run.ddl_started_at)

        wait_for(migrating, timeout=RUN_TIMEOUT, interval=0.1)
        time.sleep(0.5)  # inside pg_sleep of the slow revision
        doomed.kill()
        killed_at = time.monotonic()
        reaped = wait_for(lambda: runs_reap(), timeout=2 * HEARTBEAT_SECONDS + 5, interval=0.1)
        reap_delay = time.monotonic() - killed_at
    finally:
        doomed.stop()
        drop_queue_keys(REDIS, f"{queue}-chaos")

    request.refresh_from_db()
    assert reaped == [request.run.pk]
    assert reap_delay <= 2 * HEARTBEAT_SECONDS
    assert request.status == "interrupted"
    assert request.run.final_heads == ["c"]
    assert audit_actions(request)[-1] == "dashboard.run.interrupted"
    wait_for(lambda: target_lock_holder(target_url) is None, timeout=10)
    assert target_heads(target_url) == ("c",)


def test_a_busy_target_lock_is_retried_then_fails_naming_the_holder(
    worker: Worker, production: Any, target_url: str, developer: Any, lead: Any, lead2: Any
) -> None:
    production.lock_wait = timedelta(seconds=1)
    production.save()
    request = create_request(production, developer, "c")
    holder_engine = create_engine(
        target_url,
        poolclass=pool.NullPool,
        connect_args={"application_name": "manual psql session"},
    )
    holder = holder_engine.connect()
    holder.execute(
        text("SELECT pg_advisory_lock(:k)"), {"k": advisory_lock_key("public.alembic_version")}
    )
    holder.commit()
    try:
        approve(lead, request)
        approve(lead2, request)
        request_ended(request)
    finally:
        holder.close()
        holder_engine.dispose()

    run = request.run
    assert request.status == "failed" and run.reason == "lock_unavailable"
    assert "another migration holds the lock" in run.error and "manual psql session" in run.error
    assert run.attempt == 1 and run.ddl_started_at is None  # retried once, before any DDL
    assert run.log_lines.filter(text__contains="retry 1/1").exists()
    assert target_heads(target_url) == ()


def test_a_sqlite_target_runs_under_its_file_lock(
    worker: Worker, tmp_path: Path, developer: Any
) -> None:
    database = tmp_path / "dev.sqlite3"
    database.touch()
    dev = make_environment(
        slug="dev", url=f"sqlite:///{database}", directory=tmp_path, required_approvals=0
    )
    request = create_request(dev, developer, "c")

    assert request_ended(request).status == "succeeded", request.run.error
    assert request.dialect == "sqlite"
    assert target_heads(f"sqlite:///{database}") == ("c",)
