"""The graph engine gives Alembic's own answers, on any history, and reports bad input."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory

from dashboard.migrator.graph import RevisionGraph, clear_graph_cache, load_revision_graph
from tests.migrator.graph_histories import (
    BAD_KINDS,
    branchy_history,
    linear_history,
    write_bad_history,
    write_ini,
    write_revision,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    clear_graph_cache()
    yield
    clear_graph_cache()


def alembic_facts(script: ScriptDirectory) -> dict[str, Any]:
    walk = list(script.walk_revisions())
    return {
        "order": [s.revision for s in walk],
        "heads": list(script.get_heads()),
        "real_heads": list(script.get_heads(consider_depends_on=True)),
        "bases": list(script.get_bases()),
        "branch_points": [s.revision for s in walk if s.is_branch_point],
        "merge_points": [s.revision for s in walk if s.is_merge_point],
        "down": {s.revision: tuple(s._versioned_down_revisions) for s in walk},
        "messages": {s.revision: s.doc for s in walk},
    }


def our_facts(graph: RevisionGraph) -> dict[str, Any]:
    assert graph.ok, graph.errors
    return {
        "order": [r.id for r in graph.revisions],
        "heads": list(graph.heads),
        "real_heads": list(graph.real_heads),
        "bases": list(graph.bases),
        "branch_points": list(graph.branch_points),
        "merge_points": list(graph.merge_points),
        "down": {r.id: r.down_revisions for r in graph.revisions},
        "messages": {r.id: r.message for r in graph.revisions},
    }


@pytest.fixture(scope="module")
def big_history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("big")
    branchy_history(root / "versions", 2000, labels_every=97)
    return root


def test_it_matches_alembic_on_the_magnetiq2_history() -> None:
    ini = REPO_ROOT / "alembic.ini"
    config = Config(str(ini))
    graph = load_revision_graph(config_path=ini)
    assert our_facts(graph) == alembic_facts(ScriptDirectory.from_config(config))
    assert len(graph.revisions) >= 5


def test_it_matches_alembic_on_2000_revisions_with_branches_and_merges(big_history: Path) -> None:
    graph = load_revision_graph(script_location=big_history)
    assert len(graph.revisions) == 2000
    assert len(graph.merge_points) >= 50
    assert our_facts(graph) == alembic_facts(ScriptDirectory(str(big_history)))


def test_it_matches_alembic_with_depends_on_and_two_bases(tmp_path: Path) -> None:
    versions = tmp_path / "versions"
    write_revision(versions, "a1", None, labels="core", order=0)
    write_revision(versions, "a2", "a1", order=1)
    write_revision(versions, "a3", "a2", order=2)
    write_revision(versions, "b1", None, labels="plugins", depends_on="a2", order=3)
    write_revision(versions, "b2", "b1", depends_on="core", order=4)
    write_revision(versions, "b3", "b2", order=5)
    graph = load_revision_graph(script_location=tmp_path)
    reference = alembic_facts(ScriptDirectory(str(tmp_path)))
    assert our_facts(graph) == reference
    assert sorted(graph.bases) == ["a1", "b1"]
    assert graph.get("b1").depends_on == ("a2",)
    assert graph.get("b2").depends_on == ("core",)


def test_it_matches_alembic_with_several_open_heads(tmp_path: Path) -> None:
    branchy_history(tmp_path / "versions", 60, open_heads=3, seed=11)
    graph = load_revision_graph(script_location=tmp_path)
    assert len(graph.heads) == 3
    assert our_facts(graph) == alembic_facts(ScriptDirectory(str(tmp_path)))


def test_it_reads_several_version_locations_from_an_ini(tmp_path: Path) -> None:
    write_revision(tmp_path / "scripts" / "versions", "c1", None, labels="core", order=0)
    write_revision(tmp_path / "scripts" / "versions", "c2", "c1", order=1)
    write_revision(tmp_path / "extra", "e1", None, labels="extra", depends_on="c1", order=0)
    (tmp_path / "scripts" / "env.py").write_text("")
    ini = write_ini(tmp_path, "%(here)s/scripts", "%(here)s/scripts/versions %(here)s/extra")
    graph = load_revision_graph(config_path=ini)
    assert {r.id for r in graph.revisions} == {"c1", "c2", "e1"}
    assert our_facts(graph) == alembic_facts(ScriptDirectory.from_config(Config(str(ini))))


def test_it_reads_a_bare_versions_folder(tmp_path: Path) -> None:
    ids = linear_history(tmp_path / "versions", 5)
    graph = load_revision_graph(script_location=tmp_path / "versions")
    assert [r.id for r in graph.revisions] == list(reversed(ids))
    rev = graph.get(ids[0])
    assert rev.create_date == "2024-01-01 12:00:00.000000"
    assert rev.path.endswith(".py") and len(rev.sha256) == 64


def test_it_loads_revisions_that_import_a_missing_package(tmp_path: Path) -> None:
    imports = ["import magnetiq_nonexistent_pkg_for_tests"]
    versions = tmp_path / "versions"
    write_revision(versions, "m1", None, imports=imports, order=0)
    write_revision(versions, "m2", "m1", imports=imports, order=1)
    write_revision(versions, "m3", "m1", imports=imports, order=2)
    write_revision(versions, "m4", ("m2", "m3"), imports=imports, order=3)
    graph = load_revision_graph(script_location=tmp_path)
    assert graph.ok
    with pytest.raises(ImportError):
        list(ScriptDirectory(str(tmp_path)).walk_revisions())
    sys.modules["magnetiq_nonexistent_pkg_for_tests"] = types.ModuleType("stub")
    try:
        reference = alembic_facts(ScriptDirectory(str(tmp_path)))
    finally:
        del sys.modules["magnetiq_nonexistent_pkg_for_tests"]
    assert our_facts(graph) == reference


def test_it_executes_a_file_whose_identifiers_are_computed(tmp_path: Path) -> None:
    versions = tmp_path / "versions"
    write_revision(versions, "k1", None, order=0)
    path = write_revision(versions, "k2", "k1", order=1)
    path.write_text(
        path.read_text()
        .replace("= 'k1'", "= PARENT")
        .replace("# revision identifiers", "PARENT = 'k' + '1'\n# revision identifiers")
    )
    graph = load_revision_graph(script_location=tmp_path)
    assert our_facts(graph) == alembic_facts(ScriptDirectory(str(tmp_path)))
    assert graph.get("k2").down_revisions == ("k1",)


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_it_reports_bad_input_with_the_file_and_the_problem(tmp_path: Path, kind: str) -> None:
    location, problem, file_name, line = write_bad_history(tmp_path, kind)
    graph = load_revision_graph(script_location=location)
    assert not graph.ok and graph.revisions == ()
    error = graph.errors[0]
    assert problem in error.problem
    if file_name:
        assert Path(error.path).name == file_name
        assert error.line == line
        assert file_name in str(error)


def test_it_reports_a_missing_ini(tmp_path: Path) -> None:
    graph = load_revision_graph(config_path=tmp_path / "alembic.ini")
    assert "config file not found" in str(graph.errors[0])


def test_the_cache_follows_added_changed_and_removed_files(tmp_path: Path) -> None:
    ids = linear_history(tmp_path / "versions", 3)
    first = load_revision_graph(script_location=tmp_path)
    assert load_revision_graph(script_location=tmp_path) is first

    newest = sorted((tmp_path / "versions").glob("00002_*.py"))[0]
    newest.write_text(newest.read_text().replace("create table", "CHANGED table", 1))
    changed = load_revision_graph(script_location=tmp_path)
    assert changed is not first
    assert changed.get(ids[2]).message.startswith("CHANGED table")

    added = write_revision(tmp_path / "versions", "added00001", ids[2], order=3)
    assert load_revision_graph(script_location=tmp_path).heads == ("added00001",)

    added.unlink()
    after_removal = load_revision_graph(script_location=tmp_path)
    assert after_removal.heads == (ids[2],) and after_removal.get("added00001") is None


def test_loading_does_not_grow_sys_path(tmp_path: Path) -> None:
    linear_history(tmp_path / "versions", 2)
    ini = tmp_path / "alembic.ini"
    ini.write_text(
        f"[alembic]\nscript_location = {tmp_path}\npath_separator = os\n"
        f"prepend_sys_path = {tmp_path}\n"
    )
    before = len(sys.path)
    for _ in range(3):
        clear_graph_cache()
        graph = load_revision_graph(config_path=ini)
        graph.script_directory()
    try:
        assert len(sys.path) <= before + 1
        assert sys.path.count(str(tmp_path)) <= 1
    finally:
        while str(tmp_path) in sys.path:
            sys.path.remove(str(tmp_path))


def test_script_directory_is_alembics_for_the_same_folders(tmp_path: Path) -> None:
    ids = linear_history(tmp_path / "versions", 3)
    script = load_revision_graph(script_location=tmp_path).script_directory()
    assert isinstance(script, ScriptDirectory)
    assert script.get_current_head() == ids[-1]


def test_a_graph_kept_on_disk_is_the_same_graph_in_a_new_process(
    tmp_path: Path, big_history: Path
) -> None:
    store = tmp_path / "cache"
    first = load_revision_graph(script_location=big_history, cache_dir=store)
    assert len(list(store.glob("revision-graph-*.json"))) == 1
    clear_graph_cache()  # what a new process starts with
    again = load_revision_graph(script_location=big_history, cache_dir=store)
    assert again is not first
    assert again.revisions == first.revisions
    assert our_facts(again) == our_facts(first)
    assert again.revision_map.heads == first.revision_map.heads
    assert [r.revision for r in again.revision_map.iterate_revisions("heads", "base")] == [
        r.id for r in first.revisions
    ]


def test_a_stored_graph_follows_changes_made_while_no_process_ran(tmp_path: Path) -> None:
    store = tmp_path / "cache"
    ids = linear_history(tmp_path / "versions", 4)
    load_revision_graph(script_location=tmp_path, cache_dir=store)
    clear_graph_cache()
    path = sorted((tmp_path / "versions").glob("00001_*.py"))[0]
    path.write_text(path.read_text().replace("create table", "renamed table", 1))
    graph = load_revision_graph(script_location=tmp_path, cache_dir=store)
    assert graph.get(ids[1]).message.startswith("renamed table")
    assert our_facts(graph) == alembic_facts(ScriptDirectory(str(tmp_path)))

    clear_graph_cache()
    path.write_text(path.read_text().replace(f"= {ids[0]!r}", "= 'fffffffffff9'"))
    broken = load_revision_graph(script_location=tmp_path, cache_dir=store)
    assert broken.errors[0].path == str(path) and broken.errors[0].line == 16
