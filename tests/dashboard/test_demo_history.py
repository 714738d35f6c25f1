"""The demo's history: ``demo_setup`` on three SQLite targets leaves every page something to show."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

REPO_ROOT = Path(__file__).resolve().parents[2]
TERMINAL_HEAD = "9c41d7e2f0ab"  # the last Magnetiq2 revision, drops pages.legacy_html


@pytest.fixture
def demo_targets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for slug in ("dev", "staging", "production"):
        monkeypatch.setenv(f"MAGNETIQ_{slug.upper()}_URL", f"sqlite:///{tmp_path / slug}.sqlite3")
    return tmp_path


def _setup() -> str:
    out = StringIO()
    call_command("demo_setup", environments=str(REPO_ROOT / "environments.toml"), stdout=out)
    return out.getvalue()


@pytest.mark.django_db(transaction=True)
def test_it_builds_the_demo_history_once_through_the_real_services(demo_targets: Path) -> None:
    from dashboard.approvals.models import MigrationRequest, Run
    from dashboard.audit.models import AuditEvent
    from dashboard.audit.services import audit_chain_check
    from dashboard.environments.models import Environment

    first = _setup()
    second = _setup()

    envs = {env.slug: env for env in Environment.objects.all()}
    assert envs["dev"].status_state == "up_to_date"
    assert envs["dev"].current_heads == [TERMINAL_HEAD]
    assert envs["staging"].status_state == "pending"
    assert len(envs["staging"].pending) == 3
    assert envs["production"].status_state == "pending"
    assert len(envs["production"].pending) == 8

    succeeded = Run.objects.filter(outcome=Run.Outcome.SUCCEEDED).select_related("request")
    assert {run.request.environment.slug for run in succeeded} == {"dev", "staging"}
    dev_run = succeeded.get(request__environment__slug="dev")
    assert dev_run.final_heads == [TERMINAL_HEAD]
    assert dev_run.progress.count() == len(dev_run.request.steps) == 3

    failed = Run.objects.get(outcome=Run.Outcome.FAILED)
    assert failed.request.environment.slug == "staging"
    assert failed.request.status == MigrationRequest.Status.FAILED
    assert failed.reason == "stale_plan"
    assert "stale plan" in failed.error

    waiting = MigrationRequest.objects.get(status=MigrationRequest.Status.PENDING)
    assert waiting.environment.slug == "production"
    assert waiting.required_approvals == 2
    assert waiting.approvals.count() == 0
    assert waiting.destructive
    assert TERMINAL_HEAD in waiting.revisions

    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {
        "dashboard.request.created",
        "dashboard.request.approved",
        "dashboard.run.started",
        "dashboard.run.succeeded",
        "dashboard.run.failed",
    } <= actions
    assert audit_chain_check().ok

    # Twice is safe: the second run adds nothing and says so.
    assert MigrationRequest.objects.count() == 4
    assert "demo history: already there" in second
    # The terminal shows where to go and who can do what.
    for text in ("http://127.0.0.1:8000/", "developer", "lead2", "auditor", "demo"):
        assert text in first
