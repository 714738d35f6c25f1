"""The API speaks JSON: unknown paths, wrong methods and refusals all answer ``{"detail": …}``."""
# ruff: noqa: F811  (fixtures imported from tests.dashboard.api_support)

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from dashboard.approvals.models import Approval, MigrationRequest
from dashboard.approvals.services.decisions import approver_refusal
from dashboard.audit.models import AuditEvent
from tests.dashboard.api_support import api_envs, api_project, bearer, make_token  # noqa: F401

pytestmark = pytest.mark.django_db

README = Path(__file__).resolve().parents[2] / "README.md"
UNKNOWN = ["/api/v1/nothing-here", "/api/v1/environments/dev/extra", "/api/v1/requests/1/x"]


def _detail(response: Any) -> str:
    assert response["Content-Type"].startswith("application/json"), response.content[:200]
    body = response.json()
    assert isinstance(body["detail"], str) and body["detail"]
    return body["detail"]


def _create(token: str) -> int:
    body = {"environment": "dev", "target": "head", "reason": "release 42"}
    response = Client().post(
        "/api/v1/requests", json.dumps(body), content_type="application/json", **bearer(token)
    )
    assert response.status_code == 201, response.content
    return response.json()["id"]


def test_it_answers_unknown_paths_with_a_json_404_for_get_and_post(
    developer: Any, make_token: Callable[..., str]
) -> None:
    session = Client(enforce_csrf_checks=True)
    session.force_login(developer)
    callers = {
        "anonymous": Client(),
        "token": Client(enforce_csrf_checks=True, headers=bearer_headers(make_token(developer))),
        "session without CSRF token": session,
    }
    for who, client in callers.items():
        for path in UNKNOWN:
            for method in ("get", "post"):
                response = getattr(client, method)(path)
                assert response.status_code == 404, (who, method, path)
                detail = _detail(response)
                assert path in detail and "/api/v1/" in detail, detail


def test_a_wrong_method_is_a_json_405_that_says_what_is_allowed(
    developer: Any, make_token: Callable[..., str]
) -> None:
    token = bearer(make_token(developer))
    for method, path in (("delete", "/api/v1/environments"), ("post", "/api/v1/graph")):
        response = getattr(Client(), method)(path, **token)
        assert response.status_code == 405, (method, path)
        assert "GET" in response["Allow"] and "GET" in _detail(response)
    root = Client().post("/api/v1/", **token)
    assert root.status_code == 405 and "GET" in _detail(root)


def test_approving_through_the_api_is_refused_with_the_policys_own_sentence(
    api_envs: dict[str, Any],
    developer: Any,
    lead: Any,
    auditor: Any,
    outsider: Any,
    make_token: Callable[..., str],
) -> None:
    request_id = _create(make_token(developer))
    migration = MigrationRequest.objects.get(pk=request_id)
    others = AuditEvent.objects.exclude(action="dashboard.api.token_created")
    events = others.count()
    for person in (developer, auditor):
        for decision in ("approve", "reject"):
            path = f"/api/v1/requests/{request_id}/{decision}"
            response = Client().post(path, **bearer(make_token(person)))
            assert response.status_code == 403, (person, path)
            # The sentence the browser's policy gives, not a copy of it.
            assert _detail(response) == approver_refusal(request=migration, user=person)
    allowed = Client().post(f"/api/v1/requests/{request_id}/approve", **bearer(make_token(lead)))
    assert allowed.status_code == 403
    assert approver_refusal(request=migration, user=lead) is None
    detail = _detail(allowed)
    assert "in the browser" in detail and detail.endswith(f"/requests/{request_id}/")
    stranger = Client().post(
        f"/api/v1/requests/{request_id}/approve", **bearer(make_token(outsider))
    )
    assert stranger.status_code == 403 and "permission" in _detail(stranger)
    missing = Client().post("/api/v1/requests/999999/approve", **bearer(make_token(lead)))
    assert missing.status_code == 404 and _detail(missing) == "no request #999999"
    assert Client().post(f"/api/v1/requests/{request_id}/approve").status_code == 401

    assert MigrationRequest.objects.get(pk=request_id).status == "pending"
    assert not Approval.objects.exists()
    assert others.count() == events  # nothing but the tokens made above was recorded


def test_the_openapi_document_is_for_anyone_signed_in_or_with_a_token(
    outsider: Any, make_token: Callable[..., str]
) -> None:
    anonymous = Client().get("/api/v1/openapi.json")
    assert anonymous.status_code == 401
    assert anonymous["WWW-Authenticate"].startswith("Bearer")
    assert "token" in _detail(anonymous) and "sign in" in _detail(anonymous)

    signed_in = Client()
    signed_in.force_login(outsider)  # in no group: no permission at all
    assert signed_in.get("/api/v1/openapi.json").json()["openapi"].startswith("3.1")
    with_token = Client().get("/api/v1/openapi.json", **bearer(make_token(outsider)))
    assert with_token.status_code == 200 and with_token.json()["paths"]

    api_section = README.read_text(encoding="utf-8").split("## API for CI pipelines")[1]
    api_section = re.sub(r"\s+", " ", api_section.split("\n## ")[0])
    assert "The OpenAPI document needs no permission" in api_section
    assert "signed in" in api_section and "any valid token" in api_section


def bearer_headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
