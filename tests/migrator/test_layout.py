"""The git-log-like layout: one row per revision, true edges, lanes reused."""

from __future__ import annotations

from pathlib import Path

import pytest

from dashboard.migrator.graph import RevisionGraph, clear_graph_cache, load_revision_graph
from dashboard.migrator.layout import layout_graph, svg_paths, text_lines
from tests.migrator.graph_histories import branchy_history, linear_history, write_revision


@pytest.fixture(scope="module")
def big_graph(tmp_path_factory: pytest.TempPathFactory) -> RevisionGraph:
    root = tmp_path_factory.mktemp("layout-big")
    branchy_history(root / "versions", 2000, open_heads=2, seed=3)
    clear_graph_cache()
    return load_revision_graph(script_location=root)


def test_no_two_revisions_share_a_row_and_rows_follow_alembics_order(
    big_graph: RevisionGraph,
) -> None:
    layout = layout_graph(big_graph.revisions)
    assert [row.row for row in layout.rows] == list(range(len(big_graph.revisions)))
    assert [row.revision for row in layout.rows] == [r.id for r in big_graph.revisions]


def test_every_edge_connects_a_revision_to_its_down_revision(big_graph: RevisionGraph) -> None:
    layout = layout_graph(big_graph.revisions)
    where = layout.position()
    expected = {(r.id, down) for r in big_graph.revisions for down in r.down_revisions}
    assert {(e.child, e.parent) for e in layout.edges} == expected
    assert len(layout.edges) == len(expected)
    for edge in layout.edges:
        assert (edge.child_row, edge.child_lane) == (where[edge.child].row, where[edge.child].lane)
        assert (edge.parent_row, edge.parent_lane) == (
            where[edge.parent].row,
            where[edge.parent].lane,
        )
        assert edge.parent_row > edge.child_row  # newest first: parents are drawn below


def test_straight_parts_of_edges_never_overlap_in_a_lane(big_graph: RevisionGraph) -> None:
    layout = layout_graph(big_graph.revisions)
    busy: dict[tuple[int, int], str] = {}
    for edge in layout.edges:
        for row in range(edge.child_row + 1, edge.parent_row):
            owner = busy.setdefault((edge.slot, row), edge.parent)
            assert owner == edge.parent, f"lane {edge.slot} row {row} used twice"


def test_a_linear_history_uses_one_lane(tmp_path: Path) -> None:
    linear_history(tmp_path / "versions", 50)
    layout = layout_graph(load_revision_graph(script_location=tmp_path).revisions)
    assert layout.lanes == 1
    assert {row.lane for row in layout.rows} == {0}


def test_lanes_are_reused_after_a_merge(tmp_path: Path) -> None:
    versions, parent = tmp_path / "versions", None
    for i in range(20):  # twenty fork-and-merge diamonds in a row
        left, right, merge = f"l{i:03d}", f"r{i:03d}", f"m{i:03d}"
        write_revision(versions, left, parent, order=4 * i)
        write_revision(versions, right, parent, order=4 * i + 1) if parent else None
        write_revision(versions, merge, (left, right) if parent else left, order=4 * i + 2)
        parent = merge
    graph = load_revision_graph(script_location=tmp_path)
    assert graph.ok, graph.errors
    assert len(graph.merge_points) == 19
    assert layout_graph(graph.revisions).lanes == 2


def test_svg_and_text_drawings_cover_every_revision(big_graph: RevisionGraph) -> None:
    layout = layout_graph(big_graph.revisions)
    paths = svg_paths(layout)
    assert sum(d.count("M") for _, d in paths) == len(layout.edges)
    lines = text_lines(layout, [r.id for r in big_graph.revisions])
    assert len(lines) == 2000
    assert all(line.count("*") == 1 for line in lines)
