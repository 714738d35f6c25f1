"""Execution across real networks: a transaction-pooling PgBouncer, and a path that goes silent.

The silent path is real: the worker runs in a network namespace (a second
"host" on a veth link, see ``network_support``) and reaches PostgreSQL and
Redis through that link; a blackhole route then drops every packet of its
path to the target, both ways, in the middle of the run's DDL.
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
from django.test import Client
from django.urls import reverse
from sqlalchemy import create_engine, pool, text
from sqlalchemy.engine import make_url

from dashboard.approvals.models import Run
from dashboard.approvals.services.execution import run_execute, run_start
from dashboard.approvals.services.recovery import runs_reap
from tests.dashboard.approvals_support import (
    HEARTBEAT_SECONDS,
    Worker,
    audit_actions,
    broker,
    create_request,
    drop_queue_keys,
    make_environment,
    migrate_target,
    target_heads,
    wait_for,
)
from tests.dashboard.network_support import PgBouncer, SecondHost, namespaces_available
from tests.migrator.execution_project import SLOW_SECONDS, throwaway_postgres, write_project

pytestmark = pytest.mark.django_db(transaction=True)
REDIS = os.environ["TEST_REDIS_URL"]


@pytest.fixture(scope="module")
def project_ini(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_project(tmp_path_factory.mktemp("network_project"))


@pytest.fixture(autouse=True)
def alembic_project(settings: Any, project_ini: Path) -> None:
    settings.ALEMBIC_CONFIG = str(project_ini)
    settings.DASHBOARD_RUN_HEARTBEAT = timedelta(seconds=HEARTBEAT_SECONDS)
    settings.DASHBOARD_RUN_REAP_AFTER = timedelta(seconds=6 * HEARTBEAT_SECONDS)


# --- 10. PgBouncer in transaction mode defeats the lock: refused -----------------------


@pytest.mark.parametrize(
    ("pool_mode", "outcome"), [("transaction", "failed"), ("session", "succeeded")]
)
def test_a_transaction_pooling_pgbouncer_is_refused_and_a_session_pool_is_not(
    pool_mode: str, outcome: str, project_ini: Path, tmp_path: Path, developer: Any
) -> None:
    bouncer = PgBouncer(pool_mode=pool_mode)
    try:
        with throwaway_postgres("bouncer") as direct_url:
            url = bouncer.url_for(direct_url)
            dev = make_environment(
                slug="dev", url=url, directory=tmp_path, required_approvals=0, group=None
            )
            request = create_request(dev, developer, "c")
            run = run_execute(run_id=run_start(request_id=request.pk).pk)
            heads = target_heads(direct_url)
    finally:
        bouncer.stop()

    assert run.outcome == outcome, run.error
    if pool_mode == "transaction":
        assert run.reason == "transaction_pooling" and run.ddl_started_at is None
        assert "transaction-pooling proxy" in run.error and "direct URL" in run.error
        assert heads == ()
    else:
        assert heads == ("c",)


# --- 3. a silent network path --------------------------------------------------------


@pytest.fixture
def second_host() -> Iterator[SecondHost]:
    why_not = namespaces_available()
    if why_not:
        pytest.skip(f"cannot make a second host here: {why_not}")
    host = SecondHost()
    yield host
    host.close()


def _session_of(run: Run, admin_url: str) -> int:
    engine = create_engine(admin_url, poolclass=pool.NullPool)
    with engine.connect() as conn:
        count = conn.execute(
            text("SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE :name"),
            {"name": f"migrations-dashboard run {run.pk} %"},
        ).scalar()
    engine.dispose()
    return int(count or 0)


def test_a_silent_network_ends_the_run_frees_the_target_and_the_outcome_is_settled(
    second_host: SecondHost,
    project_ini: Path,
    tmp_path: Path,
    developer: Any,
    lead: Any,
) -> None:
    queue = f"test-silent-{uuid.uuid4().hex[:8]}"
    settings_dict = django_connection.settings_dict
    redis_port = make_url(REDIS.replace("redis://", "postgresql://")).port or 6379
    redis_fwd = second_host.forward(listen_ip=second_host.services_ip, to_port=redis_port)
    db_fwd = second_host.forward(listen_ip=second_host.services_ip, to_port=5432)
    target_fwd = second_host.forward(listen_ip=second_host.targets_ip, to_port=5432)
    with throwaway_postgres("silent") as direct_url:
        database = make_url(direct_url).database
        # The one URL both hosts use: through the link for the worker, locally for us.
        url = f"postgresql+psycopg://postgres@{second_host.targets_ip}:{target_fwd}/{database}"
        migrate_target(project_ini, url, "c")
        production = make_environment(
            slug="production",
            url=url,
            directory=tmp_path,
            required_approvals=1,
            idle_in_transaction_timeout=timedelta(seconds=2),
        )
        worker = Worker(
            broker_url=f"redis://{second_host.services_ip}:{redis_fwd}/15",
            queue=queue,
            ini=project_ini,
            log=tmp_path / "far-worker.log",
            command_prefix=second_host.command_prefix,
            extra_env={
                "DASHBOARD_DATABASE_URL": (
                    f"postgresql://{settings_dict['USER']}@{second_host.services_ip}:{db_fwd}"
                    f"/{settings_dict['NAME']}"
                ),
                "DASHBOARD_TARGET_TCP_TIMEOUT": "6s",
                "DASHBOARD_STATUS_TIMEOUT": "2",
            },
        )
        try:
            with broker(REDIS, queue):
                request = create_request(production, developer, "slow")
                client = Client()
                client.force_login(lead)
                client.post(reverse("approvals:approve", args=[request.pk]))
                run = wait_for(
                    lambda: Run.objects.filter(
                        request=request, ddl_started_at__isnull=False
                    ).first(),
                    timeout=60,
                )
                time.sleep(0.5)  # inside the slow revision's pg_sleep
                second_host.freeze_targets()
                frozen_at = time.monotonic()

                def ended_running() -> bool:
                    request.refresh_from_db()
                    return request.status != "running"

                wait_for(ended_running, timeout=SLOW_SECONDS + 40)
                noticed_after = time.monotonic() - frozen_at
                request.refresh_from_db()
                status_while_frozen = request.status
                # The server ends the idle-in-transaction session by itself: no lock left.
                wait_for(lambda: _session_of(run, direct_url) == 0, timeout=15)
                # Beat's reaper: nothing to reap (the worker recorded what it saw), and
                # with the run's session gone it settles the unknown outcome from the heads.
                reaped = runs_reap()
        finally:
            worker.stop()
            drop_queue_keys(REDIS, queue)
        heads = target_heads(direct_url)

    request.refresh_from_db()
    assert noticed_after < SLOW_SECONDS + 30  # not two hours
    assert status_while_frozen == "unknown"
    assert reaped == [] and request.status == "failed"
    assert request.run.final_heads == ["c"] and request.run.committed == []
    assert heads == ("c",)  # rolled back: all or nothing
    actions = audit_actions(request)
    assert actions[-2:] == ["dashboard.run.unknown", "dashboard.run.settled"]
    assert "settled from the heads" in request.run.error
