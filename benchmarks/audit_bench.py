"""Audit log benchmark: pages and CSV export over 1,000,000 events on PostgreSQL.

Run: ``.venv/bin/python benchmarks/audit_bench.py [--events N]``

Creates a throw-away database (``TEST_POSTGRES_URL`` server), migrates the
dashboard schema into it, generates the events with one ``INSERT ... SELECT
generate_series`` (hashes by PostgreSQL's ``sha256()``; the rows have realistic
sizes and value distributions, and ``prev_hash`` links each row to the one
before, but the hashes are not computed over the canonical form, so
``audit_verify`` would reject this synthetic chain: the benchmark measures
reads, not verification), then measures, side by side:

- the first page of the log and a page deep in it with two filters
  (environment + action), through the real view with Django's test client:
  median server time of 30 requests after warm-up;
- the CSV export of every event through the real streaming view: rows per
  second and the process's RSS sampled while streaming (peak and growth);
- the reference: ``psql \\copy`` of the same rows and columns to /dev/null.

The database is dropped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

ADMIN_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)

GENERATE = """
INSERT INTO audit_auditevent (
    seq, created_at, action, actor_type, actor_id, actor_username, actor_host, actor_pid,
    environment_id, environment_slug, request_id, from_revisions, to_revisions, sql_sha256,
    client_ip, user_agent, payload, prev_hash, hash)
SELECT
    g,
    timestamptz '2024-01-01 00:00:00+00' + g * interval '60 seconds',
    (ARRAY['dashboard.request.created','dashboard.request.approved','dashboard.run.started',
           'dashboard.run.succeeded','dashboard.auth.login','dashboard.auth.logout',
           'dashboard.run.failed','dashboard.request.rejected','dashboard.environment.changed',
           'dashboard.auth.login_failed'])[1 + (g * 7) % 10],
    CASE WHEN g % 4 = 2 THEN 'system' ELSE 'user' END,
    CASE WHEN g % 4 = 2 THEN NULL ELSE 1 + g % 50 END,
    CASE WHEN g % 4 = 2 THEN '' ELSE 'user' || (1 + g % 50) END,
    CASE WHEN g % 4 = 2 THEN 'worker-' || (g % 3) ELSE '' END,
    CASE WHEN g % 4 = 2 THEN 1000 + g % 97 ELSE NULL END,
    1 + g % 4,
    (ARRAY['development','staging','preproduction','production'])[1 + g % 4],
    g / 6,
    substr(md5('f' || g), 1, 12),
    substr(md5('t' || g), 1, 12),
    encode(sha256(('sql' || (g / 6))::bytea), 'hex'),
    CASE WHEN g % 4 = 2 THEN '' ELSE '10.0.' || (g % 250) || '.' || (g % 199) END,
    CASE WHEN g % 4 = 2 THEN '' ELSE 'Mozilla/5.0 (X11; Linux x86_64) Chrome/130.0' END,
    jsonb_build_object('plan', jsonb_build_array(substr(md5('p' || g), 1, 12)),
                       'duration_s', (g % 600) / 10.0, 'note', 'synthetic event ' || g),
    CASE WHEN g = 1 THEN repeat('0', 64) ELSE encode(sha256(('e' || (g - 1))::bytea), 'hex') END,
    encode(sha256(('e' || g)::bytea), 'hex')
