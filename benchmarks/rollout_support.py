"""Set-up for ``rollout_bench.py``: databases, probed Celery workers, fleets and fixtures.

Also the entry point of the benchmark's workers: ``python rollout_support.py
--as-celery-worker <celery arguments>`` runs ``celery`` in-process and records
every task's name, wall and CPU time (the project's LOGGING keeps Celery's own
"succeeded in" lines quiet), optionally under cProfile.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
BIN = REPO / ".venv" / "bin"
PG = make_url(
    os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
)
REDIS = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
RUN = uuid.uuid4().hex[:8]
PREFIX = f"bench_ro_{RUN}"  # every database of this run starts with it (dropped at the end)
RUNS_QUEUE, IO_QUEUE = f"bench-rollout-{RUN}-runs", f"bench-rollout-{RUN}-io"
# The workers are this module too (``--as-celery-worker``): they get WORK from the environment.
WORK = Path(os.environ.get("ROLLOUT_BENCH_WORK") or tempfile.mkdtemp(prefix="rollout-bench-"))
WORKER_FLAG = "--as-celery-worker"


# --- databases ---------------------------------------------------------------------------


def _libpq(database: str) -> str:
    return PG.set(drivername="postgresql", database=database).render_as_string(hide_password=False)


def sa_url(database: str) -> str:
    return PG.set(drivername="postgresql+psycopg", database=database).render_as_string(
        hide_password=False
    )


def url_template(database_prefix: str) -> str:
    """The fleet's URL template (``{target}`` would be %-escaped by SQLAlchemy's rendering)."""
    return sa_url(f"{database_prefix}TARGETNAME").replace("TARGETNAME", "{target}")


def pg_admin(sql: str) -> None:
    with psycopg.connect(_libpq(PG.database or "postgres"), autocommit=True) as conn:
        conn.execute(sql)  # type: ignore[arg-type]


def create_databases(names: list[str]) -> None:
    """Empty databases (Magnetiq2 at base), four ``CREATE DATABASE`` at a time."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda name: pg_admin(f'CREATE DATABASE "{name}"'), names))


