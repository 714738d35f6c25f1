"""``manage.py demo_targets``: put the demo's SQLite targets at different revisions.

dev at ``heads``, staging a few revisions behind, production further behind,
so a first visit shows pending work. The ``tenants`` fleet's twelve targets
start at two revisions: most at the merge of the marketplace branch (three
behind head), ``TENANTS_ONE_BEHIND`` one behind, so its request pins two
plans. On ``initech`` someone has created ``audit_logs`` by hand, the table
the next revision creates: that tenant's run fails and the demo's rollout
halts in wave 2 (``demo_history``). ``--fix-tenant`` drops that hand-made
table again, so *Resume* on the rollout page finishes the rollout.

A target that already has a version table is left where it is (safe to run
twice). Then every status is read.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.urls import reverse
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from dashboard.environments.fleet import fleet_summaries
from dashboard.environments.models import Environment, EnvironmentConfigError, target_slug
from dashboard.environments.services import alembic_script, environments_refresh_all
from dashboard.migrator.plan import compute_plan
from dashboard.migrator.runner import read_heads_on_connection

BEHIND = {"dev": 0, "staging": 3, "production": 8}

FLEET = "tenants"
TENANTS_BEHIND = 3  # most tenants: at d05e4b7c3a92, the merge of the marketplace branch
TENANTS_ONE_BEHIND = ("globex", "stark", "aperture")
# The tenant whose run fails: a table of the first pending revision exists there already.
CONFLICT_TENANT = "initech"
CONFLICT_REVISION = "2b7f9c6e1d84"  # "add audit logs": CREATE TABLE audit_logs
CONFLICT_TABLE = "audit_logs"
FIX_COMMAND = "make demo-fix-tenant"


class Command(BaseCommand):
    help = "Migrate the demo's target databases to different revisions, then read their status."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--slug", action="append", help="only these environments")
        parser.add_argument(
            "--fix-tenant",
            action="store_true",
            help=f"drop the hand-made {CONFLICT_TABLE} table that halts the demo's rollout",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["fix_tenant"]:
            self._fix_tenant()
            return
        order = list(
            compute_plan(
                alembic_script(), current_heads=(), target="heads", direction="upgrade"
            ).revisions
        )
        slugs = options["slug"] or [*BEHIND, FLEET]
        for env in Environment.objects.filter(slug__in=slugs, is_fleet=False):
            behind = BEHIND.get(env.slug, 0)
            target = "heads" if behind == 0 else order[max(0, len(order) - 1 - behind)]
            try:
                url = env.database_url()
            except EnvironmentConfigError as exc:
                self.stdout.write(f"skipped {env.slug}: {exc}")
                continue
            self._migrate(env, url, target)
        fleet = Environment.objects.filter(slug=FLEET, is_fleet=True).first()
        if fleet is not None and FLEET in slugs:
            self._tenants(fleet, order)
        environments_refresh_all(environments=Environment.objects.readable())
        self._report()

    def _report(self) -> None:
        pipeline = list(Environment.objects.pipeline().order_by("position"))
        summaries = fleet_summaries([env.pk for env in pipeline if env.is_fleet])
        for env in pipeline:
            if not env.is_fleet:
                self.stdout.write(f"{env.slug}: {env.status_state}, {len(env.pending)} pending")
                continue
            sets = "; ".join(
                f"{row['targets']} at {', '.join(h[:12] for h in row['heads'])}"
                for row in summaries[env.pk].head_sets
            )
            self.stdout.write(
                f"{env.slug}: {summaries[env.pk].targets} targets ({sets or 'unread'})"
            )

    def _migrate(self, env: Environment, url: str, target: str) -> None:
        engine = create_engine(url)
        try:
            with engine.begin() as connection:
                if inspect(connection).has_table(env.version_table):
                    self.stdout.write(f"{env.slug}: already migrated, left as is")
                    return
                config = Config(settings.ALEMBIC_CONFIG)
                config.attributes["connection"] = connection
                command.upgrade(config, target)
                self.stdout.write(f"{env.slug}: upgraded to {target}")
        finally:
            engine.dispose()

    # --- the tenants fleet ----------------------------------------------------

    def _tenants(self, fleet: Environment, order: list[str]) -> None:
        """Position every fresh tenant; on a fresh initech, create the conflicting table."""
        targets = list(Environment.objects.targets_of(fleet))
        try:
            urls = {env.target_name: env.database_url() for env in targets}
        except EnvironmentConfigError as exc:
            self.stdout.write(f"skipped {fleet.slug}: {exc}")
            return
        fresh = [env for env in targets if not _has_table(urls[env.target_name], env.version_table)]
        if not fresh:
            self.stdout.write(f"{fleet.slug}: already migrated, left as is")
            return
        older = order[max(0, len(order) - 1 - TENANTS_BEHIND)]
        newer = order[-2]
        with tempfile.TemporaryDirectory(prefix="demo-tenants-") as scratch:
            # Every SQLite tenant starts as a copy of one migrated file: the same
            # schema Alembic would leave, without migrating twelve files one by one.
            copies = {
                older: _migrated_copy(Path(scratch) / "older.sqlite3", older),
                newer: _migrated_copy(Path(scratch) / "newer.sqlite3", newer),
            }
            for env in fresh:
                revision = newer if env.target_name in TENANTS_ONE_BEHIND else older
                _place(urls[env.target_name], copies[revision], revision)
                self.stdout.write(f"{env.slug}: starts at {revision[:12]}")
                if env.target_name == CONFLICT_TENANT:
                    _create_conflict(urls[env.target_name])
                    self.stdout.write(
                        f"{env.slug}: someone created {CONFLICT_TABLE} by hand, the table"
                        f" {CONFLICT_REVISION[:12]} creates (the demo's failing tenant)"
                    )

    def _fix_tenant(self) -> None:
        """Drop the hand-made table on initech, only while its revision is still pending."""
        env = Environment.objects.filter(slug=target_slug(FLEET, CONFLICT_TENANT)).first()
        if env is None:
            raise CommandError(
                f"no environment {target_slug(FLEET, CONFLICT_TENANT)}: run demo_setup"
            )
        try:
            url = env.database_url()
        except EnvironmentConfigError as exc:
            raise CommandError(f"{env.slug}: {exc}") from None
        engine = create_engine(url, poolclass=NullPool)
        try:
            with engine.connect() as connection:
                heads = read_heads_on_connection(
                    connection,
                    version_table=env.version_table,
                    version_table_schema=env.version_table_schema or None,
                )
                pending = compute_plan(
                    alembic_script(), current_heads=heads, target="heads", direction="upgrade"
                ).revisions
                if not inspect(connection).has_table(CONFLICT_TABLE):
                    message = f"{env.slug}: no table {CONFLICT_TABLE}, nothing to fix"
                elif CONFLICT_REVISION not in pending:
                    message = (
                        f"{env.slug}: {CONFLICT_TABLE} is the migrated one"
                        f" ({CONFLICT_REVISION[:12]} is applied), left as is"
                    )
                else:
                    connection.execute(text(f"DROP TABLE {CONFLICT_TABLE}"))
                    connection.commit()
                    message = (
                        f"{env.slug}: dropped the hand-made table {CONFLICT_TABLE}. Now sign in"
                        f" as lead (or lead2), open the halted rollout ({_fleet_url()} → its"
                        " request → Rollout) and press Resume."
                    )
        finally:
            engine.dispose()
        environments_refresh_all(environments=[env])
        self.stdout.write(message)


def _fleet_url() -> str:
    """The fleet's page; its halted request links to the rollout (environments never import
    the rollouts app, so the rollout's own address is printed by ``demo_setup``)."""
    return settings.DASHBOARD_BASE_URL.rstrip("/") + reverse("environments:detail", args=[FLEET])


