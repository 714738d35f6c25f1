"""Pages of requests: create (with plan preview), detail (decide, watch the run), lists.

Thin views: permission check, one service call, render or redirect. The
policy is enforced again in the services (``PermissionDenied`` -> 403). The
request form reads only the environment's cached status on GET; *Preview*
(a POST) reads the target live, with the connect timeout. A refused decision
renders the page again with what was typed and the reason once, inline.

A fleet (``dashboard.rollouts``): the form previews one plan per head set
among its targets, from their cached statuses (also on *Preview*: a fleet is
not read at request time), and the request page shows the pinned plans, the
waves and the rollout's progress (``rollouts.selectors``; the live rollout
page is ``rollouts.views``).
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect, HttpResponseStopPolling

from dashboard.approvals import selectors
from dashboard.approvals.forms import DecisionForm, RequestForm
from dashboard.approvals.models import MigrationRequest
from dashboard.approvals.planning import PlanRefused, target_choices
from dashboard.approvals.services.decisions import (
    ApprovalConflict,
    DecisionRefused,
    approver_refusal,
    migration_request_approve,
    migration_request_reject,
)
from dashboard.approvals.services.recovery import RunCancelRefused, run_cancel, run_cancel_refusal
from dashboard.approvals.services.requests import (
    EnvironmentUnavailable,
    RequestConflict,
    RequestRefused,
    migration_request_cancel,
    migration_request_create,
    migration_request_preview,
)
from dashboard.rollouts import selectors as rollout_selectors
from dashboard.security import reauthenticate_url, recently_authenticated

VIEW_PERM = "approvals.view_migrationrequest"
APPROVE_PERM = "dashboard.approve_migration"
REQUEST_PERM = "dashboard.request_migration"
# What was typed in the decision form while the password is asked again.
DRAFT_KEY = "approvals:decision-draft:{pk}"


@login_required
@permission_required(REQUEST_PERM, raise_exception=True)
@require_GET
def mine(request: HttpRequest) -> HttpResponse:
    rows = selectors.requests_of_user(user=request.user)[:100]
    return render(request, "approvals/list.html", {"title": "My requests", "rows": rows})


@login_required
@permission_required(APPROVE_PERM, raise_exception=True)
@require_GET
def waiting(request: HttpRequest) -> HttpResponse:
    rows = selectors.requests_waiting_for(user=request.user)
    return render(
        request, "approvals/list.html", {"title": "Waiting for my approval", "rows": rows}
    )


# --- the request form -----------------------------------------------------------------


@login_required
@permission_required(REQUEST_PERM, raise_exception=True)
@require_http_methods(["GET", "POST"])
def create(request: HttpRequest) -> HttpResponse:
    """GET: the form and the plan from the cached status. POST: *Preview* (live) or *Submit*."""
    form = RequestForm.for_request(request)
    if request.method == "POST" and request.POST.get("action") != "preview":
        return _submit(request, form)
    return _render_create(request, form, live=request.method == "POST")


def _submit(request: HttpRequest, form: RequestForm) -> HttpResponse:
    if not form.is_valid():
        return _render_create(request, form, status=400)
    try:
        created = migration_request_create(
            **form.plan_inputs(),
            reason=form.cleaned_data["reason"],
            actor=request.user,
            http_request=request,
        )
    except (RequestRefused, PlanRefused) as exc:
        status = {RequestConflict: 409, EnvironmentUnavailable: 503}.get(type(exc), 400)
        return _render_create(request, form, refusal=str(exc), status=status)
    return redirect("approvals:detail", pk=created.pk)


def _render_create(
    request: HttpRequest,
    form: RequestForm,
    *,
    live: bool = False,
    refusal: str = "",
    status: int = 200,
) -> HttpResponse:
    context = {"title": "Request a migration", "form": form, "refusal": refusal}
    context.update(_plan_preview(form, live=live))
    if request.htmx:
        return render(request, "approvals/create.html#preview", context, status=status)
    context["target_choices"] = target_choices()
    return render(request, "approvals/create.html", context, status=status)


def _plan_preview(form: RequestForm, *, live: bool) -> dict[str, Any]:
    """The form's plan: from the cached status, or (``live``) read from the target now."""
    if not form.is_bound or not form.is_valid():
        return {}
    inputs = form.plan_inputs()
    if inputs["environment"].is_fleet:
        # A fleet's plans come from its targets' cached statuses, also on *Preview*:
        # each target's heads are read again, live, under its lock before it runs.
        return {"preview": rollout_selectors.fleet_plan_preview(**inputs)}
    if not live:
        return {"preview": selectors.request_plan_cached(**inputs)}
    try:
        plan = migration_request_preview(**inputs)
    except PlanRefused as exc:
        return {"preview_refusal": str(exc)}
    return {"preview": selectors.request_plan_pinned(environment=inputs["environment"], plan=plan)}


# --- the request page -----------------------------------------------------------------


def _status_context(request: HttpRequest, pk: int) -> dict[str, Any]:
    """What the polled status fragment needs: one joined read, then the run in words."""
    try:
        migration = selectors.request_detail(pk=pk)
    except MigrationRequest.DoesNotExist:
        raise Http404("No such request") from None
    run = getattr(migration, "run", None)  # the reverse one-to-one raises when absent
    can_cancel = bool(run and run.is_running and not run.cancel_requested_at)
    rollout = getattr(migration, "rollout", None)  # a fleet's request
    return {
        "migration": migration,
        "rollout": rollout,
        "rollout_progress": rollout_selectors.rollout_progress(rollout=rollout)
        if rollout
        else None,
        "stale": selectors.request_stale_reason(request=migration),
        "run": run,
        "run_view": selectors.run_view(request=migration, run=run) if run else None,
        "log_lines": selectors.run_log_tail(run=run) if run else [],
        "can_cancel_run": can_cancel
        and run_cancel_refusal(request=migration, user=request.user) is None,
    }


