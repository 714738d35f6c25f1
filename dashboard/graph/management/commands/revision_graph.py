"""``manage.py revision_graph``: the revision graph for scripts and CI.

Exit status 0 when the history loads, 1 (with the errors on stderr) when it
cannot be loaded; ``--format json`` prints the object documented in
:mod:`dashboard.migrator.graph_export` in both cases.
"""

from __future__ import annotations

import json
import sys
from argparse import ArgumentParser
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from dashboard.graph.storage import graph_cache_dir
from dashboard.migrator.graph import load_revision_graph
from dashboard.migrator.graph_export import revision_graph_as_dict, revision_graph_as_text


class Command(BaseCommand):
    help = "Print the Alembic revision graph (lanes as text, or JSON)."
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: ArgumentParser) -> None:
        source = parser.add_mutually_exclusive_group()
        source.add_argument("--config", help="alembic.ini to read (default: ALEMBIC_CONFIG)")
        source.add_argument("--script-location", help="script directory, or a bare versions folder")
        parser.add_argument("--format", choices=["text", "json"], default="text")

    def handle(self, *args: Any, **options: Any) -> None:
        cache_dir = graph_cache_dir()
        if options["script_location"]:
            graph = load_revision_graph(
                script_location=options["script_location"], cache_dir=cache_dir
            )
        else:
            config = options["config"] or settings.ALEMBIC_CONFIG
            graph = load_revision_graph(config_path=config, cache_dir=cache_dir)
        if options["format"] == "json":
            self.stdout.write(json.dumps(revision_graph_as_dict(graph)))
        elif graph.ok:
            self.stdout.write(revision_graph_as_text(graph), ending="")
        if not graph.ok:
            for error in graph.errors:
                self.stderr.write(f"error: {error}")
            self.stderr.write("the revision history cannot be loaded")
            sys.exit(1)
