"""Benchmark: a fleet rollout of Magnetiq2 base -> head on many PostgreSQL tenants (issue 13).

Side by side in one run, on fresh (empty) PostgreSQL databases:

(a) reference: what a team does today, a shell loop running
    ``MAGNETIQ_DATABASE_URL=... alembic upgrade head`` on one database after
    another (the repository's own ``alembic.ini`` and ``migrations/``; env.py
    takes the URL from ``MAGNETIQ_DATABASE_URL``), timed as a whole;
(b) the dashboard: a fleet declared through the TOML loader (``targets_file``
    and a ``url_file`` holding the ``{target}`` template), its statuses read by
    the workers, one request, two tech leads approving through the services;
    timed from the final approval to ``Rollout.state == succeeded``, with
    ``--workers`` real ``celery worker --pool=solo`` processes (distinct node
    names) consuming this run's private runs and io queues on Redis.

Then the dashboard's own overhead (scheduling, bookkeeping, polling), as the
issue defines it: (b) minus the sum of the targets' Alembic time divided by
the parallelism. Each target's Alembic time comes from its run record
(``Run.ddl_started_at`` -> ``finished_at``; the pure DDL time, the sum of its
``RunProgress`` rows, is shown too). No more than min(parallelism, workers)
targets can run at once, so the overhead is also given for that divisor.
A profile says where each target's time went (queue, lock, pinned script,
Alembic, recording, the scheduler refilling a slot, the wave boundaries) and
what the workers spent their time and CPU on (each task, recorded by the
workers, which are this benchmark's ``rollout_support.py`` running Celery).

Last, the rollout page at 500 targets: a fleet of 500 loaded through the TOML
loader, its request pinned by the service, and a rollout half-way through
built in bulk rows (child requests and runs of the succeeded and running
targets); median and p95 of N GETs with Django's test client.

Goals (issue 13, on this 2-core machine): (b) at least 4x faster than (a);
overhead at most 20 % of (b); the rollout page under 150 ms at 500 targets.
``--strict`` exits 1 when a goal is missed. Needs PostgreSQL at
TEST_POSTGRES_URL and Redis at TEST_REDIS_URL (defaults as in the tests);
creates and drops its own databases and queues, also on Ctrl-C.

    .venv/bin/python benchmarks/rollout_bench.py [--tenants 200] [--workers 4]
        [--parallelism 8] [--page-targets 500] [--beat] [--profile] [--strict]

Figures and what they say: docs/benchmarks.md, "Fleet rollouts (issue 13)".
"""

from __future__ import annotations

import argparse
import bisect
import os
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from rollout_support import (
    BIN,
    PREFIX,
    REPO,
    RUN,
    WORK,
    TaskRecord,
    Worker,
    build_page_rollout,
    cleanup,
    configure_process,
    create_databases,
    load_fleet,
    machine_busy_seconds,
    pg_admin,
    queue_lengths,
    sa_url,
    setup_people,
    start_beat,
    url_template,
)

SPEEDUP_GOAL, OVERHEAD_GOAL, PAGE_GOAL_MS = 4.0, 0.20, 150.0

# --- (a) the shell loop --------------------------------------------------------------------


def shell_loop(databases: list[str]) -> float:
    """``for db in ...; do MAGNETIQ_DATABASE_URL=... alembic upgrade head; done`` in bash."""
    prefix = sa_url("DBNAME").rsplit("DBNAME", 1)[0]
    script = (
        'for db in $TENANT_DBS; do MAGNETIQ_DATABASE_URL="$URL_PREFIX$db" alembic upgrade head;'
        " done"
    )
    env = {
        **os.environ,
        "PATH": f"{BIN}:{os.environ['PATH']}",
        "TENANT_DBS": " ".join(databases),
        "URL_PREFIX": prefix,
    }
    log = WORK / "shell-loop.log"
    started = time.perf_counter()
    with log.open("wb") as out:
        done = subprocess.run(
            ["bash", "-e", "-c", script], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"the shell loop failed:\n{log.read_text()[-2000:]}")
    return elapsed


# --- (b) the dashboard rollout ---------------------------------------------------------------


