"""``manage.py demo_targets``: put the demo's SQLite targets at different revisions.

dev at ``heads``, staging a few revisions behind, production further behind,
so a first visit shows pending work. A target that already has a version
table is left where it is (safe to run twice). Then every status is read.
"""

from __future__ import annotations

from typing import Any

from alembic import command
from alembic.config import Config
from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from sqlalchemy import create_engine, inspect

from dashboard.environments.models import Environment, EnvironmentConfigError
from dashboard.environments.services import alembic_script, environments_refresh_all
from dashboard.migrator.plan import compute_plan

BEHIND = {"dev": 0, "staging": 3, "production": 8}


class Command(BaseCommand):
    help = "Migrate the demo's target databases to different revisions, then read their status."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--slug", action="append", help="only these environments")

    def handle(self, *args: Any, **options: Any) -> None:
        order = compute_plan(
            alembic_script(), current_heads=(), target="heads", direction="upgrade"
        ).revisions
        slugs = options["slug"] or list(BEHIND)
        for env in Environment.objects.filter(slug__in=slugs):
            behind = BEHIND.get(env.slug, 0)
            target = "heads" if behind == 0 else order[max(0, len(order) - 1 - behind)]
            try:
                url = env.database_url()
            except EnvironmentConfigError as exc:
                self.stdout.write(f"skipped {env.slug}: {exc}")
                continue
            self._migrate(env, url, target)
        environments_refresh_all()
        for env in Environment.objects.order_by("position"):
            self.stdout.write(f"{env.slug}: {env.status_state}, {len(env.pending)} pending")

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
