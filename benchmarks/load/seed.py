"""Seed a migrated dashboard database for the load test, then write a manifest.

Run by ``benchmarks/load_bench.py`` (which sets the environment); standalone::

    DASHBOARD_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/load_x \\
    ALEMBIC_CONFIG=/tmp/h/alembic.ini DJANGO_SECRET_KEY=x \\
    LOAD_TARGETS_DIR=/tmp/h/targets \\
    .venv/bin/python benchmarks/load/seed.py --manifest /tmp/h/manifest.json

Contract: the database must be migrated and hold no audit event yet (the
synthetic events take ``seq`` 1..N, later events chain on from there). Seeds,
in this order:

1. ``--events`` audit events with the audit engineer's set-based generator
   (``benchmarks/audit_bench.py``: one ``INSERT ... SELECT generate_series``);
2. the demo accounts (``developer``, ``lead``, ``lead2``, ``auditor``, password
   ``demo``) plus a few more developers, in their groups;
3. four environments (``development`` → ``production``, the slugs the audit
   generator uses) from a TOML file through ``load_environments``, each on a
   SQLite target whose ``alembic_version`` leaves 0, 3, 8 and 20 revisions
   pending (only the version table: pages read the cached status, not the
   tables), then a real status read of every target;
4. ``--requests`` migration requests cloned from a few plans pinned for real
   (``plan_pin``: live heads, offline SQL, squawk findings), with approvals,
   runs, per-revision progress and log lines according to their status.

The manifest (JSON) tells the Locust users what exists: accounts, revision
ids, environment slugs, request ids, the newest audit ``seq``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import sqlite3
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

# slug -> (name, position, revisions pending, required approvals)
ENVIRONMENTS: dict[str, tuple[str, int, int, int]] = {
    "development": ("Development", 1, 0, 0),
    "staging": ("Staging", 2, 3, 1),
    "preproduction": ("Preproduction", 3, 8, 1),
    "production": ("Production", 4, 20, 2),
}
# Compared with ``benchmarks/load/drift_metadata.py`` (empty), this is the drift.
HOTFIX_TABLE = (
    "CREATE TABLE hotfix_page_redirects (id INTEGER PRIMARY KEY, "
    "old_path VARCHAR(500) NOT NULL, new_path VARCHAR(500) NOT NULL, created_at TIMESTAMP)"
)
EXTRA_DEVELOPERS = [f"dev{i:02d}" for i in range(1, 7)]
PASSWORD = "demo"  # the demo accounts' documented password


def target_url_variable(slug: str) -> str:
    """Name of the process variable holding the SQLite URL of ``slug``'s target."""
    return f"LOAD_TARGET_{slug.upper()}_URL"


def target_path(targets_dir: Path, slug: str) -> Path:
    return targets_dir / f"{slug}.sqlite3"


