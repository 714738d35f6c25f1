"""Fleets declared in the environments TOML: ``load_environments`` as a team runs it.

Valid fleets (``targets``, ``targets_file``), the errors that name the file,
the line and the problem (and change nothing), reloading (targets removed,
retired, settings copied to every target), one audit event per load and the
first status read of each new target queued on a Redis queue of the test's own.
"""

from __future__ import annotations

import os
import textwrap
import uuid
from collections.abc import Iterator
from datetime import timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from dashboard.approvals.models import MigrationRequest
from dashboard.audit.models import AuditEvent
from dashboard.environments.config_file import EnvironmentFileError, environments_load
from dashboard.environments.models import Environment
from tests.dashboard.refresh_support import environments_queue, queued_reads

pytestmark = pytest.mark.django_db
REDIS = os.environ["TEST_REDIS_URL"]
CHANGED = "dashboard.environment.changed"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A directory for the TOML, its targets file and the URL template file."""
    directory = tmp_path / "config"
    directory.mkdir()
    (directory / "tenant.url").write_text("sqlite:////srv/tenants/{target}.sqlite3\n")
    return directory


def _fleet_toml(config: Path, body: str, *, slug: str = "tenants") -> Path:
    path = config / "environments.toml"
    header = f'[environments.{slug}]\nname = "Tenants"\nposition = 4\n'
    header += f'url_file = "{config / "tenant.url"}"\n'
    path.write_text(header + textwrap.dedent(body))
    return path


def _load(path: Path) -> str:
    """``manage.py load_environments PATH``; its output."""
    out = StringIO()
    call_command("load_environments", str(path), stdout=out)
    return out.getvalue()


def _targets(slug: str = "tenants") -> list[Environment]:
    return list(Environment.objects.targets_of(Environment.objects.get(slug=slug)))


def _events() -> int:
    return AuditEvent.objects.filter(action=CHANGED).count()


# --- valid fleets -----------------------------------------------------------------------


def test_it_loads_a_fleet_whose_targets_are_environments_with_its_settings(config: Path) -> None:
    path = _fleet_toml(
        config,
        """
        targets = ["acme", "globex", "initech"]
        waves = [1, "50%", "100%"]
        parallelism = 8
        halt_after_failures = 2
        soak = "10m"
        gate_sql = "select count(*) = 0 from pages where slug is null"
        statement_timeout = "45s"
        required_approvals = 2
        approver_group = "Tech leads"
        """,
    )
    out = _load(path)

    assert "created tenants" in out
    fleet = Environment.objects.get(slug="tenants")
    assert fleet.is_fleet and fleet.waves == [1, "50%", "100%"]
    assert (fleet.parallelism, fleet.halt_after_failures) == (8, 2)
    assert fleet.soak == timedelta(minutes=10) and fleet.gate_sql.startswith("select count(*)")
    targets = _targets()
    assert [t.slug for t in targets] == ["tenants--acme", "tenants--globex", "tenants--initech"]
    assert [t.target_name for t in targets] == ["acme", "globex", "initech"]
    assert [t.fleet_position for t in targets] == [1, 2, 3]
    for target in targets:
        assert target.is_target and target.fleet_slug == "tenants" and not target.is_fleet
        assert target.statement_timeout == timedelta(seconds=45)
        assert target.required_approvals == 2 and target.approver_group.name == "Tech leads"
        assert target.url_file == fleet.url_file
    assert targets[1].database_url() == "sqlite:////srv/tenants/globex.sqlite3"
    # People request the fleet: its targets are not in the pipeline.
    assert list(Environment.objects.pipeline().values_list("slug", flat=True)) == ["tenants"]
    assert _load(path).strip() == "unchanged tenants\nnothing changed"


def test_targets_file_is_read_relative_to_the_toml_files_directory(
    config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (config / "tenants.txt").write_text("# one tenant a line\nacme\n\nglobex   # the big one\n")
    path = _fleet_toml(config, 'targets_file = "tenants.txt"\nwaves = [1, "100%"]\n')
    monkeypatch.chdir(tmp_path)  # not the TOML's directory

    _load(path)

    assert [t.target_name for t in _targets()] == ["acme", "globex"]
    assert Environment.objects.get(slug="tenants").targets_file == "tenants.txt"
    (config / "tenants.txt").write_text("globex\nacme\ninitech\n")
    assert "updated tenants: targets" in _load(path)
    assert [t.target_name for t in _targets()] == ["globex", "acme", "initech"]


# --- errors that name the line ------------------------------------------------------------

# (the fleet's keys after its url_file on line 4, the message after "environments.toml, ")
BAD_FLEETS = {
    "bad target name": (
        'targets = ["acme", "ac me"]\n',
        "line 5: environments.tenants.targets: target name 'ac me' may only contain letters,"
        " digits, _ and -",
    ),
    "duplicate target": (
        'targets = ["acme", "globex", "acme"]\n',
        "line 5: environments.tenants.targets: target 'acme' is listed twice",
    ),
    "targets and targets_file": (
        'targets = ["acme"]\ntargets_file = "tenants.txt"\n',
        "line 6: environments.tenants.targets_file: set either targets or targets_file, not both",
    ),
    "missing targets file": (
        'targets_file = "nowhere.txt"\n',
        "line 5: environments.tenants.targets_file: cannot read {dir}/nowhere.txt: No such file"
        " or directory",
    ),
    "wave 0": (
        'targets = ["acme"]\nwaves = [0, "100%"]\n',
        "line 6: environments.tenants.waves: wave 0 must be at least 1 target",
    ),
    "wave 0%": (
        'targets = ["acme"]\nwaves = ["0%"]\n',
        "line 6: environments.tenants.waves: wave '0%' must be a number of targets (1) or a"
        ' percentage ("10%")',
    ),
    "wave 150%": (
        'targets = ["acme"]\nwaves = [1, "150%"]\n',
        "line 6: environments.tenants.waves: wave '150%' must be a number of targets (1) or a"
        ' percentage ("10%")',
    ),
    "wave abc": (
        'targets = ["acme"]\nwaves = ["abc"]\n',
        "line 6: environments.tenants.waves: wave 'abc' must be a number of targets (1) or a"
        ' percentage ("10%")',
    ),
    "no waves": (
        'targets = ["acme"]\nwaves = []\n',
        'line 6: environments.tenants.waves: waves must be a non-empty list such as [1, "10%",'
        ' "100%"]',
    ),
    "parallelism 0": (
        'targets = ["acme"]\nparallelism = 0\n',
        "line 6: environments.tenants.parallelism: must be a whole number ≥ 1",
    ),
    "fleet keys without targets": (
        'waves = [1, "100%"]\nparallelism = 4\n',
        "line 6: environments.tenants.parallelism: 'parallelism' is for fleets: add targets or"
        " targets_file",
    ),
}


@pytest.mark.parametrize("case", BAD_FLEETS, ids=list(BAD_FLEETS))
def test_a_malformed_fleet_is_refused_with_its_line_and_changes_nothing(
    config: Path, case: str
) -> None:
    body, expected = BAD_FLEETS[case]
    path = _fleet_toml(config, body)

    with pytest.raises(CommandError) as error:
        _load(path)

    assert str(error.value) == f"{path}, " + expected.format(dir=config)
    assert not Environment.objects.exists()
    assert _events() == 0


def test_a_bad_line_of_the_targets_file_is_named_with_the_toml_line(config: Path) -> None:
    (config / "tenants.txt").write_text("acme\n# comment\nglo bex\n")
    path = _fleet_toml(config, 'waves = [1, "100%"]\ntargets_file = "tenants.txt"\n')

    with pytest.raises(EnvironmentFileError) as error:
        environments_load(path=path)

    assert str(error.value) == (
        f"{path}, line 6: environments.tenants.targets_file: {config}/tenants.txt, line 3:"
        " target name 'glo bex' may only contain letters, digits, _ and -"
    )
    (config / "tenants.txt").write_text("acme\nglobex\n\nacme\n")
    with pytest.raises(EnvironmentFileError, match=r"tenants.txt, line 4: target 'acme' is listed"):
        environments_load(path=path)
    assert not Environment.objects.exists()


def test_a_url_without_the_target_placeholder_is_refused_when_it_can_be_read(
    config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (config / "tenant.url").write_text("sqlite:////srv/tenants/one.sqlite3\n")
    path = _fleet_toml(config, 'targets = ["acme"]\n')

    with pytest.raises(CommandError) as error:
        _load(path)

    assert str(error.value) == (
        f"{path}, line 4: environments.tenants.url_file: a fleet's URL must be a template"
        " containing {target} (e.g. postgresql://app@db/tenant_{target})"
    )
    # A variable not set where load_environments runs is checked where the workers run.
    variable = f"FLEET_TEST_{uuid.uuid4().hex[:8].upper()}"
    path.write_text(
        f'[environments.tenants]\nname = "T"\nurl_env = "{variable}"\ntargets = ["acme"]\n'
    )
    assert "created tenants" in _load(path)
    monkeypatch.setenv(variable, "postgresql://app@db/tenants")
    with pytest.raises(CommandError, match="line 3: environments.tenants.url_env: a fleet's URL"):
        _load(path)


def test_a_slug_with_two_dashes_is_refused_it_names_targets(config: Path) -> None:
    path = _fleet_toml(config, 'targets = ["acme"]\n', slug="eu--tenants")

    with pytest.raises(CommandError) as error:
        _load(path)

    assert str(error.value) == (
        f"{path}, line 1: environments.eu--tenants: slug may not contain -- (it names a fleet's"
        " targets)"
    )


# --- reloading ----------------------------------------------------------------------------


def test_a_target_removed_from_the_list_is_deleted_or_retired_when_it_has_a_request(
    config: Path, developer: Any
) -> None:
    path = _fleet_toml(config, 'targets = ["acme", "globex", "initech"]\n')
    _load(path)
    globex = Environment.objects.get(slug="tenants--globex")
    MigrationRequest.objects.create(  # its history: an old request of its own
        environment=globex,
        requested_by=developer,
        direction="upgrade",
        target="heads",
        reason="before it joined the fleet",
        dialect="sqlite",
        sql_sha256="0" * 64,
    )

    path = _fleet_toml(config, 'targets = ["acme"]\n')
    assert "updated tenants: targets" in _load(path)

    assert [t.target_name for t in _targets()] == ["acme"]
    assert not Environment.objects.filter(slug="tenants--initech").exists()
    globex.refresh_from_db()
    assert globex.retired_at is not None and globex.migration_requests.count() == 1
    event = AuditEvent.objects.filter(action=CHANGED).order_by("-seq").first()
    assert event.payload["targets_removed"] == ["initech"]
    assert event.payload["targets_retired"] == ["globex"]

    # Listed again, the retired target comes back with its history.
    path = _fleet_toml(config, 'targets = ["acme", "globex"]\n')
    _load(path)
    assert [t.target_name for t in _targets()] == ["acme", "globex"]
    assert _targets()[1].pk == globex.pk


def test_changing_a_fleet_setting_changes_every_target_in_one_audit_event(config: Path) -> None:
    names = [f"tenant{i:02}" for i in range(40)]
    listed = ", ".join(f'"{name}"' for name in names)
    path = _fleet_toml(config, f'targets = [{listed}]\nstatement_timeout = "1m"\n')
    _load(path)
    assert _events() == 1  # the fleet and its 40 targets: one event
    created = AuditEvent.objects.get(action=CHANGED)
    assert created.payload["targets"] == 40 and len(created.payload["targets_added"]) == 40

    path = _fleet_toml(config, f'targets = [{listed}]\nstatement_timeout = "30s"\n')
    out = _load(path)

    assert "updated tenants: statement_timeout" in out
    assert {t.statement_timeout for t in _targets()} == {timedelta(seconds=30)}
    assert _events() == 2
    changed = AuditEvent.objects.filter(action=CHANGED).order_by("-seq").first()
    assert changed.payload["changed"]["statement_timeout"] == ["0:01:00", "0:00:30"]
    assert changed.payload["targets_updated"] == 40
    _load(path)
    assert _events() == 2  # nothing changed, nothing audited


@pytest.fixture
def queue() -> Iterator[str]:
    name = f"test-fleet-reads-{uuid.uuid4().hex[:8]}"
    with environments_queue(REDIS, name):
        yield name


def test_the_first_status_read_of_each_new_target_is_queued(
    config: Path, queue: str, django_capture_on_commit_callbacks: Any
) -> None:
    path = _fleet_toml(config, 'targets = ["acme", "globex"]\n')
    with django_capture_on_commit_callbacks(execute=True):
        _load(path)
    targets = {t.target_name: t.pk for t in _targets()}
    # The fleet's own row has no database to read: only its targets are queued.
    assert sorted(queued_reads(REDIS, queue)) == sorted(targets.values())

    path = _fleet_toml(config, 'targets = ["acme", "globex", "initech"]\n')
    with django_capture_on_commit_callbacks(execute=True):
        _load(path)
    initech = Environment.objects.get(slug="tenants--initech")
    assert queued_reads(REDIS, queue)[2:] == [initech.pk]
