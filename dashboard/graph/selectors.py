"""Reads behind the graph pages: the loaded history, environments on it, one revision.

Contract: every function here only reads. The history comes from
``settings.ALEMBIC_CONFIG`` through :func:`dashboard.migrator.graph.load_revision_graph`
(cached per fingerprint). The rendered graph body (SVG + rows, the expensive
part of a 2,000-revision page) is cached in Django's cache under the graph's
fingerprint, the environments' heads and the branch filter, so a warm page
only re-renders the frame; an edited revision file changes the fingerprint.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.template.loader import render_to_string
from django.urls import reverse
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PostgresLexer, PythonLexer, SqlLexer

from dashboard.environments.models import Environment
from dashboard.graph.storage import graph_cache_dir
from dashboard.migrator.graph import GraphError, RevisionGraph, RevisionInfo, load_revision_graph
from dashboard.migrator.layout import Layout, lane_x, layout_graph, row_y, svg_paths, svg_size
from dashboard.migrator.static_revisions import function_source

SEARCH_LIMIT = 50
SQL_DIALECTS = ("postgresql", "sqlite")
_FORMATTER = HtmlFormatter(cssclass="highlight")


@dataclass(frozen=True)
class EnvironmentMark:
    """An environment and the revisions its ``alembic_version`` holds."""

    slug: str
    name: str
    heads: tuple[str, ...]


def graph_current() -> RevisionGraph:
    """The history named by ``settings.ALEMBIC_CONFIG`` (cached while unchanged)."""
    return load_revision_graph(config_path=settings.ALEMBIC_CONFIG, cache_dir=graph_cache_dir())


def environment_marks() -> list[EnvironmentMark]:
    """Environments in pipeline order with their last-read heads.

    A fleet is one mark per head set among its targets ("Tenants ×180"), not
    one per target: two queries whatever the number of targets.
    """
    rows = (
        Environment.objects.pipeline()
        .order_by("position", "name")
        .values_list("pk", "slug", "name", "current_heads", "is_fleet")
    )
    rows = list(rows)
    fleets = {pk: (slug, name) for pk, slug, name, _, is_fleet in rows if is_fleet}
    head_sets: dict[int, Counter[tuple[str, ...]]] = defaultdict(Counter)
    if fleets:
        targets = Environment.objects.filter(
            fleet_id__in=list(fleets), retired_at__isnull=True
        ).values_list("fleet_id", "current_heads")
        for fleet_id, heads in targets:
            if heads:
                head_sets[fleet_id][tuple(sorted(heads))] += 1
    marks = []
    for pk, slug, name, heads, is_fleet in rows:
        if not is_fleet:
            marks.append(EnvironmentMark(slug, name, tuple(heads or ())))
            continue
        for key, count in head_sets[pk].most_common():
            marks.append(EnvironmentMark(slug, f"{name} ×{count}", key))
    return marks


def _error_rows(errors: tuple[GraphError, ...]) -> list[dict[str, Any]]:
    rows = []
    for error in errors:
        text = ""
        if error.path and error.line:
            try:
                lines = Path(error.path).read_text(encoding="utf-8", errors="replace").splitlines()
                text = lines[error.line - 1] if 0 < error.line <= len(lines) else ""
            except OSError:
                text = ""
        rows.append({"error": error, "line_text": text})
    return rows


def search_revisions(graph: RevisionGraph, query: str) -> list[RevisionInfo]:
    """Revisions whose id starts with ``query`` or whose message has all its words."""
    query = query.strip().lower()
    if not query:
        return []
    words = query.split()
    found = [
        rev
        for rev in graph.revisions
        if rev.id.lower().startswith(query) or all(w in rev.message.lower() for w in words)
    ]
    return found[:SEARCH_LIMIT]


def branch_lineage(graph: RevisionGraph, label: str) -> list[RevisionInfo] | None:
    """Revisions sharing lineage with the revision labelled ``label`` (None if unknown).

    Lineage is Alembic's: the labelled revision, its ancestors and its descendants.
    """
    owner = next((rev for rev in graph.revisions if label in rev.branch_labels), None)
    if owner is None or graph.revision_map is None:
        return None
    rev_map = graph.revision_map
    start = [rev_map.get_revision(owner.id)]
    keep = {r.revision for r in rev_map._get_ancestor_nodes(start, include_dependencies=False)}
    keep |= {r.revision for r in rev_map._get_descendant_nodes(start, include_dependencies=False)}
    return [rev for rev in graph.revisions if rev.id in keep]


def _node_shape(rev: RevisionInfo) -> str:
    if rev.is_head:
        return "head"
    if rev.is_merge_point:
        return "merge"
    if rev.is_branch_point:
        return "branch"
    if rev.is_base:
        return "base"
    return "plain"


def _body_rows(
    revisions: list[RevisionInfo], layout: Layout, marks: list[EnvironmentMark]
) -> list[dict[str, Any]]:
    url = reverse("graph:revision", args=["REV"])
    at: dict[str, list[str]] = {}
    for mark in marks:
        for head in mark.heads:
            at.setdefault(head, []).append(mark.name)
    rows = []
    for rev, row in zip(revisions, layout.rows, strict=True):
        x, y = lane_x(row.lane), row_y(row.row)
        rows.append(
            {
                "rev": rev,
                "url": url.replace("REV", rev.id),
                "x": x,
                "y": y,
                "x0": x - 5,
                "y0": y - 5,
                "points": f"{x},{y - 7} {x + 7},{y} {x},{y + 7} {x - 7},{y}",
                "shape": _node_shape(rev),
                "envs": at.get(rev.id, ()),
            }
        )
    return rows


def graph_body_html(
    graph: RevisionGraph, marks: list[EnvironmentMark], revisions: list[RevisionInfo], key: str
) -> str:
    """The rendered SVG + rows fragment, cached per fingerprint, env heads and filter."""
    env_key = hashlib.blake2b(repr(marks).encode(), digest_size=8).hexdigest()
    cache_key = f"graph:body:{graph.fingerprint}:{env_key}:{key}"
    html = cache.get(cache_key)
    if html is None:
        layout = layout_graph(revisions)
        width, height = svg_size(layout)
        context = {
            "rows": _body_rows(revisions, layout, marks),
            "paths": svg_paths(layout),
            "width": width,
            "height": height,
        }
        html = render_to_string("graph/graph.html#graph-body", context)
        cache.set(cache_key, html, timeout=24 * 3600)
    return html


def graph_page(*, query: str = "", branch: str = "", revision: str = "") -> dict[str, Any]:
    """Everything the graph page shows (see templates/graph/graph.html).

    With ``revision`` (the ``?revision=`` of a shared link) the side panel holds
    that revision's detail (:func:`revision_detail`'s keys), or
    ``missing_revision`` when the history has no such id.
    """
    graph = graph_current()
    context: dict[str, Any] = {
        "graph": graph,
        "errors": _error_rows(graph.errors),
        "query": query,
        "branch": branch,
        "labels": sorted({label for rev in graph.revisions for label in rev.branch_labels}),
    }
    if not graph.ok or not graph.revisions:
        return context
    marks = environment_marks()
    opened = graph.get(revision) if revision else None
    if opened is not None:
        context.update(_detail_context(graph, opened, marks))
    elif revision:
        context["missing_revision"] = revision
    revisions = list(graph.revisions)
    lineage_known = False
    if branch:
        lineage = branch_lineage(graph, branch)
        context["unknown_branch"] = lineage is None
        lineage_known = lineage is not None
        revisions = lineage or revisions
    context.update(
        heads=[graph.get(head) for head in graph.heads],
        several_heads=len(graph.heads) > 1,
        matches=search_revisions(graph, query),
        shown=len(revisions),
        # Only known labels make their own cache entry (any other string is "all").
        graph_body=graph_body_html(graph, marks, revisions, branch if lineage_known else "all"),
    )
    return context


def _highlight(code: str, lexer: Any) -> str:
    return highlight(code, lexer, _FORMATTER) if code else ""


def revision_sql(graph: RevisionGraph, revision_id: str, dialect: str) -> tuple[str, str]:
    """(highlighted SQL, error) that this revision alone emits offline for ``dialect``."""
    cache_key = f"graph:sql:{graph.fingerprint}:{revision_id}:{dialect}"
    cached = cache.get(cache_key)
    if cached is not None:
        return cached
    from dashboard.migrator.sql import SQLRenderError, render_revision_sql

    try:
        # render_revision_sql serialises on the migrator's own lock (alembic.op is global).
        script = graph.script_directory()
        sql = render_revision_sql(script, revision_id, dialect=dialect).sql
        lexer = PostgresLexer() if dialect == "postgresql" else SqlLexer()
        result = (_highlight(sql.strip() or "-- (no SQL)", lexer), "")
    except SQLRenderError as exc:
        result = ("", str(exc))
    except Exception as exc:  # the revision's module could not be imported here
        result = ("", f"{type(exc).__name__}: {exc}")
    cache.set(cache_key, result, timeout=None)
    return result


@dataclass(frozen=True)
class RequestChoice:
    """An environment a request from the revision detail may name."""

    slug: str
    name: str
    has_it: bool  # the revision is applied there (an ancestor of, or one of, its heads)


def _applied_in(graph: RevisionGraph, rev_id: str, marks: list[EnvironmentMark]) -> list[str]:
    """Slugs of the environments whose heads are, or descend from, ``rev_id``."""
    rev_map = graph.revision_map
    if rev_map is None:
        return []
    slugs = []
    for mark in marks:
        heads = [rev_map.get_revision(h) for h in mark.heads if graph.get(h)]
        if heads and any(r.revision == rev_id for r in rev_map._get_ancestor_nodes(heads)):
            slugs.append(mark.slug)
    return slugs


def _detail_context(
    graph: RevisionGraph, rev: RevisionInfo, marks: list[EnvironmentMark]
) -> dict[str, Any]:
    sources = {
        name: _highlight(function_source(rev.path, rev.spans.get(name)), PythonLexer())
        for name in ("upgrade", "downgrade")
    }
    applied = set(_applied_in(graph, rev.id, marks))
    return {
        "rev": rev,
        "parents": [graph.get(p) for p in rev.down_revisions],
        "children": [graph.get(c) for c in rev.children],
        "upgrade_html": sources["upgrade"],
        "downgrade_html": sources["downgrade"],
        "sql": [(d, *revision_sql(graph, rev.id, d)) for d in SQL_DIALECTS],
        "applied_in": [mark.name for mark in marks if mark.slug in applied],
        "request_choices": [RequestChoice(m.slug, m.name, m.slug in applied) for m in marks],
    }


def revision_detail(*, revision_id: str) -> dict[str, Any] | None:
    """The detail of one revision (None when the id is unknown or the history failed).

    ``request_choices`` lists every environment in pipeline order for the
    request form of the detail; none is chosen for the user.
    """
    graph = graph_current()
    rev = graph.get(revision_id)
    if rev is None:
        return None
    return {"graph": graph, **_detail_context(graph, rev, environment_marks())}
