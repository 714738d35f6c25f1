"""Reads of the audit log: filtered keyset pages, neighbours, exports, timelines.

Pagination is keyset on ``seq`` (newest first: ``seq < before``), never
``OFFSET``: every filter combination has an index ending in ``seq`` (see the
model's ``Meta.indexes``), so a page deep in a million rows costs as much as
the first one, and events appended while someone pages never shift a page.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.db import connection
from django.db.models import Q, QuerySet, TextField
from django.db.models.expressions import RawSQL
from django.db.models.functions import Cast

from dashboard.audit.chain import CHAIN_FIELDS, canonical_json, format_timestamp
from dashboard.audit.models import AuditEvent, ChainVerification

PAGE_SIZE = 50
KNOWN_ACTIONS: tuple[str, ...] = (
    "dashboard.request.created",
    "dashboard.request.approved",
    "dashboard.request.rejected",
    "dashboard.request.cancelled",
    "dashboard.request.expired",
    "dashboard.run.started",
    "dashboard.run.succeeded",
    "dashboard.run.failed",
    "dashboard.run.interrupted",
    "dashboard.environment.changed",
    "dashboard.auth.login",
    "dashboard.auth.login_failed",
    "dashboard.auth.logout",
    "dashboard.auth.locked_out",
    "dashboard.audit.exported",
    "dashboard.audit.verified",
    "dashboard.api.token_created",
    "dashboard.api.token_revoked",
)
ACTION_GROUPS: tuple[str, ...] = (
    "dashboard.request.*",
    "dashboard.run.*",
    "dashboard.auth.*",
    "dashboard.environment.*",
    "dashboard.audit.*",
    "dashboard.api.*",
)
EXPORT_COLUMNS: tuple[str, ...] = (*CHAIN_FIELDS, "hash")


@dataclass(frozen=True)
class EventFilters:
    """What the auditor filters on; every field empty means "everything".

    ``action`` is an exact code, or a prefix when it ends in ``*``;
    ``revision`` matches (part of) a from- or to-revision id; dates are
    inclusive UTC calendar days.
    """

    environment: str = ""
    actor: str = ""
    action: str = ""
    date_from: date | None = None
    date_to: date | None = None
    revision: str = ""
    request_id: int | None = None

    def as_payload(self) -> dict[str, Any]:
        """The non-empty filters, JSON-ready (dates as ISO strings)."""
        return {
            key: value.isoformat() if isinstance(value, date) else value
            for key, value in asdict(self).items()
            if value not in (None, "")
        }


@dataclass(frozen=True)
class EventPage:
    events: list[AuditEvent]
    next_before: int | None  # the cursor of the following (older) page, None on the last


def audit_event_queryset(*, filters: EventFilters) -> QuerySet[AuditEvent]:
    """All events matching ``filters`` (unordered)."""
    queryset = AuditEvent.objects.all()
    if filters.environment:
        queryset = queryset.filter(environment_slug=filters.environment)
    if filters.actor:
        queryset = queryset.filter(actor_username=filters.actor)
    if filters.action.endswith("*"):
        queryset = queryset.filter(action__startswith=filters.action.rstrip("*"))
    elif filters.action:
        queryset = queryset.filter(action=filters.action)
    if filters.date_from:
        queryset = queryset.filter(created_at__gte=_day_start(filters.date_from))
    if filters.date_to:
        queryset = queryset.filter(created_at__lt=_day_start(filters.date_to + timedelta(days=1)))
    if filters.revision:
        queryset = queryset.filter(
            Q(from_revisions__contains=filters.revision)
            | Q(to_revisions__contains=filters.revision)
        )
    if filters.request_id is not None:
        queryset = queryset.filter(request_id=filters.request_id)
    return queryset


def audit_event_page(
    *, filters: EventFilters, before: int | None = None, size: int = PAGE_SIZE
) -> EventPage:
    """One page of matching events, newest first, strictly older than ``before``."""
    queryset = audit_event_queryset(filters=filters)
    if before is not None:
        queryset = queryset.filter(seq__lt=before)
    events = list(queryset.order_by("-seq")[: size + 1])
    has_more = len(events) > size
    events = events[:size]
    return EventPage(events=events, next_before=events[-1].seq if has_more else None)


def audit_event_neighbours(*, event: AuditEvent) -> tuple[AuditEvent | None, AuditEvent | None]:
    """The events just before and just after ``event`` in the chain."""
    around = {
        other.seq: other
        for other in AuditEvent.objects.filter(seq__in=[event.seq - 1, event.seq + 1])
    }
    return around.get(event.seq - 1), around.get(event.seq + 1)


def audit_last_verification() -> ChainVerification | None:
    return ChainVerification.objects.order_by("-checked_at").first()


def audit_environment_slugs() -> list[str]:
    """Every environment slug that occurs in the log, sorted.

    On PostgreSQL a loose index scan (one index probe per slug) so that it
    stays instant on millions of rows.
    """
    if connection.vendor != "postgresql":
        slugs = AuditEvent.objects.exclude(environment_slug="").values_list(
            "environment_slug", flat=True
        )
        return sorted(set(slugs.order_by().distinct()))
    table = AuditEvent._meta.db_table
    sql = f"""
        WITH RECURSIVE slugs(slug) AS (
            (SELECT environment_slug FROM {table} WHERE environment_slug > ''
             ORDER BY environment_slug LIMIT 1)
            UNION ALL
            SELECT (SELECT environment_slug FROM {table} WHERE environment_slug > slugs.slug
                    ORDER BY environment_slug LIMIT 1)
            FROM slugs WHERE slugs.slug IS NOT NULL
        )
        SELECT slug FROM slugs WHERE slug IS NOT NULL
    """
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return [row[0] for row in cursor.fetchall()]


# --- export ---------------------------------------------------------------------


def audit_export_rows(*, filters: EventFilters, up_to_seq: int) -> Iterator[dict[str, Any]]:
    """Matching events with ``seq <= up_to_seq`` in chain order, as canonical dicts.

    Each dict holds ``EXPORT_COLUMNS`` with the values the hash was computed
    over, so a file built from them can be verified offline. Streams through
    a server-side cursor: memory stays flat however many rows match.
    """
    queryset = _export_queryset(filters=filters, up_to_seq=up_to_seq)
    for row in queryset.values_list(*EXPORT_COLUMNS).iterator(chunk_size=5000):
        document = dict(zip(EXPORT_COLUMNS, row, strict=True))
        document["created_at"] = format_timestamp(document["created_at"])
        document["from_revisions"] = document["from_revisions"].split()
        document["to_revisions"] = document["to_revisions"].split()
        yield document


def audit_export_csv_lines(*, filters: EventFilters, up_to_seq: int) -> Iterator[bytes]:
    """UTF-8 CSV (header first) of the matching events up to ``up_to_seq``, in chain order.

    Columns are ``EXPORT_COLUMNS``; revisions space-separated; the payload a
    JSON text; an empty integer is an empty cell. On PostgreSQL the rows are
    produced by ``COPY (SELECT ...) TO STDOUT`` with the same filters (the
    database formats the values, so the export runs at close to ``psql
    \\copy`` speed); elsewhere by Python's csv writer. Both stream.
    """
    yield (",".join(EXPORT_COLUMNS) + "\n").encode("utf-8")
    if connection.vendor == "postgresql":
        yield from _csv_via_copy(filters=filters, up_to_seq=up_to_seq)
        return
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for count, document in enumerate(audit_export_rows(filters=filters, up_to_seq=up_to_seq), 1):
        document["from_revisions"] = " ".join(document["from_revisions"])
        document["to_revisions"] = " ".join(document["to_revisions"])
        document["payload"] = canonical_json(document["payload"])
        writer.writerow(document.values())
        if count % 500 == 0:
            yield _drain(buffer).encode("utf-8")
    yield _drain(buffer).encode("utf-8")


_UTC_TEXT = """to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""


