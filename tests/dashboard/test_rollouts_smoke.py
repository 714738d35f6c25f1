"""Smoke: a fleet of SQLite tenants rolled out by one real worker."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.dashboard.approvals_support import (
    HEARTBEAT_SECONDS,
    Worker,
    approve,
    broker,
    create_request,
    drop_queue_keys,
    migrate_target,
    target_heads,
)
from tests.dashboard.rollouts_support import make_fleet, refresh_targets, rollout_in, target_states
from tests.migrator.execution_project import write_project

pytestmark = pytest.mark.django_db(transaction=True)
REDIS = os.environ["TEST_REDIS_URL"]


@pytest.fixture(scope="module")
def project_ini(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_project(tmp_path_factory.mktemp("rollout_project"))


@pytest.fixture(scope="module")
def queue() -> Iterator[str]:
    name = f"test-rollout-{uuid.uuid4().hex[:10]}"
    with broker(REDIS, name):
        yield name
    drop_queue_keys(REDIS, name)


@pytest.fixture(scope="module")
def worker(
    django_db_setup: None, project_ini: Path, queue: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Worker]:
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    process = Worker(
        broker_url=REDIS,
        queue=queue,
        ini=project_ini,
        log=log,
        pool="threads",
        extra_env={"DASHBOARD_RUNS_QUEUE": queue},
    )
    yield process
    process.stop()


@pytest.fixture(autouse=True)
def alembic_project(settings: Any, project_ini: Path) -> None:
    settings.ALEMBIC_CONFIG = str(project_ini)
    settings.DASHBOARD_RUN_HEARTBEAT = timedelta(seconds=HEARTBEAT_SECONDS)


def test_smoke(
    worker: Worker, project_ini: Path, tmp_path: Path, developer: Any, lead: Any, lead2: Any
) -> None:
    names = [f"t{i}" for i in range(6)]
    template = f"sqlite:///{tmp_path}/tenant_{{target}}.sqlite3"
    for name in names:
        migrate_target(project_ini, template.replace("{target}", name), "a")
    fleet = make_fleet(
        slug="tenants",
        names=names,
        url_template=template,
        directory=tmp_path,
        waves=[1, "50%", "100%"],
        parallelism=2,
    )
    refresh_targets(fleet)
    request = create_request(fleet, developer, "c")
    approve(lead, request)
    approve(lead2, request)
    rollout = rollout_in(request, "succeeded", "halted", "cancelled")
    assert rollout.state == "succeeded", (rollout.halted_reason, target_states(rollout))
    for name in names:
        assert target_heads(template.replace("{target}", name)) == ("c",)
