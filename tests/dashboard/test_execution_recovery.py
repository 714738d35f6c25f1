"""Recovery paths of execution, driven in this process: no worker consumes what they queue.

The reaper, the settling of unknown outcomes, the policy at run start and the
recording of outcomes, against real PostgreSQL targets and the real dashboard
database. (Tests with worker processes are in ``test_execution_faults.py``;
keeping these apart means no live worker ever races them for a dispatched run.)
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.db import connection as django_connection

from dashboard.approvals import transitions
from dashboard.approvals.models import Run, database_now
from dashboard.approvals.services.recovery import runs_reap
from dashboard.audit.models import AuditEvent
from tests.dashboard.approvals_support import (
    HEARTBEAT_SECONDS,
    audit_actions,
    create_request,
    make_environment,
    migrate_target,
)
from tests.migrator.execution_project import throwaway_postgres, write_project

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def project_ini(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_project(tmp_path_factory.mktemp("recovery_project"))


@pytest.fixture(autouse=True)
def alembic_project(settings: Any, project_ini: Path) -> None:
    settings.ALEMBIC_CONFIG = str(project_ini)
    settings.DASHBOARD_RUN_HEARTBEAT = timedelta(seconds=HEARTBEAT_SECONDS)
    settings.DASHBOARD_RUN_REAP_AFTER = timedelta(seconds=6 * HEARTBEAT_SECONDS)


@pytest.fixture
def target_url() -> Iterator[str]:
    with throwaway_postgres("recovery") as url:
        yield url


@pytest.fixture
def production(target_url: str, tmp_path: Path) -> Any:
    return make_environment(
        slug="production", url=target_url, directory=tmp_path, required_approvals=1
    )


def test_a_killed_worker_after_its_commit_is_recorded_as_succeeded(
    production: Any,
    target_url: str,
    project_ini: Path,
    developer: Any,
    lead: Any,
) -> None:
    """The reaper does not guess "interrupted": the version table says the plan applied."""
    from dashboard.approvals.services.decisions import migration_request_approve

    migrate_target(project_ini, target_url, "c")
    request = migration_request_approve(
        request=create_request(production, developer, "slow"), actor=lead
    )
    run = transitions.run_claimed(request, worker="gone-worker:1")
    migrate_target(project_ini, target_url, "slow")  # its COMMIT got through, then it died
    Run.objects.filter(pk=run.pk).update(
        heartbeat_at=database_now(-timedelta(seconds=10 * HEARTBEAT_SECONDS))
    )

    assert runs_reap() == [run.pk]
    run.refresh_from_db()
    assert run.outcome == "succeeded" and run.final_heads == ["slow"]
    assert run.committed == ["slow"] and "whole plan applied" in run.error


def test_an_approval_by_someone_who_lost_the_role_does_not_count_at_run_start(
    production: Any, developer: Any, lead: Any, lead2: Any
) -> None:
    from dashboard.approvals.services.decisions import migration_request_approve
    from dashboard.approvals.services.execution import run_start

    production.required_approvals = 2
    production.save()
    request = create_request(production, developer, "c")
    migration_request_approve(request=request, actor=lead)
    migration_request_approve(request=request, actor=lead2)
    request.refresh_from_db()
    assert request.status == "approved"
    lead2.groups.remove(Group.objects.get(name="Tech leads"))
    lead2.is_active = False
    lead2.save()

    assert run_start(request_id=request.pk) is None
    request.refresh_from_db()
    assert request.status == "pending" and not Run.objects.filter(request=request).exists()
    assert "1 of 2 approvals still count (lead2 may no longer approve)" in request.status_note
    assert audit_actions(request)[-1] == "dashboard.request.reopened"


def test_a_policy_raised_after_the_request_applies_to_it(
    production: Any, developer: Any, lead: Any, lead2: Any
) -> None:
    from dashboard.approvals.services.decisions import migration_request_approve

    production.required_approvals = 1
    production.save()
    request = create_request(production, developer, "c")
    production.required_approvals = 2
    production.save()
    migration_request_approve(request=request, actor=lead)

    request.refresh_from_db()
    assert request.status == "pending"
    migration_request_approve(request=request, actor=lead2)
    request.refresh_from_db()
    assert request.status == "approved" and request.required_approvals == 2


LEAKY_REVISION = '''"""a revision whose error quotes its connection URL"""
from alembic import op

revision = "leaky"
down_revision = "c"
branch_labels = None
depends_on = None


def upgrade():
    if op.get_context().as_sql:
        return  # offline rendering: nothing to quote
    url = op.get_bind().engine.url.render_as_string(hide_password=False)
    raise RuntimeError(f"could not talk to {url}")


def downgrade():
    pass
'''


def test_a_failure_that_quotes_the_url_is_stored_scrubbed(
    project_ini: Path, developer: Any, tmp_path: Path
) -> None:
    leaky = project_ini.parent / "versions" / "leaky_revision.py"
    leaky.write_text(LEAKY_REVISION)
    try:
        with throwaway_postgres("leaky") as plain_url:
            # Trust authentication accepts any password: a canary that must never be stored.
            url = plain_url.replace("postgres@", "postgres:canary-s3cret@")
            dev = make_environment(
                slug="dev", url=url, directory=tmp_path, required_approvals=0, group=None
            )
            migrate_target(project_ini, url, "c")
            from dashboard.approvals.services.execution import run_execute, run_start

            request = create_request(dev, developer, "leaky")
            run = run_execute(run_id=run_start(request_id=request.pk).pk)
    finally:
        leaky.unlink()

    assert run.outcome == "failed" and "could not talk to" in run.error
    stored = [run.error, *run.log_lines.values_list("text", flat=True)]
    stored += [str(event.payload) for event in AuditEvent.objects.filter(request_id=request.pk)]
    assert not any("canary-s3cret" in text for text in stored)
    assert run.log_lines.filter(text__contains="failed at revision leaky").exists()


def test_an_unknown_outcome_is_settled_by_the_next_status_read(
    production: Any, target_url: str, project_ini: Path, developer: Any, lead: Any
) -> None:
    from dashboard.approvals.services.decisions import migration_request_approve
    from dashboard.environments.services import environment_status_refresh

    request = migration_request_approve(
        request=create_request(production, developer, "c"), actor=lead
    )
    run = transitions.run_claimed(request, worker="partitioned:1")
    migrate_target(project_ini, target_url, "c")  # the COMMIT got through; the reply did not
    transitions.run_finished(
        run,
        transitions.RunRecord(
            outcome="unknown", final_heads=None, reason="error", error="connection lost"
        ),
    )
    blocked = _create_refusal(production, developer)
    assert "outcome unknown" in blocked

    environment_status_refresh(environment=production)

    request.refresh_from_db()
    run.refresh_from_db()
    assert request.status == "succeeded" and run.final_heads == ["c"]
    assert run.committed == ["a", "b", "c"]
    assert audit_actions(request)[-2:] == ["dashboard.run.unknown", "dashboard.run.settled"]
    settled = AuditEvent.objects.get(request_id=request.pk, action="dashboard.run.settled")
    assert settled.payload["source"] == "status read"


def _create_refusal(env: Any, user: Any) -> str:
    from dashboard.approvals.services.requests import RequestRefused

    try:
        create_request(env, user, "c", direction="downgrade")
    except RequestRefused as exc:
        return str(exc)
    return ""


def test_a_dashboard_database_blink_while_recording_does_not_turn_success_into_failure(
    production: Any, target_url: str, developer: Any, lead: Any
) -> None:
    from dashboard.approvals.services.decisions import migration_request_approve
    from dashboard.approvals.services.recording import RunRecorder, record_outcome
    from dashboard.approvals.services.watchdog import RunWatchdog

    request = migration_request_approve(
        request=create_request(production, developer, "c"), actor=lead
    )
    run = transitions.run_claimed(request, worker="w:1")
    django_connection.ensure_connection()
    django_connection.connection.close()  # the dashboard database drops our connection
    record = transitions.RunRecord(outcome="succeeded", final_heads=["c"], committed=["a"])
    with RunWatchdog(run.pk, interval=HEARTBEAT_SECONDS) as watchdog:
        assert record_outcome(run, record, RunRecorder(run), watchdog)

    run.refresh_from_db()
    assert run.outcome == "succeeded" and run.reason == ""
