"""The demo's fleet: ``demo_setup`` leaves twelve SQLite tenants and a rollout halted in wave 2.

The rollout really ran (requested by developer, approved by lead and lead2,
stepped by the scheduler and each target run by the execution service, in
the set-up's own process). README's fix, ``demo_targets --fix-tenant`` (what
``make demo-fix-tenant`` runs), then *Resume* on the rollout page as lead,
served by a real Celery worker, finishes it.
"""

from __future__ import annotations

import os
import uuid
from collections import Counter
from collections.abc import Iterator
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.pool import NullPool

from tests.dashboard.approvals_support import Worker, broker, drop_queue_keys, target_heads
from tests.dashboard.rollouts_support import rollout_in, target_states

pytestmark = pytest.mark.django_db(transaction=True)
REPO_ROOT = Path(__file__).resolve().parents[2]
REDIS = os.environ["TEST_REDIS_URL"]
HEAD = "9c41d7e2f0ab"
MERGE = "d05e4b7c3a92"  # where most tenants start: three revisions behind head
ONE_BEHIND = "6f0a2d8e5c37"


def _names() -> list[str]:
    lines = (REPO_ROOT / "tenants.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


@pytest.fixture
def demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str]:
    """``make demo-setup`` on fresh targets under ``tmp_path``; returns the folder and the output."""
    for slug in ("dev", "staging", "production"):
        monkeypatch.setenv(f"MAGNETIQ_{slug.upper()}_URL", f"sqlite:///{tmp_path / slug}.sqlite3")
    monkeypatch.setenv("MAGNETIQ_TENANT_URL", f"sqlite:///{tmp_path}/tenants/{{target}}.sqlite3")
    return tmp_path, _setup()


def _setup() -> str:
    out = StringIO()
    call_command("demo_setup", environments=str(REPO_ROOT / "environments.toml"), stdout=out)
    return out.getvalue()


def _url(folder: Path, name: str) -> str:
    return f"sqlite:///{folder}/tenants/{name}.sqlite3"


def _tables(url: str) -> set[str]:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            return set(inspect(connection).get_table_names())
    finally:
        engine.dispose()


def _fleet_rollout() -> Any:
    from dashboard.rollouts.models import Rollout

    return Rollout.objects.select_related("request").get(request__environment__slug="tenants")


def test_it_leaves_twelve_tenants_and_a_rollout_halted_in_wave_2_on_initech(
    demo: tuple[Path, str],
) -> None:
    from dashboard.approvals.models import MigrationRequest, Run
    from dashboard.audit.models import AuditEvent
    from dashboard.environments.models import Environment

    folder, output = demo
    names = _names()
    fleet = Environment.objects.get(slug="tenants")
    assert [env.target_name for env in Environment.objects.targets_of(fleet)] == names
    assert len(names) == 12

    # The rollout really ran: the canary and globex migrated, initech failed, the rest waits.
    rollout = _fleet_rollout()
    assert rollout.state == "halted" and rollout.current_wave == 2
    assert "initech" in rollout.halted_reason
    assert sorted(plan.target_count for plan in rollout.plans.all()) == [3, 9]
    states = target_states(rollout)
    assert (states["acme"], states["globex"], states["initech"]) == ("succeeded",) * 2 + ("failed",)
    later = [row for row in rollout.targets.all() if row.wave > 2]
    assert len(later) == 9
    assert {row.state for row in later} == {"pending"} and not any(row.request_id for row in later)
    initech = rollout.targets.get(name="initech")
    assert "table audit_logs already exists" in initech.error
    assert Run.objects.get(request=initech.request).outcome == Run.Outcome.FAILED

    # The databases say the same: mixed revisions, initech unchanged, waves 3 and 4 untouched.
    heads = {name: target_heads(_url(folder, name)) for name in names}
    assert heads["acme"] == heads["globex"] == (HEAD,)
    assert heads["initech"] == (MERGE,)
    assert "audit_logs" in _tables(_url(folder, "initech"))  # the hand-made one, still there
    assert Counter(heads[row.name] for row in later) == {(MERGE,): 7, (ONE_BEHIND,): 2}

    # Audited like any rollout: the fleet's request halted, the target's own failed run.
    parent_actions = set(
        AuditEvent.objects.filter(request_id=rollout.request_id).values_list("action", flat=True)
    )
    assert {"dashboard.request.approved", "dashboard.rollout.halted"} <= parent_actions
    failed = AuditEvent.objects.get(
        action="dashboard.run.failed", environment_slug="tenants--initech"
    )
    assert failed.payload["target"] == "initech"
    assert rollout.request.approvals.count() == 2

    # The terminal says where to look and what to do.
    assert f"/requests/{rollout.request_id}/rollout/" in output
    assert "make demo-fix-tenant" in output

    # Twice is safe: nothing is added, the halted rollout stays as it was.
    requests, runs = MigrationRequest.objects.count(), Run.objects.count()
    again = _setup()
    assert (MigrationRequest.objects.count(), Run.objects.count()) == (requests, runs)
    assert "tenants has its rollout already" in again
    assert _fleet_rollout().state == "halted"
    assert target_heads(_url(folder, "initech")) == (MERGE,)


@pytest.fixture
def worker(demo: tuple[Path, str], tmp_path: Path) -> Iterator[Worker]:
    """The demo's runs and io workers, as one real Celery worker on a per-test Redis queue."""
    queue = f"test-demo-fleet-{uuid.uuid4().hex[:8]}"
    with broker(REDIS, queue):
        process = Worker(
            broker_url=REDIS, queue=queue, ini=REPO_ROOT / "alembic.ini", log=tmp_path / "w.log"
        )
        yield process
        process.stop()
    drop_queue_keys(REDIS, queue)


def test_it_finishes_the_rollout_after_the_documented_fix_and_resume(
    demo: tuple[Path, str], worker: Worker
) -> None:
    from django.contrib.auth import get_user_model

    from dashboard.audit.models import AuditEvent

    folder, _output = demo
    rollout = _fleet_rollout()

    # The halted rollout's page tells a newcomer what failed and the demo's fix.
    lead = Client()
    lead.force_login(get_user_model().objects.get(username="lead"))
    page = f"/requests/{rollout.request_id}/rollout/"
    halted = lead.get(page).content.decode()
    assert "table audit_logs already exists" in halted
    assert "make demo-fix-tenant" in halted

    fixed = StringIO()
    call_command("demo_targets", fix_tenant=True, stdout=fixed)
    assert "dropped the hand-made table audit_logs" in fixed.getvalue()
    assert "audit_logs" not in _tables(_url(folder, "initech"))

    answer = lead.post(f"{page}resume/")
    assert answer.status_code in (200, 302), answer.content[:500]

    done = rollout_in(rollout.request, "succeeded", "halted", "cancelled")
    assert done.state == "succeeded", (done.halted_reason, target_states(done))
    assert set(target_states(done).values()) == {"succeeded"}
    for name in _names():
        assert target_heads(_url(folder, name)) == (HEAD,), name
    assert done.targets.get(name="initech").attempts == 2
    resumed = AuditEvent.objects.get(action="dashboard.rollout.resumed")
    assert resumed.actor_username == "lead" and "initech" in resumed.payload["retried_targets"]

    # The fix never drops the table once its revision created it.
    again = StringIO()
    call_command("demo_targets", fix_tenant=True, stdout=again)
    assert "is the migrated one" in again.getvalue()
    engine = create_engine(_url(folder, "initech"), poolclass=NullPool)
    with engine.connect() as connection:
        assert connection.execute(text("select count(*) from audit_logs")).scalar() == 0
    engine.dispose()