def _export_queryset(*, filters: EventFilters, up_to_seq: int) -> QuerySet[AuditEvent]:
    return audit_event_queryset(filters=filters).filter(seq__lte=up_to_seq).order_by("seq")


def _copy_out(copy_sql: str, params: Any) -> Iterator[bytes]:
    """Stream a ``COPY ... TO STDOUT`` in blocks of about 256 kB (PostgreSQL only)."""
    with connection.cursor() as cursor, cursor.cursor.copy(copy_sql, params) as copy:
        pending: list[bytes] = []
        size = 0
        for row in copy:  # libpq hands out one whole row at a time
            pending.append(bytes(row))
            size += len(row)
            if size >= 256 * 1024:
                yield b"".join(pending)
                pending, size = [], 0
        yield b"".join(pending)


def _csv_via_copy(*, filters: EventFilters, up_to_seq: int) -> Iterator[bytes]:
    """``COPY (SELECT ...) TO STDOUT (FORMAT csv)`` of the filtered query."""
    queryset = _export_queryset(filters=filters, up_to_seq=up_to_seq).annotate(
        created_text=RawSQL(_UTC_TEXT, ()),  # noqa: S611 -- constant SQL, no input
        payload_text=Cast("payload", TextField()),
    )
    columns = [
        {"created_at": "created_text", "payload": "payload_text"}.get(name, name)
        for name in EXPORT_COLUMNS
    ]
    sql, params = queryset.values_list(*columns).query.sql_with_params()
    yield from _copy_out(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv)", params)


