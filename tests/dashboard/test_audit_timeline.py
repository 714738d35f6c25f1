"""'Who applied what': requests rebuilt from events, approved vs executed compared for real.

The events follow the approvals app's contract (``dashboard/approvals/transitions.py``):
lifecycle events carry the approved SQL hash; run-ending events (and the
corrections of them) carry the hash of the statements actually sent, with
``applied``, ``committed``, ``approved_revisions``... in the payload.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from dashboard.audit.models import ChainVerification
from dashboard.audit.services import audit_record
from dashboard.audit.tasks import verify_chain
from dashboard.audit.timeline import audit_run_timeline

pytestmark = pytest.mark.django_db

PRODUCTION = SimpleNamespace(pk=1, slug="production")
DEV = SimpleNamespace(pk=3, slug="dev")
STAGING = SimpleNamespace(pk=2, slug="staging")
APPROVED_SQL, EXECUTED_SQL = "a" * 64, "e" * 64


def _event(action: str, actor: object | None, request_id: int, **fields: Any) -> None:
    payload = {"direction": "upgrade", "target": "r3", **fields.pop("payload", {})}
    audit_record(
        action=action,
        actor=actor,
        environment=fields.pop("environment", PRODUCTION),
        request=SimpleNamespace(pk=request_id),
        from_revisions=["r1"],
        to_revisions=fields.pop("to_revisions", ["r3"]),
        sql_sha256=fields.pop("sql_sha256", APPROVED_SQL),
        payload=payload,
        **fields,
    )


def _created(actor: object, request_id: int, plan: list[str], **fields: Any) -> None:
    payload = {"reason": "ship", "revisions": plan, "required_approvals": 2}
    _event("dashboard.request.created", actor, request_id, payload=payload, **fields)


def _ended(
    verb: str, request_id: int, *, applied: list[str], plan: list[str], **fields: Any
) -> None:
    payload = {
        "run": request_id,
        "reason": "",
        "error": "",
        "applied": applied,
        "committed": fields.pop("committed", applied),
        "final_heads": applied[-1:] or ["r1"],
        "approved_revisions": plan,
        "approved_sql_sha256": APPROVED_SQL,
        "executed_statements": fields.pop("statements", 3 * len(applied)),
        **fields.pop("payload", {}),
    }
    sql = fields.pop("sql_sha256", EXECUTED_SQL if payload["executed_statements"] else "")
    _event(f"dashboard.run.{verb}", None, request_id, sql_sha256=sql, payload=payload, **fields)


PLAN = ["r2", "r3"]


@pytest.fixture
def history(developer: object, lead: object, lead2: object) -> None:
    # 1: by the book; the executed SQL hash differs from the approved one, as it always does.
    _created(developer, 1, PLAN)
    _event("dashboard.request.approved", lead, 1)
    _event("dashboard.request.approved", lead2, 1)
    _event("dashboard.run.started", None, 1)
    _ended("succeeded", 1, applied=PLAN, plan=PLAN)
    # 2: self-approval, and a revision that was not in the plan ran.
    _created(lead, 2, ["r2"])
    _event("dashboard.request.approved", lead, 2)
    _event("dashboard.request.approved", lead2, 2)
    _event("dashboard.run.started", None, 2)
    _ended("succeeded", 2, applied=["r2", "rX"], plan=["r2"])
    # 3: executed first, approved afterwards; statements ran but no hash of them.
    _created(developer, 3, PLAN)
    _event("dashboard.run.started", None, 3)
    _event("dashboard.request.approved", lead2, 3)
    _ended("failed", 3, applied=["r2"], plan=PLAN, sql_sha256="")
    # 4: another environment.
    _created(developer, 4, PLAN, environment=STAGING)
    # 5: rejected.
    _created(developer, 5, PLAN)
    _event("dashboard.request.rejected", lead2, 5, payload={"comment": "not now"})
    # 6: reaped as interrupted, then the worker reported success: corrected.
    _created(developer, 6, PLAN)
    _event("dashboard.request.approved", lead, 6)
    _event("dashboard.request.approved", lead2, 6)
    _event("dashboard.run.started", None, 6)
    _ended("interrupted", 6, applied=["r2"], plan=PLAN, committed=[])
    corrected = {"previous_outcome": "interrupted", "outcome": "succeeded", "source": "worker"}
    _ended("corrected", 6, applied=PLAN, plan=PLAN, payload=corrected)
    # 7: approvals stopped counting (reopened) and the run started without a new one.
    _created(developer, 7, PLAN)
    _event("dashboard.request.approved", lead, 7)
    _event("dashboard.request.approved", lead2, 7)
    reopened = {"valid_approvals": 1, "required": 2, "note": "1 of 2 approvals still count"}
    _event("dashboard.request.reopened", None, 7, payload=reopened)
    _event("dashboard.run.started", None, 7)
    _ended("succeeded", 7, applied=PLAN, plan=PLAN)
    # 8: a lead cancelled the run before any statement ran.
    _created(developer, 8, PLAN)
    _event("dashboard.request.approved", lead, 8)
    _event("dashboard.request.approved", lead2, 8)
    _event("dashboard.run.started", None, 8)
    _event("dashboard.run.cancel_requested", lead, 8, payload={"run": 8})
    _ended("cancelled", 8, applied=[], plan=PLAN)
    # 9: the outcome was unknown, the next status read settled it as failed.
    _created(developer, 9, PLAN)
    _event("dashboard.request.approved", lead, 9)
    _event("dashboard.request.approved", lead2, 9)
    _event("dashboard.run.started", None, 9)
    _ended("unknown", 9, applied=["r2"], plan=PLAN)
    settled = {"previous_outcome": "unknown", "outcome": "failed", "source": "status read"}
    _ended("settled", 9, applied=["r2"], plan=PLAN, payload=settled)
    # 10: the environment moved before anyone approved: stale.
    _created(developer, 10, PLAN)
    _event("dashboard.request.stale", None, 10, payload={"note": "the environment moved"})


@pytest.fixture
def dev_history(developer: object) -> None:
    """Dev needs no approval: the requester's own run is no self-approval."""
    _created(developer, 20, PLAN, environment=DEV)
    _event("dashboard.request.approval_not_required", developer, 20, environment=DEV)
    _event("dashboard.run.started", None, 20, environment=DEV)
    _ended("succeeded", 20, applied=PLAN, plan=PLAN, environment=DEV)


