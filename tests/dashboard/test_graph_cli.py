"""``manage.py revision_graph``: JSON and text for automation, exit status 1 on bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from django.core.management import call_command

from tests.migrator.graph_histories import (
    BAD_KINDS,
    branchy_history,
    write_bad_history,
    write_ini,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> tuple[int, str, str]:
    out, err = StringIO(), StringIO()
    try:
        call_command("revision_graph", *args, stdout=out, stderr=err)
    except SystemExit as exc:
        return int(exc.code or 0), out.getvalue(), err.getvalue()
    return 0, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli")
    branchy_history(root / "versions", 80, open_heads=2, seed=5, labels_every=9)
    write_ini(root, "%(here)s")
    return root


def test_json_lists_revisions_in_alembics_walk_order(history: Path) -> None:
    code, out, _ = run("--script-location", str(history), "--format", "json")
    assert code == 0
    data = json.loads(out)
    script = ScriptDirectory(str(history))
    walk = list(script.walk_revisions())
    assert [r["id"] for r in data["revisions"]] == [s.revision for s in walk]
    assert data["heads"] == list(script.get_heads())
    assert data["bases"] == list(script.get_bases())
    assert data["merge_points"] == [s.revision for s in walk if s.is_merge_point]
    assert data["branch_points"] == [s.revision for s in walk if s.is_branch_point]
    assert data["errors"] == []
    first = data["revisions"][0]
    assert set(first) == {
        "id", "down_revisions", "branch_labels", "depends_on", "message",
        "create_date", "path", "sha256", "row", "lane",
    }  # fmt: skip
    assert [r["row"] for r in data["revisions"]] == list(range(len(walk)))


def test_config_and_script_location_give_the_same_graph(history: Path) -> None:
    by_ini = json.loads(run("--config", str(history / "alembic.ini"), "--format", "json")[1])
    by_dir = json.loads(run("--script-location", str(history), "--format", "json")[1])
    assert by_ini == by_dir


def test_text_draws_lanes_and_warns_about_several_heads(history: Path) -> None:
    code, out, _ = run("--script-location", str(history))
    assert code == 0
    lines = out.splitlines()
    assert "`alembic upgrade head` will fail" in lines[0]
    assert len(lines) == 1 + len(list(ScriptDirectory(str(history)).walk_revisions()))
    assert all("*" in line for line in lines[1:])
    assert any("|" in line for line in lines[1:])


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_bad_input_exits_1_naming_the_file_and_problem(tmp_path: Path, kind: str) -> None:
    location, problem, file_name, line = write_bad_history(tmp_path, kind)
    code, out, err = run("--script-location", str(location), "--format", "json")
    assert code == 1
    assert problem in err
    if file_name:
        assert f"{file_name}:{line}" in err
    assert json.loads(out)["errors"][0]["problem"] in err


def test_the_real_process_exits_with_status_1(tmp_path: Path) -> None:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    result = subprocess.run(
        [sys.executable, "manage.py", "revision_graph", "--script-location", str(tmp_path / "no")],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "not found" in result.stderr and result.stdout == ""
