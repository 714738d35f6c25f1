"""The CI snippet of docs/api.md (the one README shows) works as written, with real curl."""
# ruff: noqa: F811  (fixtures imported from tests.dashboard.api_support)

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dashboard.approvals.models import MigrationRequest
from dashboard.audit.models import AuditEvent
from tests.dashboard.api_support import api_envs, api_project, make_token  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "api.md"
README = ROOT / "README.md"


def _block(path: Path) -> str:
    match = re.search(r"<!-- ci-snippet:.*?-->\s*```sh\n(.*?)```", path.read_text(), re.S)
    assert match, f"{path.name} has the CI snippet block"
    return match.group(1)


def _snippet() -> str:
    return _block(DOCS)


def test_readme_shows_the_snippet_that_is_tested() -> None:
    assert _block(README) == _block(DOCS)


def _run(live_server: Any, token: str, environment: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ["PATH"],
        "DASHBOARD_URL": live_server.url,
        "DASHBOARD_TOKEN": token,
        "TARGET_ENVIRONMENT": environment,
        "CI_COMMIT_SHORT_SHA": "1a2b3c4",
        "CI_COMMIT_TITLE": 'Add "gadgets" table',
    }
    return subprocess.run(
        ["bash", "-c", _snippet()], env=env, capture_output=True, text=True, timeout=60
    )


@pytest.mark.django_db(transaction=True)
def test_the_ci_snippet_creates_a_request_and_prints_its_link(
    live_server: Any, api_envs: dict[str, Any], developer: Any, make_token: Callable[..., str]
) -> None:
    token = make_token(developer)
    result = _run(live_server, token, "dev")

    assert result.returncode == 0, result.stderr
    created = MigrationRequest.objects.get()
    assert created.reason == 'Merge 1a2b3c4: Add "gadgets" table'
    assert created.requested_by == developer and created.to_heads == ["c"]
    assert re.fullmatch(
        rf"Migration request #{created.pk} for dev is pending: https?://\S+/requests/{created.pk}/\n",
        result.stdout,
    )
    assert AuditEvent.objects.get(action="dashboard.request.created").user_agent.startswith("curl/")

    refused = _run(live_server, token, "nope")
    assert refused.returncode != 0
    assert "no environment 'nope'" in refused.stderr
