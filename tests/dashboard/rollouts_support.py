"""Helpers for fleet rollout tests: fleets declared through the TOML loader, waiting on rollouts.

Also: PostgreSQL tenants cloned from a migrated template (:class:`TenantTemplate`),
what a rollout's child runs recorded (:func:`child_runs`, :func:`max_overlap`),
beat's recovery calls from a thread of the test process (:class:`Beat`), and a
second host cut off entirely (:func:`cut_off`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tests.dashboard.approvals_support import wait_for

ROLLOUT_TIMEOUT = 120


def make_fleet(
    *,
    slug: str,
    names: Sequence[str],
    url_template: str,
    directory: Path,
    waves: Sequence[int | str] = ("100%",),
    parallelism: int = 4,
    halt_after_failures: int = 1,
    required_approvals: int = 2,
    extra: str = "",
) -> Any:
    """Declare a fleet in a TOML file and load it, as a team would (``load_environments``)."""
    from dashboard.environments.config_file import environments_load
    from dashboard.environments.models import Environment

    url_file = directory / f"{slug}-{uuid.uuid4().hex[:6]}.url"
    url_file.write_text(url_template)
    waves_toml = ", ".join(f'"{w}"' if isinstance(w, str) else str(w) for w in waves)
    names_toml = ", ".join(f'"{n}"' for n in names)
    toml = directory / f"{slug}.toml"
    toml.write_text(
        f"""
[environments.{slug}]
name = "{slug.title()}"
position = 4
url_file = "{url_file}"
targets = [{names_toml}]
waves = [{waves_toml}]
parallelism = {parallelism}
halt_after_failures = {halt_after_failures}
required_approvals = {required_approvals}
approver_group = "Tech leads"
lock_wait = "10s"
{extra}
"""
    )
    environments_load(path=toml)
    return Environment.objects.get(slug=slug)


def refresh_targets(fleet: Any) -> None:
    """Read every target's status now (what beat's refresh does), in this process."""
    from dashboard.environments.models import Environment
    from dashboard.environments.services import environments_refresh_all

    environments_refresh_all(environments=list(Environment.objects.targets_of(fleet)))


def rollout_in(request: Any, *states: str, timeout: float = ROLLOUT_TIMEOUT) -> Any:
    """Wait until the request's rollout is in one of ``states``; return it."""
    from dashboard.rollouts.models import Rollout

    def check() -> Any:
        rollout = Rollout.objects.filter(request_id=request.pk).first()
        return rollout if rollout is not None and rollout.state in states else None

    return wait_for(check, timeout=timeout, interval=0.25)


def target_states(rollout: Any) -> dict[str, str]:
    return dict(rollout.targets.order_by("position").values_list("name", "state"))


def roll_out(fleet: Any, developer: Any, leads: Sequence[Any], target: str) -> Any:
    """Read the targets, request the fleet to ``target`` and have ``leads`` approve (pages)."""
    from tests.dashboard.approvals_support import approve, create_request

    refresh_targets(fleet)
    request = create_request(fleet, developer, target)
    for lead in leads:
        approve(lead, request)
    return request


def rollout_settled(rollout: Any, timeout: float = 60) -> Any:
    """Wait until no target is in flight (runs under way finish and are recorded); refreshed."""
    from dashboard.rollouts.models import RolloutTarget

    wait_for(
        lambda: not rollout.targets.filter(state__in=RolloutTarget.IN_FLIGHT).exists(),
        timeout=timeout,
        interval=0.2,
    )
    rollout.refresh_from_db()
    return rollout


# --- PostgreSQL tenants cloned from a template ---------------------------------------------


class TenantTemplate:
    """A PostgreSQL database migrated once to ``revision``, cloned for each test's tenants.

    ``CREATE DATABASE x TEMPLATE y`` copies a small database in ~50 ms, where
    migrating each tenant from scratch takes a second: 30 tenants cost 1.5 s.
    Every database made here is dropped by :meth:`drop_clones` / :meth:`close`.
    """

    def __init__(self, *, ini: Path, revision: str, prefix: str) -> None:
        from tests.conftest import create_postgres_database
        from tests.dashboard.approvals_support import migrate_target

        self.prefix = prefix
        self.url = create_postgres_database(f"{prefix}_tpl")
        self.clones: list[str] = []
        migrate_target(ini, self.url, revision)  # its engine is disposed: nobody stays connected

    def clone(self, names: Sequence[str]) -> str:
        """One database per name, copies of the template; returns the ``{target}`` URL template."""
        from sqlalchemy.engine import make_url

        base = f"{self.prefix}_{uuid.uuid4().hex[:8]}"
        template = make_url(self.url).database
        with _admin() as admin:
            for name in names:
                admin.execute(f'CREATE DATABASE "{base}_{name}" TEMPLATE "{template}"')
                self.clones.append(f"{base}_{name}")
        return self.url.replace(f"/{template}", f"/{base}_{{target}}")

    def drop_clones(self) -> None:
        """Drop the clones, several at once: each DROP DATABASE waits for a checkpoint, and
        concurrent drops share one (one after another they cost a checkpoint each)."""
        from concurrent.futures import ThreadPoolExecutor

        def drop(name: str) -> None:
            with _admin() as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

        names, self.clones = self.clones, []
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(drop, names))

    def close(self) -> None:
        from tests.conftest import drop_postgres_database

        self.drop_clones()
        drop_postgres_database(self.url)


