"""``GET /api/v1/``: where to start (for people poking at the API with curl)."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET

from dashboard.api.auth import bearer_user, unauthorized


@csrf_exempt  # GET only: a POST gets the JSON 405, not the CSRF failure page
@require_GET
def api_root(request: HttpRequest) -> JsonResponse:
    if not (request.user.is_authenticated or bearer_user(request) is not None):
        return unauthorized()
    return JsonResponse(
        {
            "openapi": reverse("api:openapi-json"),
            "docs": reverse("api:openapi-view"),
            "environments": reverse("api:environments"),
            "graph": reverse("api:graph"),
            "requests": reverse("api:requests"),
        }
    )
