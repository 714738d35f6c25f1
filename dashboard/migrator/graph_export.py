"""The revision graph as JSON-ready data and as terminal text (no Django here).

Contract: :func:`revision_graph_as_dict` returns the one object that
``manage.py revision_graph --format json`` prints and the API serves::

    {"revisions": [{"id", "down_revisions", "branch_labels", "depends_on",
                    "message", "create_date", "path", "sha256", "row", "lane"}],
     "heads": [...], "bases": [...], "merge_points": [...],
     "branch_points": [...], "errors": [{"path", "line", "problem"}]}

Revisions are in Alembic's walk order from heads to base; ``row``/``lane``
come from :func:`dashboard.migrator.layout.layout_graph`. Only JSON types are
used (lists, strings, ints, None).
"""

from __future__ import annotations

from typing import Any

from dashboard.migrator.graph import RevisionGraph, RevisionInfo
from dashboard.migrator.layout import Layout, layout_graph, text_lines


def _revision_dict(rev: RevisionInfo, row: int, lane: int) -> dict[str, Any]:
    return {
        "id": rev.id,
        "down_revisions": list(rev.down_revisions),
        "branch_labels": list(rev.branch_labels),
        "depends_on": list(rev.depends_on),
        "message": rev.message,
        "create_date": rev.create_date,
        "path": rev.path,
        "sha256": rev.sha256,
        "row": row,
        "lane": lane,
    }


def revision_graph_as_dict(graph: RevisionGraph, layout: Layout | None = None) -> dict[str, Any]:
    """The graph as one JSON-ready object (see the module docstring)."""
    layout = layout or layout_graph(graph.revisions)
    return {
        "revisions": [
            _revision_dict(rev, row.row, row.lane)
            for rev, row in zip(graph.revisions, layout.rows, strict=True)
        ],
        "heads": list(graph.heads),
        "bases": list(graph.bases),
        "merge_points": list(graph.merge_points),
        "branch_points": list(graph.branch_points),
        "errors": [
            {"path": error.path, "line": error.line, "problem": error.problem}
            for error in graph.errors
        ],
    }


def _text_label(rev: RevisionInfo) -> str:
    marks = [
        name
        for name, flag in (
            ("head", rev.is_head),
            ("mergepoint", rev.is_merge_point),
            ("branchpoint", rev.is_branch_point),
            ("base", rev.is_base),
        )
        if flag
    ]
    marks += [f"label: {label}" for label in rev.branch_labels]
    suffix = f" ({', '.join(marks)})" if marks else ""
    return f"{rev.id}{suffix} {rev.message}"


def revision_graph_as_text(graph: RevisionGraph, layout: Layout | None = None) -> str:
    """The graph drawn with lanes for a terminal, newest first, one line per revision."""
    if not graph.revisions:
        return "(no revisions)\n"
    layout = layout or layout_graph(graph.revisions)
    lines = text_lines(layout, [_text_label(rev) for rev in graph.revisions])
    header = f"heads: {', '.join(graph.heads)}"
    if len(graph.heads) > 1:
        header += "  (several heads: `alembic upgrade head` will fail; merge or use `heads`)"
    return header + "\n" + "\n".join(lines) + "\n"
