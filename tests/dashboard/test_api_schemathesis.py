"""Schemathesis against the API in-process (WSGI): no 5xx, every answer matches the document.

Property-based requests come from ``/api/v1/openapi.json`` itself, valid and
invalid ones, sent with a developer's token to the real Django application
(the WSGI handler, not the test client) on the test database with two
environments, one reachable and one not, an existing request, and a fleet of
two SQLite tenants with a pending request (its rollout in the answer).
"""
# ruff: noqa: F811  (fixtures imported from tests.dashboard.api_support)

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from dashboard.approvals.models import MigrationRequest
from dashboard.approvals.services.requests import migration_request_create
from dashboard.environments.models import Environment
from dashboard.environments.services import environment_status_refresh
from tests.dashboard.api_support import api_envs, api_project, make_token  # noqa: F401
from tests.dashboard.rollouts_support import make_fleet

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
EXAMPLES = {GenerationMode.POSITIVE: 15, GenerationMode.NEGATIVE: 10}


@pytest.fixture
def wsgi_app() -> Iterator[WSGIHandler]:
    """Django's WSGI application, kept on the test's database connection.

    Like Django's test client, stop the request signals from closing the
    connection that holds the test transaction.
    """
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield WSGIHandler()
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.fixture
def fleet_request_id(
    api_project: tuple[Path, Path], api_envs: dict[str, Any], tmp_path: Path, developer: Any
) -> int:
    """A pending request of a fleet of two SQLite tenants at ``a``."""
    _, at_a = api_project
    for name in ("acme", "globex"):
        shutil.copy(at_a, tmp_path / f"tenant_{name}.sqlite3")
    fleet = make_fleet(
        slug="tenants",
        names=["acme", "globex"],
        url_template=f"sqlite:///{tmp_path}/tenant_{{target}}.sqlite3",
        directory=tmp_path,
        waves=[1, "100%"],
    )
    for target in Environment.objects.targets_of(fleet):  # in this thread: the test's transaction
        environment_status_refresh(environment=target, check_drift=False)
    created = migration_request_create(
        environment=fleet, actor=developer, direction="upgrade", target="c", reason="x"
    )
    return created.pk


@pytest.fixture
def api_schema(
    wsgi_app: WSGIHandler,
    api_envs: dict[str, Any],
    fleet_request_id: int,
    developer: Any,
    make_token: Callable[..., str],
) -> tuple[Any, dict[str, str], int, int]:
    headers = {"Authorization": f"Bearer {make_token(developer)}"}
    existing = migration_request_create(
        environment=api_envs["dev"], actor=developer, direction="upgrade", target="b", reason="x"
    )
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", wsgi_app, headers=headers)
    return schema, headers, existing.pk, fleet_request_id


def _fuzz(operation: Any, headers: dict[str, str], mode: GenerationMode, **fixed: Any) -> None:
    @given(case=operation.as_strategy(generation_mode=mode, **fixed))
    @settings(
        max_examples=EXAMPLES[mode],
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        case.call_and_validate(headers=headers, checks=CHECKS)

    run()


def test_the_api_never_fails_and_always_answers_as_documented(
    api_schema: tuple[Any, dict[str, str], int, int],
) -> None:
    schema, headers, request_id, fleet_request_id = api_schema
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {f"{op.method.upper()} {op.path}" for op in operations} == {
        "GET /api/v1/environments",
        "GET /api/v1/environments/{slug}",
        "GET /api/v1/graph",
        "GET /api/v1/requests",
        "POST /api/v1/requests",
        "GET /api/v1/requests/{request_id}",
        "POST /api/v1/requests/{request_id}/resume",
        "POST /api/v1/requests/{request_id}/cancel",
    }
    for operation in operations:
        for mode in EXAMPLES:
            _fuzz(operation, headers, mode)
    # Existing objects too, so the 200 answers of the detail endpoints are checked.
    for path, params in (
        ("/api/v1/environments/{slug}", {"slug": "dev"}),
        ("/api/v1/environments/{slug}", {"slug": "prod"}),
        ("/api/v1/requests/{request_id}", {"request_id": request_id}),
        ("/api/v1/requests/{request_id}", {"request_id": fleet_request_id}),
    ):
        _fuzz(schema[path]["GET"], headers, GenerationMode.POSITIVE, path_parameters=params)
    # The developer may not resume or cancel the fleet's rollout: a documented 403.
    for path in ("/api/v1/requests/{request_id}/resume", "/api/v1/requests/{request_id}/cancel"):
        params = {"request_id": fleet_request_id}
        _fuzz(schema[path]["POST"], headers, GenerationMode.POSITIVE, path_parameters=params)
    create = {"environment": "dev", "direction": "upgrade", "target": "c", "reason": "fuzz"}
    _fuzz(schema["/api/v1/requests"]["POST"], headers, GenerationMode.POSITIVE, body=create)
    assert MigrationRequest.objects.filter(target="c", reason="fuzz").exists()
    assert MigrationRequest.objects.filter(pk=request_id, status="pending").exists()
    assert MigrationRequest.objects.get(pk=fleet_request_id).rollout.state == "pending"
