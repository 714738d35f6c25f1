"""``manage.py load_environments FILE.toml [--prune]``: create or update environments by slug."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from dashboard.environments.config_file import EnvironmentFileError, environments_load


class Command(BaseCommand):
    help = (
        "Create or update environments from a TOML file (idempotent; prints what changed). "
        "Environments missing from the file are kept unless --prune is given."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="TOML file with [environments.<slug>] tables")
        parser.add_argument(
            "--prune", action="store_true", help="delete environments that are not in the file"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            result = environments_load(path=options["file"], prune=options["prune"])
        except EnvironmentFileError as exc:
            raise CommandError(str(exc)) from None
        for line in result.lines():
            self.stdout.write(line)
        if not (result.created or result.updated or result.deleted):
            self.stdout.write("nothing changed")