def _has_table(url: str, table: str) -> bool:
    path = _sqlite_file(url)
    if path is not None and not path.exists():
        return False  # do not let SQLite create an empty file (or fail on a missing folder)
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            return inspect(connection).has_table(table)
    finally:
        engine.dispose()


def _upgrade(url: str, revision: str) -> None:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as connection:
            config = Config(settings.ALEMBIC_CONFIG)
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    finally:
        engine.dispose()


def _migrated_copy(path: Path, revision: str) -> Path:
    _upgrade(f"sqlite:///{path}", revision)
    return path


def _sqlite_file(url: str) -> Path | None:
    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite") or not parsed.database:
        return None
    return Path(parsed.database) if parsed.database != ":memory:" else None


def _place(url: str, template: Path, revision: str) -> None:
    """Put a fresh tenant at ``revision``: a copy of ``template`` for a SQLite file, else Alembic."""
    path = _sqlite_file(url)
    if path is None:
        _upgrade(url, revision)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, path)


def _create_conflict(url: str) -> None:
    """What a support engineer did on one tenant, outside the dashboard (not audited)."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    f"CREATE TABLE {CONFLICT_TABLE} (id INTEGER PRIMARY KEY,"
                    " note VARCHAR(200) NOT NULL)"
                )
            )
            connection.execute(
                text(f"INSERT INTO {CONFLICT_TABLE} (note) VALUES ('ad-hoc audit of an export')")
            )
    finally:
        engine.dispose()
