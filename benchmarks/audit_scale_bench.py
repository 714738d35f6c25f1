"""Audit log at 10,000,000 events: filtered pages and daily chain verification (PostgreSQL).

Run: ``.venv/bin/python benchmarks/audit_scale_bench.py [--events 10000000] [--new-events 1000000]``

What it does, in one run, in a throw-away database on the ``TEST_POSTGRES_URL``
server (dropped at the end unless ``--keep``):

1. Migrates the dashboard schema, with the audit app one migration short of
   the search indexes (``audit/0004``), and generates ``--events`` events
   with a **valid** hash chain: every hash is the product's own
   ``event_hash`` over the canonical form, computed in Python and streamed to
   PostgreSQL with ``COPY`` (the table's secondary indexes are dropped for the
   load and rebuilt afterwards, as a restore would). The events follow a
   story: logins and logouts, failed logins, migration requests on 50
   environments (created, approved, run, succeeded or failed, some rejected
   or cancelled) over a pool of 3,000 revision ids, environment changes,
   exports, a daily verification, API token events only in the oldest 15 %
   of the log (a feature used once and then abandoned: the case where a
   newest-first scan meets no match for millions of rows).
2. For every filter of the log page, the first page and a page 90 % back
   (``before=``): the median time of the query as the log page runs it
   (``audit_event_page``, model instances built), three ways:
   ``legacy`` = the query before issue 11 item 18 on the old indexes,
   ``legacy+idx`` = the same query once ``audit/0004`` built its indexes,
   ``shipped`` = the product's selector now. Ratio against the goal (50 ms)
   and against ``legacy``. Then the shipped log page through the whole view
   (Django test client: session, permission, template).
3. Daily verification: a checkpoint at ``events - new_events`` (as if
   yesterday's run had verified up to there), then ``manage.py audit_verify``
   in a subprocess: wall time and peak RSS (``ru_maxrss`` of the child). For
   reference, the old walk's first step: ``.iterator()`` in autocommit
   (a ``WITH HOLD`` cursor) over the whole table — time until the first row
   and the temporary file it wrote. With ``--full-walk``, also
   ``audit_verify --full`` over everything.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from dashboard.audit.chain import CHAIN_FIELDS  # noqa: E402 -- pure Python, no Django

ADMIN_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
GOAL_MS = 50.0
BEFORE_INDEXES = "0003_chain_verification_mode"
START = datetime(2024, 1, 1, tzinfo=UTC)
STEP = timedelta(seconds=6)  # 10 M events over about two years
# The chain's fields in export order, then the hash: COPY's column list.
COLUMNS = (*CHAIN_FIELDS, "hash")
RARE_REVISION = "beef0000cafe"


def _libpq(sqlalchemy_url: str, database: str | None = None) -> str:
    from sqlalchemy.engine import make_url

    url = make_url(sqlalchemy_url).set(drivername="postgresql")
    if database:
        url = url.set(database=database)
    return url.render_as_string(hide_password=False)


# --- the synthetic history ---------------------------------------------------------


class Story:
    """Generates events as canonical dicts (``CHAIN_FIELDS`` minus seq/prev_hash/time)."""

    def __init__(self, total: int, seed: int = 11) -> None:
        self.rng = random.Random(seed)
        self.total = total
        self.environments = [(1, "production"), (2, "staging"), (3, "dev")] + [
            (number, f"tenant-{number:03d}") for number in range(4, 51)
        ]
        self.environment_weights = [10, 10, 15] + [1] * 47
        self.users = [(number, f"user{number:03d}") for number in range(1, 301)]
        self.leads = self.users[:20]
        self.revisions = [f"{self.rng.getrandbits(48):012x}" for _ in range(3000)]
        self.request_id = 0
        self.pending: list[dict[str, Any]] = []

    def _base(self, action: str, **fields: Any) -> dict[str, Any]:
        event = {
            "action": action,
            "actor_type": "system",
            "actor_id": None,
            "actor_username": "",
            "actor_host": "",
            "actor_pid": None,
            "environment_id": None,
            "environment_slug": "",
            "request_id": None,
            "from_revisions": [],
            "to_revisions": [],
            "sql_sha256": "",
            "client_ip": "",
            "user_agent": "",
            "payload": {},
        }
        event.update(fields)
        return event

    def _user(self, people: list[tuple[int, str]] | None = None) -> dict[str, Any]:
        actor_id, username = self.rng.choice(people or self.users)
        return {
            "actor_type": "user",
            "actor_id": actor_id,
            "actor_username": username,
            "client_ip": f"10.{actor_id % 7}.{actor_id % 250}.{self.rng.randrange(1, 250)}",
            "user_agent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/130.0",
        }

    def _worker(self) -> dict[str, Any]:
        return {
            "actor_host": f"worker-{self.rng.randrange(4)}",
            "actor_pid": 1000 + self.rng.randrange(97),
        }

    def _request_story(self, seq: int) -> list[dict[str, Any]]:
        rng = self.rng
        self.request_id += 1
        environment_id, slug = rng.choices(self.environments, self.environment_weights)[0]
        start = rng.randrange(len(self.revisions) - 3)
        plan = self.revisions[start + 1 : start + 1 + rng.randrange(1, 4)]
        if seq > self.total * 0.3 and rng.random() < 0.00002:
            plan = [RARE_REVISION]  # a handful of requests in the whole log
        lifecycle = {
            "environment_id": environment_id,
            "environment_slug": slug,
            "request_id": self.request_id,
            "from_revisions": [self.revisions[start]],
            "to_revisions": [plan[-1]],
            "sql_sha256": hashlib.sha256(b"sql %d" % self.request_id).hexdigest(),
        }
        common = {"direction": "upgrade", "target": plan[-1]}
        events = [
            self._base(
                "dashboard.request.created",
                **lifecycle,
                **self._user(),
                payload={**common, "reason": f"ticket MAG-{self.request_id}", "revisions": plan},
            )
        ]
        fate = rng.random()
        if fate < 0.08:
            events.append(
                self._base(
                    "dashboard.request.rejected",
                    **lifecycle,
                    **self._user(self.leads),
                    payload={**common, "comment": "not this week"},
                )
            )
            return events
        if fate < 0.12:
            events.append(
                self._base(
                    "dashboard.request.cancelled", **lifecycle, **self._user(), payload=common
                )
            )
            return events
        for number in range(1, (2 if slug == "production" else 1) + 1):
            events.append(
                self._base(
                    "dashboard.request.approved",
                    **lifecycle,
                    **self._user(self.leads),
                    payload={
                        **common,
                        "approvals": number,
                        "comment": "",
                        "sql_acknowledged": False,
                    },
                )
            )
        events.append(
            self._base(
                "dashboard.run.started",
                **lifecycle,
                **self._worker(),
                payload={**common, "run": self.request_id, "approved_revisions": plan},
            )
        )
        outcome = "failed" if rng.random() < 0.1 else "succeeded"
        applied = plan if outcome == "succeeded" else plan[:-1]
        events.append(
            self._base(
                f"dashboard.run.{outcome}",
                **{
                    **lifecycle,
                    "to_revisions": [applied[-1]] if applied else lifecycle["from_revisions"],
                    "sql_sha256": hashlib.sha256(b"executed %d" % self.request_id).hexdigest(),
                },
                **self._worker(),
                payload={
                    **common,
                    "run": self.request_id,
                    "applied": applied,
                    "committed": applied,
                    "approved_revisions": plan,
                    "executed_statements": 3 * len(applied),
                    "reason": "" if outcome == "succeeded" else "error",
                    "error": "" if outcome == "succeeded" else "lock timeout",
                },
            )
        )
        return events

    def _single(self, seq: int) -> dict[str, Any]:
        rng = self.rng
        draw = rng.random()
        if draw < 0.36:
            return self._base("dashboard.auth.login", **self._user())
        if draw < 0.62:
            return self._base("dashboard.auth.logout", **self._user())
        if draw < 0.65:
            return self._base(
                "dashboard.auth.login_failed",
                actor_type="anonymous",
                client_ip=f"192.0.2.{rng.randrange(1, 250)}",
                user_agent="curl/8.5.0",
                payload={"username": rng.choice(self.users)[1]},
            )
        if draw < 0.655:
            environment_id, slug = rng.choices(self.environments, self.environment_weights)[0]
            return self._base(
                "dashboard.environment.changed",
                environment_id=environment_id,
                environment_slug=slug,
                **self._user(self.leads),
                payload={"changed": {"lock_timeout": {"old": "5s", "new": "10s"}}},
            )
        if draw < 0.658:
            return self._base(
                "dashboard.audit.exported",
                **self._user(),
                payload={"filters": {}, "format": "csv", "up_to_seq": seq - 1},
            )
        if draw < 0.659:
            return self._base(
                "dashboard.auth.groups_changed",
                **self._user(self.leads[:2]),
                payload={"user": rng.choice(self.users)[1], "added": ["Developers"]},
            )
        if draw < 0.661 and seq < self.total * 0.15:
            return self._base(
                rng.choice(["dashboard.api.token_created", "dashboard.api.token_revoked"]),
                **self._user(),
                payload={"token": "ci"},
            )
        return {}

    def __iter__(self) -> Iterator[dict[str, Any]]:
        seq = 0
        day = 14_400  # events per day at one every 6 s: one verification a day
        while seq < self.total:
            if self.pending:
                event = self.pending.pop(0)
            elif seq % day == day - 1:
                event = self._base(
                    "dashboard.audit.verified",
                    **self._worker(),
                    payload={"ok": True, "events_checked": day, "head_seq": seq},
                )
            elif self.rng.random() < 0.12:
                self.pending = self._request_story(seq)
                continue
            else:
                event = self._single(seq + 1)
                if not event:
                    continue
            seq += 1
            yield event


def _copy_line(event: dict[str, Any]) -> str:
    values = []
    for name in COLUMNS:
        value = event[name]
        if value is None:
            values.append("\\N")
        elif name in ("from_revisions", "to_revisions"):
            values.append(" ".join(value))
        elif name == "payload":
            values.append(json.dumps(value, sort_keys=True, separators=(",", ":")))
        else:
            values.append(str(value))
    return "\t".join(values) + "\n"


def generate(database_url: str, total: int) -> dict[str, Any]:
    """COPY ``total`` chained events into an empty ``audit_auditevent``; return set-up facts."""
    import psycopg

    from dashboard.audit.chain import GENESIS_HASH, event_hash, format_timestamp

    facts: dict[str, Any] = {}
    with psycopg.connect(database_url) as conn:
        definitions = conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'audit_auditevent'"
            " AND indexname NOT IN (SELECT conname FROM pg_constraint"
            "  WHERE conrelid = 'audit_auditevent'::regclass)"
        ).fetchall()
        unique = conn.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE conrelid = 'audit_auditevent'::regclass AND contype = 'u'"
        ).fetchall()
        for name, _ in definitions:
            conn.execute(f'DROP INDEX "{name}"')
        for name, _ in unique:
            conn.execute(f'ALTER TABLE audit_auditevent DROP CONSTRAINT "{name}"')
        started = time.perf_counter()
        prev_hash, moment = GENESIS_HASH, START
        with conn.cursor().copy(f"COPY audit_auditevent ({', '.join(COLUMNS)}) FROM STDIN") as copy:
            block: list[str] = []
            for seq, event in enumerate(Story(total), 1):
                moment += STEP
                event.update(seq=seq, created_at=format_timestamp(moment), prev_hash=prev_hash)
                event["hash"] = prev_hash = event_hash(event)
                block.append(_copy_line(event))
                if len(block) == 20_000:
                    copy.write("".join(block))
                    block = []
                    if seq % 1_000_000 == 0:
                        print(
                            f"  {seq:,} events ({time.perf_counter() - started:.0f} s)", flush=True
                        )
            copy.write("".join(block))
        facts["copy_seconds"] = time.perf_counter() - started
        started = time.perf_counter()
        conn.execute("SET maintenance_work_mem = '1GB'")
        for name, definition in unique:
            conn.execute(f'ALTER TABLE audit_auditevent ADD CONSTRAINT "{name}" {definition}')
        for _, definition in definitions:
            conn.execute(definition)
    # Steady state of an append-only table: autovacuum has set the visibility
    # map and the statistics are fresh (VACUUM cannot run in a transaction).
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE) audit_auditevent")
        facts["index_seconds"] = time.perf_counter() - started
        facts["table_size"] = conn.execute(
            "SELECT pg_size_pretty(pg_table_size('audit_auditevent')),"
            " pg_size_pretty(pg_indexes_size('audit_auditevent'))"
        ).fetchone()
    return facts


# --- filters ------------------------------------------------------------------------


def _legacy_queryset(filters: Any) -> Any:
    """The log's query as it was before issue 11 item 18 (for the side-by-side)."""
    from django.db.models import Q

    from dashboard.audit.models import AuditEvent
    from dashboard.audit.selectors import _day_start

    queryset = AuditEvent.objects.all()
    if filters.environment:
        queryset = queryset.filter(environment_slug=filters.environment)
    if filters.actor:
        queryset = queryset.filter(actor_username=filters.actor)
    if filters.action.endswith("*"):
        queryset = queryset.filter(action__startswith=filters.action.rstrip("*"))
    elif filters.action:
        queryset = queryset.filter(action=filters.action)
    if filters.date_from:
        queryset = queryset.filter(created_at__gte=_day_start(filters.date_from))
    if filters.date_to:
        queryset = queryset.filter(created_at__lt=_day_start(filters.date_to + timedelta(days=1)))
    if filters.revision:
        queryset = queryset.filter(
            Q(from_revisions__contains=filters.revision)
            | Q(to_revisions__contains=filters.revision)
        )
    if filters.request_id is not None:
        queryset = queryset.filter(request_id=filters.request_id)
    return queryset


