"""``manage.py audit_verify [--file EXPORT]``: check the audit hash chain.

Without ``--file``: walks the database chain, records the result (shown on the
log page) and prints the number of events checked and the head hash; exits 1
naming the first event whose hash or link does not match. With ``--file``:
verifies an exported CSV or JSON Lines file offline (no database access).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from dashboard.audit.export_verify import verify_export_file
from dashboard.audit.services import audit_chain_verify


class Command(BaseCommand):
    help = "Verify the audit log's hash chain (or an exported file with --file)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--file", type=Path, help="verify an exported .csv or .jsonl file")

    def handle(self, *args: Any, file: Path | None = None, **options: Any) -> None:
        if file is not None:
            ok, message = verify_export_file(file)
        else:
            result = audit_chain_verify()
            ok = result.ok
            head = f"head #{result.head_seq} {result.head_hash}" if result.head_seq else "empty log"
            message = f"{result.events_checked} events checked; {head}"
            if not ok:
                message = f"{message}; chain broken at {result.message}"
        if not ok:
            raise CommandError(message, returncode=1)
        self.stdout.write(message)
