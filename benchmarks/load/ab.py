"""A/B of a candidate fix under the same load, robust to a busy shared machine.

``benchmarks/load_bench.py --what-if NAMES --ab-rounds N`` serves the product
(A: ``dashboard.wsgi``) and the product with the fixes (B:
``benchmarks.load.whatif_wsgi``) side by side from two gunicorns on the same
database, and alternates Locust windows of ``--duration`` seconds between
them (A B, B A, A B, ...), so both sides see the same background load from
other processes. Each window starts with its own log-ins; only the pages
after a window's last log-in count ("steady"). Prints one comparison table.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.load.report import Row, _merge, summarise


def _side_line(name: str, rows: list[Row], windows: list[dict[str, Any]]) -> str:
    steady = _merge(name, rows)
    seconds = sum(w["elapsed"] for w in windows) or 1.0
    pages = sum(w["pages"] for w in windows) or 1
    gunicorn = sum(w["gunicorn_cpu"] for w in windows)
    logins = sum(w["logins"] for w in windows)
    login_ms = windows[0]["password_check_ms"] if windows else 0.0
    per_page = max(gunicorn * 1000 - logins * login_ms, 0.0) / pages
    postgres = sum(w["postgres_cpu"] for w in windows) * 1000 / pages
    busy = sum(w["busy"] for w in windows) / seconds / (os.cpu_count() or 1) * 100
    return (
        f"| {name} | {steady.count:,} | {steady.failures} | {steady.stat(0.5):.0f} | "
        f"{steady.stat(0.95):.0f} | {steady.stat(0.99):.0f} | {per_page:.0f} | {postgres:.0f} | "
        f"{busy:.0f} % |"
    )


def ab_compare(
    *,
    args: argparse.Namespace,
    env: dict[str, str],
    work: Path,
    manifest: dict[str, Any],
    start_server: Callable[..., Any],
    run_locust: Callable[..., dict[str, Any]],
    password_check_ms: float,
) -> str:
    """Run the alternating windows; returns the Markdown comparison."""
    sides = {
        "A: product": ("dashboard.wsgi:application", {**env, "LOAD_WHAT_IF": ""}),
        f"B: + {args.what_if}": ("benchmarks.load.whatif_wsgi:application", env),
    }
    rows: dict[str, list[Row]] = {name: [] for name in sides}
    windows: dict[str, list[dict[str, Any]]] = {name: [] for name in sides}
    with contextlib.ExitStack() as stack:
        servers = {
            name: stack.enter_context(start_server(app, side_env, work / f"gunicorn-{i}.log"))
            for i, (name, (app, side_env)) in enumerate(sides.items())
        }
        names = list(sides)
        for round_no in range(args.ab_rounds):
            order = names if round_no % 2 == 0 else names[::-1]
            for name in order:
                base, pid = servers[name]
                result = run_locust(base=base, work=work, env=env, args=args, server_pid=pid)
                summary = summarise(result["samples"], goal_p95_ms=300.0)
                if summary.steady:
                    rows[name].append(summary.steady)
                cpu = result["cpu_seconds"]
                windows[name].append(
                    {
                        "elapsed": result["elapsed"],
                        "pages": summary.browsing.count,
                        "logins": sum(1 for s in result["samples"] if s[0].startswith("POST")),
                        "gunicorn_cpu": next(v for k, v in cpu.items() if "gunicorn" in k),
                        "postgres_cpu": next(v for k, v in cpu.items() if "PostgreSQL" in k),
                        "busy": result["machine_busy_seconds"],
                        "password_check_ms": password_check_ms,
                    }
                )
                print(
                    f"  round {round_no + 1} {name}: steady p95 "
                    f"{summary.steady.stat(0.95) if summary.steady else 0:.0f} ms",
                    flush=True,
                )
    lines = [
        f"A/B, {args.ab_rounds} rounds of {args.duration} s windows per side, {args.users} users "
        f"each (pages after each window's log-ins):",
        "",
        "| side | pages | failures | median ms | p95 ms | p99 ms | gunicorn CPU ms/page "
        "| PostgreSQL CPU ms/page (whole server) | machine busy |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        *(_side_line(name, rows[name], windows[name]) for name in sides),
    ]
    return "\n".join(lines)
