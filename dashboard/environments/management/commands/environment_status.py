"""``manage.py environment_status [--slug S] [--json] [--refresh]``: status for automation.

Exit status 2 when any listed environment is unreachable.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from dashboard.environments.selectors import environment_status_rows
from dashboard.environments.services import environments_refresh_all


class Command(BaseCommand):
    help = "Print each environment's state, current heads and pending revisions."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--slug", help="only this environment")
        parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
        parser.add_argument(
            "--refresh", action="store_true", help="read the databases now instead of the cache"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        from dashboard.environments.models import Environment

        queryset = Environment.objects.order_by("position", "name")
        if options["slug"]:
            queryset = queryset.filter(slug=options["slug"])
            if not queryset.exists():
                raise CommandError(f"no environment with slug {options['slug']!r}")
        if options["refresh"]:
            environments_refresh_all(environments=list(queryset))
        rows = environment_status_rows(environments=queryset)
        if options["json"]:
            self.stdout.write(json.dumps({"environments": rows}, indent=2))
        else:
            for row in rows:
                heads = ", ".join(row["current_heads"]) or "-"
                line = f"{row['slug']:<14} {row['state']:<17} heads: {heads}"
                line += f"  pending: {len(row['pending'])}"
                if row["error"]:
                    line += f"  ({row['error']})"
                self.stdout.write(line)
        if any(row["state"] == "unreachable" for row in rows):
            sys.stdout.flush()
            raise SystemExit(2)