def drop_run_databases() -> None:
    """Drop every database of this run, whatever phase was interrupted."""
    with psycopg.connect(_libpq(PG.database or "postgres"), autocommit=True) as conn:
        names = [
            row[0]
            for row in conn.execute(
                "SELECT datname FROM pg_database WHERE datname LIKE %s", (PREFIX + "%",)
            )
        ]
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(
            pool.map(lambda name: pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'), names)
        )


# --- processes -----------------------------------------------------------------------------


def configure_process(dashboard_db: str) -> dict[str, str]:
    env = {
        "DJANGO_SETTINGS_MODULE": "dashboard.settings",
        "DJANGO_SECRET_KEY": "benchmark-only",
        "DJANGO_ALLOWED_HOSTS": "testserver,127.0.0.1",
        "DASHBOARD_DATABASE_URL": _libpq(dashboard_db),
        "DASHBOARD_VAR_DIR": str(WORK / "var"),
        "CELERY_BROKER_URL": REDIS,
        "CELERY_TASK_DEFAULT_QUEUE": IO_QUEUE,
        "DASHBOARD_RUNS_QUEUE": RUNS_QUEUE,
        "DASHBOARD_IO_QUEUE": IO_QUEUE,
        "ALEMBIC_CONFIG": str(REPO / "alembic.ini"),
        "DJANGO_LOG_LEVEL": "WARNING",
        "DJANGO_EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
        "ROLLOUT_BENCH_WORK": str(WORK),
    }
    os.environ.update(env)
    return {**os.environ, **env}


@dataclass
class TaskRecord:
    name: str
    state: str
    began: float  # time.time() in the worker
    wall: float
    cpu: float  # the worker process's CPU time during the task (all its threads)


def run_probed_worker(argv: list[str]) -> None:
    """``celery <argv>`` in this process, recording each task's name, wall and CPU time.

    Celery's own "succeeded in" lines are silenced by the project's LOGGING
    (``celery.app.trace`` at WARNING), so the benchmark hooks the task signals
    instead; with ``ROLLOUT_BENCH_PROFILE`` set it also profiles every task.
    """
    import cProfile

    from celery import signals
    from celery.__main__ import main as celery_main

    # Open for the worker's whole life, line-buffered: the benchmark reads it while it runs.
    out = Path(os.environ["ROLLOUT_BENCH_TASKS"]).open("a", buffering=1)  # noqa: SIM115
    started: dict[str, tuple[float, float, float]] = {}
    profile_path = os.environ.get("ROLLOUT_BENCH_PROFILE")
    profiler = cProfile.Profile() if profile_path else None

    @signals.task_prerun.connect(weak=False)
    def before(task_id: str = "", **kwargs: Any) -> None:
        started[task_id] = (time.time(), time.perf_counter(), time.process_time())
        if profiler is not None:
            profiler.enable()

    @signals.task_postrun.connect(weak=False)
    def after(task_id: str = "", task: Any = None, state: str = "", **kwargs: Any) -> None:
        if profiler is not None:
            profiler.disable()
        began, wall, cpu = started.pop(task_id)
        out.write(
            f"{task.name}\t{state}\t{began:.6f}\t{time.perf_counter() - wall:.6f}"
            f"\t{time.process_time() - cpu:.6f}\n"
        )

    @signals.worker_shutdown.connect(weak=False)
    def dump(**kwargs: Any) -> None:
        if profiler is not None and profile_path:
            profiler.dump_stats(profile_path)

    sys.argv = ["celery", *argv]
    celery_main()


class Worker:
    """One ``celery worker --pool=solo`` on both private queues, with its own node name."""

    def __init__(self, env: dict[str, str], index: int, *, profile: bool = False) -> None:
        self.log = WORK / f"worker-{index}.log"
        self.tasks = WORK / f"worker-{index}.tasks"
        self.profile = WORK / f"worker-{index}.pstats" if profile else None
        probe = {"ROLLOUT_BENCH_TASKS": str(self.tasks)}
        if self.profile is not None:
            probe["ROLLOUT_BENCH_PROFILE"] = str(self.profile)
        self.process = subprocess.Popen(
            [
                sys.executable,
                __file__,
                WORKER_FLAG,
                "-A",
                "dashboard",
                "worker",
                "--pool=solo",
                "-Q",
                f"{RUNS_QUEUE},{IO_QUEUE}",
                "-n",
                f"bench-rollout-{RUN}-{index}@%h",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "-l",
                "INFO",
            ],
            cwd=REPO,
            env={**env, **probe},
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, deadline: float) -> None:
        while " ready." not in self.log.read_text(errors="replace"):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"worker did not start:\n{self.log.read_text()[-2000:]}")
            time.sleep(0.1)

    def tasks_size(self) -> int:
        return self.tasks.stat().st_size if self.tasks.exists() else 0

    def tasks_since(self, offset: int) -> list[TaskRecord]:
        """The tasks this worker ran since ``offset`` of its record file."""
        if not self.tasks.exists():
            return []
        with self.tasks.open("rb") as handle:
            handle.seek(offset)
            lines = handle.read().decode().splitlines()
        records = []
        for line in lines:
            name, state, began, wall, cpu = line.split("\t")
            records.append(TaskRecord(name, state, float(began), float(wall), float(cpu)))
        return records

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


