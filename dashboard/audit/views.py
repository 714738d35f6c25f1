"""The auditor's pages: log, event detail, "who applied what", exports.

Read-only for everybody. Every view requires a login (else the admin login
page) and ``dashboard.view_auditlog`` (exports: ``dashboard.export_auditlog``),
else 403. An export writes a ``dashboard.audit.exported`` event, so it is a
POST with a CSRF token (GET answers 405): no cross-site link or image can
make audit events.
"""

from __future__ import annotations

import json

from django.contrib.auth.decorators import login_required, permission_required
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from dashboard.audit import selectors, services
from dashboard.audit.chain import event_hash
from dashboard.audit.forms import AuditFilterForm
from dashboard.audit.models import AuditEvent
from dashboard.audit.timeline import audit_run_timeline

VIEW = "dashboard.view_auditlog"
EXPORT = "dashboard.export_auditlog"
EXPORT_FORMATS = {
    "csv": ("text/csv; charset=utf-8", selectors.audit_export_csv_lines),
    "jsonl": ("application/jsonl; charset=utf-8", selectors.audit_export_jsonl_lines),
}


def _filter_query(request: HttpRequest) -> str:
    """The current filters as a query string (without the page cursor)."""
    query = request.GET.copy()
    query.pop("before", None)
    return query.urlencode()


def _filter_fields(request: HttpRequest) -> list[tuple[str, str]]:
    """The current filters as (name, value) pairs: the export form's hidden inputs."""
    return [
        (name, value)
        for name, values in request.GET.lists()
        if name != "before"
        for value in values
    ]


@require_GET
@login_required
@permission_required(VIEW, raise_exception=True)
def log(request: HttpRequest) -> HttpResponse:
    form = AuditFilterForm(request.GET)
    before = request.GET.get("before", "")
    page = selectors.audit_event_page(
        filters=form.filters(), before=int(before) if before.isdigit() else None
    )
    context = {
        "form": form,
        "page": page,
        "query": _filter_query(request),
        "export_fields": _filter_fields(request),
        "can_export": request.user.has_perm(EXPORT),
        # One reverse() instead of one per row: the page must stay fast.
        "detail_prefix": reverse("audit:detail", args=[0])[: -len("0/")],
    }
    if request.htmx:  # the table alone: no filter choices, no verification line
        return render(request, "audit/log.html#table", context)
    context.update(
        environments=selectors.audit_environment_slugs(),
        verification=selectors.audit_last_verification(),
    )
    return render(request, "audit/log.html", context)


@require_GET
@login_required
@permission_required(VIEW, raise_exception=True)
def detail(request: HttpRequest, seq: int) -> HttpResponse:
    event = get_object_or_404(AuditEvent, seq=seq)
    previous, following = selectors.audit_event_neighbours(event=event)
    context = {
        "event": event,
        "previous": previous,
        "following": following,
        "hash_matches": event_hash(event.chain_fields()) == event.hash,
        "links_previous": previous is None or previous.hash == event.prev_hash,
        "payload_json": json.dumps(event.payload, indent=2, sort_keys=True, ensure_ascii=False),
        "decision": selectors.audit_event_decision(event=event),
    }
    return render(request, "audit/detail.html", context)


@require_GET
@login_required
@permission_required(VIEW, raise_exception=True)
def timeline(request: HttpRequest) -> HttpResponse:
    environments = selectors.audit_environment_slugs()
    environment = request.GET.get("environment", "")
    entries = audit_run_timeline(environment=environment) if environment else []
    context = {"environments": environments, "environment": environment, "entries": entries}
    return render(request, "audit/timeline.html", context)


@login_required
@permission_required(EXPORT, raise_exception=True)
@require_POST
def export(request: HttpRequest, export_format: str) -> StreamingHttpResponse:
    content_type, lines = EXPORT_FORMATS[export_format]
    filters = AuditFilterForm(request.POST).filters()
    up_to_seq = services.audit_export_begin(
        filters=filters.as_payload(),
        export_format=export_format,
        actor=request.user,
        http_request=request,
    )
    response = StreamingHttpResponse(
        lines(filters=filters, up_to_seq=up_to_seq),
        content_type=content_type,
    )
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    response["Content-Disposition"] = f'attachment; filename="audit-{stamp}.{export_format}"'
    return response
