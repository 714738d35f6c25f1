"""Reads of the audit log: filtered keyset pages, neighbours, exports.

"Who applied what" (the per-environment timeline) is ``dashboard.audit.timeline``.

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
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.db import connection
from django.db.models import Max, Min, Q, QuerySet, TextField
from django.db.models.expressions import RawSQL
from django.db.models.functions import Cast

from dashboard.audit.chain import CHAIN_FIELDS, canonical_json, format_timestamp
from dashboard.audit.models import AuditEvent, ChainVerification

PAGE_SIZE = 50
KNOWN_ACTIONS: tuple[str, ...] = (
    "dashboard.request.created",
    "dashboard.request.approved",
    "dashboard.request.approval_not_required",
    "dashboard.request.rejected",
    "dashboard.request.cancelled",
    "dashboard.request.expired",
    "dashboard.request.stale",
    "dashboard.request.reopened",
    "dashboard.run.started",
    "dashboard.run.cancel_requested",
    "dashboard.run.succeeded",
    "dashboard.run.failed",
    "dashboard.run.interrupted",
    "dashboard.run.cancelled",
    "dashboard.run.unknown",
    "dashboard.run.corrected",
    "dashboard.run.settled",
    "dashboard.environment.changed",
    "dashboard.auth.login",
    "dashboard.auth.login_failed",
    "dashboard.auth.logout",
    "dashboard.auth.locked_out",
    "dashboard.auth.user_created",
    "dashboard.auth.user_changed",
    "dashboard.auth.groups_changed",
    "dashboard.auth.permissions_changed",
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
    queryset = _filtered(filters=filters)
    codes = _action_codes(filters.action)
    if codes is None:
        return queryset
    return queryset.filter(action__in=codes) if codes else queryset.none()


def audit_event_page(
    *, filters: EventFilters, before: int | None = None, size: int = PAGE_SIZE
) -> EventPage:
    """One page of matching events, newest first, strictly older than ``before``.

    An action prefix (``dashboard.run.*``) is resolved to the codes that occur
    in the log; with several codes the page is the merge of one
    ``(action, seq)`` index walk per code (``UNION ALL`` of ``ORDER BY seq
    DESC LIMIT n`` parts), so its cost is that of ``n`` rows per code wherever
    in the log the matches are, rather than a planner's guess between
    scanning ``seq`` backwards and sorting every match. A revision filter
    keeps one query: its trigram index finds every match at once.
    """
    queryset = _filtered(filters=filters)
    if before is not None:
        queryset = queryset.filter(seq__lt=before)
    codes = _action_codes(filters.action)
    if codes == [] or queryset.query.is_empty():  # no such code, or no event in the dates
        return EventPage(events=[], next_before=None)
    if codes is not None and len(codes) > 1 and not filters.revision:
        parts = [queryset.filter(action=code).order_by("-seq")[: size + 1] for code in codes]
        newest = parts[0].union(*parts[1:], all=True).order_by("-seq")
    elif codes is not None:
        newest = queryset.filter(action__in=codes).order_by("-seq")
    else:
        newest = queryset.order_by("-seq")
    events = list(newest[: size + 1])
    has_more = len(events) > size
    events = events[:size]
    return EventPage(events=events, next_before=events[-1].seq if has_more else None)


def _filtered(*, filters: EventFilters) -> QuerySet[AuditEvent]:
    """The events matching every filter except ``action``."""
    queryset = AuditEvent.objects.all()
    if filters.environment:
        queryset = queryset.filter(environment_slug=filters.environment)
    if filters.actor:
        queryset = queryset.filter(actor_username=filters.actor)
    if filters.date_from or filters.date_to:
        queryset = _within_dates(queryset, date_from=filters.date_from, date_to=filters.date_to)
    if filters.revision:
        queryset = _with_revision(queryset, filters.revision)
    if filters.request_id is not None:
        queryset = queryset.filter(request_id=filters.request_id)
    return queryset


def _action_codes(action: str) -> list[str] | None:
    """The action codes an ``action`` filter stands for (None: no action filter).

    An exact code is itself; a prefix (``dashboard.run.*``) is every code in
    the log that starts with it. On PostgreSQL these come from a loose scan
    of the ``text_pattern_ops`` index (one index probe per code, whatever
    the collation), elsewhere from a ``DISTINCT``.
    """
    if not action:
        return None
    if not action.endswith("*"):
        return [action]
    prefix = action.rstrip("*")
    if connection.vendor != "postgresql":
        codes = AuditEvent.objects.filter(action__startswith=prefix).values_list(
            "action", flat=True
        )
        return sorted(set(codes.order_by().distinct()))
    pattern = connection.ops.prep_for_like_query(prefix) + "%"
    with connection.cursor() as cursor:
        cursor.execute(_ACTIONS_WITH_PREFIX, [pattern, pattern])
        return [row[0] for row in cursor.fetchall()]


_ACTIONS_WITH_PREFIX = """
    WITH RECURSIVE codes(action) AS (
        (SELECT action FROM audit_auditevent WHERE action LIKE %s
         ORDER BY action USING ~<~ LIMIT 1)
        UNION ALL
        SELECT (SELECT later.action FROM audit_auditevent AS later
                WHERE later.action LIKE %s AND later.action ~>~ codes.action
                ORDER BY later.action USING ~<~ LIMIT 1)
        FROM codes WHERE codes.action IS NOT NULL
    )
    SELECT action FROM codes WHERE action IS NOT NULL
