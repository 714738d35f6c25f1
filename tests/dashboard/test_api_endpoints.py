"""The CI API: who may call what, and what each endpoint answers."""
# ruff: noqa: F811  (fixtures imported from tests.dashboard.api_support)

from __future__ import annotations

import json
from collections.abc import Callable
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client

from dashboard.approvals import transitions
from dashboard.approvals.models import MigrationRequest, RunProgress
from dashboard.approvals.services.decisions import migration_request_approve
from dashboard.audit.models import AuditEvent
from tests.dashboard.api_support import api_envs, api_project, bearer, make_token  # noqa: F401

pytestmark = pytest.mark.django_db

READS = ["/api/v1/", "/api/v1/environments", "/api/v1/environments/dev", "/api/v1/graph",
         "/api/v1/requests", "/api/v1/requests/1", "/api/v1/openapi.json"]  # fmt: skip
CREATE = "/api/v1/requests"
CI = {"HTTP_USER_AGENT": "gitlab-ci/17 curl/8", "REMOTE_ADDR": "127.0.0.9"}


def _create(token: str, **body: Any) -> Any:
    payload = {"environment": "dev", "target": "head", "reason": "release 42", **body}
    # A pipeline has no CSRF cookie: the token alone must be enough.
    return Client(enforce_csrf_checks=True).post(
        CREATE, json.dumps(payload), content_type="application/json", **bearer(token), **CI
    )


def test_anonymous_callers_get_401_json_everywhere_and_the_docs_send_them_to_login() -> None:
    for url in READS:
        response = Client().get(url)
        assert response.status_code == 401, url
        assert response.json()["detail"], url
    assert Client().post(CREATE, "{}", content_type="application/json").status_code == 401
    docs = Client().get("/api/v1/docs")
    assert docs.status_code == 302 and "/admin/login/" in docs["Location"]


def test_people_without_the_permission_get_403_json(
    api_envs: dict[str, Any],
    outsider: Any,
    auditor: Any,
    developer: Any,
    make_token: Callable[..., str],
) -> None:
    nobody = make_token(outsider)
    for url in READS[1:-1]:
        response = Client().get(url, **bearer(nobody))
        assert response.status_code == 403, url
        assert "permission" in response.json()["detail"]
    # Auditors read everything but may not ask for migrations, as in the browser.
    audit = make_token(auditor)
    assert Client().get("/api/v1/environments", **bearer(audit)).status_code == 200
    refused = _create(audit)
    assert refused.status_code == 403
    assert "dashboard.request_migration" in refused.json()["detail"]
    assert not MigrationRequest.objects.exists()
    # The OpenAPI document and the index are open to any valid token.
    assert Client().get("/api/v1/openapi.json", **bearer(nobody)).status_code == 200
    index = Client().get("/api/v1/", **bearer(make_token(developer))).json()
    assert index["openapi"] == "/api/v1/openapi.json"


def test_it_lists_environments_with_their_status_and_no_secret(
    api_envs: dict[str, Any], developer: Any, make_token: Callable[..., str]
) -> None:
    response = Client().get("/api/v1/environments", **bearer(make_token(developer)))
    assert response.status_code == 200
    dev, prod = response.json()
    assert dev["slug"] == "dev" and prod["slug"] == "prod"
    assert dev["status"] == "pending"
    assert dev["current_heads"] == ["a"] and dev["pending"] == ["b", "c"]
    assert dev["status_refreshed_at"] and dev["dialect"] == "sqlite"
    assert dev["url"].endswith("/environments/dev/")
    assert prod["status"] == "unknown" and prod["status_refreshed_at"] is None
    assert api_envs["dev_url"] not in response.content.decode()
    assert "127.0.0.1:1" not in response.content.decode()

    one = Client().get("/api/v1/environments/dev", **bearer(make_token(developer)))
    assert one.json() == dev
    missing = Client().get("/api/v1/environments/nope", **bearer(make_token(developer)))
    assert missing.status_code == 404 and "nope" in missing.json()["detail"]


def test_the_graph_is_the_json_of_manage_py_revision_graph(
    api_envs: dict[str, Any], developer: Any, make_token: Callable[..., str]
) -> None:
    out = StringIO()
    call_command("revision_graph", "--format", "json", stdout=out)
    response = Client().get("/api/v1/graph", **bearer(make_token(developer)))
    assert response.status_code == 200
    assert response.json() == json.loads(out.getvalue())
    assert response.json()["heads"] == ["c"]


def test_it_creates_a_request_as_the_tokens_user_and_audits_it_like_the_browser(
    api_envs: dict[str, Any], developer: Any, make_token: Callable[..., str]
) -> None:
    response = _create(make_token(developer))
    assert response.status_code == 201, response.content
    body = response.json()
    created = MigrationRequest.objects.get()
    assert body["id"] == created.pk and body["status"] == "pending"
    assert body["requested_by"] == "developer"
    assert body["from_heads"] == ["a"] and body["to_heads"] == ["c"]
    assert [step["revision"] for step in body["steps"]] == ["b", "c"]
    assert body["url"].endswith(f"/requests/{created.pk}/")
    assert body["approvals"] == [] and body["run"] is None
    event = AuditEvent.objects.get(action="dashboard.request.created")
    assert event.actor_username == "developer" and event.request_id == created.pk
    assert event.user_agent == "gitlab-ci/17 curl/8" and event.client_ip == "127.0.0.9"


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"target": "zzz_no_such_revision"}, "zzz_no_such_revision"),
        ({"target": "a", "direction": "upgrade"}, "nothing to do"),
        ({"environment": "nope"}, "no environment 'nope'"),
        ({"reason": "   "}, "reason"),
        ({"target": ""}, "target"),
        ({"direction": "sideways"}, "direction"),
    ],
)
def test_a_bad_request_gets_400_with_a_readable_message(
    api_envs: dict[str, Any],
    developer: Any,
    make_token: Callable[..., str],
    body: dict[str, str],
    words: str,
) -> None:
    response = _create(make_token(developer), **body)
    assert response.status_code == 400, response.content
    assert words in response.json()["detail"]
    assert not MigrationRequest.objects.exists()


