"""Benchmark: Magnetiq2 base -> head, ``alembic upgrade head`` (CLI) vs the dashboard path.

Side by side in one run, on fresh PostgreSQL databases each round:

* reference: ``alembic upgrade head`` from the CLI (process start included);
* dashboard: from the last approval (service call, commit, enqueue after
  commit) to the run's ``succeeded`` state, with a warm ``celery worker
  --pool=solo`` on Redis (queue latency included);
* latency: median time from the last approval's commit (``approved_at``) to
  the run's start (``Run.started_at``, the claim).

Goals (issue 6): dashboard within 1.5x of the CLI; latency median under 1 s.
Needs PostgreSQL at TEST_POSTGRES_URL and Redis at TEST_REDIS_URL (defaults as
in the tests). Creates and drops its own databases and queue.

    .venv/bin/python benchmarks/execution_bench.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
PG = make_url(
    os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
)
REDIS = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
RUN = uuid.uuid4().hex[:8]
QUEUE = f"bench-exec-{RUN}"
WORK = Path(tempfile.mkdtemp(prefix="execution-bench-"))


def _libpq(database: str) -> str:
    return PG.set(drivername="postgresql", database=database).render_as_string(hide_password=False)


def create_db(prefix: str) -> str:
    name = f"{prefix}_{RUN}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(_libpq(PG.database or "postgres"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name


def drop_db(name: str) -> None:
    with psycopg.connect(_libpq(PG.database or "postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def sa_url(name: str) -> str:
    return PG.set(drivername="postgresql+psycopg", database=name).render_as_string(
        hide_password=False
    )


def configure_process(dashboard_db: str) -> dict[str, str]:
    env = {
        "DJANGO_SETTINGS_MODULE": "dashboard.settings",
        "DJANGO_SECRET_KEY": "benchmark-only",
        "DASHBOARD_DATABASE_URL": _libpq(dashboard_db),
        "DASHBOARD_VAR_DIR": str(WORK / "var"),
        "CELERY_BROKER_URL": REDIS,
        "CELERY_TASK_DEFAULT_QUEUE": QUEUE,
        "DASHBOARD_RUNS_QUEUE": QUEUE,  # one solo worker serves runs and io here
        "DASHBOARD_IO_QUEUE": QUEUE,
        "ALEMBIC_CONFIG": str(REPO / "alembic.ini"),
        "DJANGO_LOG_LEVEL": "WARNING",
        "DJANGO_EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
    }
    os.environ.update(env)
    return {**os.environ, **env}


def start_worker(env: dict[str, str]) -> subprocess.Popen[bytes]:
    log = WORK / "worker.log"
    process = subprocess.Popen(
        [
            str(REPO / ".venv/bin/celery"),
            "-A",
            "dashboard",
            "worker",
            "--pool=solo",
            "-Q",
            QUEUE,
            "-n",
            f"{QUEUE}@%h",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-l",
            "INFO",
        ],
        cwd=REPO,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while " ready." not in log.read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"worker did not start:\n{log.read_text()[-2000:]}")
        time.sleep(0.1)
    return process


def cli_upgrade(target_db: str) -> float:
    env = {**os.environ, "MAGNETIQ_DATABASE_URL": sa_url(target_db)}
    started = time.perf_counter()
    subprocess.run(
        [str(REPO / ".venv/bin/alembic"), "upgrade", "head"],
        cwd=REPO,
        env=env,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


def dashboard_upgrade(target_db: str, people: dict[str, object]) -> tuple[float, float]:
    from dashboard.approvals.models import MigrationRequest
    from dashboard.approvals.services.decisions import migration_request_approve
    from dashboard.approvals.services.requests import migration_request_create
    from dashboard.environments.models import Environment

    url_file = WORK / f"{target_db}.url"
    url_file.write_text(sa_url(target_db))
    Environment.objects.filter(slug="production").update(url_file=str(url_file))
    env = Environment.objects.get(slug="production")
    request = migration_request_create(
        environment=env,
        actor=people["developer"],
        direction="upgrade",
        target="heads",
        reason="benchmark",
    )
    migration_request_approve(request=request, actor=people["lead"], sql_acknowledged=True)
    started = time.perf_counter()
    migration_request_approve(request=request, actor=people["lead2"], sql_acknowledged=True)
    deadline = time.monotonic() + 120
    while True:
        request.refresh_from_db()
        if request.status in MigrationRequest.ENDED_STATUSES:
            break
        if time.monotonic() > deadline:
            raise SystemExit("run did not end within 120 s")
        time.sleep(0.005)
    total = time.perf_counter() - started
    if request.status != "succeeded":
        raise SystemExit(f"run {request.status}: {request.run.error}")
    latency = (request.run.started_at - request.approved_at).total_seconds()
    return total, latency


def setup_people() -> dict[str, object]:
    from django.contrib.auth.models import Group, User

    from dashboard.environments.models import Environment

    people = {}
    for name, group in (
        ("developer", "Developers"),
        ("lead", "Tech leads"),
        ("lead2", "Tech leads"),
    ):
        user = User.objects.create_user(name, f"{name}@example.com", "pw")
        user.groups.add(Group.objects.get(name=group))
        people[name] = user
    Environment.objects.create(
        slug="production",
        name="Production",
        url_file=str(WORK / "none.url"),
        required_approvals=2,
        approver_group=Group.objects.get(name="Tech leads"),
    )
    return people


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    dashboard_db = create_db("bench_dash")
    worker = None
    created: list[str] = []
    try:
        env = configure_process(dashboard_db)
        import django

        django.setup()
        import logging

        logging.getLogger("alembic").setLevel(logging.WARNING)  # plan rendering is chatty
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        people = setup_people()
        worker = start_worker(env)
        cli, dash, latency = [], [], []
        for round_number in range(args.rounds + 1):  # round 0 is the warm-up
            cli_db, dash_db = create_db("bench_cli"), create_db("bench_target")
            created += [cli_db, dash_db]
            c = cli_upgrade(cli_db)
            d, lat = dashboard_upgrade(dash_db, people)
            drop_db(cli_db)
            drop_db(dash_db)
            if round_number:
                cli.append(c)
                dash.append(d)
                latency.append(lat)
            print(
                f"round {round_number}{' (warm-up)' if not round_number else ''}: "
                f"cli {c:.3f}s dashboard {d:.3f}s approval->start {lat * 1000:.0f}ms"
            )
        c_med, d_med, l_med = (statistics.median(x) for x in (cli, dash, latency))
        print(f"\nMagnetiq2 base -> head on fresh PostgreSQL, {args.rounds} rounds (medians):")
        print(f"  alembic upgrade head (CLI, reference): {c_med:.3f}s")
        print(f"  dashboard, last approval -> succeeded: {d_med:.3f}s")
        print(f"  ratio dashboard / CLI:                 {d_med / c_med:.2f}x  (goal <= 1.5x)")
        print(f"  approval commit -> run start:          {l_med * 1000:.0f}ms (goal < 1000ms)")
    finally:
        if worker is not None:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(timeout=20)
        from django.db import connections

        connections.close_all()
        for name in created:
            drop_db(name)
        drop_db(dashboard_db)
        import redis

        client = redis.Redis.from_url(REDIS)
        for key in client.scan_iter(f"*{QUEUE}*"):
            client.delete(key)


if __name__ == "__main__":
    main()