def _entries() -> dict[int, Any]:
    return {entry.request_id: entry for entry in audit_run_timeline(environment="production")}


def test_it_rebuilds_each_request_of_an_environment(history: None) -> None:
    entries = _entries()

    assert list(entries) == [10, 9, 8, 7, 6, 5, 3, 2, 1]  # newest first, staging's absent
    good = entries[1]
    assert (good.requested_by, good.executed_by.split()[0], good.outcome) == (
        "developer",
        "worker",
        "succeeded",
    )
    assert [approval.username for approval in good.approvals] == ["lead", "lead2"]
    assert (good.from_revisions, good.to_revisions, good.approved_revisions) == (
        ["r1"],
        ["r3"],
        PLAN,
    )
    assert good.final_execution.applied == PLAN
    assert good.duration is not None and good.duration.total_seconds() >= 0
    # Offline render vs online statements: different by nature, never a problem.
    assert (good.sql_approved, good.sql_executed) == (APPROVED_SQL, EXECUTED_SQL)
    assert good.problems == []
    assert entries[5].outcome == "rejected" and entries[5].decided_by == "lead2"
    assert entries[10].outcome == "stale" and entries[10].problems == []


def test_it_flags_self_approval_and_revisions_outside_the_approved_plan(history: None) -> None:
    assert _entries()[2].problems == [
        "approved by its own requester (lead)",
        "applied rX, not in the approved plan",
        "succeeded, but applied [r2 rX] instead of the approved [r2]",
        "succeeded, but committed [r2 rX] instead of the approved [r2]",
    ]


def test_it_flags_execution_before_approval_and_statements_without_a_hash(
    history: None,
) -> None:
    entry = _entries()[3]

    assert entry.outcome == "failed"
    assert entry.problems == [
        "executed without an approval recorded before it",
        "approval by lead2 after execution started",
        "executed 3 statements but recorded no hash of the SQL that ran",
    ]


def test_it_does_not_count_approvals_from_before_a_reopening(history: None) -> None:
    entry = _entries()[7]

    assert entry.problems == ["executed without an approval recorded before it"]
    assert [approval.counted for approval in entry.approvals] == [False, False]
    assert any("1 of 2 approvals still count" in note for note in entry.notes)