def _detail_context(
    request: HttpRequest, pk: int, decision_form: DecisionForm | None = None
) -> dict[str, Any]:
    context = _status_context(request, pk)
    migration = context["migration"]
    decisions = selectors.request_decisions(request=migration)
    risk = selectors.request_risk(request=migration)
    if decision_form is None:
        decision_form = DecisionForm(initial=request.session.pop(DRAFT_KEY.format(pk=pk), None))
    return {
        **context,
        "title": f"Request #{migration.pk}",
        "decisions": decisions,
        "approvals": sum(d.is_live_approval for d in decisions),
        "possible_approvers": selectors.request_possible_approvers(request=migration),
        "refusal": approver_refusal(request=migration, user=request.user),
        "risk": risk,
        "care": selectors.care_reasons(
            direction=migration.direction, destructive=migration.destructive, summary=risk
        ),
        "decision_form": decision_form,
        "fleet": rollout_selectors.fleet_review(rollout=context["rollout"])
        if context["rollout"]
        else None,
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
    context = _status_context(request, pk)
    response = render(request, "approvals/detail.html#status", context)
    if not context["migration"].is_open:
        # The fragment swapped in has no trigger any more; 286 also tells htmx to stop.
        response.status_code = HttpResponseStopPolling.status_code
    return response


@login_required
@permission_required(VIEW_PERM, raise_exception=True)
@require_GET
def request_sql(request: HttpRequest, pk: int) -> HttpResponse:
    """The pinned SQL as a file, ``request-<id>-<direction>.sql``."""
    migration = get_object_or_404(MigrationRequest.objects.only("pk", "direction", "sql"), pk=pk)
    response = HttpResponse(migration.sql, content_type="application/sql; charset=utf-8")
    name = f"request-{migration.pk}-{migration.direction}.sql"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


# --- decisions --------------------------------------------------------------------------


def _back(request: HttpRequest, pk: int) -> HttpResponse:
    url = reverse("approvals:detail", args=[pk])
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


def _refused(
    request: HttpRequest, pk: int, form: DecisionForm, exc: DecisionRefused
) -> HttpResponse:
    """The page again, with what was typed and the reason once (409: another request runs)."""
    form.add_error(None, str(exc))
    status = 409 if isinstance(exc, ApprovalConflict) else 400
    return render(
        request, "approvals/detail.html", _detail_context(request, pk, form), status=status
    )


@login_required
@permission_required(APPROVE_PERM, raise_exception=True)
@require_POST
def approve(request: HttpRequest, pk: int) -> HttpResponse:
    migration = get_object_or_404(MigrationRequest.objects.select_related("environment"), pk=pk)
    refusal = approver_refusal(request=migration, user=request.user)
    if refusal is not None:
        raise PermissionDenied(refusal)
    form = DecisionForm(request.POST)
    if not recently_authenticated(request):
        # An approval is the product's most sensitive action: it needs a
        # password typed within DASHBOARD_REAUTH_MAX_AGE (10 minutes).
        request.session[DRAFT_KEY.format(pk=pk)] = form.decision()
        messages.warning(request, "Confirm your password, then approve again.")
        url = reauthenticate_url(reverse("approvals:detail", args=[pk]))
        return HttpResponseClientRedirect(url) if request.htmx else redirect(url)
    try:
        migration_request_approve(
            request=migration, actor=request.user, http_request=request, **form.decision()
        )
    except DecisionRefused as exc:
        return _refused(request, pk, form, exc)
    return _back(request, pk)


@login_required
@permission_required(APPROVE_PERM, raise_exception=True)
@require_POST
def reject(request: HttpRequest, pk: int) -> HttpResponse:
    migration = get_object_or_404(MigrationRequest.objects.select_related("environment"), pk=pk)
    form = DecisionForm(request.POST)
    try:
        migration_request_reject(
            request=migration,
            actor=request.user,
            comment=form.decision()["comment"],
            http_request=request,
        )
    except DecisionRefused as exc:
        return _refused(request, pk, form, exc)
    return _back(request, pk)


@login_required
@permission_required(REQUEST_PERM, raise_exception=True)
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


@login_required
@permission_required(APPROVE_PERM, raise_exception=True)
@require_POST
def cancel_run(request: HttpRequest, pk: int) -> HttpResponse:
    """A tech lead stops a running run; the page says what happens next (``run_cancel``)."""
    migration = get_object_or_404(MigrationRequest.objects.select_related("environment"), pk=pk)
    try:
        said = run_cancel(request=migration, actor=request.user, http_request=request)
    except RunCancelRefused as exc:
        messages.error(request, f"Not cancelled: {exc}.")
    else:
        messages.success(request, said[:1].upper() + said[1:] + ".")
    return _back(request, pk)


@login_required
@permission_required(VIEW_PERM, raise_exception=True)
@require_GET
def environment_history(request: HttpRequest, slug: str) -> HttpResponse:
    """An environment's latest requests: the fragment its page loads by htmx, or a page of its own.

    Served here, not by the environments app: environments sit below approvals.
    """
    from dashboard.environments.models import Environment

    if not request.user.has_perm("environments.view_environment"):
        raise PermissionDenied
    environment = get_object_or_404(Environment, slug=slug)
    rows = selectors.environment_request_history(environment=environment)
    context = {
        "title": f"Requests for {environment.name}",
        "environment": environment,
        "rows": rows,
    }
    template = "approvals/environment_history.html" + ("#history" if request.htmx else "")
    return render(request, template, context)
