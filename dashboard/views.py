"""Core pages: the overview (home) and the health endpoint."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET


@login_required
@require_GET
def overview(request: HttpRequest) -> HttpResponse:
    """The home page: the pipeline of environments (filled in by the environments app)."""
    context: dict[str, object] = {}
    try:
        from dashboard.environments.selectors import overview_context
    except ImportError:
        pass
    else:
        context.update(overview_context(user=request.user))
    return render(request, "dashboard/overview.html", context)


def _database_answers() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception:
        return False
    return True


def _broker_answers() -> bool:
    from dashboard.celery import app

    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
    except Exception:
        return False
    return True


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Say whether the dashboard database and the broker answer; nothing else.

    No authentication (load balancers call it) and so nothing in the answer
    but two words: no host names, versions or error texts.
    """
    checks = {
        "database": "ok" if _database_answers() else "unavailable",
        "broker": "ok" if _broker_answers() else "unavailable",
    }
    healthy = all(value == "ok" for value in checks.values())
    return JsonResponse(
        {"status": "ok" if healthy else "degraded", **checks}, status=200 if healthy else 503
    )