def audit_export_jsonl_lines(*, filters: EventFilters, up_to_seq: int) -> Iterator[bytes]:
    """JSON Lines: one JSON object per event (``CHAIN_FIELDS`` + ``hash``), chain order.

    On PostgreSQL each line is built by ``json_build_object`` inside ``COPY``
    (text format, whose only escape that can occur in JSON text is the doubled
    backslash, undone here); elsewhere by Python's json module.
    """
    if connection.vendor == "postgresql":
        yield from _jsonl_via_copy(filters=filters, up_to_seq=up_to_seq)
        return
    chunk: list[str] = []
    for document in audit_export_rows(filters=filters, up_to_seq=up_to_seq):
        chunk.append(json.dumps(document, sort_keys=True, ensure_ascii=False) + "\n")
        if len(chunk) == 500:
            yield "".join(chunk).encode("utf-8")
            chunk = []
    yield "".join(chunk).encode("utf-8")


def _jsonl_via_copy(*, filters: EventFilters, up_to_seq: int) -> Iterator[bytes]:
    pairs = []
    for name in EXPORT_COLUMNS:
        if name == "created_at":
            value = _UTC_TEXT
        elif name in ("from_revisions", "to_revisions"):
            value = f"to_json(string_to_array({name}, ' '))"
        else:
            value = name
        pairs.append(f"'{name}', {value}")
    # Constant SQL built from our own column names only.
    line = RawSQL(f"json_build_object({', '.join(pairs)})", (), output_field=TextField())  # noqa: S611
    queryset = _export_queryset(filters=filters, up_to_seq=up_to_seq).annotate(line=line)
    sql, params = queryset.values_list("line").query.sql_with_params()
    for block in _copy_out(f"COPY ({sql}) TO STDOUT", params):
        yield block.replace(b"\\\\", b"\\")