FROM generate_series(1, {events}) AS g
"""


def _libpq(sqlalchemy_url: str, database: str | None = None) -> str:
    from sqlalchemy.engine import make_url

    url = make_url(sqlalchemy_url).set(drivername="postgresql")
    if database:
        url = url.set(database=database)
    return url.render_as_string(hide_password=False)


def _rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _median_ms(
    client: object, url: str, runs: int = 30, marker: bytes = b'<tr class="audit-'
) -> tuple[float, float, int]:
    for _ in range(3):
        response = client.get(url)  # type: ignore[attr-defined]
        assert response.status_code == 200, response.status_code
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        response = client.get(url)  # type: ignore[attr-defined]
        timings.append((time.perf_counter() - started) * 1000)
    rows = response.content.count(marker)
    return statistics.median(timings), min(timings), rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--keep", action="store_true", help="do not drop the database")
    args = parser.parse_args()

    import psycopg

    name = f"bench_audit_{uuid.uuid4().hex[:10]}"
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
    )
    try:
        return _run(args.events, database_url)
    finally:
        from django.db import connections

        connections.close_all()
        if not args.keep:
            with psycopg.connect(_libpq(ADMIN_URL), autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _run(events: int, database_url: str) -> int:
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client

    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(GENERATE.format(events=int(events)))
        cursor.execute("ANALYZE audit_auditevent")
    print(f"generated {events:,} events in {time.perf_counter() - started:.1f} s")

    user = get_user_model().objects.create_superuser("bench", "bench@example.com", "pw")
    client = Client()
    client.force_login(user)

    deep_before = events // 10  # 90 % of the way back in the log
    filters = "environment=production&action=dashboard.run.succeeded"
    pages = {
        "first page, no filter": "/audit/",
        "first page, 2 filters": f"/audit/?{filters}",
        f"deep page (seq < {deep_before:,}), 2 filters": f"/audit/?{filters}&before={deep_before}",
    }
    print("\n== log pages (median server time of 30, Django test client, full view) ==")
    for label, url in pages.items():
        median, best, shown = _median_ms(client, url)
        verdict = "ok" if median < 50 else "over goal"
        print(
            f"{label:<40} {median:7.1f} ms median, {best:5.1f} ms best "
            f"({shown} rows; goal < 50 ms: {verdict})"
        )
    median, best, shown = _median_ms(
        client, "/audit/timeline/?environment=production", runs=10, marker=b'<tr id="request-'
    )
    print(
        f"{'who applied what (production)':<40} {median:7.1f} ms median, {best:5.1f} ms best "
        f"({shown} requests)"
    )
    print(f"(load average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    print("\n== the page queries alone (EXPLAIN ANALYZE, median of 15) ==")
    from dashboard.audit.forms import AuditFilterForm
    from dashboard.audit.selectors import audit_event_queryset

    for label, url in pages.items():
        query = dict(part.split("=") for part in url.partition("?")[2].split("&") if part)
        before = query.pop("before", None)
        form = AuditFilterForm(query)
        queryset = audit_event_queryset(filters=form.filters())
        if before:
            queryset = queryset.filter(seq__lt=int(before))
        sql, params = queryset.order_by("-seq")[:51].query.sql_with_params()
        timings, plan = [], ""
        with connection.cursor() as cursor:
            for _ in range(15):
                cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, params)
                document = cursor.fetchone()[0]
                document = document if isinstance(document, list) else json.loads(document)
                timings.append(document[0]["Execution Time"])
                node = document[0]["Plan"]["Plans"][0]
                plan = f"{node['Node Type']} using {node.get('Index Name', '-')}"
        print(f"{label:<40} {statistics.median(timings):7.2f} ms  ({plan})")

    print("\n== CSV export of every event ==")
    rss_before = _rss_mb()
    peak = rss_before
    started = time.perf_counter()
    response = client.post("/audit/export.csv")  # an export is a POST (it writes an event)
    lines = 0
    for chunk in response.streaming_content:
        lines += chunk.count(b"\n")
        peak = max(peak, _rss_mb())
    dashboard_seconds = time.perf_counter() - started
    rows = lines - 1
    print(
        f"dashboard streaming view: {rows:,} rows in {dashboard_seconds:.2f} s = "
        f"{rows / dashboard_seconds:,.0f} rows/s (goal >= 50,000)"
    )
    print(
        f"RSS while streaming: {rss_before:.0f} MB at start, peak {peak:.0f} MB "
        f"(+{peak - rss_before:.0f} MB); ru_maxrss of the process "
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB"
    )

    from dashboard.audit.selectors import EXPORT_COLUMNS

    columns = ", ".join(EXPORT_COLUMNS)  # the same columns as the dashboard's export
    copy = (
        f"\\copy (SELECT {columns} FROM audit_auditevent ORDER BY seq) "
        "TO '/dev/null' WITH (FORMAT csv, HEADER)"
    )
    started = time.perf_counter()
    subprocess.run(["psql", database_url, "-q", "-c", copy], check=True)
    psql_seconds = time.perf_counter() - started
    print(
        f"reference psql \\copy:     {events:,} rows in {psql_seconds:.2f} s = "
        f"{events / psql_seconds:,.0f} rows/s"
    )
    print(f"ratio dashboard / psql \\copy (time): {dashboard_seconds / psql_seconds:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