"""


def _within_dates(
    queryset: QuerySet[AuditEvent], *, date_from: date | None, date_to: date | None
) -> QuerySet[AuditEvent]:
    """Events of the inclusive UTC days, bounded by ``seq`` as well as by time.

    ``created_at`` never decreases along the chain (``audit_record`` keeps it
    so), so the events of a date range are one contiguous run of ``seq``;
    its ends come from probes of the ``created_at`` index. With them every
    index that ends in ``seq`` walks only that run, instead of the planner
    guessing where in the log the dates lie (a backward scan from the head
    through millions of newer events otherwise).
    """
    if date_from:
        start = _day_start(date_from)
        first = _boundary_seqs(AuditEvent.objects.filter(created_at__gte=start), Min)
        if not first:
            return queryset.none()
        queryset = queryset.filter(created_at__gte=start, seq__gte=min(first))
    if date_to:
        end = _day_start(date_to + timedelta(days=1))
        last = _boundary_seqs(AuditEvent.objects.filter(created_at__lt=end), Max)
        if not last:
            return queryset.none()
        queryset = queryset.filter(created_at__lt=end, seq__lte=max(last))
    return queryset


def _boundary_seqs(events: QuerySet[AuditEvent], extreme: type[Min] | type[Max]) -> list[int]:
    """The seqs of the events at the earliest (``Min``) or latest (``Max``) time of ``events``.

    Several events can share a timestamp; min()/max() of them is taken in
    Python, as ``MIN(seq) WHERE created_at = t`` may be planned as a walk of
    the primary key from one end.
    """
    moment = events.order_by().aggregate(moment=extreme("created_at"))["moment"]
    if moment is None:
        return []
    return list(AuditEvent.objects.filter(created_at=moment).values_list("seq", flat=True))


def _with_revision(queryset: QuerySet[AuditEvent], revision: str) -> QuerySet[AuditEvent]:
    """Events whose from- or to-revisions contain ``revision`` (part of an id).

    On PostgreSQL one ``LIKE '%...%'`` over ``from_revisions || ' ' ||
    to_revisions``, the expression of the trigram index of migration 0004
    (revision ids hold no space, so a match never straddles the two).
    """
    if any(character.isspace() for character in revision):
        return queryset.none()  # revision ids hold no whitespace
    if connection.vendor != "postgresql":
        return queryset.filter(
            Q(from_revisions__contains=revision) | Q(to_revisions__contains=revision)
        )
    revisions = RawSQL(REVISIONS_EXPRESSION, (), output_field=TextField())  # noqa: S611 -- constant
    return queryset.annotate(revisions=revisions).filter(revisions__contains=revision)


# The indexed expression (migration audit/0004): keep both spellings identical.
REVISIONS_EXPRESSION = "from_revisions || ' ' || to_revisions"


def audit_event_neighbours(*, event: AuditEvent) -> tuple[AuditEvent | None, AuditEvent | None]:
    """The events just before and just after ``event`` in the chain."""
    around = {
        other.seq: other
        for other in AuditEvent.objects.filter(seq__in=[event.seq - 1, event.seq + 1])
    }
    return around.get(event.seq - 1), around.get(event.seq + 1)


DECISION_ACTIONS = frozenset({"dashboard.request.approved", "dashboard.request.rejected"})


def audit_event_decision(*, event: AuditEvent) -> dict[str, Any] | None:
    """An approver's own words on an approval or rejection event, else None.

    ``comment`` (text, possibly empty) and ``sql_acknowledged`` (the "I have
    read the SQL" tick: True / False, None when the event does not say, as
    on a rejection).
    """
    if event.action not in DECISION_ACTIONS or not isinstance(event.payload, dict):
        return None
    acknowledged = event.payload.get("sql_acknowledged")
    return {
        "comment": str(event.payload.get("comment") or ""),
        "sql_acknowledged": acknowledged if isinstance(acknowledged, bool) else None,
    }


def audit_last_verification() -> ChainVerification | None:
    return ChainVerification.objects.order_by("-pk").first()  # the latest, whatever the clocks


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
    if queryset.query.is_empty():  # no such action code, or no event in the dates
        return
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
    if queryset.query.is_empty():  # no such action code, or no event in the dates
        return
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
