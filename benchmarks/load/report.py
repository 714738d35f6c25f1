"""Figures of a load run: per-endpoint percentiles, CPU per side, machine, the doc section.

Percentiles are computed from every request's own time (nearest rank), not
from Locust's rounded histogram buckets.
"""

from __future__ import annotations

import math
import os
import platform
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LOGIN_NAMES = ("GET /admin/login/", "POST /admin/login/ (log in)")
START = "<!-- load-results:start -->"
END = "<!-- load-results:end -->"


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list (0 for an empty one)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


@dataclass
class Row:
    name: str
    times: list[float]
    failures: int

    @property
    def count(self) -> int:
        return len(self.times)

    def stat(self, fraction: float) -> float:
        return percentile(self.times, fraction)

    def line(self, steady: Row | None = None) -> str:
        """A table row; ``steady`` (the same endpoint once all users logged in) adds its p95."""
        after = f" {steady.stat(0.95):.0f} |" if steady is not None else " – |"
        return (
            f"| {self.name} | {self.count:,} | {self.failures} | {self.stat(0.5):.0f} | "
            f"{self.stat(0.95):.0f} | {self.stat(0.99):.0f} | {max(self.times, default=0):.0f} |"
            + after
        )


@dataclass
class Summary:
    rows: list[Row]
    goal_p95_ms: float
    everything: Row = field(init=False)
    browsing: Row = field(init=False)
    steady: Row | None = None
    steady_rows: dict[str, Row] = field(default_factory=dict)
    steady_from_s: float = 0.0

    def __post_init__(self) -> None:
        self.everything = _merge("all requests", self.rows)
        self.browsing = _merge("all pages (without the log-in)", self.rows, exclude=LOGIN_NAMES)

    @property
    def failures(self) -> int:
        return self.everything.failures

    @property
    def p95_browsing_ms(self) -> float:
        return self.browsing.stat(0.95)

    def _cpu_per_page_ms(self, context: dict[str, Any]) -> float:
        gunicorn = next((v for k, v in context["cpu_seconds"].items() if "gunicorn" in k), 0.0)
        logins = sum(r.count for r in self.rows if r.name == LOGIN_NAMES[1])
        pages = max(self.browsing.count, 1)
        login_ms = float(context.get("password_check_ms", 0.0))
        return max(gunicorn * 1000 - logins * login_ms, 0.0) / pages

    @property
    def slowest(self) -> Row:
        """The page with the highest p95 once everyone is logged in (the log-in burst of the
        ramp-up delays whichever pages happen to be requested then, so it is left out)."""
        source = list(self.steady_rows.values()) or self.rows
        pages = [r for r in source if r.name not in LOGIN_NAMES] or self.rows
        return max(pages, key=lambda r: r.stat(0.95))

    def render(self, context: dict[str, Any]) -> str:
        """The Markdown section of ``docs/benchmarks-load.md`` for this run."""
        args, manifest = context["args"], context["manifest"]
        elapsed = max(context["elapsed"], 1e-9)
        verdict = (
            "met" if self.p95_browsing_ms < self.goal_p95_ms and self.failures == 0 else "NOT met"
        )
        slowest = self.slowest
        steady = self.steady
        totals = [self.browsing, *([steady] if steady else []), self.everything]
        lines = [
            f"Run of {context['date']}: `.venv/bin/python benchmarks/load_bench.py` "
            f"({args['users']} users, spawn {args['spawn_rate']:g}/s, {args['duration']} s, think "
            f"time {args['wait_min']:g}–{args['wait_max']:g} s).",
            "",
            f"Machine: {context['machine']}.",
            "",
            f"Data: {manifest['revisions']:,} revisions, {manifest['audit_events']:,} audit events, "
            f"{manifest['requests']} requests, environments "
            + ", ".join(
                f"{slug} ({info['state']}, {info['pending']} pending)"
                for slug, info in manifest["environments"].items()
            )
            + f"; seeded in {context['seed_seconds']:.0f} s.",
            "",
            "| endpoint | requests | failures | median ms | p95 ms | p99 ms | max ms "
            "| p95 ms once all logged in |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
            *(
                row.line(self.steady_rows.get(row.name))
                for row in sorted(self.rows, key=lambda r: r.name)
            ),
            *(row.line().replace(f"| {row.name} |", f"| **{row.name}** |", 1) for row in totals),
            "",
            f"- Overall p95 (pages): **{self.p95_browsing_ms:.0f} ms** "
            f"(all requests incl. log-in: {self.everything.stat(0.95):.0f} ms); "
            f"errors: **{self.failures}**; goal p95 < {self.goal_p95_ms:.0f} ms and no errors: "
            f"**{verdict}**.",
        ]
        if steady:
            lines.append(
                f"- Once every user had logged in (from {self.steady_from_s:.0f} s on): "
                f"{steady.count:,} pages, median {steady.stat(0.5):.0f} ms, "
                f"p95 **{steady.stat(0.95):.0f} ms**, p99 {steady.stat(0.99):.0f} ms."
            )
        lines += [
            f"- Throughput: {self.everything.count / elapsed:.1f} requests/s over {elapsed:.0f} s.",
            f"- Slowest endpoint (p95 once all logged in): **{slowest.name}** — median "
            f"{slowest.stat(0.5):.0f} ms, p95 {slowest.stat(0.95):.0f} ms, max "
            f"{max(slowest.times, default=0):.0f} ms.",
            _cpu_line(context, elapsed),
            f"- gunicorn CPU per page: about {self._cpu_per_page_ms(context):.0f} ms (log-ins left "
            f"out at one password check each: {context.get('password_check_ms', 0):.0f} ms, "
            "PBKDF2 with Django's 1,000,000 iterations).",
            f"- Server log: {len(context['server_errors'])} error lines.",
        ]
        if context.get("profile"):
            lines += [
                "",
                "One request at a time after the load (Django test client, same data; median of 5):",
                "",
                "| page | server ms | SQL queries | SQL ms |",
                "|---|---:|---:|---:|",
                *(
                    f"| {p['name']} | {p['median_ms']:.0f} | {p['queries']} | {p['sql_ms']:.0f} |"
                    for p in context["profile"]
                ),
            ]
        if context["failures_csv"].count("\n") > 1:
            lines += [
                "",
                "Failures reported by Locust:",
                "",
                "```",
                context["failures_csv"].strip(),
                "```",
            ]
        if context["server_errors"]:
            lines += ["", "First server errors:", "", "```", *context["server_errors"][:10], "```"]
        return "\n".join(lines)


