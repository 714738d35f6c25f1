"""'Who applied what': runs per environment rebuilt from events, with change-management checks."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from dashboard.audit.models import ChainVerification
from dashboard.audit.selectors import audit_run_timeline
from dashboard.audit.services import audit_record
from dashboard.audit.tasks import verify_chain

pytestmark = pytest.mark.django_db

PRODUCTION = SimpleNamespace(pk=1, slug="production")
STAGING = SimpleNamespace(pk=2, slug="staging")
SQL_A, SQL_B = "a" * 64, "b" * 64


def _event(action: str, actor: object | None, request_id: int, **fields: object) -> None:
    audit_record(
        action=action,
        actor=actor,
        environment=fields.pop("environment", PRODUCTION),
        request=SimpleNamespace(pk=request_id),
        **fields,
    )


@pytest.fixture
def history(developer: object, lead: object, lead2: object) -> None:
    revisions = {"from_revisions": ["r1"], "to_revisions": ["r2"]}
    # 1: by the book.
    _event("dashboard.request.created", developer, 1, sql_sha256=SQL_A, **revisions)
    _event("dashboard.request.approved", lead, 1, sql_sha256=SQL_A)
    _event("dashboard.run.started", None, 1, sql_sha256=SQL_A, **revisions)
    _event("dashboard.run.succeeded", None, 1, sql_sha256=SQL_A, to_revisions=["r2"])
    # 2: the requester approves their own request, and other SQL runs.
    _event("dashboard.request.created", lead, 2, sql_sha256=SQL_A, **revisions)
    _event("dashboard.request.approved", lead, 2, sql_sha256=SQL_A)
    _event("dashboard.run.started", None, 2, sql_sha256=SQL_B)
    _event("dashboard.run.failed", None, 2)
    # 3: executed first, approved afterwards.
    _event("dashboard.request.created", developer, 3, **revisions)
    _event("dashboard.run.started", None, 3)
    _event("dashboard.request.approved", lead2, 3)
    _event("dashboard.run.interrupted", None, 3)
    # 4: another environment; 5: rejected.
    _event("dashboard.request.created", developer, 4, environment=STAGING)
    _event("dashboard.request.created", developer, 5, **revisions)
    _event("dashboard.request.rejected", lead2, 5)


def test_it_rebuilds_each_request_of_an_environment(history: None) -> None:
    entries = {entry.request_id: entry for entry in audit_run_timeline(environment="production")}

    assert list(entries) == [5, 3, 2, 1]  # newest first, staging's request absent
    good = entries[1]
    assert (good.requested_by, good.executed_by.split()[0], good.outcome) == (
        "developer",
        "worker",
        "succeeded",
    )
    assert [username for username, _, _ in good.approvals] == ["lead"]
    assert (good.from_revisions, good.to_revisions) == (["r1"], ["r2"])
    assert good.duration is not None and good.duration.total_seconds() >= 0
    assert good.problems == []
    assert entries[5].outcome == "rejected" and entries[5].decided_by == "lead2"


def test_it_flags_self_approval_late_approval_and_different_sql(history: None) -> None:
    entries = {entry.request_id: entry for entry in audit_run_timeline(environment="production")}

    assert entries[2].problems == [
        "approved by its own requester (lead)",
        "the SQL that ran differs from the SQL that was approved",
    ]
    assert entries[2].outcome == "failed"
    assert entries[3].problems == [
        "executed without an approval recorded before it",
        "approval by lead2 after execution started",
    ]


def test_it_shows_the_timeline_page_to_an_auditor(history: None, auditor: object) -> None:
    client = Client()
    client.force_login(auditor)

    html = client.get(reverse("audit:timeline") + "?environment=production").content.decode()

    assert 'id="request-1"' in html and 'id="request-4"' not in html
    assert "approved by its own requester (lead)" in html
    assert "executed without an approval recorded before it" in html
    assert '<option value="staging">' in html


def test_it_verifies_the_chain_daily_through_beat(history: None) -> None:
    schedule = settings.CELERY_BEAT_SCHEDULE["audit-verify-chain-daily"]
    assert schedule["task"] == verify_chain.name

    verify_chain()  # the task body; the worker itself is exercised by other suites

    verification = ChainVerification.objects.get()
    assert verification.ok and verification.events_checked == 15