def _drain(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate(0)
    return text


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


# --- who applied what -----------------------------------------------------------


@dataclass
class TimelineEntry:
    """One migration request of an environment, rebuilt from its audit events only."""

    request_id: int
    from_revisions: list[str] = field(default_factory=list)
    to_revisions: list[str] = field(default_factory=list)
    requested_by: str = ""
    requested_at: datetime | None = None
    approvals: list[tuple[str, datetime, int]] = field(default_factory=list)
    decided_by: str = ""  # who rejected / cancelled, if anyone
    executed_by: str = ""
    started_at: datetime | None = None
    ended_at: datetime | None = None
    outcome: str = "not run"
    sql_approved: str = ""
    sql_run: str = ""
    problems: list[str] = field(default_factory=list)
    events: list[AuditEvent] = field(default_factory=list)

    @property
    def duration(self) -> timedelta | None:
        if self.started_at and self.ended_at:
            return self.ended_at - self.started_at
        return None


def audit_run_timeline(*, environment: str, limit: int = 50) -> list[TimelineEntry]:
    """The ``limit`` most recent requests of an environment, newest first.

    Built from the events alone (``dashboard.request.*`` and ``dashboard.run.*``
    grouped by request id), so it does not depend on the approvals app's
    tables and shows what the tamper-evident log says. Every entry lists the
    change-management problems found: requester among the approvers, execution
    without or before an approval, SQL run different from the SQL approved.
    """
    lifecycle = _lifecycle()
    request_ids = _recent_request_ids(environment=environment, limit=limit)
    events = AuditEvent.objects.filter(lifecycle, request_id__in=request_ids).order_by("seq")
    entries = {request_id: TimelineEntry(request_id=request_id) for request_id in request_ids}
    for event in events:
        entries[event.request_id].events.append(event)
    for entry in entries.values():
        _replay(entry)
    return [entries[request_id] for request_id in request_ids]


def _lifecycle() -> Q:
    return Q(action__startswith="dashboard.request.") | Q(action__startswith="dashboard.run.")


def _recent_request_ids(*, environment: str, limit: int) -> list[int]:
    """Distinct request ids of the environment's newest lifecycle events.

    Walks the ``(environment_slug, seq)`` index newest first in batches
    instead of grouping every event of the environment, so the cost depends
    on ``limit``, not on the size of the log (bounded at 100 batches).
    """
    found: dict[int, None] = {}
    queryset = AuditEvent.objects.filter(
        _lifecycle(), environment_slug=environment, request_id__isnull=False
    )
    before: int | None = None
    for _ in range(100):
        page = queryset if before is None else queryset.filter(seq__lt=before)
        batch = list(page.order_by("-seq").values_list("seq", "request_id")[:500])
        for _seq, request_id in batch:
            found.setdefault(request_id)
        if len(found) >= limit or len(batch) < 500:
            break
        before = batch[-1][0]
    return list(found)[:limit]


def _actor_label(event: AuditEvent) -> str:
    if event.actor_type == AuditEvent.ActorType.USER:
        return event.actor_username
    if event.actor_type == AuditEvent.ActorType.SYSTEM:
        return f"worker {event.actor_host} pid {event.actor_pid}"
    return "anonymous"


def _replay(entry: TimelineEntry) -> None:
    requester_id: int | None = None
    approved_before_start = False
    for event in entry.events:
        verb = event.action.rsplit(".", 1)[-1]
        if event.from_revisions or event.to_revisions:
            entry.from_revisions = event.from_revision_list or entry.from_revisions
            entry.to_revisions = event.to_revision_list or entry.to_revisions
        if event.action == "dashboard.request.created":
            entry.requested_by, entry.requested_at = _actor_label(event), event.created_at
            requester_id = event.actor_id
            entry.sql_approved = event.sql_sha256 or entry.sql_approved
        elif event.action == "dashboard.request.approved":
            entry.approvals.append((_actor_label(event), event.created_at, event.seq))
            entry.sql_approved = event.sql_sha256 or entry.sql_approved
            if requester_id is not None and event.actor_id == requester_id:
                entry.problems.append(f"approved by its own requester ({event.actor_username})")
            if entry.started_at is not None:
                entry.problems.append(f"approval by {_actor_label(event)} after execution started")
            else:
                approved_before_start = True
        elif event.action.startswith("dashboard.request.") and verb in {
            "rejected",
            "cancelled",
            "expired",
        }:
            entry.outcome, entry.decided_by = verb, _actor_label(event)
        elif event.action == "dashboard.run.started":
            entry.executed_by, entry.started_at, entry.outcome = (
                _actor_label(event),
                event.created_at,
                "running",
            )
            entry.sql_run = event.sql_sha256 or entry.sql_run
            if not approved_before_start:
                entry.problems.append("executed without an approval recorded before it")
        elif event.action.startswith("dashboard.run."):
            entry.ended_at, entry.outcome = event.created_at, verb
            entry.sql_run = event.sql_sha256 or entry.sql_run
    if entry.sql_run and entry.sql_approved and entry.sql_run != entry.sql_approved:
        entry.problems.append("the SQL that ran differs from the SQL that was approved")
