"""The rollout page of a fleet's request: live per-wave, per-target state, and the leads' actions.

Thin views. The page (``rollout``) and its polled fragment (``live``, every
2 s until nothing can move any more, then HTTP 286 stops htmx) read
``selectors.rollout_live`` in a constant number of queries. The actions
(resume, cancel the rest, proceed now, roll back) are POSTs that call the
services, which check the permission (``PermissionDenied`` -> the framed
403) and the state (``RolloutActionRefused`` -> a message saying why, the
page again). Their forms disable their button while the POST is in flight,
and a second POST that slips through is refused by the state machine.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect, HttpResponseStopPolling

from dashboard.approvals.planning import PlanRefused
from dashboard.approvals.services.requests import RequestRefused
from dashboard.rollouts import selectors
from dashboard.rollouts.models import Rollout
from dashboard.rollouts.services.actions import (
    RolloutActionRefused,
    rollout_action_refusal,
    rollout_cancel,
    rollout_proceed,
    rollout_resume,
)
from dashboard.rollouts.services.pinning import rollback_refusal, rollback_request_create
from dashboard.rollouts.transitions import RolloutTransitionRefused

VIEW_PERM = "approvals.view_migrationrequest"


def _rollout(pk: int) -> Rollout:
    try:
        return selectors.rollout_of_request(pk=pk)
    except Rollout.DoesNotExist:
        raise Http404("No rollout: this request is not for a fleet") from None


def _actions(rollout: Rollout, user: Any) -> dict[str, Any]:
    """Which buttons the user sees, and why each is disabled ('' when it may be pressed)."""
    if rollout_action_refusal(rollout=rollout, user=user) is not None:
        return {"may_act": False}
    state = rollout.state
    ended = state in Rollout.ENDED_STATES
    words = rollout.get_state_display().lower()
    return {
        "may_act": True,
        "ended": ended,
        "resume_blocked": ""
        if state == Rollout.State.HALTED
        else f"only a halted rollout resumes; this one is {words}",
        "proceed_blocked": "" if state == Rollout.State.SOAKING else "there is no soak to end now",
        "rollback_blocked": rollback_refusal(rollout) or "",
    }


# The legend under waves shown as squares (failures share one colour there).
LEGEND = [
    ("failed", "failed, gate failed or interrupted"),
    ("unknown", "outcome unknown"),
    ("running", "running"),
    ("queued", "queued"),
    ("succeeded", "succeeded"),
    ("skipped", "skipped"),
    ("pending", "pending"),
]


def _context(request: HttpRequest, rollout: Rollout) -> dict[str, Any]:
    return {
        "live": selectors.rollout_live(rollout=rollout),
        "rollout": rollout,
        "migration": rollout.request,
        "legend": LEGEND,
        **_actions(rollout, request.user),
    }


@login_required
@permission_required(VIEW_PERM, raise_exception=True)
@require_GET
def rollout(request: HttpRequest, pk: int) -> HttpResponse:
    found = _rollout(pk)
    context = _context(request, found)
    context |= {
        "title": f"Rollout of request #{pk}",
        "plans": found.plans.defer("sql", "findings", "steps"),
    }
    return render(request, "rollouts/rollout.html", context)


@login_required
@permission_required(VIEW_PERM, raise_exception=True)
@require_GET
def live(request: HttpRequest, pk: int) -> HttpResponse:
    """The polled fragment; stops htmx (286) once nothing will move any more."""
    if not request.htmx:
        return redirect("rollouts:rollout", pk=pk)
    context = _context(request, _rollout(pk))
    response = render(request, "rollouts/rollout.html#live", context)
    if context["live"].ended:
        response.status_code = HttpResponseStopPolling.status_code
    return response


# --- actions ---------------------------------------------------------------------------


def _back(request: HttpRequest, url: str) -> HttpResponse:
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


def _act(
    request: HttpRequest, pk: int, verb: str, action: Callable[[Rollout], str]
) -> HttpResponse:
    found = _rollout(pk)
    try:
        said = action(found)
    except (RolloutActionRefused, RolloutTransitionRefused) as exc:
        messages.error(request, f"Not {verb}: {exc}.")
    else:
        messages.success(request, said)
    return _back(request, reverse("rollouts:rollout", args=[pk]))


@login_required
@permission_required(VIEW_PERM, raise_exception=True)
@require_POST
def resume(request: HttpRequest, pk: int) -> HttpResponse:
    def act(found: Rollout) -> str:
        retried = rollout_resume(rollout=found, actor=request.user, http_request=request)
        if not retried:
            return "Resumed: the remaining waves go on."
        return f"Resumed: {retried} failed target{'s are' if retried != 1 else ' is'} retried, then the remaining waves go on."

    return _act(request, pk, "resumed", act)


@login_required
@permission_required(VIEW_PERM, raise_exception=True)
@require_POST
def cancel(request: HttpRequest, pk: int) -> HttpResponse:
    def act(found: Rollout) -> str:
        summary = rollout_cancel(rollout=found, actor=request.user, http_request=request)
        skipped = summary.get("skipped", 0)
        running = summary.get("running", 0) + summary.get("queued", 0)
        said = f"Cancelled: {skipped} target{'s' if skipped != 1 else ''} not started are skipped."
        if running:
            said += f" {running} already running finish and are recorded."
        return said

    return _act(request, pk, "cancelled", act)


@login_required
@permission_required(VIEW_PERM, raise_exception=True)
@require_POST
def proceed(request: HttpRequest, pk: int) -> HttpResponse:
    def act(found: Rollout) -> str:
        rollout_proceed(rollout=found, actor=request.user, http_request=request)
        return "Soak ended: the next wave starts now."

    return _act(request, pk, "proceeded", act)


@login_required
@permission_required(VIEW_PERM, raise_exception=True)
@require_POST
def rollback(request: HttpRequest, pk: int) -> HttpResponse:
    """A downgrade request for the targets that migrated (the leads of the fleet ask for it)."""
    found = _rollout(pk)
    refusal = rollout_action_refusal(rollout=found, user=request.user)
    if refusal is not None:
        raise PermissionDenied(refusal)
    try:
        created = rollback_request_create(
            rollout=found,
            actor=request.user,
            reason=request.POST.get("reason", ""),
            http_request=request,
        )
    except (RequestRefused, PlanRefused, RolloutActionRefused, RolloutTransitionRefused) as exc:
        messages.error(request, f"No rollback requested: {exc}.")
        return _back(request, reverse("rollouts:rollout", args=[pk]))
    messages.success(
        request,
        f"Rollback requested as request #{created.pk}: it needs its approvals, then runs in waves.",
    )
    return _back(request, reverse("approvals:detail", args=[created.pk]))
