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

Then, in a second dashboard database of its own (issue 11, item 17):

4. the overview at **500 environments x 100 runs each** (50,000 requests and
   runs, realistic drift JSON on every row): the page ``/`` (median of 30,
   goal <= 150 ms), its queries, and side by side, interleaved, the query it
   runs now against the query it ran before (the correlated subqueries for the
   last run, every column including the drift JSON).

Run: ``.venv/bin/python benchmarks/environments_bench.py`` (everything) or
``.venv/bin/python benchmarks/environments_bench.py --overview-at-scale`` (4 only).
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
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
PG = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
RUN = uuid.uuid4().hex[:8]
N_PG, N_SQLITE, N_DEAD = 25, 20, 5
CAP_SECONDS = 15
SCALE_ENVIRONMENTS, SCALE_RUNS = 500, 100
OVERVIEW_GOAL_MS = 150.0


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
        # Status reads go to the io queue (dashboard/celery.py): this run's own.
        "DASHBOARD_IO_QUEUE": queue,
        "DASHBOARD_RUNS_QUEUE": queue,
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
        # Its own dashboard database and Django process: 500 environments, 50,000 runs.
        subprocess.run([sys.executable, __file__, "--overview-at-scale"], check=True)
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


# --- 4. the overview at 500 environments x 100 runs ------------------------------


def overview_at_scale() -> None:
    dash_db = f"envbench_scale_{RUN}"
    work = Path(tempfile.mkdtemp(prefix=f"envbench-scale-{RUN}-"))
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "dashboard.settings",
            "DJANGO_SECRET_KEY": "benchmark-only",
            "DJANGO_ALLOWED_HOSTS": "testserver,127.0.0.1",
            "DASHBOARD_DATABASE_URL": pg_url(dash_db).replace("+psycopg", ""),
            "DASHBOARD_VAR_DIR": str(work / "var"),
            "DJANGO_LOG_LEVEL": "WARNING",
        }
    )
    pg_admin(f'CREATE DATABASE "{dash_db}"')
    try:
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        print(f"machine: {os.cpu_count()} CPUs, python {sys.version.split()[0]}")
        started = time.perf_counter()
        _scale_rows()
        print(
            f"set-up: {SCALE_ENVIRONMENTS} environments, {SCALE_ENVIRONMENTS * SCALE_RUNS:,}"
            f" requests and runs in {time.perf_counter() - started:.0f} s"
        )
        _scale_measure()
    finally:
        from django.db import connections

        connections.close_all()
        pg_admin(f'DROP DATABASE IF EXISTS "{dash_db}" WITH (FORCE)')
        shutil.rmtree(work, ignore_errors=True)


def _drift(i: int) -> dict[str, object]:
    """A drift comparison of realistic size (~8 kB): what every row of the old query carried."""
    operations = [f"column pages.extra_{i}_{n} is only in the database" for n in range(12)]
    python = "".join(f"    op.drop_column('pages', 'extra_{i}_{n}')\n" for n in range(12)) * 8
    return {
        "state": "drift" if i % 5 == 0 else "clean",
        "operations": operations if i % 5 == 0 else [],
        "python": python,
        "python_downgrade": python.replace("drop_column", "add_column"),
        "checked_at": "2026-12-04T10:00:00+00:00",
        "heads": ["9c41d7e2f0ab"],
    }