def _legacy_page(filters: Any, before: int | None) -> int:
    queryset = _legacy_queryset(filters)
    if before is not None:
        queryset = queryset.filter(seq__lt=before)
    return len(list(queryset.order_by("-seq")[:51]))


def _shipped_page(filters: Any, before: int | None) -> int:
    from dashboard.audit.selectors import audit_event_page

    return len(audit_event_page(filters=filters, before=before).events)


@dataclass
class Timing:
    median_ms: float
    rows: int
    runs: int


def _measure(page: Callable[[Any, int | None], int], filters: Any, before: int | None) -> Timing:
    page(filters, before)  # warm-up (and the first, cold, plan)
    timings: list[float] = []
    rows = 0
    for _ in range(15):
        started = time.perf_counter()
        rows = page(filters, before)
        timings.append((time.perf_counter() - started) * 1000)
        if sum(timings) > 8000 and len(timings) >= 3:  # a sequential scan: 3 are enough
            break
    return Timing(statistics.median(timings), rows, len(timings))


def _filters(events: int) -> list[tuple[str, dict[str, Any]]]:
    middle = (START + STEP * (events // 2)).date()
    oldest = (START + STEP * (events // 10)).date()
    return [
        ("no filter", {}),
        ("environment=production", {"environment": "production"}),
        ("environment=tenant-040 (rare)", {"environment": "tenant-040"}),
        ("actor=user007", {"actor": "user007"}),
        ("action=dashboard.run.failed", {"action": "dashboard.run.failed"}),
        ("action=dashboard.run.*", {"action": "dashboard.run.*"}),
        ("action=dashboard.request.*", {"action": "dashboard.request.*"}),
        ("action=dashboard.audit.*", {"action": "dashboard.audit.*"}),
        ("action=dashboard.api.* (oldest 15 %)", {"action": "dashboard.api.*"}),
        ("revision=<12-char id>", {"revision": "REVISION"}),
        ("revision=<6-char prefix>", {"revision": "PREFIX"}),
        (f"revision={RARE_REVISION} (a few events)", {"revision": RARE_REVISION}),
        ("request=<middle>", {"request_id": "REQUEST"}),
        (f"date {middle} (one day)", {"date_from": middle, "date_to": middle}),
        (
            "environment + action",
            {"environment": "production", "action": "dashboard.run.succeeded"},
        ),
        ("environment + action prefix", {"environment": "staging", "action": "dashboard.run.*"}),
        ("actor + action prefix", {"actor": "user007", "action": "dashboard.auth.*"}),
        ("actor + action prefix, no match", {"actor": "user007", "action": "dashboard.run.*"}),
        ("environment + revision", {"environment": "production", "revision": "REVISION"}),
        (
            "action prefix + 7 days",
            {
                "action": "dashboard.request.*",
                "date_from": middle,
                "date_to": middle + timedelta(days=6),
            },
        ),
        ("date_to only (the oldest 10 %)", {"date_to": oldest}),
        ("date_from only", {"date_from": middle}),
    ]


def _resolve(values: dict[str, Any], samples: dict[str, Any]) -> Any:
    from dashboard.audit.selectors import EventFilters

    resolved = {
        key: samples.get(value, value) if isinstance(value, str) else value
        for key, value in values.items()
    }
    return EventFilters(**resolved)


def _samples() -> dict[str, Any]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT to_revisions FROM audit_auditevent WHERE seq > (SELECT max(seq) / 2"
            " FROM audit_auditevent) AND action = 'dashboard.run.succeeded' LIMIT 1"
        )
        revision = cursor.fetchone()[0]
        cursor.execute(
            "SELECT request_id FROM audit_auditevent WHERE seq > (SELECT max(seq) / 2"
            " FROM audit_auditevent) AND request_id IS NOT NULL LIMIT 1"
        )
        request_id = cursor.fetchone()[0]
    return {"REVISION": revision, "PREFIX": revision[:6], "REQUEST": request_id}


def measure_pages(
    events: int, variants: dict[str, Callable[..., int]]
) -> dict[str, dict[str, Timing]]:
    samples = _samples()
    deep = events // 10
    results: dict[str, dict[str, Timing]] = {}
    for label, values in _filters(events):
        filters = _resolve(values, samples)
        for page_label, before in (("first", None), ("deep", deep)):
            key = f"{label} [{page_label}]"
            results[key] = {
                name: _measure(page, filters, before) for name, page in variants.items()
            }
            line = "  ".join(
                f"{name} {timing.median_ms:9.2f} ms ({timing.rows:2d})"
                for name, timing in results[key].items()
            )
            print(f"  {key:<52} {line}", flush=True)
    return results


# --- verification ----------------------------------------------------------------


def _child_run(arguments: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Run ``manage.py`` with ``arguments``; return (seconds, its peak RSS in MB, last line)."""
    started = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, str(REPO_ROOT / "manage.py"), *arguments],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    output = child.stdout.read().decode() if child.stdout else ""
    _, _, usage = os.wait4(child.pid, 0)  # this child's own rusage
    seconds = time.perf_counter() - started
    lines = output.strip().splitlines()
    return seconds, usage.ru_maxrss / 1024, lines[-1] if lines else ""


def measure_verification(events: int, new_events: int, *, full_walk: bool) -> dict[str, Any]:
    from django.db import connection

    from dashboard.audit.models import AuditEvent, ChainVerification

    figures: dict[str, Any] = {}
    checkpoint = AuditEvent.objects.get(seq=events - new_events)
    ChainVerification.objects.create(
        checked_at=checkpoint.created_at,
        ok=True,
        events_checked=checkpoint.seq,
        head_seq=checkpoint.seq,
        head_hash=checkpoint.hash,
        message="checkpoint planted by the benchmark",
        mode=ChainVerification.Mode.FULL,
        from_seq=1,
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "dashboard.settings"}
    seconds, rss, output = _child_run(["audit_verify"], env)
    figures["incremental"] = (seconds, rss, output)
    print(
        f"  daily (incremental from #{checkpoint.seq:,}): {seconds:.1f} s, peak RSS {rss:.0f} MB: {output}"
    )

    # The old walk's first step: a WITH HOLD cursor materialises the whole table.
    with connection.cursor() as cursor:
        cursor.execute("SELECT temp_bytes FROM pg_stat_database WHERE datname = current_database()")
        temp_before = cursor.fetchone()[0]
    started = time.perf_counter()
    iterator = AuditEvent.objects.order_by("seq").iterator(chunk_size=5000)
    next(iterator)
    first_row = time.perf_counter() - started
    del iterator
    connection.close()
    time.sleep(1)  # statistics are flushed when the backend exits
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_force_next_flush()")
        cursor.execute("SELECT temp_bytes FROM pg_stat_database WHERE datname = current_database()")
        temp_after = cursor.fetchone()[0]
    figures["with_hold"] = (first_row, (temp_after - temp_before) / 2**20)
    print(
        f"  old walk (.iterator() in autocommit = WITH HOLD cursor): first row after "
        f"{first_row:.1f} s, temporary file {(temp_after - temp_before) / 2**20:,.0f} MB"
    )
    if full_walk:
        seconds, rss, output = _child_run(["audit_verify", "--full"], env)
        figures["full"] = (seconds, rss, output)
        print(f"  full walk: {seconds:.1f} s, peak RSS {rss:.0f} MB: {output}")
    return figures


# --- main ---------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--new-events", type=int, default=1_000_000)
    parser.add_argument("--keep", action="store_true", help="do not drop the database")
    parser.add_argument("--full-walk", action="store_true", help="also time audit_verify --full")
    args = parser.parse_args()

    import psycopg

    name = f"bench_audit_scale_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(_libpq(ADMIN_URL), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    database_url = _libpq(ADMIN_URL, name)
    os.environ.update(
        DJANGO_SETTINGS_MODULE="dashboard.settings",
        DASHBOARD_DATABASE_URL=database_url,
        DJANGO_SECRET_KEY="benchmark-only",
        DJANGO_ALLOWED_HOSTS="testserver",
        DJANGO_LOG_LEVEL="WARNING",
        DASHBOARD_VAR_DIR=f"/tmp/{name}",
        DASHBOARD_DB_CONN_MAX_AGE="0",
    )
    print(f"database {name}; {os.cpu_count()} CPUs; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    try:
        return _run(args, database_url)
    finally:
        from django.db import connections

        connections.close_all()
        if args.keep:
            print(f"kept database {name}")
        else:
            with psycopg.connect(_libpq(ADMIN_URL), autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            print(f"dropped database {name}")


def _run(args: argparse.Namespace, database_url: str) -> int:
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    call_command("migrate", "audit", BEFORE_INDEXES, verbosity=0)
    print(f"\n== generating {args.events:,} events (valid chain, COPY) ==")
    facts = generate(database_url, args.events)
    print(
        f"  COPY {facts['copy_seconds']:.0f} s, indexes + VACUUM ANALYZE"
        f" {facts['index_seconds']:.0f} s;"
        f" table {facts['table_size'][0]}, indexes {facts['table_size'][1]}"
    )

    print("\n== legacy query, old indexes (median ms, rows) ==")
    legacy = measure_pages(args.events, {"legacy": _legacy_page})

    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("SET maintenance_work_mem = '1GB'")
    call_command("migrate", "audit", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE audit_auditevent")
        cursor.execute("SELECT pg_size_pretty(pg_indexes_size('audit_auditevent'))")
        sizes = cursor.fetchone()[0]
    print(
        f"\n== audit migrations applied (new indexes built in {time.perf_counter() - started:.0f} s; indexes now {sizes}) =="
    )
    print("== legacy query on the new indexes vs the shipped selector (median ms, rows) ==")
    indexed = measure_pages(args.events, {"legacy+idx": _legacy_page, "shipped": _shipped_page})
    _summary(legacy, indexed)
    print(f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")

    print(f"\n== chain verification: {args.new_events:,} new events on a log of {args.events:,} ==")
    measure_verification(args.events, args.new_events, full_walk=args.full_walk)
    _views(args.events)  # last: it writes events (a user, logins) after the log's end
    print(f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    return 0


def _summary(legacy: dict[str, dict[str, Timing]], indexed: dict[str, dict[str, Timing]]) -> None:
    print(f"\n== summary: shipped vs goal ({GOAL_MS:.0f} ms) and vs legacy ==")
    worst = 0.0
    for key, timings in indexed.items():
        shipped = timings["shipped"].median_ms
        old = legacy[key]["legacy"].median_ms
        worst = max(worst, shipped)
        print(
            f"  {key:<52} {shipped:8.2f} ms = {shipped / GOAL_MS:5.2f}x the goal;"
            f" legacy {old:9.1f} ms = {old / shipped:7.1f}x the shipped time"
        )
    print(f"  slowest shipped page query: {worst:.2f} ms ({worst / GOAL_MS:.2f}x goal)")


def _views(events: int) -> None:
    from django.contrib.auth import get_user_model
    from django.test import Client

    user = get_user_model().objects.create_superuser("bench", "bench@example.com", "pw")
    client = Client()
    client.force_login(user)
    samples = _samples()
    deep = events // 10
    print("\n== the whole log view (test client, median of 15) ==")
    for query in (
        "",
        f"before={deep}",
        "action=dashboard.api.*",
        f"revision={samples['REVISION']}",
        "environment=staging&action=dashboard.run.*",
        f"revision={samples['PREFIX']}&before={deep}",
    ):
        url = f"/audit/?{query}"
        for _ in range(2):
            assert client.get(url).status_code == 200
        timings = []
        for _ in range(15):
            started = time.perf_counter()
            client.get(url)
            timings.append((time.perf_counter() - started) * 1000)
        print(f"  {url:<60} {statistics.median(timings):7.1f} ms")
    url = "/audit/timeline/?environment=production"
    client.get(url)
    timings = []
    for _ in range(5):
        started = time.perf_counter()
        client.get(url)
        timings.append((time.perf_counter() - started) * 1000)
    print(f"  {url:<60} {statistics.median(timings):7.1f} ms (who applied what, 50 requests)")


if __name__ == "__main__":
    sys.exit(main())