def statuses_read(fleet: Any, timeout: float) -> float:
    """Wait for the workers' first status read of every target (queued by the loader)."""
    from dashboard.environments.models import Environment

    started = time.perf_counter()
    deadline = time.monotonic() + timeout
    targets = Environment.objects.filter(fleet=fleet)
    while (
        targets.filter(status_refreshed_at__isnull=True).exists()
        or targets.filter(status_refresh_queued_at__isnull=False).exists()
    ):
        if time.monotonic() > deadline:
            raise SystemExit("the workers did not read every target's status in time")
        time.sleep(0.1)
    states = Counter(targets.values_list("status_state", flat=True))
    if set(states) != {"no_version_table"}:
        raise SystemExit(f"targets are not all at base: {dict(states)}")
    return time.perf_counter() - started


@dataclass
class RolloutResult:
    seconds: float
    approved_at: datetime
    rollout: Any
    tasks: list[TaskRecord]
    worker_cpu: list[float]
    machine_cpu: float
    backlog: dict[str, int]


def dashboard_rollout(
    fleet: Any, people: dict[str, Any], workers: list[Worker], timeout: float
) -> RolloutResult:
    from django.utils import timezone

    from dashboard.approvals.services.decisions import migration_request_approve
    from dashboard.approvals.services.requests import migration_request_create
    from dashboard.rollouts.models import Rollout as RolloutRow

    request = migration_request_create(
        environment=fleet,
        actor=people["developer"],
        direction="upgrade",
        target="heads",
        reason="benchmark: Magnetiq2 base -> head",
    )
    migration_request_approve(request=request, actor=people["lead"], sql_acknowledged=True)
    marks = [worker.tasks_size() for worker in workers]
    cpu = [worker.cpu_seconds() for worker in workers]
    busy, _ = machine_busy_seconds()
    approved_at = timezone.now()
    began = time.time()
    started = time.perf_counter()
    migration_request_approve(request=request, actor=people["lead2"], sql_acknowledged=True)
    rows = RolloutRow.objects.filter(request_id=request.pk)
    deadline, shown = time.monotonic() + timeout, time.monotonic()
    while (state := rows.values_list("state", flat=True).get()) not in ("succeeded", "halted"):
        if time.monotonic() > deadline:
            raise SystemExit(f"the rollout is still {state} after {timeout:.0f}s")
        if time.monotonic() - shown > 10:
            counts = Counter(rows.get().targets.values_list("state", flat=True))
            # The rows as the last scheduler step copied them from the runs.
            print(f"   ... {time.perf_counter() - started:5.1f}s {dict(sorted(counts.items()))}")
            shown = time.monotonic()
        time.sleep(0.05)
    seconds = time.perf_counter() - started
    ended = time.time()
    backlog = queue_lengths()
    rollout = rows.get()
    if state != "succeeded":
        raise SystemExit(f"the rollout halted: {rollout.halted_reason}")
    wrong = rollout.targets.exclude(state="succeeded").count() + sum(
        final != to for final, to in rollout.targets.values_list("final_heads", "to_heads")
    )
    if wrong:
        raise SystemExit(f"{wrong} target(s) did not end at the plan's heads")
    busy_after, _ = machine_busy_seconds()
    return RolloutResult(
        seconds=seconds,
        approved_at=approved_at,
        rollout=rollout,
        tasks=[
            task
            for worker, mark in zip(workers, marks, strict=True)
            for task in worker.tasks_since(mark)
            if began - 1 <= task.began <= ended
        ],
        backlog=backlog,
        worker_cpu=[w.cpu_seconds() - c for w, c in zip(workers, cpu, strict=True)],
        machine_cpu=busy_after - busy,
    )


# --- what the run records say --------------------------------------------------------------


@dataclass
class TargetTimes:
    name: str
    wave: int
    queued: datetime  # the child request created by the scheduler
    claimed: datetime
    locked: datetime
    ddl: datetime
    applied: datetime  # the last revision applied
    finished: datetime
    pure_alembic: float  # sum of the RunProgress durations

    @property
    def alembic(self) -> float:
        """The target's Alembic time as the issue reads it: DDL start -> run finished."""
        return (self.finished - self.ddl).total_seconds()


