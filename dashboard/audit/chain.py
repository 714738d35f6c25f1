"""The hash chain of the audit log: canonical serialisation and hashing.

Pure Python on purpose (no Django import): ``scripts/verify_audit_export.py``
carries a copy of these few lines so that an exported file can be verified
offline, and a test checks that both agree. The format is documented in
``docs/audit.md``; changing it breaks every existing chain.

Canonical form of an event: a JSON object of the fields in ``CHAIN_FIELDS``,
keys sorted, separators ``","`` and ``":"``, non-ASCII characters kept as
UTF-8, integers as JSON numbers or ``null``, strings never ``null`` (empty
string instead), revisions as lists of strings, the timestamp in UTC as
``YYYY-MM-DDTHH:MM:SS.ffffffZ``, and ``prev_hash`` the hash of the previous
event (``GENESIS_HASH`` for the first). The event's hash is the lowercase hex
SHA-256 of the UTF-8 bytes of that text.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

GENESIS_HASH = "0" * 64
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"

# Every field that the hash covers, in export column order (``hash`` is last
# in exports and not part of its own input).
CHAIN_FIELDS: tuple[str, ...] = (
    "seq",
    "created_at",
    "action",
    "actor_type",
    "actor_id",
    "actor_username",
    "actor_host",
    "actor_pid",
    "environment_id",
    "environment_slug",
    "request_id",
    "from_revisions",
    "to_revisions",
    "sql_sha256",
    "client_ip",
    "user_agent",
    "payload",
    "prev_hash",
)
INTEGER_FIELDS = frozenset({"seq", "actor_id", "actor_pid", "environment_id", "request_id"})
LIST_FIELDS = frozenset({"from_revisions", "to_revisions"})


def format_timestamp(moment: datetime) -> str:
    """Render an aware datetime in the canonical UTC form (microseconds, ``Z``)."""
    if moment.tzinfo is None:
        raise ValueError("audit timestamps must be timezone-aware")
    return moment.astimezone(UTC).strftime(TIMESTAMP_FORMAT)


def canonical_json(value: Any) -> str:
    """The one JSON rendering used for hashing and for the payload column of exports."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def event_hash(fields: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the canonical form of ``fields``.

    ``fields`` must hold exactly the keys of ``CHAIN_FIELDS`` with canonical
    values (``created_at`` already a string, revisions lists, payload a JSON
    value); extra keys such as ``hash`` are ignored.
    """
    document = {name: fields[name] for name in CHAIN_FIELDS}
    return hashlib.sha256(canonical_json(document).encode("utf-8")).hexdigest()
