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
from typing import TYPE_CHECKING, Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.utils import timezone

from dashboard.audit.chain import GENESIS_HASH, event_hash
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
        head = _lock_chain_and_read_head()
        now = timezone.now()
        if head is None:
            event.seq, event.prev_hash, event.created_at = 1, GENESIS_HASH, now
        else:
            # Keep timestamps monotonic along the chain even if the clock steps back.
            event.seq, event.prev_hash, event.created_at = head[0] + 1, head[1], max(now, head[2])
        event.hash = event_hash(event.chain_fields())
        event.save()
    return event


def _lock_chain_and_read_head() -> tuple[int, str, Any] | None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [CHAIN_LOCK_KEY])
    # On SQLite the IMMEDIATE transaction already holds the database write lock.
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
    """The peer address Django saw (``REMOTE_ADDR``); proxies must set it right."""
    if http_request is None:
        return ""
    raw = http_request.META.get("REMOTE_ADDR") or ""
    try:
        return str(ipaddress.ip_address(raw))
    except ValueError:
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


@dataclass(frozen=True)
class ChainCheck:
    """Outcome of walking the chain (``first_bad_seq`` is None when it holds)."""

    ok: bool
    events_checked: int
    head_seq: int | None
    head_hash: str
    first_bad_seq: int | None
    message: str


def audit_chain_check(*, events: Iterator[AuditEvent] | None = None) -> ChainCheck:
    """Walk the chain in ``seq`` order and stop at the first broken link.

    Checks, per event: ``seq`` follows the previous one without a gap (the
    first is 1), ``prev_hash`` equals the previous event's ``hash``, and
    ``hash`` equals the hash of the event's canonical fields. Reads with a
    server-side cursor, so memory stays flat on a long chain.
    """
    if events is None:
        events = AuditEvent.objects.order_by("seq").iterator(chunk_size=5000)
    expected_seq, expected_prev, checked, last = 1, GENESIS_HASH, 0, None
    for event in events:
        problem = ""
        if event.seq != expected_seq:
            problem = f"sequence gap: expected #{expected_seq} (events deleted?)"
        elif event.prev_hash != expected_prev:
            problem = "its prev_hash does not match the hash of the event before it"
        elif event_hash(event.chain_fields()) != event.hash:
            problem = "its stored hash does not match its contents (altered?)"
        if problem:
            return ChainCheck(
                ok=False,
                events_checked=checked,
                head_seq=last.seq if last else None,
                head_hash=last.hash if last else "",
                first_bad_seq=event.seq,
                message=f"event #{event.seq}: {problem}",
            )
        checked, last = checked + 1, event
        expected_seq, expected_prev = event.seq + 1, event.hash
    return ChainCheck(
        ok=True,
        events_checked=checked,
        head_seq=last.seq if last else None,
        head_hash=last.hash if last else GENESIS_HASH,
        first_bad_seq=None,
        message=f"{checked} events checked, chain intact",
    )


def audit_chain_verify(*, actor: AbstractBaseUser | None = None) -> ChainVerification:
    """Check the whole chain, store the result and write a ``dashboard.audit.verified`` event.

    The walk runs outside any lock (appended events are simply not part of
    this check); the result row and the event commit together.
    """
    started = time.perf_counter()
    check = audit_chain_check()
    with transaction.atomic():
        verification = ChainVerification.objects.create(
            checked_at=timezone.now(),
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
        head = _lock_chain_and_read_head()
        up_to_seq = head[0] if head else 0
        audit_record(
            action="dashboard.audit.exported",
            actor=actor,
            http_request=http_request,
            payload={"filters": dict(filters), "format": export_format, "up_to_seq": up_to_seq},
        )
    return up_to_seq