def target_times(rollout: Any) -> list[TargetTimes]:
    from django.db.models import Max

    from dashboard.approvals.models import Run, RunProgress

    rows = list(rollout.targets.select_related("request").order_by("position"))
    runs = {run.request_id: run for run in Run.objects.filter(request__parent=rollout.request)}
    last_applied = dict(
        RunProgress.objects.filter(run__request__parent=rollout.request)
        .values("run_id")
        .annotate(last=Max("applied_at"))
        .values_list("run_id", "last")
    )
    pure: dict[int, float] = defaultdict(float)
    for run_id, started, applied in RunProgress.objects.filter(
        run__request__parent=rollout.request
    ).values_list("run_id", "started_at", "applied_at"):
        pure[run_id] += (applied - started).total_seconds()
    times = []
    for row in rows:
        run = runs[row.request_id]
        times.append(
            TargetTimes(
                name=row.name,
                wave=row.wave,
                queued=row.request.created_at,
                claimed=run.started_at,
                locked=run.lock_acquired_at,
                ddl=run.ddl_started_at,
                applied=last_applied[run.pk],
                finished=run.finished_at,
                pure_alembic=pure[run.pk],
            )
        )
    return times


def _seconds(pairs: list[tuple[datetime, datetime]]) -> list[float]:
    return [(end - start).total_seconds() for start, end in pairs]


def _stat(values: list[float]) -> str:
    if not values:
        return "n/a"
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    return (
        f"median {statistics.median(values) * 1000:6.0f} ms  p95 {p95 * 1000:6.0f} ms"
        f"  sum {sum(values):7.1f} s"
    )


def max_concurrency(times: list[TargetTimes]) -> int:
    events = sorted([(t.claimed, 1) for t in times] + [(t.finished, -1) for t in times])
    running = peak = 0
    for _, delta in events:
        running += delta
        peak = max(peak, running)
    return peak


def refill_latencies(times: list[TargetTimes], parallelism: int) -> list[float]:
    """For each dispatch that filled a freed slot: time since the latest run end before it."""
    finishes = sorted(t.finished for t in times)
    latencies = []
    by_wave: dict[int, list[TargetTimes]] = defaultdict(list)
    for t in times:
        by_wave[t.wave].append(t)
    for rows in by_wave.values():
        for t in sorted(rows, key=lambda r: r.queued)[parallelism:]:
            index = bisect.bisect_right(finishes, t.queued) - 1
            if index >= 0:
                latencies.append((t.queued - finishes[index]).total_seconds())
    return latencies


def step_latencies(times: list[TargetTimes], steps: list[float]) -> list[float]:
    """For each run's end: how long until the next ``rollouts.start`` task began on a worker."""
    latencies = []
    for t in times:
        index = bisect.bisect_left(steps, t.finished.timestamp())
        if index < len(steps):
            latencies.append(steps[index] - t.finished.timestamp())
    return latencies


def worker_tasks(records: list[TaskRecord]) -> dict[str, tuple[int, float, float]]:
    """Per task name: (count, wall seconds, CPU seconds) the workers spent on it."""
    totals: dict[str, list[TaskRecord]] = defaultdict(list)
    for record in records:
        totals[record.name].append(record)
    return {
        name: (len(rows), sum(r.wall for r in rows), sum(r.cpu for r in rows))
        for name, rows in sorted(totals.items())
    }


# --- the rollout page at N targets ---------------------------------------------------------


@dataclass
class PageTiming:
    label: str
    path: str
    headers: dict[str, str]
    queries: int = 0
    samples: list[float] = field(default_factory=list)


