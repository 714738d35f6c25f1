"""Load test: 50 users browsing the dashboard on gunicorn + PostgreSQL for two minutes.

Run: ``.venv/bin/python benchmarks/load_bench.py`` (about 5 minutes; options:
``--help``). Goals (issue 7): p95 under 300 ms and no errors.

End to end, everything throw-away and named by one run id:

1. a 2,000-revision Alembic history with branches, merges and labels
   (``tests/migrator/graph_histories.branchy_history``) in a temp folder,
   named by ``ALEMBIC_CONFIG``;
2. a PostgreSQL database ``load_<id>`` on the ``TEST_POSTGRES_URL`` server,
   ``manage.py migrate``, then ``benchmarks/load/seed.py``: 1,000,000 audit
   events (set-based), the demo accounts, four environments on SQLite targets
   at different revisions, a few hundred requests with approvals and runs;
3. ``gunicorn dashboard.wsgi:application --workers 2`` on a free loopback
   port, caches warmed (graph page in both workers);
4. Locust headless (``benchmarks/load/locustfile.py``): ``--users`` users
   spawned at ``--spawn-rate``/s browse for ``--duration`` seconds;
5. a table per endpoint (requests, failures, median, p95, p99, max) from every
   request's exact time, overall p95, error count, the slowest endpoint, the
   CPU each side used and the machine; written to ``docs/benchmarks-load.md``
   (between its result markers) unless ``--no-doc``;
6. gunicorn and Locust stopped, the database dropped, the temp folder removed
   — also on failure and Ctrl-C.

Locust runs on the same 2-core machine as gunicorn and PostgreSQL and competes
with them for CPU; the figures include that.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from benchmarks.load.ab import ab_compare  # noqa: E402
from benchmarks.load.report import (  # noqa: E402
    cpu_seconds,
    machine_description,
    summarise,
    write_doc,
)
from benchmarks.load.seed import ENVIRONMENTS, target_path, target_url_variable  # noqa: E402
from tests.migrator.graph_histories import branchy_history, write_ini  # noqa: E402

BIN = Path(sys.executable).parent
ADMIN_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
GOAL_P95_MS = 300.0


def _libpq(url: str, database: str | None = None) -> str:
    from sqlalchemy.engine import make_url

    parsed = make_url(url).set(drivername="postgresql")
    if database:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _step(message: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {message}", flush=True)


def _run(cmd: list[str], env: dict[str, str], **kwargs: Any) -> None:
    subprocess.run(cmd, env=env, cwd=REPO_ROOT, check=True, **kwargs)


@contextlib.contextmanager
def throwaway_database(name: str, *, keep: bool) -> Iterator[str]:
    """Create ``name`` on the admin server; drop it (forcing sessions out) at the end."""
    import psycopg

    with psycopg.connect(_libpq(ADMIN_URL), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _libpq(ADMIN_URL, name)
    finally:
        if not keep:
            with psycopg.connect(_libpq(ADMIN_URL), autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            _step(f"dropped database {name}")


@contextlib.contextmanager
def process_group(
    cmd: list[str], env: dict[str, str], log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``cmd`` in its own session; SIGTERM (then SIGKILL) that group at the end."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd,
            env=env,
            cwd=REPO_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield proc
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=5)


def _wait_until_up(base: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("gunicorn exited during start-up; see its log")
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"{base}/healthz", timeout=2).status_code in (200, 503):
                return
        time.sleep(0.5)
    raise SystemExit(f"gunicorn did not answer within {timeout:.0f} s")


def _login(base: str, username: str, password: str) -> Any:
    import re

    import requests

    session = requests.Session()
    page = session.get(f"{base}/admin/login/?next=/", timeout=30)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    answer = session.post(
        f"{base}/admin/login/?next=/",
        data={
            "csrfmiddlewaretoken": token.group(1) if token else "",
            "username": username,
            "password": password,
            "next": "/",
        },
        allow_redirects=False,
        timeout=30,
    )
    if answer.status_code != 302:
        raise SystemExit(f"warm-up login as {username} failed: HTTP {answer.status_code}")
    return session


def warm_up(base: str, manifest: dict[str, Any]) -> None:
    """Hit each page type concurrently (4 at a time) twice, so both workers have warm caches."""
    password = manifest["password"]
    developer = _login(base, "developer", password)
    auditor = _login(base, "auditor", password)
    urls = [(developer, "/graph/"), (developer, "/")]
    urls += [(developer, f"/environments/{slug}/") for slug in manifest["environments"]]
    urls += [(developer, f"/requests/{manifest['requests'][0]}/"), (auditor, "/audit/")]
    for _round in range(2):
        for session, url in urls:
            threads = [
                threading.Thread(
                    target=session.get, args=(f"{base}{url}",), kwargs={"timeout": 120}
                )
                for _ in range(4)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=120)


def run_locust(
    *,
    base: str,
    work: Path,
    env: dict[str, str],
    args: argparse.Namespace,
    server_pid: int,
) -> dict[str, Any]:
    """Run Locust headless; returns samples, CPU use per side and the system's load."""
    import psutil

    samples_path = work / "samples.json"
    locust_env = {
        **env,
        "LOAD_MANIFEST": str(work / "manifest.json"),
        "LOAD_SAMPLES": str(samples_path),
        "LOAD_WAIT_MIN": str(args.wait_min),
        "LOAD_WAIT_MAX": str(args.wait_max),
    }
    cmd = [
        str(BIN / "locust"),
        "-f",
        str(REPO_ROOT / "benchmarks" / "load" / "locustfile.py"),
        "--headless",
        "-u",
        str(args.users),
        "-r",
        str(args.spawn_rate),
        "-t",
        f"{args.duration}s",
        "--host",
        base,
        "--csv",
        str(work / "locust"),
        "--only-summary",
        "--stop-timeout",
        "10",
        "--loglevel",
        "WARNING",
    ]
    psutil.cpu_percent(interval=None)
    machine_before = psutil.cpu_times()
    load_samples: list[float] = []
    cpu: dict[str, float] = {}
    start_cpu: dict[str, float] | None = None
    started = time.monotonic()
    with process_group(cmd, locust_env, work / "locust.log") as proc:
        deadline = started + args.duration + 120
        while proc.poll() is None and time.monotonic() < deadline:
            server = psutil.Process(server_pid)
            pids = {
                "gunicorn (2 workers)": [
                    server_pid,
                    *(c.pid for c in server.children(recursive=True)),
                ],
                "locust": [proc.pid],
            }
            current = cpu_seconds(pids)
            if start_cpu is None:
                start_cpu = current
            cpu = current
            load_samples.append(psutil.cpu_percent(interval=None))
            time.sleep(1.0)
        if proc.poll() is None:
            raise SystemExit("Locust did not stop in time")
    elapsed = time.monotonic() - started
    machine_after = psutil.cpu_times()
    busy = sum(machine_after) - sum(machine_before)
    busy -= (machine_after.idle - machine_before.idle) + (
        machine_after.iowait - machine_before.iowait
    )
    if not samples_path.exists():
        raise SystemExit(f"Locust wrote no samples; see {work / 'locust.log'}")
    used = {k: cpu.get(k, 0.0) - (start_cpu or {}).get(k, 0.0) for k in cpu}
    return {
        "samples": json.loads(samples_path.read_text()),
        "cpu_seconds": used,
        "elapsed": elapsed,
        "machine_busy_seconds": busy,
        "system_cpu_percent": statistics.mean(load_samples[1:]) if len(load_samples) > 1 else 0.0,
        "loadavg": os.getloadavg(),
        "locust_log": (work / "locust.log").read_text(errors="replace")[-3000:],
        "failures_csv": (work / "locust_failures.csv").read_text(errors="replace")
        if (work / "locust_failures.csv").exists()
        else "",
    }


