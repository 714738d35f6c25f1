"""Pages of requests: create (with plan preview), detail (decide, watch the run), lists.

Thin views: permission check, one service call, render or redirect. The
policy is enforced again in the services (``PermissionDenied`` -> 403).
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect, HttpResponseStopPolling

from dashboard.approvals import selectors
from dashboard.approvals.forms import DecisionForm, RequestForm
from dashboard.approvals.models import MigrationRequest
from dashboard.approvals.planning import PlanRefused, target_choices
from dashboard.approvals.services.decisions import (
    DecisionRefused,
    approver_refusal,
    migration_request_approve,
    migration_request_reject,
)
from dashboard.approvals.services.requests import (
    RequestRefused,
    migration_request_cancel,
    migration_request_create,
    migration_request_preview,
)
from dashboard.security import reauthenticate_url, recently_authenticated

VIEW_PERM = "approvals.view_migrationrequest"


@login_required
@permission_required("dashboard.request_migration", raise_exception=True)
@require_GET
def mine(request: HttpRequest) -> HttpResponse:
    rows = selectors.requests_of_user(user=request.user)[:100]
    return render(request, "approvals/list.html", {"title": "My requests", "rows": rows})


@login_required
@permission_required("dashboard.approve_migration", raise_exception=True)
@require_GET
def waiting(request: HttpRequest) -> HttpResponse:
    rows = selectors.requests_waiting_for(user=request.user)
    return render(
        request, "approvals/list.html", {"title": "Waiting for my approval", "rows": rows}
    )


@login_required
@permission_required("dashboard.request_migration", raise_exception=True)
def create(request: HttpRequest) -> HttpResponse:
    """GET: the form, and the plan preview once environment and target are chosen. POST: create."""
    source = request.POST if request.method == "POST" else request.GET
    if request.method == "GET" and "environment" not in source:
        # Arriving from the graph with a revision: pre-fill, let the user pick where.
        initial = {
            "target": source.get("target", "heads"),
            "direction": source.get("direction", "upgrade"),
        }
        form = RequestForm(initial=initial)
    else:
        form = RequestForm(source or None, initial={"target": "heads"})
    preview, refusal = None, None
    if form.is_valid():
        data = form.cleaned_data
        try:
            if request.method == "POST":
                created = migration_request_create(
                    environment=data["environment"],
                    actor=request.user,
                    direction=data["direction"],
                    target=data["target"],
                    reason=data["reason"],
                    http_request=request,
                )
                return redirect("approvals:detail", pk=created.pk)
            preview = migration_request_preview(
                environment=data["environment"], direction=data["direction"], target=data["target"]
            )
        except (RequestRefused, PlanRefused) as exc:
            refusal = str(exc)
    context = {
        "title": "Request a migration",
        "form": form,
        "preview": preview,
        "refusal": refusal,
        "target_choices": [] if request.htmx else target_choices(),
    }
    template = "approvals/create.html#preview" if request.htmx else "approvals/create.html"
    return render(
        request, template, context, status=400 if refusal and request.method == "POST" else 200
    )


def _detail_context(request: HttpRequest, pk: int) -> dict[str, object]:
    # Polled every second while a run is live: one joined read, not one per relation.
    try:
        migration = selectors.request_detail(pk=pk)
    except MigrationRequest.DoesNotExist:
        raise Http404("No such request") from None
    run = getattr(migration, "run", None)  # the reverse one-to-one raises when absent
    decisions = selectors.request_decisions(request=migration)
    return {
        "title": f"Request #{migration.pk}",
        "migration": migration,
        "decisions": decisions,
        "approvals": sum(d.is_live_approval for d in decisions),
        "possible_approvers": selectors.request_possible_approvers(request=migration),
        "refusal": approver_refusal(request=migration, user=request.user),
        "run": run,
        "log_lines": selectors.run_log_tail(run=run) if run else [],
        "decision_form": DecisionForm(),
    }


@login_required
@permission_required(VIEW_PERM, raise_exception=True)
@require_GET
def detail(request: HttpRequest, pk: int) -> HttpResponse:
    return render(request, "approvals/detail.html", _detail_context(request, pk))


@login_required
@permission_required(VIEW_PERM, raise_exception=True)
@require_GET
def run_status(request: HttpRequest, pk: int) -> HttpResponse:
    """The live run fragment, polled by htmx until the run ends (the fragment then stops polling)."""
    if not request.htmx:
        return redirect("approvals:detail", pk=pk)
    context = _detail_context(request, pk)
    response = render(request, "approvals/detail.html#status", context)
    if not context["migration"].is_open:  # type: ignore[attr-defined]
        # The fragment swapped in has no trigger any more; 286 also tells htmx to stop.
        response.status_code = HttpResponseStopPolling.status_code
    return response


def _back(request: HttpRequest, pk: int) -> HttpResponse:
    url = reverse("approvals:detail", args=[pk])
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


@login_required
@permission_required("dashboard.approve_migration", raise_exception=True)
@require_POST
def approve(request: HttpRequest, pk: int) -> HttpResponse:
    migration = get_object_or_404(MigrationRequest.objects.select_related("environment"), pk=pk)
    refusal = approver_refusal(request=migration, user=request.user)
    if refusal is not None:
        raise PermissionDenied(refusal)
    if not recently_authenticated(request):
        # An approval is the product's most sensitive action: it needs a
        # password typed within DASHBOARD_REAUTH_MAX_AGE (10 minutes).
        messages.warning(request, "Confirm your password, then approve again.")
        url = reauthenticate_url(reverse("approvals:detail", args=[pk]))
        return HttpResponseClientRedirect(url) if request.htmx else redirect(url)
    form = DecisionForm(request.POST)
    form.is_valid()
    try:
        migration_request_approve(
            request=migration,
            actor=request.user,
            sql_acknowledged=form.cleaned_data.get("sql_acknowledged", False),
            comment=form.cleaned_data.get("comment", ""),
            http_request=request,
        )
    except DecisionRefused as exc:
        messages.error(request, str(exc))
    return _back(request, pk)


@login_required
@permission_required("dashboard.approve_migration", raise_exception=True)
@require_POST
def reject(request: HttpRequest, pk: int) -> HttpResponse:
    migration = get_object_or_404(MigrationRequest.objects.select_related("environment"), pk=pk)
    form = DecisionForm(request.POST)
    form.is_valid()
    try:
        migration_request_reject(
            request=migration,
            actor=request.user,
            comment=form.cleaned_data.get("comment", ""),
            http_request=request,
        )
    except DecisionRefused as exc:
        messages.error(request, str(exc))
    return _back(request, pk)


@login_required
@permission_required("dashboard.request_migration", raise_exception=True)
@require_POST
def cancel(request: HttpRequest, pk: int) -> HttpResponse:
    migration = get_object_or_404(MigrationRequest, pk=pk)
    if migration.requested_by_id != request.user.pk:
        return HttpResponse("Only the requester can cancel this request.", status=403)
    try:
        migration_request_cancel(request=migration, actor=request.user, http_request=request)
    except RequestRefused as exc:
        messages.error(request, str(exc))
    return _back(request, pk)
