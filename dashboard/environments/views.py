"""Environment pages: detail (status, plan, SQL, risk, drift), refresh, downloads.

Every view: login required (redirect to the admin login), then
``environments.view_environment`` checked on the server (403), then one
service or selector call, then render. Pages only read the cached status; the
refresh button (POST, htmx) reads the target with short timeouts.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from dashboard.environments.forms import PlanTargetForm
from dashboard.environments.models import Environment
from dashboard.environments.selectors import environment_get, environment_requests
from dashboard.environments.services import (
    environment_drift_draft,
    environment_plan,
    environment_status_refresh,
)

VIEW_PERMISSION = "environments.view_environment"


def _environment_or_deny(request: HttpRequest, slug: str) -> Environment:
    if not request.user.has_perm(VIEW_PERMISSION):
        raise PermissionDenied
    try:
        return environment_get(slug=slug)
    except Environment.DoesNotExist:
        raise Http404("No such environment")


@login_required
@require_GET
def environment_detail(request: HttpRequest, slug: str) -> HttpResponse:
    environment = _environment_or_deny(request, slug)
    form = PlanTargetForm(request.GET or None)
    target, direction = form.target_and_direction()
    context = {
        "environment": environment,
        "form": form,
        "preview": environment_plan(environment=environment, target=target, direction=direction),
        "requests": environment_requests(environment=environment),
    }
    template = "environments/detail.html"
    if request.htmx and request.htmx.target == "plan":
        template += "#plan"
    return render(request, template, context)


@login_required
@require_POST
def environment_refresh(request: HttpRequest, slug: str) -> HttpResponse:
    environment = _environment_or_deny(request, slug)
    # Refreshing writes the cached status: auditors (read-only) may not.
    if not request.user.has_perm("dashboard.request_migration"):
        raise PermissionDenied
    environment = environment_status_refresh(environment=environment)
    if request.htmx:
        return render(request, "environments/detail.html#status", {"environment": environment})
    return redirect("environments:detail", slug=environment.slug)


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
    safe_target = "".join(c if c.isalnum() or c in "-_" else "_" for c in target)
    response = HttpResponse(preview.sql, content_type="application/sql; charset=utf-8")
    response["Content-Disposition"] = (
        f'attachment; filename="{environment.slug}-{direction}-{safe_target}.sql"'
    )
    return response


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
