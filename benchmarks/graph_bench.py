"""Benchmark of the revision graph against ``alembic history`` (issue 3).

Run: ``.venv/bin/python benchmarks/graph_bench.py [--revisions 2000] [--repeat 5]``

Generates a history with branches and merges in a temp dir and measures, side
by side in one run (medians after one warm-up):

* ``alembic history`` on it, whole process (the reference);
* ``manage.py revision_graph --format json`` on it, whole process;
* the graph page through Django's test client, cache cold (a revision file
  was just changed) and warm; plus fully cold (every in-process cache
  cleared) for information.

Prints each figure and its ratio to the reference. Goals: CLI <= 1x,
cold page <= 1x, warm page < 0.1x.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from tests.migrator.graph_histories import branchy_history, write_ini  # noqa: E402

BIN = Path(sys.executable).parent


def median_time(
    run: Callable[[], object], repeat: int, before: Callable[[], None] | None = None
) -> float:
    """Median wall time of ``run`` over ``repeat`` calls after one warm-up call."""
    samples = []
    for i in range(repeat + 1):
        if before:
            before()
        start = time.perf_counter()
        run()
        if i:  # the first call is the warm-up
            samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def process(args: list[str], env: dict[str, str]) -> Callable[[], object]:
    def run() -> object:
        return subprocess.run(args, env=env, cwd=REPO_ROOT, check=True, capture_output=True)

    return run


def setup_django(var_dir: Path, ini: Path) -> None:
    os.environ.update(
        DJANGO_SETTINGS_MODULE="dashboard.settings",
        DJANGO_DEBUG="1",
        DASHBOARD_VAR_DIR=str(var_dir),
        DASHBOARD_DATABASE_URL=f"sqlite:///{var_dir / 'bench.sqlite3'}",
        ALEMBIC_CONFIG=str(ini),
        DJANGO_ALLOWED_HOSTS="testserver",
    )
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--revisions", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    options = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="graph-bench-"))
    ids = branchy_history(root / "versions", options.revisions, labels_every=97)
    ini = write_ini(root, "%(here)s")
    env = {**os.environ, "DJANGO_DEBUG": "1", "DASHBOARD_VAR_DIR": str(root / "var")}
    print(f"history: {len(ids)} revisions in {root}")
    print(
        f"machine: {platform.node()} {platform.machine()} {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}"
    )

    victim = sorted((root / "versions").glob("*.py"))[len(ids) // 2]
    counter = iter(range(10**6))

    def change_a_file() -> None:
        with victim.open("a") as handle:
            handle.write(f"# edit {next(counter)}\n")

    alembic_history = process([str(BIN / "alembic"), "-c", str(ini), "history"], env)
    cli = process(
        [sys.executable, "manage.py", "revision_graph", "--config", str(ini), "--format", "json"],
        env,
    )
    # Interleaved rounds: on a shared machine both sides see the same load.
    rounds: dict[str, list[float]] = {"reference": [], "cli": [], "cli_changed": []}
    for i in range(options.repeat + 1):
        for name, before, run in (
            ("reference", None, alembic_history),
            ("cli", None, cli),
            ("cli_changed", change_a_file, cli),
        ):
            if before:
                before()
            start = time.perf_counter()
            run()
            if i:  # round 0 is the warm-up
                rounds[name].append(time.perf_counter() - start)
    reference, cli_time, cli_changed = (statistics.median(rounds[k]) for k in rounds)

    setup_django(root / "var", ini)
    from django.contrib.auth import get_user_model
    from django.core.cache import cache
    from django.test import Client

    from dashboard.migrator.graph import clear_graph_cache

    user = get_user_model().objects.create_superuser("bench", "bench@example.com", "pw")
    client = Client()
    client.force_login(user)

    def get_page() -> None:
        response = client.get("/graph/")
        assert response.status_code == 200, response.status_code

    def forget_everything() -> None:
        clear_graph_cache()
        cache.clear()
        shutil.rmtree(root / "var" / "cache", ignore_errors=True)

    cold = median_time(get_page, options.repeat, before=change_a_file)
    fully_cold = median_time(get_page, options.repeat, before=forget_everything)
    get_page()
    warm = median_time(get_page, options.repeat * 4)

    print(f"\n{'measurement':<58}{'seconds':>9}{'ratio':>8}")
    rows = [
        ("alembic history (whole process, reference)", reference),
        ("manage.py revision_graph --format json (whole process)", cli_time),
        ("  same, right after a revision file changed", cli_changed),
        ("graph page, cache cold (a file just changed)", cold),
        ("graph page, fully cold (every cache cleared)", fully_cold),
        ("graph page, cache warm", warm),
    ]
    for name, seconds in rows:
        print(f"{name:<58}{seconds:>9.3f}{seconds / reference:>7.2f}x")
    print("\ngoals: CLI <= 1x, cold page <= 1x, warm page < 0.1x")


if __name__ == "__main__":
    main()