def start_beat(env: dict[str, str]) -> subprocess.Popen[bytes]:
    log = WORK / "beat.log"
    schedule = WORK / "celerybeat-schedule"
    return subprocess.Popen(
        [str(BIN / "celery"), "-A", "dashboard", "beat", "-s", str(schedule), "-l", "INFO"],
        cwd=REPO,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def queue_lengths() -> dict[str, int]:
    """Messages waiting in this run's queues (Redis lists named after the queues)."""
    import redis

    client = redis.Redis.from_url(REDIS)
    try:
        lengths = {"runs": client.llen(RUNS_QUEUE), "io": client.llen(IO_QUEUE)}
        return {name: int(length) for name, length in lengths.items()}  # type: ignore[arg-type]
    finally:
        client.close()


def machine_busy_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, all cores."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    tick = os.sysconf("SC_CLK_TCK")
    return (sum(values) - idle) / tick, sum(values) / tick


# --- fleets and fixtures ------------------------------------------------------------------


def setup_people() -> dict[str, Any]:
    from django.contrib.auth.models import Group, User

    people = {}
    for name, group in (
        ("developer", "Developers"),
        ("lead", "Tech leads"),
        ("lead2", "Tech leads"),
    ):
        user = User.objects.create_user(name, f"{name}@example.com", "pw")
        user.groups.add(Group.objects.get(name=group))
        people[name] = user
    return people


def load_fleet(slug: str, names: list[str], template: str, waves: str, parallelism: int) -> Any:
    """Declare the fleet in a TOML file (targets_file, url_file) and load it, as a team would."""
    from dashboard.environments.config_file import environments_load
    from dashboard.environments.models import Environment

    (WORK / f"{slug}.url").write_text(template)
    (WORK / f"{slug}.txt").write_text("# one tenant a line\n" + "\n".join(names) + "\n")
    (WORK / f"{slug}.toml").write_text(
        f"""
[environments.{slug}]
name = "{slug.title()}"
position = 4
url_file = "{WORK / f"{slug}.url"}"
targets_file = "{slug}.txt"
waves = [{waves}]
parallelism = {parallelism}
halt_after_failures = 1
required_approvals = 2
approver_group = "Tech leads"
"""
    )
    environments_load(path=WORK / f"{slug}.toml")
    return Environment.objects.get(slug=slug)


def build_page_rollout(count: int, real: Any, people: dict[str, Any]) -> Any:
    """A fleet of ``count`` loaded from TOML, its request pinned by the service, and its
    rollout half-way through wave 3 written in bulk (children and runs copied from ``real``)."""
    from django.db.models.functions import Now
    from django.utils import timezone

    from dashboard.approvals.models import MigrationRequest, Run
    from dashboard.approvals.services.requests import migration_request_create
    from dashboard.environments.models import Environment
    from dashboard.rollouts.models import Rollout as RolloutRow
    from dashboard.rollouts.models import RolloutTarget

    names = [f"p{i:04d}" for i in range(count)]
    fleet = load_fleet("pagefleet", names, url_template(f"{PREFIX}_page_"), '1, "10%", "100%"', 8)
    sample = Environment.objects.filter(fleet=real.request.environment).first()
    assert sample is not None
    Environment.objects.filter(fleet=fleet).update(
        status_state="no_version_table",
        current_heads=[],
        pending=sample.pending,
        status_detail=sample.status_detail,
        status_refreshed_at=Now(),
        status_refresh_queued_at=None,
    )
    request = migration_request_create(
        environment=fleet,
        actor=people["developer"],
        direction="upgrade",
        target="heads",
        reason="page benchmark",
    )
    now = timezone.now()
    MigrationRequest.objects.filter(pk=request.pk).update(status="running", approved_at=now)
    rollout = RolloutRow.objects.get(request=request)
    RolloutRow.objects.filter(pk=rollout.pk).update(
        state="running", current_wave=rollout.wave_count, started_at=now
    )
    example = real.targets.select_related("request__run").first()
    child, run = example.request, example.request.run
    rows = list(rollout.targets.order_by("position"))
    done = rows[: len(rows) // 2]
    running = rows[len(rows) // 2 : len(rows) // 2 + 8]
    children = MigrationRequest.objects.bulk_create(
        [
            MigrationRequest(
                parent=request,
                environment_id=row.environment_id,
                requested_by_id=child.requested_by_id,
                direction=child.direction,
                target=child.target,
                reason=child.reason,
                status="succeeded" if row in done else "running",
                dialect=child.dialect,
                from_heads=child.from_heads,
                to_heads=child.to_heads,
                steps=child.steps,
                sql=child.sql,
                sql_sha256=child.sql_sha256,
                findings=child.findings,
                destructive=child.destructive,
                required_approvals=child.required_approvals,
                env_sha256=child.env_sha256,
                pinned_settings=child.pinned_settings,
                approved_at=now,
                claimed_at=now,
                ended_at=now if row in done else None,
            )
            for row in done + running
        ],
        batch_size=500,
    )
    Run.objects.bulk_create(
        [
            Run(
                request=new_child,
                outcome="succeeded" if row in done else "running",
                phase="finished" if row in done else "migrating",
                worker=run.worker,
                total_steps=run.total_steps,
                applied=run.applied if row in done else run.applied[:5],
                committed=run.committed if row in done else [],
                final_heads=run.final_heads if row in done else None,
                lock_acquired_at=now,
                ddl_started_at=now,
                finished_at=now if row in done else None,
            )
            for row, new_child in zip(done + running, children, strict=True)
        ],
        batch_size=500,
    )
    for row, new_child in zip(done + running, children, strict=True):
        row.request = new_child
        row.state = "succeeded" if row in done else "running"
        row.attempts = 1
        row.applied = run.total_steps if row in done else 5
        row.started_at = now - timedelta(seconds=2)
        row.finished_at = now if row in done else None
        row.final_heads = run.final_heads if row in done else None
    RolloutTarget.objects.bulk_update(
        done + running,
        ["request", "state", "attempts", "applied", "started_at", "finished_at", "final_heads"],
        batch_size=500,
    )
    return request


def cleanup() -> None:
    """Drop this run's databases and queues and its temporary directory (signals held off)."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        if "django" in sys.modules:
            from django.db import connections

            connections.close_all()
        drop_run_databases()
        import redis

        client = redis.Redis.from_url(REDIS)
        for key in client.scan_iter(f"*bench-rollout-{RUN}*"):
            client.delete(key)
        client.close()
        shutil.rmtree(WORK, ignore_errors=True)
    finally:
        signal.signal(signal.SIGINT, previous)


if __name__ == "__main__":
    if sys.argv[1:2] == [WORKER_FLAG]:
        run_probed_worker(sys.argv[2:])
