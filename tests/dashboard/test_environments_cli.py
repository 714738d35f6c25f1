"""``load_environments`` and ``environment_status`` on the command line."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from dashboard.audit.models import AuditEvent
from dashboard.environments.models import Environment
from dashboard.environments.services import environment_status_refresh
from tests.dashboard.environments_helpers import make_environment, migrate_target

pytestmark = pytest.mark.django_db

REPO = Path(__file__).resolve().parents[2]


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_the_repository_file_loads_and_reloading_changes_nothing() -> None:
    first = run("load_environments", str(REPO / "environments.toml"))
    assert first.splitlines() == [
        "created dev",
        "created staging",
        "created production",
        "created tenants",
    ]
    # The demo's fleet: its targets come from tenants.txt next to the file.
    assert Environment.objects.targets_of(Environment.objects.get(slug="tenants")).count() == 12
    production = Environment.objects.get(slug="production")
    assert production.required_approvals == 2
    assert production.approver_group.name == "Tech leads"
    assert production.approval_ttl.total_seconds() == 12 * 3600
    assert production.url_env == "MAGNETIQ_PRODUCTION_URL"
    events = AuditEvent.objects.filter(action="dashboard.environment.changed").count()
    assert events == 4  # one per environment; a fleet's targets are listed in its event

    second = run("load_environments", str(REPO / "environments.toml"))
    assert "nothing changed" in second and "unchanged production" in second
    assert AuditEvent.objects.filter(action="dashboard.environment.changed").count() == events


def test_it_updates_by_slug_and_prunes_only_when_asked(tmp_path: Path) -> None:
    path = tmp_path / "envs.toml"
    path.write_text(
        '[environments.qa]\nname = "QA"\nurl_env = "QA_URL"\n'
        '[environments.old]\nname = "Old"\nurl_file = "/run/secrets/old"\n'
    )
    run("load_environments", str(path))
    path.write_text('[environments.qa]\nname = "QA"\nurl_env = "QA_URL"\nlock_timeout = "5s"\n')
    out = run("load_environments", str(path))
    assert "updated qa: lock_timeout" in out
    assert Environment.objects.get(slug="qa").lock_timeout.total_seconds() == 5
    assert Environment.objects.filter(slug="old").exists()
    assert "deleted old" in run("load_environments", str(path), "--prune")
    assert not Environment.objects.filter(slug="old").exists()
    deleted = AuditEvent.objects.filter(
        environment_slug="old", action="dashboard.environment.changed"
    )
    assert deleted.count() == 2


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('[environments.qa]\nname = "QA"\nurl_env = \n', "line 3"),
        (
            '[environments.qa]\nname = "QA"\nurl_env = "X"\n\n[environments.prod]\nname = "P"\n'
            'url_env = "Y"\nlock_timeout = "soon"\n',
            "line 8: environments.prod.lock_timeout: 'soon' is not a duration",
        ),
        (
            '[environments.qa]\nname = "QA"\nurl_env = "X"\napprover_group = "Nobody"\n',
            "line 4: environments.qa.approver_group: no group named 'Nobody'",
        ),
        (
            '[environments.qa]\nname = "QA"\nurl_env = "X"\nurl_file = "/f"\n',
            "line 1: environments.qa: set exactly one of url_env and url_file",
        ),
        ('[environments.qa]\nname = "QA"\nurl_env = "X"\ncolour = "red"\n', "line 4"),
        ('[environments.qa]\nurl_env = "X"\n', "missing required key 'name'"),
        (
            '[environments.qa]\nname = "QA"\nurl_env = "X"\nrun_timeout = "half an hour"\n',
            "line 4: environments.qa.run_timeout: 'half an hour' is not a duration",
        ),
        (
            '[environments.qa]\nname = "QA"\nurl_env = "X"\nidle_in_transaction_timeout = true\n',
            "line 4: environments.qa.idle_in_transaction_timeout: 'True' is not a duration",
        ),
    ],
)
def test_a_malformed_file_is_rejected_with_line_and_problem(
    tmp_path: Path, content: str, expected: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(content)
    with pytest.raises(CommandError) as caught:
        run("load_environments", str(path))
    assert expected in str(caught.value)
    assert not Environment.objects.exists()


def test_status_json_for_automation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'dev.sqlite3'}"
    migrate_target(url, "heads")
    dev = make_environment(monkeypatch, "dev", url, position=1)
    environment_status_refresh(environment=dev)
    data = json.loads(run("environment_status", "--json"))
    (row,) = data["environments"]
    assert set(row) == {
        "slug",
        "name",
        "state",
        "current_heads",
        "pending",
        "error",
        "drift",
        "refreshed_at",
    }
    assert row["state"] == "up_to_date" and row["pending"] == [] and row["error"] is None
    assert row["drift"] == []
    assert "dev" in run("environment_status", "--slug", "dev")


@pytest.mark.django_db(transaction=True)
def test_refresh_reads_now_and_exits_2_when_unreachable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'staging.sqlite3'}"
    migrate_target(url, "heads")
    make_environment(monkeypatch, "staging", url, position=2)
    make_environment(monkeypatch, "gone", f"sqlite:///{tmp_path / 'missing.sqlite3'}", position=3)
    out = io.StringIO()
    with pytest.raises(SystemExit) as exited:
        call_command("environment_status", "--json", "--refresh", stdout=out)
    assert exited.value.code == 2
    rows = {row["slug"]: row for row in json.loads(out.getvalue())["environments"]}
    assert rows["staging"]["state"] == "up_to_date" and rows["staging"]["refreshed_at"]
    assert rows["gone"]["state"] == "unreachable" and "does not exist" in rows["gone"]["error"]