def _audit_generator_sql(events: int) -> str:
    """The ``INSERT ... SELECT generate_series`` of ``benchmarks/audit_bench.py``."""
    path = REPO_ROOT / "benchmarks" / "audit_bench.py"
    spec = importlib.util.spec_from_file_location("audit_bench_for_load", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return str(module.GENERATE).format(events=int(events))


def seed_audit_events(*, events: int) -> float:
    """Insert ``events`` synthetic events set-based; returns the seconds it took."""
    from django.db import connection, transaction

    from dashboard.audit.models import AuditEvent

    if AuditEvent.objects.exists():
        raise SystemExit("the audit table is not empty: seed a freshly migrated database")
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL synchronous_commit = off")
        cursor.execute(_audit_generator_sql(events))
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE audit_auditevent")
    return time.perf_counter() - started


def seed_accounts() -> dict[str, list[str]]:
    """The demo accounts plus extra developers; returns usernames per role."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password
    from django.contrib.auth.models import Group

    from dashboard.management.commands.demo_setup import DEMO_ACCOUNTS
    from dashboard.roles import DEVELOPERS

    accounts = {name: groups for name, (groups, _su, _why) in DEMO_ACCOUNTS.items()}
    accounts.update({name: [DEVELOPERS] for name in EXTRA_DEVELOPERS})
    hashed = make_password(PASSWORD)  # one hash for all: seeding stays fast
    user_model = get_user_model()
    for username, groups in accounts.items():
        user, _ = user_model.objects.get_or_create(
            username=username, defaults={"email": f"{username}@example.com"}
        )
        user.is_staff = True
        user.is_superuser = DEMO_ACCOUNTS.get(username, ([], False, ""))[1]
        user.password = hashed
        user.save()
        user.groups.set(Group.objects.filter(name__in=groups))
    return {
        "developers": ["developer", *EXTRA_DEVELOPERS],
        "leads": ["lead", "lead2"],
        "auditors": ["auditor"],
    }


def _heads_with_pending(script: Any, order: list[str], pending: int) -> list[str]:
    """Heads of the history with the last ``pending`` revisions (upgrade order) not applied.

    Every revision before the cut is applied, so the environment has exactly
    ``pending`` revisions to go; the version table holds the heads of that set.
    """
    if pending == 0:
        return sorted(script.get_heads())
    applied = set(order[: len(order) - pending])
    return sorted(
        rev
        for rev in applied
        if not any(child in applied for child in script.get_revision(rev).nextrev)
    )


def _write_targets(targets_dir: Path) -> dict[str, list[str]]:
    """SQLite targets whose version tables leave more revisions pending per stage."""
    from dashboard.environments.services import alembic_script
    from dashboard.migrator.plan import compute_plan

    script = alembic_script()
    order = compute_plan(script, current_heads=(), target="heads", direction="upgrade").revisions
    targets_dir.mkdir(parents=True, exist_ok=True)
    placed: dict[str, list[str]] = {}
    for slug, (_name, _pos, pending, _req) in ENVIRONMENTS.items():
        at = _heads_with_pending(script, order, pending)
        path = target_path(targets_dir, slug)
        path.unlink(missing_ok=True)
        with sqlite3.connect(path) as db:
            db.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)")
            db.executemany("INSERT INTO alembic_version VALUES (?)", [(rev,) for rev in at])
            if pending == 0:  # a table created by hand: the drift the page reports
                db.execute(HOTFIX_TABLE)
        placed[slug] = at
    return placed


def seed_environments(*, targets_dir: Path) -> dict[str, dict[str, Any]]:
    """Targets, ``load_environments`` from TOML, then a real status read of each."""
    from django.core.management import call_command

    from dashboard.environments.models import Environment
    from dashboard.environments.services import environments_refresh_all

    _write_targets(targets_dir)
    lines = []
    for slug, (name, position, _behind, required) in ENVIRONMENTS.items():
        lines += [
            f"[environments.{slug}]",
            f'name = "{name}"',
            f"position = {position}",
            f'url_env = "{target_url_variable(slug)}"',
            f"required_approvals = {required}",
        ]
        if required:
            lines.append('approver_group = "Tech leads"')
        lines.append("")
    toml = targets_dir / "environments.toml"
    toml.write_text("\n".join(lines), encoding="utf-8")
    call_command("load_environments", str(toml), verbosity=0, stdout=open(os.devnull, "w"))  # noqa: SIM115
    environments_refresh_all()
    return {
        env.slug: {"state": env.status_state, "pending": len(env.pending or [])}
        for env in Environment.objects.order_by("position")
    }


def _pins() -> list[tuple[Any, Any]]:
    """A few plans pinned for real: (environment, PinnedPlan)."""
    from dashboard.approvals.planning import PlanRefused, plan_pin
    from dashboard.environments.models import Environment

    wanted = [
        ("staging", "upgrade", "heads"),
        ("preproduction", "upgrade", "heads"),
        ("production", "upgrade", "heads"),
    ]
    pins = []
    for slug, direction, target in wanted:
        environment = Environment.objects.get(slug=slug)
        try:
            pins.append(
                (environment, plan_pin(environment=environment, direction=direction, target=target))
            )
        except PlanRefused as exc:
            print(f"  (no pinned plan for {slug} {direction} {target}: {exc})")
    if not pins:
        raise SystemExit("no plan could be pinned: the load test needs requests")
    return pins


STATUS_WEIGHTS = {
    "succeeded": 70,
    "failed": 8,
    "interrupted": 4,
    "rejected": 7,
    "cancelled": 5,
    "pending": 6,
}


def seed_requests(*, count: int, seed: int = 11) -> list[int]:
    """``count`` requests cloned from real pinned plans; returns their ids."""
    from django.contrib.auth import get_user_model
    from django.db import transaction
    from django.utils import timezone

    from dashboard.approvals.models import Approval, MigrationRequest, Run, RunLogLine, RunProgress

    rng = random.Random(seed)
    users = {u.username: u for u in get_user_model().objects.all()}
    requesters = [users[name] for name in ["developer", *EXTRA_DEVELOPERS, "lead"]]
    leads = [users["lead"], users["lead2"]]
    pins = _pins()
    now = timezone.now()
    statuses = rng.choices(list(STATUS_WEIGHTS), weights=list(STATUS_WEIGHTS.values()), k=count)
    with transaction.atomic():
        requests, created_times = [], []
        for i, status in enumerate(statuses):
            environment, pin = pins[i % len(pins)]
            created = now - timedelta(days=180) * (1 - i / count) - timedelta(minutes=30)
            if status == "pending":  # only recent requests still wait
                created = now - timedelta(hours=rng.randint(1, 20))
            created_times.append(created)
            requests.append(
                MigrationRequest(
                    environment=environment,
                    requested_by=rng.choice(requesters),
                    direction=pin.direction,
                    target=pin.target,
                    reason=f"Release {2024 + i // 100}.{i % 100}: ship the schema of ticket MQ-{1000 + i}",
                    status=status,
                    dialect=pin.dialect,
                    from_heads=pin.from_heads,
                    to_heads=pin.to_heads,
                    steps=pin.steps,
                    sql=pin.sql,
                    sql_sha256=pin.sql_sha256,
                    findings=pin.findings,
                    destructive=pin.destructive,
                    required_approvals=environment.required_approvals,
                )
            )
        requests = MigrationRequest.objects.bulk_create(requests)
        approvals, runs = [], []
        for item, status, created in zip(requests, statuses, created_times, strict=True):
            item.created_at = created  # auto_now_add overwrote it at insert
            approvers = [lead for lead in leads if lead.pk != item.requested_by_id]
            decided = item.created_at + timedelta(minutes=rng.randint(5, 240))
            if status in ("succeeded", "failed", "interrupted"):
                item.approved_at = decided
                item.ended_at = decided + timedelta(minutes=2)
                for approver in approvers[: item.required_approvals]:
                    approvals.append(
                        Approval(
                            request=item,
                            approver=approver,
                            requester_id=item.requested_by_id,
                            decision=Approval.Decision.APPROVE,
                            comment="Plan and SQL reviewed.",
                            sql_acknowledged=item.needs_sql_acknowledgement,
                        )
                    )
                runs.append((item, status, decided + timedelta(seconds=rng.randint(1, 30))))
            elif status == "rejected":
                item.ended_at = decided
                approvals.append(
                    Approval(
                        request=item,
                        approver=approvers[0],
                        requester_id=item.requested_by_id,
                        decision=Approval.Decision.REJECT,
                        comment="Not in this release window.",
                    )
                )
            elif status == "cancelled":
                item.ended_at = decided
        MigrationRequest.objects.bulk_update(requests, ["approved_at", "ended_at"])
        for item in requests:
            MigrationRequest.objects.filter(pk=item.pk).update(created_at=item.created_at)
        Approval.objects.bulk_create(approvals)
        _seed_runs(runs, Run, RunLogLine, RunProgress)
    return [item.pk for item in requests]


def _seed_runs(
    runs: list[tuple[Any, str, Any]], run_model: Any, line_model: Any, progress_model: Any
) -> None:
    """One run per executed request with progress rows and log lines."""
    rows = []
    for item, status, started in runs:
        revisions = item.revisions
        done = revisions if status == "succeeded" else revisions[: len(revisions) // 2]
        rows.append(
            run_model(
                request=item,
                outcome=status,
                phase="finished" if status == "succeeded" else "migrating",
                attempt=1,
                worker="celery@worker-1 pid 4242",
                heartbeat_at=started + timedelta(seconds=40),
                finished_at=started + timedelta(seconds=45),
                total_steps=len(revisions),
                current_revision=done[-1] if done else "",
                applied=done,
                committed=done if status == "succeeded" else [],
                final_heads=item.to_heads if status == "succeeded" else item.from_heads,
                reason=""
                if status == "succeeded"
                else ("sql_error" if status == "failed" else "lost_heartbeat"),
                error="" if status == "succeeded" else "canceling statement due to lock timeout",
            )
        )
    rows = run_model.objects.bulk_create(rows)
    lines, progress = [], []
    for run in rows:
        run_model.objects.filter(pk=run.pk).update(
            started_at=run.heartbeat_at - timedelta(seconds=40)
        )
        lines.append(line_model(run=run, text="target lock acquired"))
        for index, revision in enumerate(run.applied):
            progress.append(progress_model(run=run, index=index, revision=revision))
            lines.append(line_model(run=run, text=f"Running upgrade -> {revision}"))
            lines.append(
                line_model(
                    run=run,
                    kind="sql",
                    text=f"CREATE TABLE t_{revision} (id INTEGER NOT NULL, PRIMARY KEY (id))",
                )
            )
        if run.error:
            lines.append(line_model(run=run, kind="error", text=run.error))
    line_model.objects.bulk_create(lines, batch_size=2000)
    progress_model.objects.bulk_create(progress, batch_size=2000)


def _manifest(
    *, roles: dict[str, list[str]], request_ids: list[int], environments: dict[str, Any]
) -> dict[str, Any]:
    from dashboard.approvals.models import MigrationRequest
    from dashboard.audit.models import AuditEvent
    from dashboard.graph.selectors import graph_current

    graph = graph_current()
    revisions = [rev.id for rev in graph.revisions]
    head = AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first() or 0
    return {
        "password": PASSWORD,
        "roles": roles,
        "revisions": revisions,
        "environments": environments,
        "requests": request_ids,
        "pending_requests": list(
            MigrationRequest.objects.filter(status="pending").values_list("pk", flat=True)
        ),
        "audit_head_seq": head,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", required=True, type=Path)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    targets_dir = Path(os.environ.get("LOAD_TARGETS_DIR", "var/load-targets"))
    os.environ.setdefault("DASHBOARD_DRIFT_METADATA", "benchmarks.load.drift_metadata:metadata")
    for slug in ENVIRONMENTS:
        os.environ.setdefault(
            target_url_variable(slug), f"sqlite:///{target_path(targets_dir, slug)}"
        )

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")
    import logging

    import django

    django.setup()
    logging.getLogger("alembic").setLevel(logging.WARNING)  # one line per revision otherwise

    seconds = seed_audit_events(events=args.events)
    print(f"  {args.events:,} audit events in {seconds:.1f} s")
    started = time.perf_counter()
    roles = seed_accounts()
    environments = seed_environments(targets_dir=targets_dir)
    print(f"  environments: {environments}")
    request_ids = seed_requests(count=args.requests)
    print(
        f"  {len(request_ids)} requests with approvals and runs in {time.perf_counter() - started:.1f} s"
    )
    manifest = _manifest(roles=roles, request_ids=request_ids, environments=environments)
    args.manifest.write_text(json.dumps(manifest), encoding="utf-8")
    print(f"  {len(manifest['revisions'])} revisions in the graph; manifest {args.manifest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
