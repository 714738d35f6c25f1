"""JSON answers for what is not an operation: unknown paths and wrong methods.

Contract: under ``/api/v1/`` every answer is JSON ``{"detail": "<sentence>"}``,
also where Django or django-ninja would answer with an HTML page or plain
text: a path that matches no operation is a 404 (for every method, whoever
asks: the paths are public in the OpenAPI document anyway), a method the
operation does not take is a 405 that keeps its ``Allow`` header.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import URLPattern, reverse
from django.views.decorators.csrf import csrf_exempt


@csrf_exempt  # answers 404 and changes nothing; a POST must get the JSON, not a CSRF page
def api_not_found(request: HttpRequest, rest: str = "") -> JsonResponse:
    index = reverse("api:api-root")
    return JsonResponse(
        {"detail": f"no API endpoint at {request.path}; {index} lists the entry points"},
        status=404,
    )


def json_method_errors(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """``view``, with its 405 (HTML or text) answered as JSON; ``Allow`` is kept."""

    @wraps(view)  # keeps ``csrf_exempt`` and the other flags the view carries
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = view(request, *args, **kwargs)
        if response.status_code != 405 or "json" in response.get("Content-Type", ""):
            return response
        allowed = response.get("Allow", "")
        answer = JsonResponse(
            {"detail": f"{request.method} is not allowed on {request.path}; allowed: {allowed}"},
            status=405,
        )
        answer["Allow"] = allowed
        return answer

    return wrapped


def with_json_method_errors(pattern: URLPattern) -> URLPattern:
    """The same URL pattern, its view wrapped by :func:`json_method_errors`."""
    return URLPattern(
        pattern.pattern, json_method_errors(pattern.callback), pattern.default_args, pattern.name
    )
