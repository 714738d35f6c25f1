"""Where each page's time goes, one request at a time (no concurrency).

Run by ``benchmarks/load_bench.py`` after the load (same database, same
environment); standalone with the environment of a kept run (``--keep``)::

    .venv/bin/python benchmarks/load/profile_pages.py --manifest /tmp/load_x/manifest.json

Each page type is requested ``--repeat`` times through Django's test client as
the role that browses it in the load test (after one warm-up). Prints the
median server time, the number of SQL queries, their total time and the
slowest query of the median request, as JSON lines the runner turns into a
table; last, the median time of one password check (the CPU a log-in costs).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))


def page_urls(manifest: dict[str, Any]) -> list[tuple[str, str, str, dict[str, str]]]:
    """(name, username, url, extra headers) per page type of the load test."""
    rng = random.Random(5)
    rev = rng.choice(manifest["revisions"])
    request_id = manifest["requests"][len(manifest["requests"]) // 2]
    pending = (manifest["pending_requests"] or manifest["requests"])[0]
    head = manifest["audit_head_seq"]
    filters = "environment=production&action=dashboard.run.succeeded"
    htmx = {"HTTP_HX_REQUEST": "true"}
    urls = [
        ("/ (overview)", "developer", "/", {}),
        ("/graph/", "developer", "/graph/", {}),
        ("/graph/revisions/[id]/ (htmx)", "developer", f"/graph/revisions/{rev}/", htmx),
    ]
    urls += [
        (f"/environments/{slug}/", "developer", f"/environments/{slug}/", {})
        for slug in manifest["environments"]
    ]
    urls += [
        ("/requests/ (mine)", "developer", "/requests/", {}),
        ("/requests/[id]/", "lead", f"/requests/{request_id}/", {}),
        ("/requests/[id]/status/ (htmx poll)", "lead", f"/requests/{pending}/status/", htmx),
        ("/requests/waiting/", "lead", "/requests/waiting/", {}),
        ("/audit/ (first page)", "auditor", "/audit/", {}),
        ("/audit/?filters", "auditor", f"/audit/?{filters}", {}),
        ("/audit/?filters&before= (deep)", "auditor", f"/audit/?{filters}&before={head // 4}", {}),
        ("/audit/events/[seq]/", "auditor", f"/audit/events/{head // 2}/", {}),
        ("/audit/timeline/", "auditor", "/audit/timeline/?environment=production", {}),
    ]
    return urls


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", required=True, type=Path)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--password-check", action="store_true", help="also time a password check")
    parser.add_argument("--only-password-check", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")
    import logging

    import django

    django.setup()
    logging.getLogger("alembic").setLevel(logging.WARNING)
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    if args.only_password_check:
        _password_check()
        return 0
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    manifest = json.loads(args.manifest.read_text())
    clients: dict[str, Client] = {}
    for name, username, url, headers in page_urls(manifest):
        if username not in clients:
            clients[username] = Client()
            clients[username].force_login(get_user_model().objects.get(username=username))
        client = clients[username]
        client.get(url, **headers)  # warm-up
        runs = []
        for _ in range(args.repeat):
            with CaptureQueriesContext(connection) as queries:
                started = time.perf_counter()
                response = client.get(url, **headers)
                elapsed = (time.perf_counter() - started) * 1000
            timings = [float(q["time"]) * 1000 for q in queries.captured_queries]
            slowest = max(queries.captured_queries, key=lambda q: float(q["time"]), default=None)
            runs.append(
                {
                    "ms": elapsed,
                    "status": response.status_code,
                    "queries": len(timings),
                    "sql_ms": sum(timings),
                    "slowest_ms": max(timings, default=0.0),
                    "slowest_sql": (slowest or {}).get("sql", "")[:300],
                }
            )
        runs.sort(key=lambda r: r["ms"])
        median = runs[len(runs) // 2]
        print(
            json.dumps(
                {"name": name, **median, "median_ms": statistics.median(r["ms"] for r in runs)}
            ),
            flush=True,
        )
    if args.password_check:
        _password_check()
    return 0


def _password_check() -> None:
    """Print the median time of one password check (what a log-in costs in CPU)."""
    from django.contrib.auth.hashers import check_password, make_password

    hashed = make_password("demo")
    checks = []
    for _ in range(3):
        started = time.perf_counter()
        check_password("demo", hashed)
        checks.append((time.perf_counter() - started) * 1000)
    print(json.dumps({"password_check_ms": statistics.median(checks)}), flush=True)


if __name__ == "__main__":
    sys.exit(main())
