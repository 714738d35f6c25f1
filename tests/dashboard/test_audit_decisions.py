"""An approver's comment and "I have read the SQL" tick reach the audit exports and pages.

Decisions are made through the approvals services (the product's path); the
exports are read back through the export views and checked offline.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from dashboard.approvals.services.decisions import (
    migration_request_approve,
    migration_request_reject,
)
from dashboard.approvals.services.requests import migration_request_create
from dashboard.audit.models import AuditEvent
from tests.dashboard.approvals_support import make_environment, migrate_target
from tests.migrator.execution_project import throwaway_postgres, write_project

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def project_ini(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_project(tmp_path_factory.mktemp("audit_decisions_project"))


@pytest.fixture(scope="module")
def target_url(project_ini: Path) -> Iterator[str]:
    with throwaway_postgres("decisions") as url:
        migrate_target(project_ini, url, "a")
        yield url


@pytest.fixture
def decided(
    settings: Any,
    project_ini: Path,
    target_url: str,
    tmp_path: Path,
    developer: Any,
    lead: Any,
    lead2: Any,
) -> Any:
    """A request approved by ``lead`` (comment, SQL read), then rejected by ``lead2``."""
    settings.ALEMBIC_CONFIG = str(project_ini)
    production = make_environment(slug="production", url=target_url, directory=tmp_path)
    request = migration_request_create(
        environment=production, actor=developer, direction="upgrade", target="c", reason="ship"
    )
    migration_request_approve(
        request=request, actor=lead, comment="Read it; tags is new.", sql_acknowledged=True
    )
    migration_request_reject(request=request, actor=lead2, comment="Not during the sale.")
    return request


def _export(user: Any, name: str, request_id: int) -> str:
    client = Client()
    client.force_login(user)
    response = client.post(reverse(name), {"request": str(request_id)})
    assert response.status_code == 200
    return b"".join(response.streaming_content).decode("utf-8")


def _decisions(payloads: dict[str, dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    return payloads["dashboard.request.approved"], payloads["dashboard.request.rejected"]


def test_it_exports_the_approvers_comment_and_sql_tick_in_csv(decided: Any, auditor: Any) -> None:
    rows = csv.DictReader(io.StringIO(_export(auditor, "audit:export_csv", decided.pk)))

    approved, rejected = _decisions({row["action"]: json.loads(row["payload"]) for row in rows})

    assert approved["comment"] == "Read it; tags is new."
    assert approved["sql_acknowledged"] is True
    assert rejected["comment"] == "Not during the sale."


def test_it_exports_the_approvers_comment_and_sql_tick_in_json_lines(
    decided: Any, auditor: Any
) -> None:
    lines = _export(auditor, "audit:export_jsonl", decided.pk).splitlines()

    documents = [json.loads(line) for line in lines]
    approved, rejected = _decisions({doc["action"]: doc["payload"] for doc in documents})

    assert (approved["comment"], approved["sql_acknowledged"]) == ("Read it; tags is new.", True)
    assert rejected["comment"] == "Not during the sale."


def test_it_shows_the_comment_and_sql_tick_on_the_event_page(decided: Any, auditor: Any) -> None:
    client = Client()
    client.force_login(auditor)
    approved = AuditEvent.objects.get(request_id=decided.pk, action="dashboard.request.approved")
    rejected = AuditEvent.objects.get(request_id=decided.pk, action="dashboard.request.rejected")

    approval_page = client.get(reverse("audit:detail", args=[approved.seq])).content.decode()
    rejection_page = client.get(reverse("audit:detail", args=[rejected.seq])).content.decode()

    assert '<td id="decision-comment">Read it; tags is new.</td>' in approval_page
    assert 'id="decision-sql-acknowledged"><span class="dash-badge ok">ticked' in approval_page
    assert '<td id="decision-comment">Not during the sale.</td>' in rejection_page
    assert 'id="decision-sql-acknowledged">not recorded' in rejection_page
