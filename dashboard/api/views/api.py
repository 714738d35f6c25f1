"""The CI API under ``/api/v1/`` (django-ninja; OpenAPI at ``/api/v1/openapi.json``).

Every operation: bearer token -> the token's user (reads also accept a
browser session; 401 JSON otherwise), the same permission as the browser page
(403 JSON otherwise), one selector or service call. Errors are
``{"detail": "<readable message>"}``; a 403 says why (the missing permission,
or the approval policy's own sentence). Approving is not offered here on
purpose: people approve in the browser, and ``POST /requests/{id}/approve`` or
``/reject`` only answer 403 with the reason (left out of the OpenAPI document).
A fleet's rollout is resumed or cancelled here by its tech leads
(``dashboard.rollouts.services.actions``: permission, audit and state checks
are the service's; a refusal of the action itself is a 409).
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from ninja import NinjaAPI, Path, Query, Status
from ninja.errors import AuthenticationError, HttpError, ValidationError

from dashboard.api import selectors
from dashboard.api.auth import ApiTokenAuth, BrowserSessionReadAuth, docs_access
from dashboard.api.schemas import (
    SLUG_PATTERN,
    EnvironmentOut,
    ErrorOut,
    GraphOut,
    RequestIn,
    RequestOut,
)
from dashboard.approvals.models import MigrationRequest
from dashboard.approvals.services import requests as request_services
from dashboard.approvals.services.decisions import approver_refusal
from dashboard.approvals.services.requests import RequestRefused, migration_request_create
from dashboard.environments.models import Environment
from dashboard.rollouts.models import Rollout
from dashboard.rollouts.services.actions import (
    RolloutActionRefused,
    rollout_cancel,
    rollout_resume,
)
from dashboard.rollouts.transitions import RolloutTransitionRefused

# The same permissions as the browser pages of the same data.
VIEW = "environments.view_environment"
VIEW_REQUESTS = "approvals.view_migrationrequest"
REQUEST = "dashboard.request_migration"

api = NinjaAPI(
    title="Magnetiq2 migrations dashboard API",
    version="1",
    description=(
        "For CI pipelines: read environments and the revision graph, ask for a migration and "
        "follow it. Authenticate with `Authorization: Bearer <token>`; create a personal token "
        "in the admin (API tokens). Approvals happen in the browser."
    ),
    # Reads: a token or a browser session; writes (POST): a token only.
    auth=[ApiTokenAuth(), BrowserSessionReadAuth()],
    urls_namespace="api",
    docs_decorator=docs_access,
)

# Every operation documents the errors it can answer with.
ERRORS: dict[int, Any] = {401: ErrorOut, 403: ErrorOut}


def _require(request: HttpRequest, permission: str) -> None:
    if not request.auth.has_perm(permission):  # type: ignore[attr-defined]
        raise HttpError(403, f"your account lacks the permission {permission!r}")


@api.exception_handler(AuthenticationError)
def _unauthorized(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    response = api.create_response(
        request, {"detail": "a valid API token is required (Authorization: Bearer …)"}, status=401
    )
    response["WWW-Authenticate"] = 'Bearer realm="api"'
    return response


@api.exception_handler(PermissionDenied)
def _forbidden(request: HttpRequest, exc: PermissionDenied) -> HttpResponse:
    # The services' PermissionDenied carries the policy's sentence: pass it on.
    detail = str(exc) or "you are not allowed to do this"
    return api.create_response(request, {"detail": detail}, status=403)


@api.exception_handler(ValidationError)
def _invalid(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    problems = "; ".join(
        f"{'.'.join(str(p) for p in error.get('loc', ())[1:]) or 'body'}: {error.get('msg', '')}"
        for error in exc.errors
    )
    body = {"detail": f"invalid request: {problems}", "errors": _plain(exc.errors)}
    return api.create_response(request, body, status=400)


def _plain(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    keep = ("type", "loc", "msg")
    return [{key: error[key] for key in keep if key in error} for error in errors]


@api.get(
    "/environments",
    response={200: list[EnvironmentOut], **ERRORS},
    operation_id="environments_list",
    tags=["environments"],
    url_name="environments",
    summary="Environments in pipeline order with their last-read status",
    description="A fleet is one entry with `fleet` (its targets' summary); its targets are not"
    " listed (GET /environments/{fleet}--{target} reads one).",
)
def environments_list(request: HttpRequest) -> list[dict[str, Any]]:
    _require(request, VIEW)
    return selectors.api_environment_list()


@api.get(
    "/environments/{slug}",
    response={200: EnvironmentOut, 400: ErrorOut, 404: ErrorOut, **ERRORS},
    operation_id="environments_get",
    tags=["environments"],
    url_name="environment",
    summary="One environment with its last-read status",
    description="Also a fleet (with `fleet`) or one of its targets (slug `<fleet>--<target>`,"
    " with `target_of`).",
)
def environments_get(
    # 120: a target's slug is the fleet's (50 at most) + "--" + its name.
    request: HttpRequest,
    slug: str = Path(..., max_length=120, pattern=SLUG_PATTERN),
) -> Any:
    _require(request, VIEW)
    try:
        return selectors.api_environment_get(slug=slug)
    except Environment.DoesNotExist:
        return Status(404, {"detail": f"no environment {slug!r}"})


@api.get(
    "/graph",
    response={200: GraphOut, **ERRORS},
    operation_id="graph_get",
    tags=["graph"],
    url_name="graph",
    summary="The revision graph (same JSON as `manage.py revision_graph --format json`)",
)
def graph_get(request: HttpRequest) -> dict[str, Any]:
    _require(request, VIEW)
    return selectors.api_graph()


@api.get(
    "/requests",
    response={200: list[RequestOut], 400: ErrorOut, **ERRORS},
    operation_id="requests_list",
    tags=["requests"],
    url_name="requests",
    summary="Migration requests, newest first",
)
def requests_list(
    request: HttpRequest,
    environment: str = Query("", max_length=50, pattern=r"^[-a-zA-Z0-9_]*$"),
    status: MigrationRequest.Status | None = None,
    limit: int = Query(20, ge=1, le=selectors.REQUEST_LIST_LIMIT),
) -> list[dict[str, Any]]:
    _require(request, VIEW_REQUESTS)
    return selectors.api_request_list(
        environment=environment, status=status.value if status else "", limit=limit
    )


@api.post(
    "/requests",
    response={201: RequestOut, 400: ErrorOut, 409: ErrorOut, 503: ErrorOut, **ERRORS},
    operation_id="requests_create",
    tags=["requests"],
    auth=ApiTokenAuth(),
    summary="Ask for a migration (pins the plan; approvers decide in the browser)",
    description=(
        "A fleet's slug makes one request for all its targets, a plan pinned per head set "
        "and a rollout in waves (see `rollout` in the answer). "
        "400: unknown environment, bad or unreachable target, nothing to do, missing reason, "
        "one target of a fleet (request the fleet). "
        "409: another request of the environment is approved or running. "
        "503: the environment's database cannot be reached (for a fleet: no target's "
        "status is known yet)."
    ),
)
def requests_create(request: HttpRequest, body: RequestIn) -> Status[dict[str, Any]]:
    _require(request, REQUEST)
    environment = Environment.objects.filter(slug=body.environment).first()
    if environment is None:
        return Status(400, {"detail": f"no environment {body.environment!r}"})
    try:
        created = migration_request_create(
            environment=environment,
            actor=request.auth,  # type: ignore[attr-defined]
            direction=body.direction,
            target=body.target,
            reason=body.reason,
            http_request=request,
        )
    except RequestRefused as exc:
        return Status(refusal_status(exc), {"detail": str(exc)})
    return Status(201, selectors.api_request_get(pk=created.pk))


def refusal_status(exc: RequestRefused) -> int:
    """409 for a busy environment, 503 for an unreachable one, 400 for the rest."""
    if isinstance(exc, request_services.RequestConflict):
        return 409
    if isinstance(exc, request_services.EnvironmentUnavailable):
        return 503
    return 400


@api.get(
    "/requests/{request_id}",
    response={200: RequestOut, 400: ErrorOut, 404: ErrorOut, **ERRORS},
    operation_id="requests_get",
    tags=["requests"],
    url_name="request",
    summary="One request: state, approvals, run progress and, for a fleet, its rollout",
)
def requests_get(request: HttpRequest, request_id: int = Path(..., ge=1, le=2**63 - 1)) -> Any:
    _require(request, VIEW_REQUESTS)
    try:
        return selectors.api_request_get(pk=request_id)
    except MigrationRequest.DoesNotExist:
        return Status(404, {"detail": f"no request #{request_id}"})


ROLLOUT_ERRORS: dict[int, Any] = {400: ErrorOut, 404: ErrorOut, 409: ErrorOut, **ERRORS}


def _rollout_or_404(request: HttpRequest, request_id: int, action: str) -> Rollout:
    _require(request, VIEW_REQUESTS)
    try:
        rollout = selectors.api_rollout_of(pk=request_id)
    except MigrationRequest.DoesNotExist:
        raise HttpError(404, f"no request #{request_id}") from None
    if rollout is None:
        raise HttpError(
            404, f"request #{request_id} is not a fleet's request: it has no rollout to {action}"
        )
    return rollout


@api.post(
    "/requests/{request_id}/resume",
    response={200: RequestOut, **ROLLOUT_ERRORS},
    operation_id="requests_resume",
    tags=["requests"],
    auth=ApiTokenAuth(),
    url_name="request_resume",
    summary="Resume a halted rollout: retry its failed targets, then the remaining waves",
    description=(
        "For the fleet's tech leads (403 for others, with the reason). "
        "404: no such request, or not a fleet's request. "
        "409: the rollout is not halted, or the pinned files changed since approval "
        "(the detail says which). Answers the request with its rollout."
    ),
)
def requests_resume(request: HttpRequest, request_id: int = Path(..., ge=1, le=2**63 - 1)) -> Any:
    rollout = _rollout_or_404(request, request_id, "resume")
    try:
        rollout_resume(rollout=rollout, actor=request.auth, http_request=request)
    except (RolloutActionRefused, RolloutTransitionRefused) as exc:
        return Status(409, {"detail": str(exc)})
    return selectors.api_request_get(pk=request_id)


@api.post(
    "/requests/{request_id}/cancel",
    response={200: RequestOut, **ROLLOUT_ERRORS},
    operation_id="requests_cancel",
    tags=["requests"],
    auth=ApiTokenAuth(),
    url_name="request_cancel",
    summary="Cancel the rest of a rollout: targets not started are skipped, running ones finish",
    description=(
        "For the fleet's tech leads (403 for others, with the reason). "
        "404: no such request, or not a fleet's request. "
        "409: the rollout has already ended. Answers the request with its rollout."
    ),
)
def requests_cancel(request: HttpRequest, request_id: int = Path(..., ge=1, le=2**63 - 1)) -> Any:
    rollout = _rollout_or_404(request, request_id, "cancel")
    try:
        rollout_cancel(rollout=rollout, actor=request.auth, http_request=request)
    except (RolloutActionRefused, RolloutTransitionRefused) as exc:
        return Status(409, {"detail": str(exc)})
    return selectors.api_request_get(pk=request_id)


def _decision_refused(request: HttpRequest, request_id: int) -> None:
    """Always raises: 403 with the policy's refusal, else where decisions are made."""
    _require(request, VIEW_REQUESTS)
    migration = MigrationRequest.objects.select_related("environment").filter(pk=request_id).first()
    if migration is None:
        raise HttpError(404, f"no request #{request_id}")
    refusal = approver_refusal(request=migration, user=request.auth)
    page = selectors.request_page_url(pk=request_id)
    raise PermissionDenied(
        refusal or f"decisions are made in the browser, after reading the SQL: {page}"
    )


@api.post(
    "/requests/{request_id}/approve",
    response={401: ErrorOut, 403: ErrorOut, 404: ErrorOut},
    auth=ApiTokenAuth(),
    include_in_schema=False,
    url_name="request_approve",
)
def requests_approve(request: HttpRequest, request_id: int = Path(..., ge=1, le=2**63 - 1)) -> None:
    _decision_refused(request, request_id)


@api.post(
    "/requests/{request_id}/reject",
    response={401: ErrorOut, 403: ErrorOut, 404: ErrorOut},
    auth=ApiTokenAuth(),
    include_in_schema=False,
    url_name="request_reject",
)
def requests_reject(request: HttpRequest, request_id: int = Path(..., ge=1, le=2**63 - 1)) -> None:
    _decision_refused(request, request_id)