def _admin() -> Any:
    import os

    import psycopg
    from sqlalchemy.engine import make_url

    admin = make_url(os.environ["TEST_POSTGRES_URL"]).set(drivername="postgresql")
    return psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True)


def tenant_url(url_template: str, name: str) -> str:
    return url_template.replace("{target}", name)


# --- what the rollout's runs recorded -------------------------------------------------------


def child_runs(request: Any) -> list[tuple[Any, Any, Any]]:
    """``(rollout target, child request, run or None)`` for every child of the fleet request."""
    from dashboard.approvals.models import MigrationRequest, Run
    from dashboard.rollouts.models import RolloutTarget

    children = list(MigrationRequest.objects.filter(parent=request).order_by("pk"))
    runs = {run.request_id: run for run in Run.objects.filter(request__in=children)}
    targets = {
        row.environment_id: row for row in RolloutTarget.objects.filter(rollout__request=request)
    }
    return [(targets[child.environment_id], child, runs.get(child.pk)) for child in children]


def max_overlap(intervals: Sequence[tuple[Any, Any]]) -> int:
    """The most intervals open at one instant (an interval ending at t is closed before one
    starting at t opens)."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    open_now = peak = 0
    for _, step in events:
        open_now += step
        peak = max(peak, open_now)
    return peak


# --- beat, in the test process --------------------------------------------------------------


class Beat:
    """What ``celery beat`` would have workers do, called from a thread of the test process.

    Every ``interval`` seconds: ``runs_reap()`` (lost workers, unknown outcomes),
    ``rollouts_tick()`` (lost kicks, soaks) and ``approved_requests_redispatch()``
    (approved requests no worker claimed within ``DASHBOARD_REDISPATCH_AFTER``).
    The same service functions the beat tasks call, more often than beat's 2-3 s so
    that tests measure the product's latency, not the schedule's. Exceptions are
    kept and raised by :meth:`stop`: a beat that broke must fail the test.
    """

    def __init__(self, *, interval: float = 0.25) -> None:
        import threading

        self.interval = interval
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="test-beat", daemon=True)

    def __enter__(self) -> Beat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _loop(self) -> None:
        import traceback

        from django.db import connection

        from dashboard.approvals.services.dispatch import approved_requests_redispatch
        from dashboard.approvals.services.recovery import runs_reap
        from dashboard.rollouts.services.scheduler import rollouts_tick

        try:
            while not self._stop.wait(self.interval):
                for task in (runs_reap, rollouts_tick, approved_requests_redispatch):
                    try:
                        task()
                    except Exception:
                        self.errors.append(traceback.format_exc())
                        connection.close()
        finally:
            connection.close()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._stop.set()
            self._thread.join(timeout=30)
        assert not self.errors, "beat failed:\n" + "\n".join(self.errors[:3])


# --- a second host cut off entirely -------------------------------------------------------


def cut_off(host: Any) -> Callable[[], None]:
    """Make every path between ``host`` (a ``SecondHost``) and this one silent, both ways.

    Blackhole routes for this side's addresses inside the namespace and for the
    namespace's addresses here: packets are dropped, nothing is refused, as when
    a machine's network goes away. Returns the undo: the link heals (also safe to
    call after ``SecondHost.close``).
    """
    import contextlib
    import subprocess

    def ip(*args: str, netns: str | None = None) -> None:
        prefix = ["ip", "netns", "exec", netns] if netns else []
        subprocess.run([*prefix, "ip", *args], check=True, capture_output=True, timeout=10)

    for address in (host.services_ip, host.targets_ip):
        ip("route", "replace", "blackhole", f"{address}/32", netns=host.netns)
    for address in (host.inner_ip, host.inner_target_ip):
        ip("route", "replace", "blackhole", f"{address}/32")

    def undo() -> None:
        for address in (host.inner_ip, host.inner_target_ip):
            with contextlib.suppress(subprocess.CalledProcessError):
                ip("route", "del", "blackhole", f"{address}/32")
        with contextlib.suppress(subprocess.CalledProcessError):
            ip("route", "del", "blackhole", f"{host.services_ip}/32", netns=host.netns)
        host.thaw_targets()  # back to the route that leaves from the target source address

    return undo
