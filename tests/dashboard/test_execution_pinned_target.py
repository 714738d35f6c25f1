"""A symbolic target (``heads``) is pinned: a revision added after approval never runs unreviewed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dashboard.approvals.services.execution import run_execute, run_start
from dashboard.approvals.services.requests import migration_request_create
from tests.dashboard.approvals_support import make_environment, migrate_target, target_heads
from tests.migrator.execution_project import LATE_REVISION, write_project

pytestmark = pytest.mark.django_db


@pytest.fixture
def linear_project(tmp_path: Path, settings: Any) -> Path:
    """a -> b -> c only (the shared test project also has two failing heads)."""
    ini = write_project(tmp_path / "project")
    for extra in ("boom", "slow"):
        (ini.parent / "versions" / f"{extra}_revision.py").unlink()
    settings.ALEMBIC_CONFIG = str(ini)
    return ini


def test_a_revision_added_after_approval_makes_the_run_refuse_as_stale(
    linear_project: Path, tmp_path: Path, developer: Any
) -> None:
    url = f"sqlite:///{tmp_path / 'dev.sqlite3'}"
    migrate_target(linear_project, url, "a")
    dev = make_environment(
        slug="dev", url=url, directory=tmp_path, required_approvals=0, group=None
    )
    request = migration_request_create(
        environment=dev, actor=developer, direction="upgrade", target="heads", reason="ship"
    )
    assert request.status == "approved" and request.revisions == ["b", "c"]

    (linear_project.parent / "versions" / "d_revision.py").write_text(LATE_REVISION)
    run = run_start(request_id=request.pk)
    assert run is not None
    run = run_execute(run_id=run.pk)

    assert run.outcome == "failed"
    assert run.reason == "stale_plan"
    assert "new revisions: d" in run.error
    assert target_heads(url) == ("a",)
