"""Helpers for approvals/execution tests: the generated Alembic project, environments, workers.

Environments read their database URL from a file (``url_file``) so a worker
subprocess started earlier sees URLs created later. Workers are real Celery
processes (``--pool=solo``) on Redis with a per-run queue name, pointed at
pytest-django's test database.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, pool

from dashboard.migrator.runner import RunOptions, read_heads_on_connection, run_plan
from tests.migrator.execution_project import alembic_config

REPO = Path(__file__).resolve().parents[2]
CELERY = str(REPO / ".venv" / "bin" / "celery")
HEARTBEAT_SECONDS = 1.0


def make_environment(
    *,
    slug: str,
    url: str,
    directory: Path,
    required_approvals: int = 2,
    group: str | None = "Tech leads",
    **fields: Any,
) -> Any:
    from django.contrib.auth.models import Group

    from dashboard.environments.models import Environment

    url_file = directory / f"{slug}-{uuid.uuid4().hex[:6]}.url"
    url_file.write_text(url)
    return Environment.objects.create(
        slug=slug,
        name=slug.title(),
        url_file=str(url_file),
        required_approvals=required_approvals,
        approver_group=Group.objects.get(name=group) if group else None,
        lock_wait=fields.pop("lock_wait", timedelta(seconds=10)),
        **fields,
    )


def migrate_target(ini: Path, url: str, target: str, direction: str = "upgrade") -> None:
    """Bring a target database to ``target`` directly (test set-up, not the product path)."""
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as conn:
        run_plan(
            config=alembic_config(ini),
            connection=conn,
            options=RunOptions(direction=direction, target=target),
            planned_revisions=None,
        )
    engine.dispose()


def target_heads(url: str) -> tuple[str, ...]:
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as conn:
        heads = read_heads_on_connection(
            conn, version_table="alembic_version", version_table_schema=None
        )
    engine.dispose()
    return heads


def wait_for(predicate: Callable[[], Any], *, timeout: float, interval: float = 0.1) -> Any:
    """Poll ``predicate`` until truthy (returned) or ``timeout`` seconds (AssertionError)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


def dashboard_database_url() -> str:
    from django.db import connection

    s = connection.settings_dict
    return f"postgresql://{s['USER']}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


@contextlib.contextmanager
def broker(url: str, queue: str) -> Iterator[None]:
    """Point this process's Celery app at ``url``/``queue`` (both the runs and the io queue
    are routed to ``queue``, which the test's worker serves); restore afterwards."""
    from django.conf import settings

    from dashboard.celery import app

    before = (app.conf.broker_url, app.conf.task_default_queue, app.conf.broker_transport_options)
    queues = (settings.DASHBOARD_RUNS_QUEUE, settings.DASHBOARD_IO_QUEUE)
    settings.DASHBOARD_RUNS_QUEUE = settings.DASHBOARD_IO_QUEUE = queue

    def reset() -> None:
        from kombu import pools

        pools.reset()  # kombu's registries are keyed by URL: forget closed pools too
        app._pool = None
        app.amqp._producer_pool = None

    app.conf.broker_url, app.conf.task_default_queue = url, queue
    app.conf.broker_transport_options = {"visibility_timeout": 3600}
    reset()
    try:
        yield
    finally:
        app.conf.broker_url, app.conf.task_default_queue, app.conf.broker_transport_options = before
        settings.DASHBOARD_RUNS_QUEUE, settings.DASHBOARD_IO_QUEUE = queues
        reset()


class Worker:
    """A real ``celery worker`` subprocess in its own process group."""

    def __init__(
        self,
        *,
        broker_url: str,
        queue: str,
        ini: Path,
        log: Path,
        extra_env: dict[str, str] | None = None,
        pool: str = "solo",
        command_prefix: tuple[str, ...] = (),
    ) -> None:
        self.log = log
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "DASHBOARD_DATABASE_URL": dashboard_database_url(),
            "CELERY_BROKER_URL": broker_url,
            "CELERY_TASK_DEFAULT_QUEUE": queue,
            "DASHBOARD_RUNS_QUEUE": queue,
            "DASHBOARD_IO_QUEUE": queue,
            "ALEMBIC_CONFIG": str(ini),
            "DASHBOARD_RUN_HEARTBEAT": f"{HEARTBEAT_SECONDS}s",
            "DASHBOARD_RUN_LOCK_RETRY_DELAY": "1s",
            "DASHBOARD_RUN_LOCK_RETRIES": "1",
            **(extra_env or {}),
        }
        self.process = subprocess.Popen(
            [
                *command_prefix,
                CELERY,
                "-A",
                "dashboard",
                "worker",
                f"--pool={pool}",
                "-Q",
                queue,
                "-n",
                f"{queue}-{uuid.uuid4().hex[:4]}@%h",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "-l",
                "INFO",
            ],
            cwd=REPO,
            env=env,
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for(self._ready, timeout=60, interval=0.2)

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"worker exited early:\n{self.log.read_text()[-3000:]}")
        return " ready." in self.log.read_text()

    def kill(self) -> None:
        """SIGKILL the worker's whole process group (the chaos test)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


def drop_queue_keys(redis_url: str, queue: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(f"*{queue}*"):
        client.delete(key)
    client.close()


# --- what execution tests do and ask, the same way everywhere ----------------------------

RUN_TIMEOUT = 60


def create_request(env: Any, user: Any, target: str, direction: str = "upgrade") -> Any:
    """A request through the service, as a developer's form would make it."""
    from dashboard.approvals.services.requests import migration_request_create

    return migration_request_create(
        environment=env, actor=user, direction=direction, target=target, reason="release 42"
    )


def approve(user: Any, request: Any, **data: str) -> Any:
    """``user`` approves through the page (a POST, as the browser sends it); it must be taken."""
    from django.test import Client
    from django.urls import reverse

    client = Client()
    client.force_login(user)
    response = client.post(reverse("approvals:approve", args=[request.pk]), data)
    assert response.status_code == 302, response.content[:500]
    return response


def request_ended(request: Any, timeout: float = RUN_TIMEOUT) -> Any:
    """Wait until the request is in an end state; return it refreshed."""

    def check() -> Any:
        request.refresh_from_db()
        return request if request.status in request.ENDED_STATUSES else None

    return wait_for(check, timeout=timeout, interval=0.2)


def run_migrating(request: Any) -> Any:
    """Wait until the request's run has started its DDL; return the run."""
    from dashboard.approvals.models import Run

    def check() -> Any:
        return Run.objects.filter(request=request, ddl_started_at__isnull=False).first()

    return wait_for(check, timeout=RUN_TIMEOUT, interval=0.1)


def audit_actions(request: Any) -> list[str]:
    """The request's audit event codes in chain order."""
    from dashboard.audit.models import AuditEvent

    events = AuditEvent.objects.filter(request_id=request.pk).order_by("seq")
    return list(events.values_list("action", flat=True))


def target_lock_holder(url: str) -> object:
    """Who holds the migration lock of the target at ``url`` (None: nobody)."""
    from dashboard.migrator.locks import advisory_lock_key, find_advisory_lock_holder

    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as conn:
        holder = find_advisory_lock_holder(conn, advisory_lock_key("public.alembic_version"))
    engine.dispose()
    return holder
