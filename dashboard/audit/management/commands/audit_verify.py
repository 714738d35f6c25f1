"""``manage.py audit_verify [--full | --file EXPORT]``: check the audit hash chain.

Without ``--file``: walks the database chain, records the result (shown on the
log page) and prints the number of events checked and the head hash; exits 1
naming the first event whose hash or link does not match. The walk is
incremental from the last successful verification (its checkpoint event
re-checked), like the daily beat task; ``--full`` walks from event #1, which is
what finds tampering before the checkpoint. With ``--file``: verifies an
exported CSV or JSON Lines file offline (no database access).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from dashboard.audit.export_verify import verify_export_file
from dashboard.audit.models import ChainVerification
from dashboard.audit.services import audit_chain_verify


class Command(BaseCommand):
    help = "Verify the audit log's hash chain (or an exported file with --file)."

    def add_arguments(self, parser: CommandParser) -> None:
        source = parser.add_mutually_exclusive_group()
        source.add_argument("--file", type=Path, help="verify an exported .csv or .jsonl file")
        source.add_argument(
            "--full", action="store_true", help="walk from event #1, not from the last checkpoint"
        )

    def handle(
        self, *args: Any, file: Path | None = None, full: bool = False, **options: Any
    ) -> None:
        if file is not None:
            ok, message = verify_export_file(file)
        else:
            result = audit_chain_verify(full=full)
            ok = result.ok
            head = f"head #{result.head_seq} {result.head_hash}" if result.head_seq else "empty log"
            scope = (
                "full walk"
                if result.mode == ChainVerification.Mode.FULL
                else f"incremental from #{result.from_seq}"
            )
            message = f"{result.events_checked} events checked; {head} ({scope})"
            if not ok:
                message = (
                    f"chain broken at {result.message}; {result.events_checked} events"
                    f" checked before it ({scope})"
                )
        if not ok:
            raise CommandError(message, returncode=1)
        self.stdout.write(message)
