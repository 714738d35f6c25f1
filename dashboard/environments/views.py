"""Environment pages: detail (status, plan, risk, SQL, drift), refresh, first read, downloads.

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
from dashboard.environments.forms import PlanTargetForm
from dashboard.environments.models import Environment
from dashboard.environments.selectors import environment_first_read_state, environment_get
from dashboard.environments.services import (
    environment_drift_draft,
    environment_plan,
    environment_plan_summary,
    environment_status_refresh,
)

VIEW_PERMISSION = "environments.view_environment"
STATUS_FRAGMENT = "environments/detail.html#refreshed"
# Sent when a first read arrives: the plan section reloads itself.
READ_EVENT = "environment-read"


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


@login_required
@require_GET
def environment_detail(request: HttpRequest, slug: str) -> HttpResponse:
    environment = _environment_or_deny(request, slug)
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
    environment = environment_status_refresh(environment=environment)
    if request.htmx:
        return render(request, STATUS_FRAGMENT, _status_context(environment))
    return redirect("environments:detail", slug=environment.slug)


@login_required
@require_POST
def environment_first_read(request: HttpRequest, slug: str) -> HttpResponse:
    """Queue the first read of a never-read environment (anyone who may view it; once)."""
    environment = _environment_or_deny(request, slug)
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
    context = _status_context(environment)
    response = render(request, STATUS_FRAGMENT, context)
    if context["first_read"] == "queued":
        return response
    stop = HttpResponseStopPolling(response.content, content_type=response["Content-Type"])
    return trigger_client_event(stop, READ_EVENT) if not context["first_read"] else stop


@login_required
@require_GET
def environment_sql(request: HttpRequest, slug: str) -> HttpResponse:
    environment = _environment_or_deny(request, slug)
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
    environment = _environment_or_deny(request, slug)
    text = environment_drift_draft(environment=environment)
    if not text:
        raise Http404("No drift detected on this environment")
    response = HttpResponse(text, content_type="text/x-python; charset=utf-8")
    response["Content-Disposition"] = (
        f'attachment; filename="draft_fix_drift_{environment.slug}.py"'
    )
    return response
