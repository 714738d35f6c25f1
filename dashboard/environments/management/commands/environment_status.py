"""``manage.py environment_status [--slug S] [--targets] [--json] [--refresh]``: status for automation.

Lists the pipeline: single environments and fleets, in pipeline order. A
fleet is one entry with its summary (targets per state and per head set);
its targets are listed one by one in JSON always, in text with
``--targets`` or when ``--slug`` names the fleet. ``--slug`` takes an
environment, a fleet or one target (``tenants--acme``).

``--refresh`` reads the databases now instead of the cache: single
environments one thread each, every target of a fleet in parallel threads
(stored in bulk); never a fleet's own row, which has no database.

Exit status 2 when any listed environment, or any target of a listed
fleet, is unreachable.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from dashboard.environments.fleet import SUMMARY_STATES
from dashboard.environments.selectors import SUMMARY_LABELS, status_report
from dashboard.environments.services import environments_refresh_all, fleet_targets_refresh

HEAD_SETS_SHOWN = 3


class Command(BaseCommand):
    help = (
        "Print each environment's state, current heads and pending revisions. A fleet prints"
        " one summary line (its targets per state and per head set); add --targets, or name"
        " the fleet with --slug, for one line per target. --json always lists every target."
        " Exit status 2 when any listed environment or target is unreachable."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--slug", help="only this environment, fleet or target (fleet--name)")
        parser.add_argument(
            "--targets", action="store_true", help="also print one line per target of each fleet"
        )
        parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
        parser.add_argument(
            "--refresh",
            action="store_true",
            help="read the databases now instead of the cache (a fleet's targets in parallel)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        from dashboard.environments.models import Environment

        slug = options["slug"]
        queryset = (
            Environment.objects.filter(slug=slug)
            if slug
            else Environment.objects.pipeline().order_by("position", "name")
        )
        listed = list(queryset)
        if slug and not listed:
            raise CommandError(f"no environment with slug {slug!r}")
        if options["refresh"]:
            environments_refresh_all(environments=[env for env in listed if not env.is_fleet])
            fleet_targets_refresh(fleets=[env for env in listed if env.is_fleet])
        report = status_report(environments=listed)
        if options["json"]:
            self.stdout.write(json.dumps({"environments": report}, indent=2))
        else:
            self._print(report, with_targets=options["targets"] or bool(slug))
        rows = [row for entry in report for row in entry.get("targets", [entry])]
        if any(row["state"] == "unreachable" for row in rows):
            sys.stdout.flush()
            raise SystemExit(2)

    def _print(self, report: list[dict[str, Any]], *, with_targets: bool) -> None:
        for entry in report:
            if "fleet" not in entry:
                self.stdout.write(_status_line(entry, width=14))
                continue
            self.stdout.write(_fleet_line(entry))
            if with_targets:
                width = max((len(row["slug"]) for row in entry["targets"]), default=14)
                for row in entry["targets"]:
                    self.stdout.write("  " + _status_line(row, width=width))


def _status_line(row: dict[str, Any], *, width: int) -> str:
    heads = ", ".join(row["current_heads"]) or "-"
    line = f"{row['slug']:<{width}} {row['state']:<17} heads: {heads}"
    line += f"  pending: {len(row['pending'])}"
    if row["error"]:
        line += f"  ({row['error']})"
    return line


def _fleet_line(entry: dict[str, Any]) -> str:
    """``tenants  fleet of 500 targets: 480 up to date, 20 unreachable; heads: abc (480)``."""
    summary = entry["fleet"]["summary"]
    counts = [
        f"{summary['states'][state]} {SUMMARY_LABELS[state].lower()}"
        for state in SUMMARY_STATES
        if summary["states"].get(state)
    ]
    line = f"{entry['slug']:<14} fleet of {entry['fleet']['targets']} targets: "
    line += ", ".join(counts) or "none"
    head_sets = summary["head_sets"]
    if head_sets:
        shown = [
            f"{'+'.join(item['heads']) or '(empty)'} ({item['targets']})"
            for item in head_sets[:HEAD_SETS_SHOWN]
        ]
        more = len(head_sets) - HEAD_SETS_SHOWN
        line += "; heads: " + ", ".join(shown) + (f", {more} more head sets" if more > 0 else "")
    return line