def _cpu_line(context: dict[str, Any], elapsed: float) -> str:
    cores = os.cpu_count() or 1
    ours = context["cpu_seconds"]
    busy = context.get("machine_busy_seconds", 0.0)
    others = max(busy - sum(ours.values()), 0.0)
    parts = [
        f"{name} {seconds:.0f} s ({100 * seconds / elapsed / cores:.0f} %)"
        for name, seconds in ours.items()
    ]
    parts.append(
        f"everything else on the machine {others:.0f} s ({100 * others / elapsed / cores:.0f} %)"
    )
    return (
        "- CPU during the load (CPU seconds, share of all cores): "
        + ", ".join(parts)
        + f"; machine busy {context['system_cpu_percent']:.0f} % on average, load average at the "
        f"end {context['loadavg'][0]:.1f}."
    )


def _merge(name: str, rows: list[Row], exclude: tuple[str, ...] = ()) -> Row:
    kept = [row for row in rows if row.name not in exclude]
    times = sorted(t for row in kept for t in row.times)
    return Row(name=name, times=times, failures=sum(row.failures for row in kept))


def summarise(samples: list[list[Any]], *, goal_p95_ms: float) -> Summary:
    """Group ``[name, milliseconds, ok, start_time]`` samples into rows.

    ``steady`` covers the requests that started after the last log-in ended
    (every user logged in and browsing).
    """
    logins_end = max(
        (start + millis / 1000 for name, millis, _ok, start in samples if name in LOGIN_NAMES),
        default=0.0,
    )
    first = min((start for *_rest, start in samples), default=0.0)
    summary = Summary(rows=_rows(samples), goal_p95_ms=goal_p95_ms)
    steady = _rows([sample for sample in samples if sample[3] >= logins_end])
    summary.steady = _merge("all pages once every user is logged in", steady, exclude=LOGIN_NAMES)
    summary.steady_rows = {row.name: row for row in steady}
    summary.steady_from_s = logins_end - first
    return summary


def _rows(samples: list[list[Any]]) -> list[Row]:
    grouped: dict[str, Row] = {}
    for name, millis, ok, _start in samples:
        row = grouped.setdefault(name, Row(name=name, times=[], failures=0))
        row.times.append(float(millis))
        row.failures += 0 if ok else 1
    for row in grouped.values():
        row.times.sort()
    return list(grouped.values())


def cpu_seconds(pids: dict[str, list[int]]) -> dict[str, float]:
    """CPU seconds (user + system) so far of each named group of processes, plus the
    PostgreSQL server: its postmaster's reaped children (a backend per request, as
    Django closes connections after each one) and live backends, all databases."""
    import psutil

    totals: dict[str, float] = {}
    for name, members in pids.items():
        total = 0.0
        for pid in members:
            try:
                times = psutil.Process(pid).cpu_times()
            except psutil.Error:
                continue
            total += times.user + times.system
        totals[name] = total
    server = 0.0
    for proc in psutil.process_iter(["name", "cmdline", "ppid"]):
        try:
            title = " ".join(proc.info["cmdline"] or [])
            if proc.info["name"] != "postgres" and not title.startswith("postgres:"):
                continue
            times = proc.cpu_times()
            server += times.user + times.system
            if not title.startswith("postgres:"):  # the postmaster: add reaped backends
                server += times.children_user + times.children_system
        except psutil.Error:
            continue
    totals["PostgreSQL (whole server)"] = server
    return totals


def machine_description() -> str:
    """nproc, RAM, CPU model, OS and the versions that matter."""
    model = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        found = re.search(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.MULTILINE)
        model = found.group(1).strip() if found else model
    ram = ""
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        found = re.search(r"^MemTotal:\s*(\d+) kB", meminfo.read_text(), re.MULTILINE)
        ram = f"{int(found.group(1)) / 2**20:.0f} GB RAM, " if found else ""
    versions = []
    for package in ("django", "gunicorn", "locust", "psycopg"):
        try:
            from importlib.metadata import version

            versions.append(f"{package} {version(package)}")
        except Exception:  # noqa: S112 - informational only
            continue
    return (
        f"{os.cpu_count()} CPUs ({model}), {ram}{platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, {', '.join(versions)}, PostgreSQL 15 on 127.0.0.1"
    )


def write_doc(path: Path, text: str) -> None:
    """Put ``text`` between the result markers of ``path`` (create the file if needed)."""
    block = f"{START}\n{text}\n{END}"
    if path.exists() and START in path.read_text() and END in path.read_text():
        current = path.read_text()
        head, _, rest = current.partition(START)
        _, _, tail = rest.partition(END)
        path.write_text(head + block + tail, encoding="utf-8")
    else:
        path.write_text(f"# Benchmarks: load (issue 7)\n\n{block}\n", encoding="utf-8")