def profile_pages(work: Path, env: dict[str, str]) -> list[dict[str, Any]]:
    """Each page type alone (``benchmarks/load/profile_pages.py``); [] if that fails."""
    script = REPO_ROOT / "benchmarks" / "load" / "profile_pages.py"
    done = subprocess.run(
        [
            sys.executable,
            str(script),
            "--manifest",
            str(work / "manifest.json"),
            "--password-check",
        ],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        print(done.stderr[-2000:], file=sys.stderr)
        return []
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


@contextlib.contextmanager
def serve(
    app: str, env: dict[str, str], log: Path, manifest: dict[str, Any]
) -> Iterator[tuple[str, int]]:
    """gunicorn with two workers on a free loopback port, answering and warm: (base URL, pid)."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = [
        str(BIN / "gunicorn"),
        app,
        "--workers",
        "2",
        "--bind",
        f"127.0.0.1:{port}",
        "--timeout",
        "120",
        "--log-level",
        "warning",
    ]
    with process_group(cmd, env, log) as server:
        _wait_until_up(base, server)
        began = time.perf_counter()
        warm_up(base, manifest)
        _step(f"gunicorn {app} up on {base}, caches warm ({time.perf_counter() - began:.1f} s)")
        yield base, server.pid


def password_check_ms(work: Path, env: dict[str, str]) -> float:
    """Median CPU time of one password check (a log-in), from ``profile_pages.py``."""
    script = REPO_ROOT / "benchmarks" / "load" / "profile_pages.py"
    done = subprocess.run(
        [
            sys.executable,
            str(script),
            "--manifest",
            str(work / "manifest.json"),
            "--only-password-check",
        ],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return float(json.loads(done.stdout.strip().splitlines()[-1])["password_check_ms"])


def _server_errors(log: Path) -> list[str]:
    text = log.read_text(errors="replace")
    return [line for line in text.splitlines() if " ERROR " in line or line.startswith("Traceback")]


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--spawn-rate", type=float, default=10)
    parser.add_argument("--duration", type=int, default=120, help="seconds of load")
    parser.add_argument("--wait-min", type=float, default=1.0, help="think time, seconds")
    parser.add_argument("--wait-max", type=float, default=3.0)
    parser.add_argument("--revisions", type=int, default=2000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--doc", type=Path, default=REPO_ROOT / "docs" / "benchmarks-load.md")
    parser.add_argument("--no-doc", action="store_true", help="only print the figures")
    parser.add_argument("--keep", action="store_true", help="keep the database and temp folder")
    parser.add_argument(
        "--ab-rounds",
        type=int,
        default=0,
        help="with --what-if: serve product and fixes side by side and alternate "
        "--duration windows between them this many rounds (benchmarks/load/ab.py)",
    )
    parser.add_argument(
        "--what-if",
        default="",
        help="comma-separated candidate fixes to serve (benchmarks/load/whatif_wsgi.py); "
        "implies --no-doc",
    )
    args = parser.parse_args()

    # SIGTERM behaves like Ctrl-C: the context managers below clean up.
    signal.signal(signal.SIGTERM, _interrupt)
    run_id = uuid.uuid4().hex[:10]
    db_name = f"load_{run_id}"
    work = Path(tempfile.mkdtemp(prefix=f"load_{run_id}_"))
    _step(f"run {run_id}: work folder {work}")
    try:
        return _bench(args, run_id, db_name, work)
    except KeyboardInterrupt:
        _step("interrupted; cleaning up")
        return 130
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def dashboard_environment(
    *, database_url: str, ini: Path, work: Path, run_id: str, what_if: str
) -> dict[str, str]:
    """The process environment of every dashboard process of this run (seed, gunicorn, profile)."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "dashboard.settings",
        "DASHBOARD_DATABASE_URL": database_url,
        "ALEMBIC_CONFIG": str(ini),
        "DASHBOARD_VAR_DIR": str(work / "var"),
        "LOAD_TARGETS_DIR": str(work / "targets"),
        "DJANGO_SECRET_KEY": f"load-test-{run_id}",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "DJANGO_SECURE_COOKIES": "0",
        "DJANGO_DEBUG": "0",
        "DJANGO_LOG_LEVEL": "WARNING",
        "CELERY_TASK_DEFAULT_QUEUE": f"load_{run_id}",
        "DASHBOARD_RUNS_QUEUE": f"load_{run_id}",
        "DASHBOARD_IO_QUEUE": f"load_{run_id}",
        "DASHBOARD_DRIFT_METADATA": "benchmarks.load.drift_metadata:metadata",
        "LOAD_WHAT_IF": what_if,
    }
    env.pop("CELERY_BROKER_URL", None)  # filesystem broker under the temp var dir
    for slug in ENVIRONMENTS:
        env[target_url_variable(slug)] = f"sqlite:///{target_path(work / 'targets', slug)}"
    return env