def _scale_rows() -> None:
    """500 environments with a cached status, 100 ended requests with a run each."""
    from datetime import timedelta

    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.utils import timezone

    from dashboard.approvals.models import MigrationRequest, Run
    from dashboard.environments.models import Environment
    from dashboard.environments.services import drift_summary

    user = get_user_model().objects.create_superuser("bench", "b@example.com", "pw")
    heads = ["9c41d7e2f0ab"]
    pending = ["4d72c0e9a8b3", "62a8d9f07e1b", "0c5f7e3a9d28", "9e6b3f15c40d"]
    environments = []
    for i in range(SCALE_ENVIRONMENTS):
        drift = _drift(i)
        state, count = drift_summary(drift)
        environments.append(
            Environment(
                slug=f"env-{i:03d}",
                name=f"Environment {i:03d}",
                position=i,
                description="A synthetic environment of the overview benchmark. " * 4,
                url_env=f"BENCH_URL_{i}",
                status_state="pending" if i % 2 else "up_to_date",
                current_heads=heads,
                pending=pending if i % 2 else [],
                status_detail={
                    "dialect": "postgresql",
                    "masked_url": f"postgresql://magnetiq@db-{i}:5432/magnetiq",
                    "head_messages": {heads[0]: "drop pages legacy_html"},
                    "unknown_revisions": [],
                },
                status_refreshed_at=timezone.now(),
                drift=drift,
                drift_state=state,
                drift_count=count,
            )
        )
    environments = Environment.objects.bulk_create(environments)
    now = timezone.now()
    steps = [{"revision": rev, "message": "m", "path": "p.py", "sha256": "0" * 64, "sql": "SELECT 1;\n" * 20} for rev in pending]  # fmt: skip
    for env in environments:
        requests = MigrationRequest.objects.bulk_create(
            MigrationRequest(
                environment=env,
                requested_by=user,
                direction="upgrade",
                target="heads",
                reason="benchmark",
                status="failed" if n % 10 == 0 else "succeeded",
                dialect="postgresql",
                steps=steps,
                sql="SELECT 1;\n" * 80,
                sql_sha256="0" * 64,
            )
            for n in range(SCALE_RUNS)
        )
        runs = Run.objects.bulk_create(
            Run(
                request=request,
                outcome=request.status,
                worker="bench@host",
                started_at=now - timedelta(hours=SCALE_RUNS - n),
                heartbeat_at=now - timedelta(hours=SCALE_RUNS - n),
                finished_at=now - timedelta(hours=SCALE_RUNS - n, seconds=-30),
            )
            for n, request in enumerate(requests)
        )
        last = runs[-1]
        Environment.objects.filter(pk=env.pk).update(
            last_run_outcome=last.outcome,
            last_run_started_at=last.started_at,
            last_run_request_id=last.request_id,
        )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def _old_overview_query() -> list[object]:
    """The overview's query before issue 11: every column, three correlated subqueries."""
    from django.db.models import OuterRef, Subquery

    from dashboard.approvals.models import Run
    from dashboard.environments.models import Environment

    latest = Run.objects.filter(request__environment=OuterRef("pk")).order_by("-started_at")
    return list(
        Environment.objects.order_by("position", "name").annotate(
            old_last_run_outcome=Subquery(latest.values("outcome")[:1]),
            old_last_run_started_at=Subquery(latest.values("started_at")[:1]),
            old_last_run_request_id=Subquery(latest.values("request_id")[:1]),
        )
    )


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def _scale_measure() -> None:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client

    from dashboard.environments.selectors import environments_for_pipeline

    client = Client()
    client.force_login(get_user_model().objects.get(username="bench"))

    def page() -> None:
        response = client.get("/")
        assert response.status_code == 200
        assert response.content.count(b'class="env-card"') == SCALE_ENVIRONMENTS

    def timed(fn: object) -> float:
        started = time.perf_counter()
        fn()  # type: ignore[operator]
        return time.perf_counter() - started

    for _ in range(3):  # warm-up: connections, templates, plans
        page()
        environments_for_pipeline()
        _old_overview_query()
    queries: list[str] = []

    def count(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        queries.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):
        page()
    samples: dict[str, list[float]] = {"page": [], "new": [], "old": []}
    for _ in range(30):  # interleaved, so a busy moment hits all three alike
        samples["page"].append(timed(page))
        samples["new"].append(timed(environments_for_pipeline))
        samples["old"].append(timed(_old_overview_query))
    page_ms, new_ms, old_ms = (_median_ms(samples[key]) for key in ("page", "new", "old"))
    p90 = sorted(samples["page"])[26] * 1000
    print(
        f"overview page at {SCALE_ENVIRONMENTS} environments x {SCALE_RUNS} runs: median"
        f" {page_ms:.1f} ms (p90 {p90:.1f} ms), {len(queries)} queries;"
        f" {page_ms / OVERVIEW_GOAL_MS:.2f}x the goal of {OVERVIEW_GOAL_MS:.0f} ms"
    )
    print(
        f"its environments query: median {new_ms:.1f} ms; the old correlated-subquery query"
        f" with full rows: median {old_ms:.1f} ms"
    )
    print(
        f"ratio old query / whole page now: {old_ms / page_ms:.1f}x;"
        f" old query / new query: {old_ms / new_ms:.1f}x"
    )


if __name__ == "__main__":
    if "--overview-at-scale" in sys.argv[1:]:
        overview_at_scale()
    else:
        main()
