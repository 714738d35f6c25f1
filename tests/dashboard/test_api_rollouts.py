"""The API of fleet rollouts: request a fleet, follow its rollout, resume or cancel it.

A fleet of SQLite tenants rolled out by one real Celery worker (as in
``test_rollouts_smoke.py``); the test drives everything through
``/api/v1/`` with bearer tokens, except approving, which people do in the
browser (the API refuses it and says so). A tenant that already has the
column revision ``b`` adds fails its run without changing anything, which
halts the rollout at its wave; dropping the column is the fix a resume needs.
"""
# ruff: noqa: F811  (fixtures imported from tests.dashboard.api_support)

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from dashboard.approvals.models import MigrationRequest
from dashboard.audit.models import AuditEvent
from tests.dashboard.api_support import bearer, make_token  # noqa: F401
from tests.dashboard.approvals_support import (
    HEARTBEAT_SECONDS,
    Worker,
    approve,
    broker,
    create_request,
    drop_queue_keys,
    make_environment,
    migrate_target,
    target_heads,
    wait_for,
)
from tests.dashboard.rollouts_support import ROLLOUT_TIMEOUT, make_fleet, refresh_targets
from tests.migrator.execution_project import write_project

pytestmark = pytest.mark.django_db(transaction=True)
REDIS = os.environ["TEST_REDIS_URL"]
CI = {"HTTP_USER_AGENT": "gitlab-ci/17 curl/8", "REMOTE_ADDR": "127.0.0.9"}