def _bench(args: argparse.Namespace, run_id: str, db_name: str, work: Path) -> int:
    history = work / "history"
    began = time.perf_counter()
    ids = branchy_history(history / "versions", args.revisions, labels_every=97, open_heads=2)
    ini = write_ini(history, "%(here)s")
    _step(f"history: {len(ids)} revisions ({time.perf_counter() - began:.1f} s)")

    with throwaway_database(db_name, keep=args.keep) as database_url:
        env = dashboard_environment(
            database_url=database_url, ini=ini, work=work, run_id=run_id, what_if=args.what_if
        )

        began = time.perf_counter()
        _run([sys.executable, "manage.py", "migrate", "--verbosity", "0"], env)
        _step(f"migrated {db_name} ({time.perf_counter() - began:.1f} s); seeding")
        began = time.perf_counter()
        _run(
            [
                sys.executable,
                str(REPO_ROOT / "benchmarks" / "load" / "seed.py"),
                "--manifest",
                str(work / "manifest.json"),
                "--events",
                str(args.events),
                "--requests",
                str(args.requests),
            ],
            env,
        )
        seed_seconds = time.perf_counter() - began
        _step(f"seeded in {seed_seconds:.1f} s")
        manifest = json.loads((work / "manifest.json").read_text())

        if args.what_if and args.ab_rounds:
            password_ms = password_check_ms(work, env)
            text = ab_compare(
                args=args,
                env=env,
                work=work,
                manifest=manifest,
                start_server=lambda app, side_env, log: serve(app, side_env, log, manifest),
                run_locust=run_locust,
                password_check_ms=password_ms,
            )
            print()
            print(text)
            return 0
        app = (
            "benchmarks.load.whatif_wsgi:application"
            if args.what_if
            else "dashboard.wsgi:application"
        )
        server_log = work / "gunicorn.log"
        with serve(app, env, server_log, manifest) as (base, server_pid):
            _step(
                f"Locust: {args.users} users, +{args.spawn_rate}/s, {args.duration} s, "
                f"think time {args.wait_min}-{args.wait_max} s"
            )
            result = run_locust(base=base, work=work, env=env, args=args, server_pid=server_pid)
        server_errors = _server_errors(server_log)
        _step("load finished; gunicorn stopped; timing each page alone")
        profile = profile_pages(work, env)

    summary = summarise(result["samples"], goal_p95_ms=GOAL_P95_MS)
    context = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine_description(),
        "args": vars(args) | {"doc": str(args.doc)},
        "manifest": {
            "revisions": len(manifest["revisions"]),
            "environments": manifest["environments"],
            "requests": len(manifest["requests"]),
            "audit_events": manifest["audit_head_seq"],
        },
        "seed_seconds": seed_seconds,
        "cpu_seconds": result["cpu_seconds"],
        "elapsed": result["elapsed"],
        "system_cpu_percent": result["system_cpu_percent"],
        "machine_busy_seconds": result["machine_busy_seconds"],
        "loadavg": result["loadavg"],
        "server_errors": server_errors,
        "failures_csv": result["failures_csv"],
        "profile": [line for line in profile if "name" in line],
        "password_check_ms": next(
            (line["password_check_ms"] for line in profile if "password_check_ms" in line), 0.0
        ),
    }
    text = summary.render(context)
    print()
    print(text)
    if args.what_if:
        print(f"\n(what-if run: {args.what_if}; not written to the doc)")
    elif not args.no_doc:
        write_doc(args.doc, text)
        _step(f"wrote {args.doc}")
    ok = summary.p95_browsing_ms < GOAL_P95_MS and summary.failures == 0 and not server_errors
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