def page_timings(request: Any, user: Any, rounds: int) -> list[PageTiming]:
    """Time ``rounds`` GETs of each page there is to measure (the rollout page once it exists)."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.urls import Resolver404, resolve, reverse

    client = Client()
    client.force_login(user)
    detail = reverse("approvals:detail", args=[request.pk])
    pages = [PageTiming("request page (approvals:detail)", detail, {})]
    rollout_path = f"/requests/{request.pk}/rollout/"
    try:
        resolve(rollout_path)
    except Resolver404:
        print(f"   (the rollout page {rollout_path} does not exist yet: not measured)")
    else:
        pages[:0] = [
            PageTiming("rollout page", rollout_path, {}),
            PageTiming("rollout page, htmx poll", rollout_path, {"HTTP_HX_REQUEST": "true"}),
        ]
    for page in pages:
        for _ in range(3):  # warm-up: connections, templates, caches
            response = client.get(page.path, **page.headers)  # type: ignore[arg-type]
            if response.status_code not in (200, 286):
                raise SystemExit(f"GET {page.path} answered {response.status_code}")
        with CaptureQueriesContext(connection) as queries:
            client.get(page.path, **page.headers)  # type: ignore[arg-type]
        page.queries = len(queries.captured_queries)
    for _ in range(rounds):  # interleaved, so a busy moment hits every page alike
        for page in pages:
            started = time.perf_counter()
            client.get(page.path, **page.headers)  # type: ignore[arg-type]
            page.samples.append(time.perf_counter() - started)
    return pages


# --- report ---------------------------------------------------------------------------------


@dataclass
class Verdicts:
    """The goal lines, printed where they are measured and again together at the end."""

    lines: list[tuple[str, bool]] = field(default_factory=list)

    def line(self, text: str, ok: bool) -> None:
        print(f"{text}  {'ok' if ok else 'MISSED'}")
        self.lines.append((text.strip(), ok))

    @property
    def missed(self) -> list[str]:
        return [text for text, ok in self.lines if not ok]

    def summary(self) -> None:
        print("\nsummary:")
        for text, ok in self.lines:
            print(f"  {text}  {'ok' if ok else 'MISSED'}")


def report_rollout(
    args: argparse.Namespace, shell: float, result: RolloutResult, verdicts: Verdicts
) -> None:
    times = target_times(result.rollout)
    effective = min(args.parallelism, args.workers)
    b = result.seconds
    alembic = sum(t.alembic for t in times)
    progress = sum(t.pure_alembic for t in times)
    print(f"\n(a) shell loop, alembic upgrade head one database after another: {shell:8.1f} s")
    print(f"    ({shell / args.tenants:.3f} s per database, a Python process each)")
    print(f"(b) dashboard rollout, final approval -> succeeded:              {b:8.1f} s")
    print(f"    ({b / args.tenants:.3f} s per target)")
    verdicts.line(
        f"speedup (a)/(b): {shell / b:.2f}x (goal >= {SPEEDUP_GOAL:.0f}x)",
        shell / b >= SPEEDUP_GOAL,
    )
    median = statistics.median(t.alembic for t in times)
    print(
        f"\nthe targets' Alembic time (Run.ddl_started_at -> finished_at): sum {alembic:.1f} s,"
        f" median {median * 1000:.0f} ms (sum of their RunProgress rows: {progress:.1f} s)"
    )
    print(
        f"effective parallelism: min(parallelism {args.parallelism}, workers {args.workers})"
        f" = {effective}; at most {max_concurrency(times)} runs were in flight at once"
    )
    if effective < args.parallelism:
        floor = 1 - effective / args.parallelism
        print(
            f"  (with {effective} workers (b) >= sum/{effective}, so the overhead with"
            f" /{args.parallelism} cannot fall below {floor:.0%} of (b), whatever the dashboard"
            " does)"
        )
    for divisor in dict.fromkeys((args.parallelism, effective)):
        overhead, by_progress = b - alembic / divisor, b - progress / divisor
        text = (
            f"dashboard overhead (b) - sum/{divisor}: {overhead:.1f} s = {overhead / b:.0%} of (b)"
            f" (goal <= {OVERHEAD_GOAL:.0%})"
        )
        if divisor == args.parallelism:
            verdicts.line(f"{text} [parallelism, as the issue says]", overhead / b <= OVERHEAD_GOAL)
        else:
            print(f"{text} [effective parallelism; information]")
        print(f"    from the RunProgress rows instead: {by_progress / b:.0%} of (b)")
    print_target_phases(args, times, result)
    print_waves(times, result)
    print_worker_time(args, times, result)


def print_target_phases(
    args: argparse.Namespace, times: list[TargetTimes], result: RolloutResult
) -> None:
    print("\nwhere a target's time goes (run records, database clock):")
    phases = (
        ("queued -> claimed (broker, a free worker)", [(t.queued, t.claimed) for t in times]),
        ("claimed -> lock held (connect, checks, lock)", [(t.claimed, t.locked) for t in times]),
        ("lock -> DDL (heads, pinned script, plan check)", [(t.locked, t.ddl) for t in times]),
        ("DDL -> last revision applied (Alembic + progress)", [(t.ddl, t.applied) for t in times]),
        (
            "last revision -> finished (commit, heads, record)",
            [(t.applied, t.finished) for t in times],
        ),
        ("claimed -> finished (the whole run)", [(t.claimed, t.finished) for t in times]),
    )
    for label, pairs in phases:
        print(f"  {label:52s} {_stat(_seconds(pairs))}")
    steps = sorted(r.began for r in result.tasks if r.name == "rollouts.start")
    latencies = (
        ("a run ended -> a scheduler step began (io queue)", step_latencies(times, steps)),
        ("a run ended -> next target dispatched", refill_latencies(times, args.parallelism)),
    )
    for label, values in latencies:
        print(f"  {label:52s} {_stat(values)}")


def print_waves(times: list[TargetTimes], result: RolloutResult) -> None:
    first = min(t.queued for t in times)
    print(f"  final approval -> first target dispatched: {_ms(first - result.approved_at)}")
    for wave in sorted({t.wave for t in times}):
        rows = [t for t in times if t.wave == wave]
        start, end = min(t.queued for t in rows), max(t.finished for t in rows)
        span = (end - start).total_seconds()
        print(
            f"  wave {wave}: {len(rows):4d} targets, {span:6.1f} s from first dispatch to last end"
        )
        later = [t.queued for t in times if t.wave == wave + 1]
        if later:
            print(f"          -> wave {wave + 1} dispatched {_ms(min(later) - end)} after")
    if result.rollout.ended_at is not None:
        last = max(t.finished for t in times)
        print(f"  last run finished -> rollout succeeded: {_ms(result.rollout.ended_at - last)}")
    run_seconds = sum((t.finished - t.claimed).total_seconds() for t in times)
    print(f"  average runs in flight: {run_seconds / result.seconds:.2f} (sum of runs / (b))")


def print_worker_time(
    args: argparse.Namespace, times: list[TargetTimes], result: RolloutResult
) -> None:
    b = result.seconds
    available = args.workers * b
    print(
        f"\nwhat the {args.workers} workers did during (b) (tasks begun in it;"
        f" {available:.0f} worker-seconds available):"
    )
    spent = 0.0
    for name, (count, wall, cpu) in worker_tasks(result.tasks).items():
        spent += wall
        print(
            f"  {name:30s} {count:5d} tasks  wall {wall:7.1f} s"
            f" ({wall / count * 1000:5.0f} ms each)"
            f"  CPU {cpu:6.1f} s ({cpu / count * 1000:4.0f} ms each)"
        )
    print(f"  {'idle, or between tasks':30s} {'':11s} wall {available - spent:7.1f} s")
    print(f"  still queued when the rollout succeeded: {result.backlog}")
    cores = os.cpu_count() or 1
    busy = result.machine_cpu / (cores * b)
    print(
        f"CPU during (b): the workers {sum(result.worker_cpu):.1f} s"
        f" ({', '.join(f'{c:.1f}' for c in result.worker_cpu)}); the whole machine"
        f" {result.machine_cpu:.1f} s of {cores * b:.1f} s ({busy:.0%} busy: PostgreSQL, Redis,"
        " this process and anything else running)"
    )


def _ms(delta: timedelta) -> str:
    return f"{delta.total_seconds() * 1000:.0f} ms"


def print_worker_profile(path: Path) -> None:
    """The first worker's profile: the project's own functions by cumulative time."""
    import io
    import pstats

    if not path.exists():
        print(f"(no profile written at {path})")
        return
    text = io.StringIO()
    stats = pstats.Stats(str(path), stream=text)
    stats.sort_stats("cumulative").print_stats(f"{REPO}/(dashboard|migrations)/", 50)
    print("\nthe first worker's tasks under cProfile, the project's functions (cumulative;")
    print("profiling slows them down, compare them with each other):")
    print(text.getvalue().replace(f"{REPO}/", ""))


def report_page(pages: list[PageTiming], count: int, verdicts: Verdicts) -> None:
    print(f"\npages at {count} targets (Django test client, signed in as a tech lead):")
    for page in pages:
        ordered = sorted(page.samples)
        median = statistics.median(ordered) * 1000
        p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))] * 1000
        text = (
            f"  {page.label} {page.path}: median {median:.1f} ms, p95 {p95:.1f} ms"
            f" over {len(ordered)} GETs, {page.queries} queries"
        )
        if page.label == "rollout page":
            verdicts.line(f"{text} (goal < {PAGE_GOAL_MS:.0f} ms)", median < PAGE_GOAL_MS)
        else:
            print(text)


# --- main -------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--tenants", type=int, default=200)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--parallelism", type=int, default=8)
    parser.add_argument("--waves", default='1, "10%", "100%"', help="TOML list body")
    parser.add_argument("--page-targets", type=int, default=500)
    parser.add_argument("--page-rounds", type=int, default=30)
    parser.add_argument("--beat", action="store_true", help="also run celery beat (ticks, reaper)")
    parser.add_argument(
        "--profile", action="store_true", help="cProfile the first worker's tasks, print the top"
    )
    parser.add_argument(
        "--what-if-no-post-run-refresh",
        action="store_true",
        help="diagnosis, not the product: mark every target's status read as queued before the"
        " approval, so no run queues the full status and drift read that follows it",
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 when a goal is missed")
    return parser.parse_args()


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # the same clean-up as Ctrl-C


@dataclass
class Processes:
    """The workers (and beat) this run started; stopped by ``stop`` whatever happened."""

    workers: list[Worker] = field(default_factory=list)
    beat: subprocess.Popen[bytes] | None = None

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()
        if self.beat is not None and self.beat.poll() is None:
            self.beat.terminate()
            self.beat.wait(timeout=20)


def setup_dashboard() -> tuple[dict[str, str], dict[str, Any]]:
    """This run's dashboard database, migrated, with a developer and two tech leads."""
    env = configure_process(f"{PREFIX}_dash")
    pg_admin(f'CREATE DATABASE "{PREFIX}_dash"')
    import django

    django.setup()
    import logging

    from celery import current_app
    from django.core.management import call_command

    current_app.loader.import_default_modules()  # send tasks by name from this process too
    logging.getLogger("alembic").setLevel(logging.WARNING)
    call_command("migrate", verbosity=0)
    return env, setup_people()