@pytest.fixture(scope="module")
def project_ini(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_project(tmp_path_factory.mktemp("api_rollout_project"))


@pytest.fixture(scope="module")
def queue() -> Iterator[str]:
    name = f"test-api-rollout-{uuid.uuid4().hex[:10]}"
    with broker(REDIS, name):
        yield name
    drop_queue_keys(REDIS, name)


@pytest.fixture(scope="module")
def worker(
    django_db_setup: None, project_ini: Path, queue: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Worker]:
    log = tmp_path_factory.mktemp("api_rollout_worker") / "worker.log"
    process = Worker(broker_url=REDIS, queue=queue, ini=project_ini, log=log, pool="threads")
    yield process
    process.stop()


@pytest.fixture(autouse=True)
def alembic_project(settings: Any, project_ini: Path) -> None:
    settings.ALEMBIC_CONFIG = str(project_ini)
    settings.DASHBOARD_RUN_HEARTBEAT = timedelta(seconds=HEARTBEAT_SECONDS)


class Tenants:
    """SQLite tenant databases at ``a``; ``conflict(name)`` gives one the column ``b`` adds."""

    def __init__(self, ini: Path, directory: Path, names: list[str]) -> None:
        self.names = names
        self.template = f"sqlite:///{directory}/tenant_{{target}}.sqlite3"
        for name in names:
            migrate_target(ini, self.url(name), "a")

    def url(self, name: str) -> str:
        return self.template.replace("{target}", name)

    def heads(self, name: str) -> tuple[str, ...]:
        return target_heads(self.url(name))

    def _execute(self, name: str, statement: str) -> None:
        engine = sa.create_engine(self.url(name), poolclass=sa.pool.NullPool)
        with engine.begin() as conn:
            conn.exec_driver_sql(statement)
        engine.dispose()

    def conflict(self, name: str) -> None:
        self._execute(name, "ALTER TABLE items ADD COLUMN note VARCHAR(50)")

    def fix(self, name: str) -> None:
        self._execute(name, "ALTER TABLE items DROP COLUMN note")


def _fleet(
    ini: Path, directory: Path, names: list[str], *, waves: list[int | str], slug: str = "tenants"
) -> tuple[Any, Tenants]:
    tenants = Tenants(ini, directory, names)
    fleet = make_fleet(
        slug=slug,
        names=names,
        url_template=tenants.template,
        directory=directory,
        waves=waves,
        parallelism=2,
    )
    return fleet, tenants


def _post(token: str, path: str, body: dict[str, Any] | None = None) -> Any:
    # A pipeline has no CSRF cookie: the token alone must be enough.
    return Client(enforce_csrf_checks=True).post(
        path, json.dumps(body or {}), content_type="application/json", **bearer(token), **CI
    )


def _request_fleet(token: str, target: str = "c", environment: str = "tenants") -> Any:
    body = {"environment": environment, "target": target, "reason": "release 42"}
    return _post(token, "/api/v1/requests", body)


def _get(token: str, request_id: int) -> dict[str, Any]:
    response = Client().get(f"/api/v1/requests/{request_id}", **bearer(token))
    assert response.status_code == 200, response.content
    return response.json()


def _rollout_reaches(token: str, request_id: int, *states: str) -> dict[str, Any]:
    """Poll the API until the request's rollout is in one of ``states``; return the request."""

    def check() -> dict[str, Any] | None:
        body = _get(token, request_id)
        return body if body["rollout"]["state"] in states else None

    return wait_for(check, timeout=ROLLOUT_TIMEOUT, interval=0.25)


def _by_name(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {target["name"]: target for target in body["rollout"]["targets"]}


def _approve_in_the_browser(request_id: int, *leads: Any) -> None:
    request = MigrationRequest.objects.get(pk=request_id)
    for lead in leads:
        approve(lead, request)


def test_it_rolls_out_a_fleet_requested_through_the_api_halts_and_resumes(
    worker: Worker,
    project_ini: Path,
    tmp_path: Path,
    developer: Any,
    lead: Any,
    lead2: Any,
    make_token: Callable[..., str],
) -> None:
    names = ["t0", "t1", "t2", "t3"]
    fleet, tenants = _fleet(project_ini, tmp_path, names, waves=[1, "100%"])
    tenants.conflict("t2")  # wave 2
    refresh_targets(fleet)
    dev_token, lead_token = make_token(developer), make_token(lead)

    # One of the fleet's targets cannot be requested on its own.
    one = _request_fleet(dev_token, environment="tenants--t1")
    assert one.status_code == 400
    assert one.json()["detail"] == (
        "tenants--t1 is a target of a fleet: request the fleet tenants (a rollout in waves) instead"
    )

    created = _request_fleet(dev_token)
    assert created.status_code == 201, created.content
    body = created.json()
    request_id = body["id"]
    assert body["environment"] == "tenants" and body["status"] == "pending"
    assert body["parent"] is None and body["run"] is None
    rollout = body["rollout"]
    assert rollout["state"] == "pending" and rollout["current_wave"] == 1
    assert [(w["number"], w["size"], w["state"]) for w in rollout["waves"]] == [
        (1, 1, "pending"),
        (2, 3, "pending"),
    ]
    [plan] = rollout["plans"]
    assert plan["index"] == 0 and plan["targets"] == 4
    assert plan["from_heads"] == ["a"] and plan["to_heads"] == ["c"]
    assert plan["revisions"] == ["b", "c"] and len(plan["sql_sha256"]) == 64
    assert [(t["name"], t["wave"], t["state"]) for t in rollout["targets"]] == [
        ("t0", 1, "pending"),
        ("t1", 2, "pending"),
        ("t2", 2, "pending"),
        ("t3", 2, "pending"),
    ]
    t0 = rollout["targets"][0]
    assert t0["environment"] == "tenants--t0" and t0["plan"] == 0 and t0["request"] is None
    assert t0["from_heads"] == ["a"] and t0["to_heads"] == ["c"] and t0["error"] == ""
    assert rollout["counts"]["pending"] == 4
    assert tenants.url("t0") not in created.content.decode()

    # Approving stays in the browser: the API says so, and the leads approve there.
    refused = _post(lead_token, f"/api/v1/requests/{request_id}/approve")
    assert refused.status_code == 403
    assert "decisions are made in the browser" in refused.json()["detail"]
    _approve_in_the_browser(request_id, lead, lead2)

    halted = _rollout_reaches(dev_token, request_id, "halted", "succeeded", "cancelled")
    rollout = halted["rollout"]
    targets = _by_name(halted)
    assert rollout["state"] == "halted", rollout
    assert "t2" in rollout["halted_reason"]
    assert targets["t0"]["state"] == "succeeded" and targets["t0"]["final_heads"] == ["c"]
    assert targets["t2"]["state"] == "failed" and "note" in targets["t2"]["error"]
    assert targets["t2"]["final_heads"] == ["a"] and targets["t2"]["applied"] == 0
    assert targets["t3"]["state"] in ("pending", "succeeded")
    assert [w["state"] for w in rollout["waves"]] == ["done", "halted"]
    assert rollout["waves"][1]["counts"]["failed"] == 1
    assert tenants.heads("t0") == ("c",)
    assert tenants.heads("t2") == ("a",)  # its failed run changed nothing

    # A target's run is a request of its own that names its parent.
    child = _get(dev_token, targets["t0"]["request"])
    assert child["parent"] == request_id and child["rollout"] is None
    assert child["environment"] == "tenants--t0" and child["status"] == "succeeded"
    assert child["run"]["outcome"] == "succeeded" and child["run"]["final_heads"] == ["c"]

    # Only the fleet's tech leads resume.
    forbidden = _post(dev_token, f"/api/v1/requests/{request_id}/resume")
    assert forbidden.status_code == 403
    assert forbidden.json()["detail"] == "only a tech lead may resume, cancel or hurry a rollout"

    # A pinned file changed since approval: the approved plan cannot run any more.
    revision_c = project_ini.parent / "versions" / "c_revision.py"
    original = revision_c.read_text()
    revision_c.write_text(original + "\n# edited after approval\n")
    try:
        changed = _post(lead_token, f"/api/v1/requests/{request_id}/resume")
    finally:
        revision_c.write_text(original)
    assert changed.status_code == 409
    assert "the files changed since this was approved" in changed.json()["detail"]
    assert _get(dev_token, request_id)["rollout"]["state"] == "halted"

    tenants.fix("t2")
    resumed = _post(lead_token, f"/api/v1/requests/{request_id}/resume")
    assert resumed.status_code == 200, resumed.content
    assert resumed.json()["rollout"]["state"] != "halted"
    event = AuditEvent.objects.get(action="dashboard.rollout.resumed", request_id=request_id)
    assert event.actor_username == "lead" and event.client_ip == "127.0.0.9"
    assert event.payload["retried_targets"] == ["t2"]

    done = _rollout_reaches(dev_token, request_id, "succeeded", "halted", "cancelled")
    assert done["rollout"]["state"] == "succeeded", done["rollout"]
    assert done["status"] == "succeeded"
    assert {t["state"] for t in done["rollout"]["targets"]} == {"succeeded"}
    assert _by_name(done)["t2"]["attempts"] == 2
    assert [w["state"] for w in done["rollout"]["waves"]] == ["done", "done"]
    assert all(tenants.heads(name) == ("c",) for name in names)

    # An ended rollout neither resumes nor cancels; the reason says why.
    again = _post(lead_token, f"/api/v1/requests/{request_id}/resume")
    assert again.status_code == 409
    assert again.json()["detail"] == "the rollout has succeeded; only a halted one resumes"
    late = _post(lead_token, f"/api/v1/requests/{request_id}/cancel")
    assert late.status_code == 409 and late.json()["detail"] == "the rollout has succeeded"


def test_a_lead_cancels_the_rest_of_a_halted_rollout_and_nobody_else_may(
    worker: Worker,
    project_ini: Path,
    tmp_path: Path,
    developer: Any,
    lead: Any,
    lead2: Any,
    auditor: Any,
    outsider: Any,
    make_token: Callable[..., str],
) -> None:
    names = ["canary", "u1", "u2"]
    fleet, tenants = _fleet(project_ini, tmp_path, names, waves=[1, "100%"])
    tenants.conflict("canary")
    refresh_targets(fleet)
    dev_token = make_token(developer)
    request_id = _request_fleet(dev_token).json()["id"]
    _approve_in_the_browser(request_id, lead, lead2)
    halted = _rollout_reaches(dev_token, request_id, "halted", "succeeded", "cancelled")
    assert halted["rollout"]["state"] == "halted"
    assert [t["state"] for t in halted["rollout"]["targets"]] == ["failed", "pending", "pending"]
    cancel = f"/api/v1/requests/{request_id}/cancel"

    # A session is not enough for a write; the others lack the tech lead's permission.
    session = Client()
    session.force_login(lead)
    assert session.post(cancel, "{}", content_type="application/json").status_code == 401
    for person in (developer, auditor):
        refused = _post(make_token(person), cancel)
        assert refused.status_code == 403
        assert refused.json()["detail"] == "only a tech lead may resume, cancel or hurry a rollout"
    nobody = _post(make_token(outsider), cancel)
    assert nobody.status_code == 403
    assert nobody.json()["detail"] == (
        "your account lacks the permission 'approvals.view_migrationrequest'"
    )
    assert _get(dev_token, request_id)["rollout"]["state"] == "halted"

    cancelled = _post(make_token(lead), cancel)
    assert cancelled.status_code == 200, cancelled.content
    body = cancelled.json()
    assert body["rollout"]["state"] == "cancelled" and body["status"] == "cancelled"
    targets = body["rollout"]["targets"]
    assert [t["state"] for t in targets] == ["failed", "skipped", "skipped"]
    assert targets[1]["error"] == "cancelled by lead"
    assert [w["state"] for w in body["rollout"]["waves"]] == ["cancelled", "cancelled"]
    assert body["rollout"]["ended_at"] is not None
    assert [tenants.heads(name) for name in names] == [("a",), ("a",), ("a",)]
    event = AuditEvent.objects.get(action="dashboard.rollout.cancelled", request_id=request_id)
    assert event.actor_username == "lead" and event.client_ip == "127.0.0.9"

    resume = _post(make_token(lead), f"/api/v1/requests/{request_id}/resume")
    assert resume.status_code == 409
    assert resume.json()["detail"] == "the rollout was cancelled; only a halted one resumes"


def test_resume_and_cancel_answer_404_for_unknown_ids_and_single_environment_requests(
    project_ini: Path, tmp_path: Path, developer: Any, lead: Any, make_token: Callable[..., str]
) -> None:
    url = f"sqlite:///{tmp_path / 'staging.sqlite3'}"
    migrate_target(project_ini, url, "a")
    staging = make_environment(slug="staging", url=url, directory=tmp_path)
    single = create_request(staging, developer, "c")
    token = make_token(lead)
    for action in ("resume", "cancel"):
        missing = _post(token, f"/api/v1/requests/987654/{action}")
        assert missing.status_code == 404
        assert missing.json()["detail"] == "no request #987654"
        plain = _post(token, f"/api/v1/requests/{single.pk}/{action}")
        assert plain.status_code == 404
        assert plain.json()["detail"] == (
            f"request #{single.pk} is not a fleet's request: it has no rollout to {action}"
        )
    body = _get(token, single.pk)
    assert body["rollout"] is None and body["parent"] is None and body["status"] == "pending"


def _queries_of_reading(token: str, request_id: int) -> tuple[int, int]:
    """Queries of ``GET /requests/{id}`` and of ``GET /requests`` (the request first in it)."""
    _get(token, request_id)  # warm up (the token's last use, caches)
    with CaptureQueriesContext(connection) as read_one:
        body = _get(token, request_id)
    with CaptureQueriesContext(connection) as read_list:
        listed = Client().get("/api/v1/requests", **bearer(token))
    assert listed.status_code == 200 and listed.json()[0]["rollout"] == body["rollout"]
    return len(read_one), len(read_list)


def test_reading_a_rollout_takes_the_same_queries_for_3_targets_as_for_12(
    project_ini: Path, tmp_path: Path, developer: Any, make_token: Callable[..., str]
) -> None:
    token = make_token(developer)
    counts = []
    for size in (3, 12):
        directory = tmp_path / f"fleet{size}"
        directory.mkdir()
        names = [f"n{i}" for i in range(size)]
        fleet, _ = _fleet(project_ini, directory, names, waves=[1, "50%"], slug=f"fleet{size}")
        refresh_targets(fleet)
        created = _request_fleet(token, environment=fleet.slug)
        assert created.status_code == 201, created.content
        assert len(created.json()["rollout"]["targets"]) == size
        assert len(created.json()["rollout"]["waves"]) == 3
        counts.append(_queries_of_reading(token, created.json()["id"]))
    assert counts[0] == counts[1], counts