def test_it_counts_an_approval_given_after_the_reopening(
    developer: object, lead: object, lead2: object, make_user: Any
) -> None:
    lead3 = make_user("lead3", "Tech leads")
    _created(developer, 40, PLAN)
    _event("dashboard.request.approved", lead, 40)
    _event("dashboard.request.approved", lead2, 40)
    _event("dashboard.request.reopened", None, 40, payload={"valid_approvals": 1, "required": 2})
    _event("dashboard.request.approved", lead3, 40)
    _event("dashboard.run.started", None, 40)
    _ended("succeeded", 40, applied=PLAN, plan=PLAN)

    entry = _entries()[40]

    assert entry.problems == []
    assert [(a.username, a.counted) for a in entry.approvals] == [
        ("lead", False),
        ("lead2", False),
        ("lead3", True),
    ]


def test_it_replaces_an_outcome_by_its_correction(history: None) -> None:
    entries = _entries()

    corrected, settled = entries[6], entries[9]
    assert (corrected.outcome, corrected.corrected_from) == ("succeeded", "interrupted")
    assert corrected.final_execution.applied == PLAN and corrected.problems == []
    assert (settled.outcome, settled.corrected_from) == ("failed", "unknown")
    assert settled.problems == []  # a failed run need not have applied the whole plan


def test_it_flags_a_succeeded_correction_that_did_not_apply_the_plan(
    developer: object, lead: object, lead2: object
) -> None:
    _created(developer, 30, PLAN)
    _event("dashboard.request.approved", lead, 30)
    _event("dashboard.request.approved", lead2, 30)
    _event("dashboard.run.started", None, 30)
    _ended("interrupted", 30, applied=["r2"], plan=PLAN)
    corrected = {"previous_outcome": "interrupted", "outcome": "succeeded", "source": "worker"}
    _ended("corrected", 30, applied=["r2"], plan=PLAN, committed=["r2"], payload=corrected)

    assert _entries()[30].problems == [
        "succeeded, but applied [r2] instead of the approved [r2 r3]",
        "succeeded, but committed [r2] instead of the approved [r2 r3]",
    ]


def test_it_records_a_cancelled_run_with_who_asked(history: None) -> None:
    entry = _entries()[8]

    assert entry.outcome == "cancelled" and entry.problems == []
    assert any(note.startswith("cancel requested by lead") for note in entry.notes)
    assert entry.sql_executed == ""  # nothing ran, so nothing to hash


def test_it_counts_no_approval_required_as_approval_and_never_as_self_approval(
    dev_history: None,
) -> None:
    [entry] = audit_run_timeline(environment="dev")

    assert entry.problems == []
    assert entry.approvals == [] and entry.approval_not_required_at is not None
    assert entry.outcome == "succeeded"


def test_it_shows_the_timeline_page_to_an_auditor(
    history: None, dev_history: None, auditor: object
) -> None:
    client = Client()
    client.force_login(auditor)

    html = client.get(reverse("audit:timeline") + "?environment=production").content.decode()
    dev = client.get(reverse("audit:timeline") + "?environment=dev").content.decode()

    assert 'id="request-1"' in html and 'id="request-4"' not in html
    assert "approved by its own requester (lead)" in html
    assert "applied rX, not in the approved plan" in html
    assert "executed without an approval recorded before it" in html
    assert "(corrected from interrupted)" in html and "(corrected from unknown)" in html
    assert 'title="' + APPROVED_SQL + '"' in html and 'title="' + EXECUTED_SQL + '"' in html
    assert "differ by nature" in html
    assert '<option value="staging">' in html
    assert "no approval required" in dev and "approved by its own requester" not in dev


def test_it_verifies_the_chain_daily_through_beat(history: None) -> None:
    schedule = settings.CELERY_BEAT_SCHEDULE["audit-verify-chain-daily"]
    assert schedule["task"] == verify_chain.name

    verify_chain()  # the task body; the worker itself is exercised by other suites
    verify_chain()  # the next day: only what is new since the first

    first, second = ChainVerification.objects.order_by("checked_at", "pk")
    assert first.ok and first.mode == "full" and first.events_checked == 43
    assert second.ok and (second.mode, second.from_seq, second.events_checked) == (
        "incremental",
        43,
        2,
    )
