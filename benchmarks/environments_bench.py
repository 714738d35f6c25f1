"""Benchmark of issue 4: overview from cache, and a full status refresh of 50 environments.

Set-up (all throw-away, removed at the end): a fresh PostgreSQL database for the
dashboard, 25 PostgreSQL targets (CREATE DATABASE ... TEMPLATE of one migrated
database) and 20 SQLite targets (copies of one migrated file) at different
revisions, and 5 targets that never answer (loopback sockets that accept and
stay silent). Measured, side by side in one run:

1. the overview page (``/``) served from cached status: median of 30 requests;
2. a full refresh of all 50 by real Celery workers (beat's fan-out task, one
   task per environment, 2 worker processes x 8 threads, Redis broker);
3. the reference: ``alembic current`` (the CLI, with the project's env.py) for
   each environment one after another, each call capped at 15 s because the
   CLI has no connect timeout and would otherwise wait for ever on a silent one.

Run: ``.venv/bin/python benchmarks/environments_bench.py``
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
PG = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
RUN = uuid.uuid4().hex[:8]
N_PG, N_SQLITE, N_DEAD = 25, 20, 5
CAP_SECONDS = 15


def pg_admin(sql: str) -> None:
    import psycopg
    from sqlalchemy.engine import make_url

    url = make_url(PG).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql)


def pg_url(name: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(PG).set(database=name).render_as_string(hide_password=False)


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix=f"envbench-{RUN}-"))
    dash_db, template = f"envbench_dash_{RUN}", f"envbench_tpl_{RUN}"
    queue = f"envbench-{RUN}"
    created_dbs: list[str] = [dash_db, template]
    sockets: list[socket.socket] = []
    workers: list[subprocess.Popen] = []
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "dashboard.settings",
        "DJANGO_SECRET_KEY": "benchmark-only",
        "DJANGO_ALLOWED_HOSTS": "testserver,127.0.0.1",
        "DASHBOARD_DATABASE_URL": pg_url(dash_db).replace("+psycopg", ""),
        "DASHBOARD_VAR_DIR": str(work / "var"),
        "CELERY_BROKER_URL": REDIS,
        "CELERY_TASK_DEFAULT_QUEUE": queue,
        "DJANGO_LOG_LEVEL": "WARNING",
    }
    os.environ.update(env)
    try:
        pg_admin(f'CREATE DATABASE "{dash_db}"')
        pg_admin(f'CREATE DATABASE "{template}"')
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        targets = _targets(work, template, created_dbs, sockets)
        _environments(targets)
        overview_ms = _overview()
        workers = _start_workers(env, queue, work)
        refresh_s, states = _refresh_by_workers()
        second_s, _ = _refresh_by_workers()
        reference_s, capped = _reference(targets)
        _report(overview_ms, (refresh_s, second_s), states, reference_s, capped)
    finally:
        for proc in workers:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=20)
        for sock in sockets:
            sock.close()
        from django.db import connections

        connections.close_all()
        for name in created_dbs:
            pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        import redis

        client = redis.Redis.from_url(REDIS)
        for key in client.scan_iter(f"*{queue}*"):
            client.delete(key)
        shutil.rmtree(work, ignore_errors=True)


def _targets(
    work: Path, template: str, created: list[str], sockets: list[socket.socket]
) -> list[tuple[str, str]]:
    """(slug, url) of 25 PostgreSQL, 20 SQLite and 5 silent targets at different revisions."""
    from dashboard.environments.services import alembic_script
    from dashboard.migrator.plan import compute_plan
    from tests.dashboard.environments_helpers import migrate_target

    order = compute_plan(alembic_script(), current_heads=(), target="heads", direction="upgrade")
    behind = order.revisions[-4]
    migrate_target(pg_url(template), "heads")
    sqlite_head, sqlite_behind = work / "head.sqlite3", work / "behind.sqlite3"
    migrate_target(f"sqlite:///{sqlite_head}", "heads")
    migrate_target(f"sqlite:///{sqlite_behind}", behind)
    targets = []
    for i in range(N_PG):
        name = f"envbench_t{i}_{RUN}"
        pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        created.append(name)
        targets.append((f"pg-{i}", pg_url(name)))
    for i in range(N_SQLITE):
        path = work / f"target-{i}.sqlite3"
        shutil.copy(sqlite_head if i % 2 else sqlite_behind, path)
        targets.append((f"sqlite-{i}", f"sqlite:///{path}"))
    for i in range(N_DEAD):
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen(64)
        sockets.append(server)
        port = server.getsockname()[1]
        targets.append((f"dead-{i}", f"postgresql+psycopg://magnetiq@127.0.0.1:{port}/magnetiq"))
    return targets


def _environments(targets: list[tuple[str, str]]) -> None:
    from dashboard.environments.models import Environment
    from dashboard.environments.services import environment_status_refresh

    for position, (slug, url) in enumerate(targets, 1):
        variable = f"ENVBENCH_URL_{slug.upper().replace('-', '_')}"
        os.environ[variable] = url
        env = Environment.objects.create(slug=slug, name=slug, position=position, url_env=variable)
        if not slug.startswith("dead"):
            environment_status_refresh(environment=env)  # warm cache for the overview


def _overview() -> list[float]:
    from django.contrib.auth import get_user_model
    from django.test import Client

    user = get_user_model().objects.create_superuser("bench", "b@example.com", "pw")
    client = Client()
    client.force_login(user)
    for _ in range(3):
        assert client.get("/").status_code == 200
    samples = []
    for _ in range(30):
        started = time.perf_counter()
        response = client.get("/")
        samples.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200 and response.content.count(b'class="env-card"') == 50
    return samples


def _start_workers(env: dict[str, str], queue: str, work: Path) -> list[subprocess.Popen]:
    procs = []
    for i in range(2):
        log = work / f"worker-{i}.log"
        procs.append(
            subprocess.Popen(
                [
                    str(REPO / ".venv/bin/celery"),
                    "-A",
                    "dashboard",
                    "worker",
                    "--pool=threads",
                    "--concurrency=8",
                    "-Q",
                    queue,
                    "-n",
                    f"{queue}-{i}@%h",
                    "--without-gossip",
                    "--without-mingle",
                    "--without-heartbeat",
                    "-l",
                    "INFO",
                ],
                cwd=REPO,
                env={**os.environ, **env},
                stdout=log.open("wb"),
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
    deadline = time.time() + 60  # workers connect to Redis and import the project
    while time.time() < deadline:
        if all(" ready." in (work / f"worker-{i}.log").read_text() for i in range(2)):
            break
        time.sleep(0.2)
    return procs


def _refresh_by_workers() -> tuple[float, dict[str, int]]:
    from django.db.models import Count

    from dashboard.environments.models import Environment
    from dashboard.environments.tasks import environments_refresh_all

    mark = time.time()
    from django.utils import timezone

    since = timezone.now()
    environments_refresh_all.delay()
    deadline = time.time() + 60
    while time.time() < deadline:
        done = Environment.objects.filter(status_refreshed_at__gte=since).count()
        if done == 50:
            break
        time.sleep(0.05)
    elapsed = time.time() - mark
    states = dict(
        Environment.objects.values_list("status_state").annotate(n=Count("id")).order_by()
    )
    return elapsed, states


def _reference(targets: list[tuple[str, str]]) -> tuple[float, int]:
    capped = 0
    started = time.perf_counter()
    for _slug, url in targets:
        env = {**os.environ, "MAGNETIQ_DATABASE_URL": url}
        try:
            subprocess.run(
                [str(REPO / ".venv/bin/alembic"), "-c", str(REPO / "alembic.ini"), "current"],
                cwd=REPO,
                env=env,
                capture_output=True,
                timeout=CAP_SECONDS,
                check=False,
            )
        except subprocess.TimeoutExpired:
            capped += 1
    return time.perf_counter() - started, capped


def _report(
    overview_ms: list[float],
    refreshes: tuple[float, float],
    states: dict[str, int],
    reference_s: float,
    capped: int,
) -> None:
    median = statistics.median(overview_ms)
    refresh_s = min(refreshes)
    print(f"machine: {os.cpu_count()} CPUs, python {sys.version.split()[0]}")
    print(
        f"overview (50 environments, cached): median {median:.1f} ms, "
        f"p90 {sorted(overview_ms)[26]:.1f} ms (goal < 150 ms)"
    )
    print(
        f"full refresh of 50 by 2 workers x 8 threads: {refreshes[0]:.2f} s, again "
        f"{refreshes[1]:.2f} s (goal < 10 s); "
        f"states {states}"
    )
    print(
        f"reference, `alembic current` one after another: {reference_s:.1f} s "
        f"({capped} silent targets cut off at {CAP_SECONDS} s each)"
    )
    print(f"ratio reference / dashboard refresh: {reference_s / refresh_s:.1f}x faster")


if __name__ == "__main__":
    main()