def measure_rollout(
    args: argparse.Namespace,
    env: dict[str, str],
    people: dict[str, Any],
    names: list[str],
    processes: Processes,
) -> RolloutResult:
    """Workers up, the fleet loaded and read, then (b); the workers are stopped after it."""
    processes.workers = [
        Worker(env, index, profile=args.profile and index == 0) for index in range(args.workers)
    ]
    deadline = time.monotonic() + 120
    for worker in processes.workers:
        worker.wait_ready(deadline)
    if args.beat:
        processes.beat = start_beat(env)
    fleet = load_fleet("tenants", names, url_template(f"{PREFIX}_"), args.waves, args.parallelism)
    read = statuses_read(fleet, timeout=60 + args.tenants)
    print(f"the workers read {args.tenants} targets' statuses in {read:.1f} s")
    print(f"(b) the dashboard rollout ... (load average {os.getloadavg()[0]:.2f})")
    if args.what_if_no_post_run_refresh:
        from django.db.models.functions import Now

        from dashboard.environments.models import Environment

        print("    WHAT-IF: no status/drift read queued after each run (not the product)")
        Environment.objects.filter(fleet=fleet).update(status_refresh_queued_at=Now())
    result = dashboard_rollout(fleet, people, processes.workers, timeout=120 + 5 * args.tenants)
    print(f"    {result.seconds:.1f} s (load average {os.getloadavg()[0]:.2f})")
    processes.stop()
    return result


