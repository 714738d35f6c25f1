"""Environment pages: detail (status, plan, risk, SQL, drift), refresh, first read, downloads.

A fleet has the same URL, and its own page (``environments/fleet.html``):
the summary of its targets and a grid of them, filtered by GET parameters
(``state``, ``revision``, ``name``, ``page``), read from the cached status in a
constant number of queries. "Refresh now" on a fleet queues one read per
target for the workers and the summary polls until they are in. A fleet's
row has no database: nothing here reads it, plans for it or shows its drift.

Every view: login required (redirect to the admin login), then
``environments.view_environment`` checked on the server (403), then one
service or selector call, then render. Pages only read the cached status; the
refresh button (POST, htmx) reads the target with short timeouts. An
environment never read queues its first read itself (POST by htmx on load,
deduplicated on the row) and polls its status fragment until it arrives.
The request history is not here: the approvals app serves it
(``approvals:environment_history``), the page loads it by htmx.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseStopPolling, trigger_client_event

from dashboard.environments.dispatch import environment_refresh_enqueue
from dashboard.environments.fleet import SUMMARY_STATES
from dashboard.environments.forms import PlanTargetForm
from dashboard.environments.models import Environment
from dashboard.environments.selectors import (
    environment_first_read_state,
    environment_get,
    fleet_grid,
)
from dashboard.environments.services import (
    environment_drift_draft,
    environment_plan,
    environment_plan_summary,
    environment_status_refresh,
    fleet_refresh_enqueue,
)

VIEW_PERMISSION = "environments.view_environment"
STATUS_FRAGMENT = "environments/detail.html#refreshed"
# Sent when a first read arrives: the plan section reloads itself.
READ_EVENT = "environment-read"
FLEET_TEMPLATE = "environments/fleet.html"
# Sent when a fleet's queued reads are all in: the targets grid reloads itself.
FLEET_READ_EVENT = "fleet-read"


def _environment_or_deny(request: HttpRequest, slug: str) -> Environment:
    if not request.user.has_perm(VIEW_PERMISSION):
        raise PermissionDenied
    try:
        return environment_get(slug=slug)
    except Environment.DoesNotExist:
        raise Http404("No such environment")


def _status_context(environment: Environment, **extra: Any) -> dict[str, Any]:
    return {
        "environment": environment,
        "first_read": environment_first_read_state(environment),
        **extra,
    }


def _single_or_404(request: HttpRequest, slug: str) -> Environment:
    """An environment with a database of its own (a fleet's row has none)."""
    environment = _environment_or_deny(request, slug)
    if environment.is_fleet:
        raise Http404(f"{environment.name} is a fleet: each of its targets has its own plan")
    return environment


def _fleet_context(request: HttpRequest, fleet: Environment, **extra: Any) -> dict[str, Any]:
    state = request.GET.get("state", "")
    grid = fleet_grid(
        fleet=fleet,
        state=state if state in SUMMARY_STATES else "",
        revision=request.GET.get("revision", "")[:500],
        name=request.GET.get("name", "")[:100],
        page=request.GET.get("page", 1),
    )
    return {"environment": fleet, "grid": grid, **extra}


def _fleet_detail(request: HttpRequest, fleet: Environment) -> HttpResponse:
    template = FLEET_TEMPLATE
    if request.htmx and request.htmx.target == "targets":
        template += "#targets"
    return render(request, template, _fleet_context(request, fleet))


@login_required
@require_GET
def environment_detail(request: HttpRequest, slug: str) -> HttpResponse:
    environment = _environment_or_deny(request, slug)
    if environment.is_fleet:
        return _fleet_detail(request, environment)
    form = PlanTargetForm(request.GET or None)
    target, direction = form.target_and_direction()
    preview = environment_plan(environment=environment, target=target, direction=direction)
    context = _status_context(
        environment,
        form=form,
        preview=preview,
        risk=environment_plan_summary(environment=environment, preview=preview),
        ask_first_read=True,
    )
    template = "environments/detail.html"
    if request.htmx and request.htmx.target == "plan":
        template += "#plan"
    return render(request, template, context)


@login_required
@require_POST
def environment_refresh(request: HttpRequest, slug: str) -> HttpResponse:
    environment = _environment_or_deny(request, slug)
    # Refreshing reads the target now: auditors (read-only) may not.
    if not request.user.has_perm("dashboard.request_migration"):
        raise PermissionDenied
    if environment.is_fleet:
        queued = fleet_refresh_enqueue(fleet=environment)
        if request.htmx:
            context = _fleet_context(request, environment, queued_now=queued)
            return render(request, FLEET_TEMPLATE + "#summary", context)
        return redirect("environments:detail", slug=environment.slug)
    environment = environment_status_refresh(environment=environment)
    if request.htmx:
        return render(request, STATUS_FRAGMENT, _status_context(environment))
    return redirect("environments:detail", slug=environment.slug)


@login_required
@require_POST
def environment_first_read(request: HttpRequest, slug: str) -> HttpResponse:
    """Queue the first read of a never-read environment (anyone who may view it; once)."""
    environment = _environment_or_deny(request, slug)
    if environment.is_fleet:  # its targets' first reads were queued when they were loaded
        return redirect("environments:detail", slug=environment.slug)
    if environment_first_read_state(environment):
        environment_refresh_enqueue(environment_id=environment.pk)  # deduplicated on the row
        environment = environment_get(slug=slug)
    if not request.htmx:
        return redirect("environments:detail", slug=environment.slug)
    return render(request, STATUS_FRAGMENT, _status_context(environment))


@login_required
@require_GET
def environment_status(request: HttpRequest, slug: str) -> HttpResponse:
    """The status fragment, polled by htmx while a first read is queued; 286 stops the polling."""
    environment = _environment_or_deny(request, slug)
    if not request.htmx:
        return redirect("environments:detail", slug=environment.slug)
    if environment.is_fleet:
        return _fleet_status(request, environment)
    context = _status_context(environment)
    response = render(request, STATUS_FRAGMENT, context)
    if context["first_read"] == "queued":
        return response
    stop = HttpResponseStopPolling(response.content, content_type=response["Content-Type"])
    return trigger_client_event(stop, READ_EVENT) if not context["first_read"] else stop


def _fleet_status(request: HttpRequest, fleet: Environment) -> HttpResponse:
    """The fleet's summary, polled while target reads are queued; then the grid reloads."""
    context = _fleet_context(request, fleet)
    response = render(request, FLEET_TEMPLATE + "#summary", context)
    if context["grid"].reads_queued:
        return response
    stop = HttpResponseStopPolling(response.content, content_type=response["Content-Type"])
    return trigger_client_event(stop, FLEET_READ_EVENT)


@login_required
@require_GET
def environment_sql(request: HttpRequest, slug: str) -> HttpResponse:
    environment = _single_or_404(request, slug)
    target, direction = PlanTargetForm(request.GET or None).target_and_direction()
    preview = environment_plan(
        environment=environment, target=target, direction=direction, with_risk=False
    )
    if preview.error:
        return HttpResponse(preview.error, status=400, content_type="text/plain; charset=utf-8")
    response = HttpResponse(preview.sql, content_type="application/sql; charset=utf-8")
    response["Content-Disposition"] = (
        f'attachment; filename="{sql_file_name(environment, direction, target)}"'
    )
    return response


def sql_file_name(environment: Environment, direction: str, target: str) -> str:
    """``<slug>-<direction>-<target>.sql`` (target reduced to letters, digits, - and _)."""
    safe_target = "".join(c if c.isalnum() or c in "-_" else "_" for c in target)
    return f"{environment.slug}-{direction}-{safe_target}.sql"


@login_required
@require_GET
def environment_drift_revision(request: HttpRequest, slug: str) -> HttpResponse:
    environment = _single_or_404(request, slug)
    text = environment_drift_draft(environment=environment)
    if not text:
        raise Http404("No drift detected on this environment")
    response = HttpResponse(text, content_type="text/x-python; charset=utf-8")
    response["Content-Disposition"] = (
        f'attachment; filename="draft_fix_drift_{environment.slug}.py"'
    )
    return response
