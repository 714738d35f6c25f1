#!/usr/bin/env python3
"""Verify an exported audit log file offline: ``verify_audit_export.py FILE``.

Standalone on purpose (Python 3.11+, standard library only) so an auditor can
check a CSV or JSON Lines export of the migrations dashboard without the
dashboard or its database. Exit status 0 when every row's hash matches its
contents and every consecutive pair of rows is linked, 1 otherwise (the
message names the first bad event).

Canonical form (docs/audit.md): JSON of the fields below, keys sorted,
separators "," and ":", UTF-8 without ASCII escaping; integers or null;
revisions as lists; the payload as a JSON value. Hash = SHA-256 hex.
The dashboard's own copy of these rules is dashboard/audit/chain.py; a test
checks both agree.
"""

from __future__ import annotations

import csv
import hashlib
import json
import sys
from pathlib import Path

GENESIS_HASH = "0" * 64
CHAIN_FIELDS = (
    "seq", "created_at", "action", "actor_type", "actor_id", "actor_username", "actor_host",
    "actor_pid", "environment_id", "environment_slug", "request_id", "from_revisions",
    "to_revisions", "sql_sha256", "client_ip", "user_agent", "payload", "prev_hash",
)  # fmt: skip
INTEGER_FIELDS = {"seq", "actor_id", "actor_pid", "environment_id", "request_id"}
LIST_FIELDS = {"from_revisions", "to_revisions"}


def event_hash(document: dict) -> str:
    canonical = {name: document[name] for name in CHAIN_FIELDS}
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def read_export(path: Path):
    with path.open(encoding="utf-8", newline="") as handle:
        if path.suffix == ".jsonl":
            for line in handle:
                if line.strip():
                    yield json.loads(line)
            return
        for row in csv.DictReader(handle):
            document = dict(row)
            for name in INTEGER_FIELDS:
                document[name] = int(row[name]) if row[name] != "" else None
            for name in LIST_FIELDS:
                document[name] = row[name].split()
            document["payload"] = json.loads(row["payload"])
            yield document


def verify(path: Path) -> tuple[bool, str]:
    checked = links = 0
    previous = None
    for document in read_export(path):
        missing = [name for name in (*CHAIN_FIELDS, "hash") if name not in document]
        if missing:
            return False, f"row {checked + 1}: missing columns {', '.join(missing)}"
        seq = document["seq"]
        if event_hash(document) != document["hash"]:
            return False, f"event #{seq}: its hash does not match its contents"
        if seq == 1 or (previous is not None and previous["seq"] == seq - 1):
            expected = GENESIS_HASH if seq == 1 else previous["hash"]
            if document["prev_hash"] != expected:
                return False, f"event #{seq}: its prev_hash does not match the event before it"
            links += 1
        checked, previous = checked + 1, document
    head = f"last #{previous['seq']} {previous['hash']}" if previous else "no events"
    return True, f"{checked} events checked ({links} links); {head}"


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.splitlines()[0], file=sys.stderr)
        return 2
    ok, message = verify(Path(argv[1]))
    print(message, file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