def main() -> int:
    args = parse_args()
    signal.signal(signal.SIGTERM, _terminate)
    print(
        f"fleet rollout benchmark {RUN}: {args.tenants} PostgreSQL tenants, Magnetiq2 base -> head,"
        f" {args.workers} solo workers on runs+io, parallelism {args.parallelism},"
        f" waves [{args.waves}]; load average {os.getloadavg()[0]:.2f}"
    )
    processes, verdicts = Processes(), Verdicts()
    try:
        env, people = setup_dashboard()
        names = [f"t{i:04d}" for i in range(args.tenants)]
        started = time.perf_counter()
        create_databases([f"{PREFIX}_cli_{n}" for n in names] + [f"{PREFIX}_{n}" for n in names])
        print(
            f"created {2 * args.tenants} empty databases in {time.perf_counter() - started:.1f} s"
        )
        print(f"(a) the shell loop ... (load average {os.getloadavg()[0]:.2f})")
        shell = shell_loop([f"{PREFIX}_cli_{n}" for n in names])
        print(f"    {shell:.1f} s")
        result = measure_rollout(args, env, people, names, processes)
        report_rollout(args, shell, result, verdicts)
        if processes.workers[0].profile is not None:
            print_worker_profile(processes.workers[0].profile)
        page_request = build_page_rollout(args.page_targets, result.rollout, people)
        pages = page_timings(page_request, people["lead"], args.page_rounds)
        report_page(pages, args.page_targets, verdicts)
    except KeyboardInterrupt:
        print("\ninterrupted: cleaning up", file=sys.stderr)
        return 130
    finally:
        processes.stop()
        cleanup()
    verdicts.summary()
    if verdicts.missed:
        strict = " (--strict: exit 1)" if args.strict else ""
        print(f"\n{len(verdicts.missed)} goal(s) missed{strict}")
        return 1 if args.strict else 0
    print("\nall goals met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