def test_it_answers_409_while_another_request_is_approved(
    api_envs: dict[str, Any], developer: Any, lead: Any, make_token: Callable[..., str]
) -> None:
    first = _create(make_token(developer)).json()
    migration_request_approve(request=MigrationRequest.objects.get(), actor=lead, comment="go")

    second = _create(make_token(developer), target="b")
    assert second.status_code == 409
    assert f"#{first['id']}" in second.json()["detail"]


def test_an_unreachable_environment_is_refused_with_the_reason(
    api_envs: dict[str, Any], developer: Any, make_token: Callable[..., str]
) -> None:
    response = _create(make_token(developer), environment="prod")
    assert response.status_code == 503
    assert "unreachable" in response.json()["detail"]
    assert "127.0.0.1:1" not in response.content.decode()


def test_it_reads_a_request_with_its_approvals_and_run_progress(
    api_envs: dict[str, Any], developer: Any, lead: Any, make_token: Callable[..., str]
) -> None:
    token = make_token(developer)
    request_id = _create(token).json()["id"]
    migration_request_approve(request=MigrationRequest.objects.get(), actor=lead, comment="go")
    run = transitions.run_claimed(MigrationRequest.objects.get(), worker="w1")
    assert run is not None
    RunProgress.objects.create(run=run, index=0, revision="b")
    run.applied = ["b"]
    run.current_revision = "c"
    run.save(update_fields=["applied", "current_revision"])

    body = Client().get(f"/api/v1/requests/{request_id}", **bearer(token)).json()
    assert body["status"] == "running" and body["approvals_given"] == 1
    [approval] = body["approvals"]
    assert approval["approver"] == "lead" and approval["decision"] == "approve"
    assert approval["comment"] == "go" and approval["expired"] is False
    assert body["run"]["outcome"] == "running" and body["run"]["progress_percent"] == 50
    assert [step["revision"] for step in body["run"]["applied"]] == ["b"]
    assert body["run"]["current_revision"] == "c"

    listed = Client().get("/api/v1/requests?environment=dev&status=running", **bearer(token))
    assert [r["id"] for r in listed.json()] == [request_id]
    none = Client().get("/api/v1/requests?status=pending", **bearer(token))
    assert none.json() == []
    missing = Client().get("/api/v1/requests/999999", **bearer(token))
    assert missing.status_code == 404


def test_listing_requests_costs_the_same_few_queries_however_many_there_are(
    api_envs: dict[str, Any],
    developer: Any,
    lead: Any,
    make_token: Callable[..., str],
    django_assert_max_num_queries: Any,
) -> None:
    token = make_token(developer)
    for target in ("b", "c", "b", "c"):
        _create(token, target=target)
    # Two approvals needed: one each leaves both pending (an approved one would block the other).
    api_envs["dev"].required_approvals = 2
    api_envs["dev"].save(update_fields=["required_approvals"])
    for request in MigrationRequest.objects.all()[:2]:
        migration_request_approve(request=request, actor=lead, comment="ok")
    with django_assert_max_num_queries(8):
        response = Client().get("/api/v1/requests?limit=100", **bearer(token))
    assert len(response.json()) == 4
    assert sorted(r["approvals_given"] for r in response.json()) == [0, 0, 1, 1]


def test_approving_is_not_offered(
    api_envs: dict[str, Any], lead: Any, developer: Any, make_token: Callable[..., str]
) -> None:
    request_id = _create(make_token(developer)).json()["id"]
    schema = Client().get("/api/v1/openapi.json", **bearer(make_token(lead))).json()
    assert all("approve" not in path for path in schema["paths"])
    # An attempt is refused with the reason (tests/dashboard/test_api_json_errors.py).
    expected = {
        f"/api/v1/requests/{request_id}/approve": 403,
        f"/api/v1/requests/{request_id}": 405,
    }
    for path, status in expected.items():
        response = Client().post(
            path, "{}", content_type="application/json", **bearer(make_token(lead))
        )
        assert response.status_code == status
    assert MigrationRequest.objects.get().status == "pending"


def test_logged_in_people_read_the_docs_page_served_from_our_static_files(developer: Any) -> None:
    client = Client()
    client.force_login(developer)
    page = client.get("/api/v1/docs")
    assert page.status_code == 200
    html = page.content.decode()
    assert "/static/ninja/swagger-ui-bundle.js" in html and "cdn" not in html.lower()
    assert client.get("/api/v1/openapi.json").json()["info"]["title"]


def test_a_browser_session_may_read_but_not_create(
    api_envs: dict[str, Any], developer: Any, outsider: Any
) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(developer)
    assert client.get("/api/v1/environments").status_code == 200
    body = {"environment": "dev", "target": "head", "reason": "from a browser"}
    refused = client.post(CREATE, json.dumps(body), content_type="application/json")
    assert refused.status_code == 401
    assert not MigrationRequest.objects.exists()
    stranger = Client()
    stranger.force_login(outsider)
    assert stranger.get("/api/v1/environments").status_code == 403
