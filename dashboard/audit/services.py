"""The audit trail's writers: ``audit_record`` (the ONE way to write an event)
and ``audit_chain_verify``.

Every state change of the product calls ``audit_record`` inside the same
database transaction as the change, so the event commits or rolls back with
it. Writers are serialised so the hash chain never forks: on PostgreSQL by a
transaction-level advisory lock, on SQLite by the database write lock that
``transaction_mode=IMMEDIATE`` takes at ``BEGIN``.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import socket
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.utils import timezone

from dashboard.audit.chain import CHAIN_FIELDS, GENESIS_HASH, event_hash, format_timestamp
from dashboard.audit.masking import mask_payload
from dashboard.audit.models import AuditEvent, ChainVerification

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
    from django.http import HttpRequest

# pg_advisory_xact_lock key of the chain: any constant shared by all writers
# ("AUDT" in ASCII), distinct from the execution locks of other modules.
CHAIN_LOCK_KEY = 0x41554454
_ACTION = re.compile(r"^[a-z0-9_]+(\.[a-z0-9_]+)+$")
_SHA256 = re.compile(r"^([0-9a-f]{64})?$")
_USER_AGENT_MAX = 512


def audit_record(
    *,
    action: str,
    actor: AbstractBaseUser | AnonymousUser | None = None,
    environment: object | None = None,
    request: object | None = None,
    from_revisions: Sequence[str] = (),
    to_revisions: Sequence[str] = (),
    sql_sha256: str = "",
    http_request: HttpRequest | None = None,
    payload: Mapping[str, Any] | None = None,
) -> AuditEvent:
    """Append one event to the audit chain and return it.

    Contract:
    - Call it inside the ``transaction.atomic()`` block of the change it
      records: the event then commits or rolls back with the change. It opens
      a savepoint of its own (or, called outside any transaction, a
      transaction that commits the event alone).
    - It takes the chain lock (PostgreSQL: ``pg_advisory_xact_lock``), which is
      held until the *outermost* transaction ends: keep the rest of that
      transaction short and record the event as its last statement (taking
      row locks after the chain lock can deadlock with a writer that holds
      those rows and waits for the chain).
    - ``actor=None`` (or an anonymous user) means the system/worker: host name
      and process id are recorded; with an ``http_request`` and no user the
      actor is ``anonymous`` (e.g. a failed login).
    - ``environment`` is stored as its id and slug, ``request`` (a migration
      request) as its id; no foreign keys, so the log outlives those rows.
    - ``payload`` is masked (secret-looking keys, URL/conninfo passwords)
      before it is stored and hashed.
    Raises ``ValueError`` for a malformed action code, SQL hash or revision.
    """
    if not _ACTION.match(action):
        raise ValueError(f"action code {action!r} is not namespaced like 'dashboard.run.started'")
    sql_sha256 = (sql_sha256 or "").lower()
    if not _SHA256.match(sql_sha256):
        raise ValueError("sql_sha256 must be 64 lowercase hex characters or empty")
    event = AuditEvent(
        action=action,
        environment_id=getattr(environment, "pk", None),
        environment_slug=_environment_slug(environment),
        request_id=_request_id(request),
        from_revisions=_revisions(from_revisions),
        to_revisions=_revisions(to_revisions),
        sql_sha256=sql_sha256,
        client_ip=_client_ip(http_request),
        user_agent=_user_agent(http_request),
    )
    _set_actor(event, actor=actor, http_request=http_request)
    with transaction.atomic():
        event.payload = _as_stored_json(mask_payload(dict(payload or {})))
        now = _lock_chain()
        head = _chain_head()
        if head is None:
            event.seq, event.prev_hash, event.created_at = 1, GENESIS_HASH, now
        else:
            # Monotonic along the chain even if the database's clock steps back.
            event.seq, event.prev_hash, event.created_at = head[0] + 1, head[1], max(now, head[2])
        event.hash = event_hash(event.chain_fields())
        event.save()
    return event


def _lock_chain() -> datetime:
    """Take the chain lock (held until the outermost transaction ends); return the time.

    The time is the dashboard database's clock read once the lock is held
    (PostgreSQL: ``clock_timestamp()``), never the writer's: one web or worker
    host with a fast clock must not push its time onto every later event.
    On SQLite the database is a file of this machine, and its clock is ours;
    the IMMEDIATE transaction already holds the database write lock.
    """
    if connection.vendor != "postgresql":
        return timezone.now()
    with connection.cursor() as cursor:
        # The subquery is evaluated first: the clock is read after the lock is granted.
        cursor.execute(
            "SELECT clock_timestamp() FROM (SELECT pg_advisory_xact_lock(%s)) AS locked",
            [CHAIN_LOCK_KEY],
        )
        return cursor.fetchone()[0]


def _chain_head() -> tuple[int, str, datetime] | None:
    return AuditEvent.objects.order_by("-seq").values_list("seq", "hash", "created_at").first()


def _as_stored_json(value: dict[str, Any]) -> dict[str, Any]:
    """Return the payload exactly as the database will give it back.

    PostgreSQL's jsonb normalises numbers (``1e2`` comes back as ``100``);
    hashing the normalised value keeps stored events verifiable.
    """
    if connection.vendor != "postgresql" or not _has_float(value):
        return value  # strings, integers, booleans and null come back unchanged
    with connection.cursor() as cursor:
        cursor.execute("SELECT (%s::jsonb)::text", [json.dumps(value, cls=DjangoJSONEncoder)])
        return json.loads(cursor.fetchone()[0])


def _has_float(value: Any) -> bool:
    if isinstance(value, float):
        return True
    if isinstance(value, dict):
        return any(_has_float(item) for item in value.values())
    if isinstance(value, list):
        return any(_has_float(item) for item in value)
    return False


def _set_actor(event: AuditEvent, *, actor: Any, http_request: HttpRequest | None) -> None:
    if actor is not None and getattr(actor, "is_authenticated", False):
        event.actor_type = AuditEvent.ActorType.USER
        event.actor_id = actor.pk
        event.actor_username = actor.get_username()
    elif http_request is not None:
        event.actor_type = AuditEvent.ActorType.ANONYMOUS
    else:
        event.actor_type = AuditEvent.ActorType.SYSTEM
        event.actor_host = socket.gethostname()[:255]
        event.actor_pid = os.getpid()


def _environment_slug(environment: object | None) -> str:
    if environment is None:
        return ""
    slug = getattr(environment, "slug", None) or getattr(environment, "name", None) or environment
    return str(slug)[:100]


def _request_id(request: object | None) -> int | None:
    if request is None:
        return None
    if isinstance(request, int):
        return request
    return getattr(request, "pk", None)


def _revisions(revisions: Sequence[str] | str) -> str:
    if isinstance(revisions, str):
        revisions = [revisions] if revisions else []
    cleaned = [str(revision) for revision in revisions if revision]
    if any(not revision.isprintable() or " " in revision for revision in cleaned):
        raise ValueError("revision ids must not contain whitespace")
    return " ".join(cleaned)


def _client_ip(http_request: HttpRequest | None) -> str:
    """The client's address as far as the trusted proxies vouch for it.

    With ``DASHBOARD_TRUSTED_PROXIES = 0`` (the default) it is ``REMOTE_ADDR``,
    the peer Django saw. With ``N`` trusted proxies in front, the hops are the
    ``X-Forwarded-For`` entries followed by ``REMOTE_ADDR`` (the nearest proxy);
    each trusted proxy appended the address it saw, so the client is the entry
    ``N`` from the right of ``X-Forwarded-For``. Entries further left were
    written by the client and are ignored (a spoofed left-most entry changes
    nothing). A header with fewer than ``N`` entries yields its left-most
    entry (the request passed fewer proxies, and that one wrote it). A
    malformed entry is never returned: the nearest valid hop to its right is.
    """
    if http_request is None:
        return ""
    remote_addr = str(http_request.META.get("REMOTE_ADDR") or "")
    trusted = int(getattr(settings, "DASHBOARD_TRUSTED_PROXIES", 0))
    header = str(http_request.META.get("HTTP_X_FORWARDED_FOR") or "") if trusted else ""
    forwarded = [entry.strip() for entry in header.split(",")] if header.strip() else []
    hops = [*forwarded, remote_addr]
    client = max(len(hops) - 1 - trusted, 0)
    for hop in hops[client:]:
        address = _ip_address(hop)
        if address:
            return address
    return ""


def _ip_address(text: str) -> str:
    """``text`` as a normalised IP address (a port, ``1.2.3.4:80`` / ``[::1]:80``, dropped), or ""."""
    candidates = [text]
    if text.startswith("[") and "]" in text:
        candidates.append(text[1 : text.index("]")])
    elif text.count(":") == 1:
        candidates.append(text.split(":", 1)[0])
    for candidate in candidates:
        try:
            return str(ipaddress.ip_address(candidate))
        except ValueError:
            continue
    return ""


def _user_agent(http_request: HttpRequest | None) -> str:
    if http_request is None:
        return ""
    raw = str(http_request.META.get("HTTP_USER_AGENT", ""))[:_USER_AGENT_MAX].replace("\x00", "")
    return defuse_formula(raw)


def defuse_formula(text: str) -> str:
    """Text an anonymous caller controls, made harmless as a spreadsheet cell.

    Applied before hashing, so exported files still verify: a leading
    ``= + - @`` (a formula when an auditor opens the CSV) gets a quote.
    """
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


# --- verification -------------------------------------------------------------


VERIFY_BATCH = 5000


@dataclass(frozen=True)
class ChainCheck:
    """Outcome of walking the chain (``first_bad_seq`` is None when it holds).

    ``head_seq`` / ``head_hash``: the last event found intact (the next
    checkpoint); ``from_seq``: the first event this walk looked at.
    """

    ok: bool
    events_checked: int
    head_seq: int | None
    head_hash: str
    first_bad_seq: int | None
    message: str
    mode: str = ChainVerification.Mode.FULL
    from_seq: int = 1


def audit_chain_check(*, checkpoint: ChainVerification | None = None) -> ChainCheck:
    """Walk the chain in ``seq`` order and stop at the first broken link.

    Checks, per event: ``seq`` follows the previous one without a gap (the
    first is 1), ``prev_hash`` equals the previous event's ``hash``, and
    ``hash`` equals the hash of the event's canonical fields.

    Without ``checkpoint`` the walk starts at #1 (full). With one (a past
    successful verification) it is incremental: the checkpoint event must
    still hash to its contents *and* still carry the ``head_hash`` recorded
    then; only the events after it are walked. Tampering before the
    checkpoint is therefore found by a full walk only.

    Reads in keyset batches (``seq > last ORDER BY seq LIMIT n``), each its
    own short query: no cursor held open, memory flat however long the chain.
    """
    if checkpoint is None or checkpoint.head_seq is None:
        return _walk(after_seq=0, previous_hash=GENESIS_HASH, mode=ChainVerification.Mode.FULL)
    seq = checkpoint.head_seq
    documents = list(_chain_documents(after_seq=seq - 1, limit=1))
    problem = ""
    if not documents or documents[0]["seq"] != seq:
        problem = "the checkpoint event is missing (deleted?)"
    elif event_hash(documents[0]) != documents[0]["hash"]:
        problem = "its stored hash does not match its contents (altered?)"
    elif documents[0]["hash"] != checkpoint.head_hash:
        problem = (
            f"its hash is no longer the one verified at {format_timestamp(checkpoint.checked_at)}"
            " (the chain was rewritten?)"
        )
    if problem:
        return ChainCheck(
            ok=False,
            events_checked=0,
            head_seq=None,
            head_hash="",
            first_bad_seq=seq,
            message=f"event #{seq} (the checkpoint): {problem}",
            mode=ChainVerification.Mode.INCREMENTAL,
            from_seq=seq,
        )
    return _walk(
        after_seq=seq,
        previous_hash=checkpoint.head_hash,
        mode=ChainVerification.Mode.INCREMENTAL,
        already_checked=1,
    )


def _walk(*, after_seq: int, previous_hash: str, mode: str, already_checked: int = 0) -> ChainCheck:
    """Check the events after ``after_seq``, the one at ``after_seq`` having ``previous_hash``."""
    expected_seq, expected_prev, checked = after_seq + 1, previous_hash, already_checked
    head = (after_seq or None, previous_hash if after_seq else "")
    from_seq = after_seq if already_checked else after_seq + 1
    for document in _chain_documents(after_seq=after_seq):
        seq, problem = document["seq"], ""
        if seq != expected_seq:
            problem = f"sequence gap: expected #{expected_seq} (events deleted?)"
        elif document["prev_hash"] != expected_prev:
            problem = "its prev_hash does not match the hash of the event before it"
        elif event_hash(document) != document["hash"]:
            problem = "its stored hash does not match its contents (altered?)"
        if problem:
            return ChainCheck(
                ok=False,
                events_checked=checked,
                head_seq=head[0],
                head_hash=head[1],
                first_bad_seq=seq,
                message=f"event #{seq}: {problem}",
                mode=mode,
                from_seq=from_seq,
            )
        checked, head = checked + 1, (seq, document["hash"])
        expected_seq, expected_prev = seq + 1, document["hash"]
    scope = "" if mode == ChainVerification.Mode.FULL else f" from #{from_seq} (incremental)"
    return ChainCheck(
        ok=True,
        events_checked=checked,
        head_seq=head[0],
        head_hash=head[1] or GENESIS_HASH,
        first_bad_seq=None,
        message=f"{checked} events checked{scope}, chain intact",
        mode=mode,
        from_seq=from_seq,
    )


def _chain_documents(*, after_seq: int, limit: int | None = None) -> Iterator[dict[str, Any]]:
    """Events with ``seq > after_seq`` in chain order as canonical dicts (+ ``hash``).

    Keyset batches of ``VERIFY_BATCH`` rows. (``QuerySet.iterator()`` in
    autocommit would declare a ``WITH HOLD`` cursor, which PostgreSQL
    materialises in full before the first row: minutes and gigabytes of
    temporary file on a long log.)
    """
    columns = (*CHAIN_FIELDS, "hash")
    remaining = limit
    while remaining is None or remaining > 0:
        size = VERIFY_BATCH if remaining is None else min(remaining, VERIFY_BATCH)
        queryset = AuditEvent.objects.filter(seq__gt=after_seq).order_by("seq")
        rows = list(queryset.values_list(*columns)[:size])
        for row in rows:
            document = dict(zip(columns, row, strict=True))
            document["created_at"] = format_timestamp(document["created_at"])
            document["from_revisions"] = document["from_revisions"].split()
            document["to_revisions"] = document["to_revisions"].split()
            yield document
        if len(rows) < size:
            return
        after_seq = rows[-1][0]
        remaining = None if remaining is None else remaining - len(rows)


def audit_verification_checkpoint() -> ChainVerification | None:
    """The verification an incremental walk may start from, or None (walk in full).

    The latest verification (by insertion: hosts' clocks may disagree), if it
    held and saw at least one event. After a failed verification the next one
    walks in full again, so a known break stays reported until someone looks
    at it.
    """
    latest = ChainVerification.objects.order_by("-pk").first()
    if latest is None or not latest.ok or latest.head_seq is None:
        return None
    return latest


def audit_chain_verify(
    *, actor: AbstractBaseUser | None = None, full: bool = False
) -> ChainVerification:
    """Check the chain, store the result and write a ``dashboard.audit.verified`` event.

    Incremental from the last checkpoint (``audit_verification_checkpoint``)
    unless ``full`` or there is none. The walk runs outside any lock
    (appended events are simply not part of this check); the result row and
    the event commit together.
    """
    started = time.perf_counter()
    check = audit_chain_check(checkpoint=None if full else audit_verification_checkpoint())
    with transaction.atomic():
        verification = ChainVerification.objects.create(
            checked_at=timezone.now(),
            mode=check.mode,
            from_seq=check.from_seq,
            ok=check.ok,
            events_checked=check.events_checked,
            head_seq=check.head_seq,
            head_hash=check.head_hash,
            first_bad_seq=check.first_bad_seq,
            message=check.message,
            duration_ms=int((time.perf_counter() - started) * 1000),
        )
        audit_record(
            action="dashboard.audit.verified",
            actor=actor,
            payload={
                "ok": check.ok,
                "mode": check.mode,
                "from_seq": check.from_seq,
                "events_checked": check.events_checked,
                "head_seq": check.head_seq,
                "head_hash": check.head_hash,
                "first_bad_seq": check.first_bad_seq,
                "message": check.message,
            },
        )
    return verification


def audit_export_begin(
    *,
    filters: Mapping[str, Any],
    export_format: str,
    actor: AbstractBaseUser,
    http_request: HttpRequest | None = None,
) -> int:
    """Record a ``dashboard.audit.exported`` event and return the export's upper bound.

    The export then streams the matching events with ``seq`` up to the
    returned number (the head before this event), so the file is a fixed
    snapshot even while new events arrive, and the export event itself
    says which filters and bound were used.
    """
    with transaction.atomic():
        _lock_chain()
        head = _chain_head()
        up_to_seq = head[0] if head else 0
        audit_record(
            action="dashboard.audit.exported",
            actor=actor,
            http_request=http_request,
            payload={"filters": dict(filters), "format": export_format, "up_to_seq": up_to_seq},
        )
    return up_to_seq
