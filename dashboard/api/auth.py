"""Bearer-token authentication of the API and access to its documentation.

``Authorization: Bearer mqd_...``: a valid, unrevoked token of an active user
authenticates the call as that user (``request.user`` is set to it, so
services and the audit log see the same actor as in the browser). Reads also
accept a logged-in browser session. Anything else is answered 401 with a JSON
body by the API (see ``views/api.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, JsonResponse
from ninja.security import APIKeyCookie, HttpBearer

from dashboard.api.models import ApiToken
from dashboard.api.services import api_token_authenticate


class ApiTokenAuth(HttpBearer):
    """django-ninja auth: the token's user, or None (-> 401)."""

    def authenticate(self, request: HttpRequest, token: str) -> Any | None:
        api_token = api_token_authenticate(plaintext=token.strip())
        if api_token is None:
            return None
        _attach(request, api_token)
        return api_token.user


class BrowserSessionReadAuth(APIKeyCookie):
    """Reads (GET/HEAD) by a person logged in to the dashboard, e.g. from the docs page.

    Only safe methods, so no CSRF token is involved; changes need a token.
    """

    param_name = settings.SESSION_COOKIE_NAME

    def __init__(self) -> None:
        super().__init__(csrf=False)

    def authenticate(self, request: HttpRequest, key: str | None) -> Any | None:
        if request.method in ("GET", "HEAD") and request.user.is_authenticated:  # type: ignore[attr-defined]
            return request.user  # type: ignore[attr-defined]
        return None


def _attach(request: HttpRequest, api_token: ApiToken) -> None:
    request.user = api_token.user  # type: ignore[attr-defined]
    request.api_token = api_token  # type: ignore[attr-defined]


def bearer_user(request: HttpRequest) -> Any | None:
    """The user of the request's bearer token, if it carries a valid one."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not value:
        return None
    api_token = api_token_authenticate(plaintext=value.strip())
    if api_token is None:
        return None
    _attach(request, api_token)
    return api_token.user


def unauthorized() -> JsonResponse:
    detail = "sign in to the dashboard or send a valid API token (Authorization: Bearer …)"
    response = JsonResponse({"detail": detail}, status=401)
    response["WWW-Authenticate"] = 'Bearer realm="api"'
    return response


def docs_access(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Guard of the OpenAPI document and the docs page.

    Anyone signed in (a browser session, whatever their permissions) or with a
    valid bearer token may read them: the document describes the API, it holds
    no data. Anyone else gets 401 JSON for the document and a redirect to the
    login page for the HTML docs.
    """

    @wraps(view)
    def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.user.is_authenticated or bearer_user(request) is not None:  # type: ignore[attr-defined]
            return view(request, *args, **kwargs)
        if request.path.endswith(".json"):
            return unauthorized()
        return redirect_to_login(request.get_full_path())

    return guarded
