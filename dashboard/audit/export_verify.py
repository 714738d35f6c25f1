"""Offline verification of an exported audit file (CSV or JSON Lines).

No database and no Django: it rebuilds each event's canonical form from the
file (see ``dashboard.audit.chain``), recomputes its hash, and checks the
link to the previous row wherever the two rows are consecutive in the chain
(a filtered export has gaps; each row is still checked on its own).
``scripts/verify_audit_export.py`` is a standalone copy for auditors.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dashboard.audit.chain import (
    CHAIN_FIELDS,
    GENESIS_HASH,
    INTEGER_FIELDS,
    LIST_FIELDS,
    event_hash,
)


def read_export(path: Path) -> Iterator[dict[str, Any]]:
    """Yield the events of an export as canonical dicts (``CHAIN_FIELDS`` + ``hash``)."""
    with path.open(encoding="utf-8", newline="") as handle:
        if path.suffix == ".jsonl":
            for line in handle:
                if line.strip():
                    yield json.loads(line)
            return
        for row in csv.DictReader(handle):
            document: dict[str, Any] = dict(row)
            for name in INTEGER_FIELDS:
                document[name] = int(row[name]) if row[name] != "" else None
            for name in LIST_FIELDS:
                document[name] = row[name].split()
            document["payload"] = json.loads(row["payload"])
            yield document


def verify_export_file(path: Path) -> tuple[bool, str]:
    """Return ``(ok, message)``; the message names the first bad event if any."""
    checked = links = 0
    previous: dict[str, Any] | None = None
    for document in read_export(path):
        missing = [name for name in (*CHAIN_FIELDS, "hash") if name not in document]
        if missing:
            return False, f"row {checked + 1}: missing columns {', '.join(missing)}"
        seq = document["seq"]
        if event_hash(document) != document["hash"]:
            return False, f"event #{seq}: its hash does not match its contents"
        if seq == 1 or (previous is not None and previous["seq"] == seq - 1):
            expected = GENESIS_HASH if seq == 1 else previous["hash"]  # type: ignore[index]
            if document["prev_hash"] != expected:
                return False, f"event #{seq}: its prev_hash does not match the event before it"
            links += 1
        checked, previous = checked + 1, document
    head = f"last #{previous['seq']} {previous['hash']}" if previous else "no events"
    return True, f"{checked} events checked ({links} links); {head}"
