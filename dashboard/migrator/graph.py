"""Load any Alembic script directory into a revision graph (no Django here).

Public API (stable, used by the graph pages, the CLI, environments and API)::

    load_revision_graph(*, config_path=None, script_location=None,
                        version_locations=None, recursive=False,
                        cache_dir=None) -> RevisionGraph

Exactly one of ``config_path`` (an ``alembic.ini``) or ``script_location`` (a
script directory with ``versions/``, or a bare versions folder) is given;
``version_locations`` overrides the folders, as ``version_locations`` in the
ini does. The result is cached per script directory and reused while a cheap
fingerprint (``os.scandir`` names, mtimes and sizes of the version folders and
the ini's stat) is unchanged; adding, removing or editing a file invalidates
it, and only changed files are read again. With ``cache_dir`` the graph is
also kept on disk as JSON (:mod:`dashboard.migrator.graph_store`), so a new
process with an unchanged history skips reading and ordering.

:class:`RevisionGraph` never raises for bad input: ``graph.errors`` lists
:class:`GraphError` values (file, line, problem) for a missing folder, a
syntax error, a revision id defined twice, a ``down_revision``/``depends_on``
that points nowhere, or a cycle; then ``graph.revisions`` is empty. On success
it holds every revision (:class:`RevisionInfo`) in Alembic's walk order
(``alembic history``: heads to base), ``heads`` (``get_heads()``),
``real_heads`` (``get_heads(consider_depends_on=True)``), ``bases``,
``branch_points``, ``merge_points``, Alembic's own ``revision_map``
(a :class:`alembic.script.revision.RevisionMap` built from the statically read
revisions, so ordering and heads are Alembic's) and, on demand,
``graph.script_directory()``: Alembic's :class:`ScriptDirectory` for the same
folders (it executes revision files when its own map is used; the dashboard
needs it only for offline SQL and execution).

How files are read: statically (see :mod:`dashboard.migrator.static_revisions`),
so histories whose revision files import packages not installed here still
load; files whose identifiers are computed are executed with Alembic's
loader. ``sys.path`` is never grown by loading (``prepend_sys_path`` entries
are added once, only when Alembic's ``ScriptDirectory`` is asked for).

The dataclasses live in :mod:`dashboard.migrator.graph_model` (re-exported
here); this module imports :mod:`~dashboard.migrator.graph_store`, which
imports only the model, so there is no import circle.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from dashboard.migrator import graph_store
from dashboard.migrator.graph_model import GraphError, RevisionGraph, RevisionInfo, ScriptSource
from dashboard.migrator.static_revisions import (
    RevisionFileError,
    RevisionFileFacts,
    read_revision_file,
)

if TYPE_CHECKING:  # importing alembic costs ~0.3 s; a graph read from disk needs none of it
    from alembic.script.revision import Revision

__all__ = [
    "GraphError",
    "RevisionGraph",
    "RevisionInfo",
    "ScriptSource",
    "clear_graph_cache",
    "load_revision_graph",
]

_REVISION_FILE = re.compile(r"(?!\.\#|__init__)(.*\.py)$")  # Alembic's _only_source_rev_file
_LEGACY_REV = re.compile(r"([a-f0-9]+)\.py$")


class _SourceError(Exception):
    pass


def _looks_like_script_dir(path: Path) -> bool:
    return (path / "versions").is_dir() or (path / "env.py").is_file()


def resolve_script_source(
    *,
    config_path: str | os.PathLike[str] | None = None,
    script_location: str | os.PathLike[str] | None = None,
    version_locations: Sequence[str | os.PathLike[str]] | None = None,
    recursive: bool = False,
) -> ScriptSource:
    """Resolve the folders to read; raises ``_SourceError`` for a missing file or folder."""
    prepend: tuple[str, ...] = ()
    if config_path is not None:
        from alembic.config import Config
        from alembic.util import coerce_resource_to_filename

        ini = Path(config_path).absolute()
        if not ini.is_file():
            raise _SourceError(f"config file not found: {ini}")
        config = Config(str(ini))
        location = config.get_alembic_option("script_location")
        if not location:
            raise _SourceError(f"{ini}: no 'script_location' key in [alembic]")
        script_location = str(coerce_resource_to_filename(location))
        if version_locations is None:
            version_locations = config.get_version_locations_list()
        recursive = recursive or config.get_alembic_boolean_option("recursive_version_locations")
        prepend = tuple(config.get_prepend_sys_paths_list() or ())
        config_path = str(ini)
    if script_location is None:
        raise _SourceError("no script location given (config_path or script_location)")
    script_dir = Path(script_location).absolute()
    if not script_dir.is_dir():
        raise _SourceError(f"script folder not found: {script_dir}")
    if version_locations:
        folders = tuple(str(Path(v).absolute()) for v in version_locations)
    elif _looks_like_script_dir(script_dir):
        folders = (str(script_dir / "versions"),)
    else:
        folders = (str(script_dir),)  # a bare versions folder
    for folder in folders:
        if not Path(folder).is_dir():
            raise _SourceError(f"versions folder not found: {folder}")
    return ScriptSource(
        script_dir=str(script_dir),
        version_locations=folders,
        recursive=recursive,
        config_path=config_path,
        prepend_sys_path=prepend,
    )


def _scan(source: ScriptSource) -> list[tuple[str, int, int]]:
    """Revision files in Alembic's load order, with (mtime_ns, size): the fingerprint."""
    found: list[tuple[str, int, int]] = []
    seen: set[tuple[int, int]] = set()

    def walk(folder: str) -> None:
        try:
            entries = sorted(os.scandir(os.path.realpath(folder)), key=lambda e: e.name)
        except OSError:
            return
        subdirs = []
        for entry in entries:
            if entry.is_dir():
                if entry.name != "__pycache__":
                    subdirs.append(entry.path)
                continue
            if not _REVISION_FILE.match(entry.name):
                continue
            stat = entry.stat()
            if (stat.st_dev, stat.st_ino) in seen:  # the same file twice: Alembic skips it
                continue
            seen.add((stat.st_dev, stat.st_ino))
            found.append((entry.path, stat.st_mtime_ns, stat.st_size))
        if source.recursive:
            for sub in subdirs:
                walk(sub)

    for folder in source.version_locations:
        walk(folder)
    return found


_file_cache: dict[tuple[str, int, int], RevisionFileFacts | RevisionFileError] = {}
_graph_cache: dict[tuple, tuple[str, RevisionGraph]] = {}
_source_cache: dict[tuple, ScriptSource] = {}
_cache_lock = threading.Lock()


def clear_graph_cache() -> None:
    """Forget every cached graph and file (tests, or after a deploy)."""
    with _cache_lock:
        _file_cache.clear()
        _graph_cache.clear()
        _source_cache.clear()


def _read(entry: tuple[str, int, int]) -> RevisionFileFacts | RevisionFileError:
    cached = _file_cache.get(entry)
    if cached is None:
        try:
            cached = read_revision_file(entry[0])
        except RevisionFileError as exc:
            cached = exc
        _file_cache[entry] = cached
    return cached


def _config_stat(path: str | os.PathLike[str] | None) -> tuple:
    if path is None:
        return ()
    try:
        stat = os.stat(path)
    except OSError:
        return ("missing",)
    return (stat.st_mtime_ns, stat.st_size)


def load_revision_graph(
    *,
    config_path: str | os.PathLike[str] | None = None,
    script_location: str | os.PathLike[str] | None = None,
    version_locations: Sequence[str | os.PathLike[str]] | None = None,
    recursive: bool = False,
    cache_dir: str | os.PathLike[str] | None = None,
) -> RevisionGraph:
    """Load (or reuse from cache) the revision graph; never raises for bad input.

    With ``cache_dir``, a successfully loaded graph is also kept there as JSON
    under its fingerprint, so a new process (the CLI) skips reading and
    ordering unchanged files; any change of the fingerprint ignores it.
    """
    key = (
        str(config_path) if config_path else None,
        str(script_location) if script_location else None,
        tuple(str(v) for v in version_locations or ()),
        recursive,
    )
    config_stat = _config_stat(config_path)
    store = graph_store.store_path(cache_dir, key) if cache_dir is not None else None
    stored = (
        graph_store.store_load(store) if store and (key, config_stat) not in _source_cache else None
    )
    source = _source_cache.get((key, config_stat)) or graph_store.stored_source(stored, config_stat)
    if source is None:
        try:
            source = resolve_script_source(
                config_path=config_path,
                script_location=script_location,
                version_locations=version_locations,
                recursive=recursive,
            )
        except _SourceError as exc:
            return RevisionGraph(source=None, fingerprint="", errors=(GraphError(str(exc)),))
        except Exception as exc:  # a broken ini: configparser / resource errors
            problem = GraphError(
                f"{type(exc).__name__}: {exc}", str(config_path or script_location)
            )
            return RevisionGraph(source=None, fingerprint="", errors=(problem,))
    _source_cache[(key, config_stat)] = source
    entries = _scan(source)
    fingerprint = hashlib.blake2b(repr((source, entries)).encode(), digest_size=8).hexdigest()
    with _cache_lock:
        cached = _graph_cache.get(key)
        if cached is not None and cached[0] == fingerprint:
            return cached[1]
        live, paths = set(entries), {entry[0] for entry in entries}
        for stale in [k for k in _file_cache if k[0] in paths and k not in live]:
            del _file_cache[stale]
        if store and stored is None:
            stored = graph_store.store_load(store)
        graph = graph_store.stored_graph(stored, source, fingerprint) if stored else None
        if graph is None:
            seeded = graph_store.seed_file_cache(stored, live, _file_cache) if stored else []
            graph = _build(source, fingerprint, [_read(entry) for entry in entries])
            if seeded and not graph.ok:  # report errors with the lines of a full read
                for entry in seeded:
                    _file_cache.pop(entry, None)
                graph = _build(source, fingerprint, [_read(entry) for entry in entries])
            if store and graph.ok:
                graph_store.store_write(store, graph, config_stat, entries)
        _graph_cache[key] = (fingerprint, graph)
        return graph


def _failed(source: ScriptSource, fingerprint: str, errors: list[GraphError]) -> RevisionGraph:
    return RevisionGraph(source=source, fingerprint=fingerprint, errors=tuple(errors))


def _revision_objects(
    facts: list[RevisionFileFacts | RevisionFileError],
) -> tuple[list[Revision], dict[str, RevisionFileFacts], list[GraphError]]:
    from alembic.script.revision import Revision, RevisionError

    errors: list[GraphError] = []
    revisions: list[Revision] = []
    by_id: dict[str, RevisionFileFacts] = {}
    for item in facts:
        if isinstance(item, RevisionFileError):
            errors.append(GraphError(item.problem, item.path, item.line))
            continue
        rev_id = item.revision
        if rev_id is None:
            legacy = _LEGACY_REV.match(Path(item.path).name)
            if not legacy:
                errors.append(GraphError("no `revision` variable in the file", item.path))
                continue
            rev_id = legacy.group(1)
        if rev_id in by_id:
            other = by_id[rev_id].path
            errors.append(
                GraphError(
                    f"revision id {rev_id!r} is defined twice (also in {other})",
                    item.path,
                    item.lines.get("revision"),
                )
            )
            continue
        try:
            revisions.append(
                Revision(
                    rev_id,
                    item.down_revision or None,
                    dependencies=item.depends_on or None,
                    branch_labels=item.branch_labels or None,
                )
            )
        except RevisionError as exc:
            errors.append(GraphError(str(exc), item.path, item.lines.get("down_revision")))
            continue
        by_id[rev_id] = item
    return revisions, by_id, errors


def _dangling(revisions: list[Revision], by_id: dict[str, RevisionFileFacts]) -> list[GraphError]:
    labels = {label for rev in revisions for label in rev.branch_labels}
    errors = []
    for rev in revisions:
        facts = by_id[rev.revision]
        for down in rev._versioned_down_revisions:
            if down not in by_id:
                errors.append(
                    GraphError(
                        f"down_revision {down!r} of revision {rev.revision!r} does not exist",
                        facts.path,
                        facts.lines.get("down_revision"),
                    )
                )
        for dep in facts.depends_on:
            if dep not in by_id and dep not in labels:
                errors.append(
                    GraphError(
                        f"depends_on {dep!r} of revision {rev.revision!r} does not exist",
                        facts.path,
                        facts.lines.get("depends_on"),
                    )
                )
    return errors


def _build(
    source: ScriptSource, fingerprint: str, facts: list[RevisionFileFacts | RevisionFileError]
) -> RevisionGraph:
    from alembic.script.revision import CycleDetected, RevisionError, RevisionMap

    revisions, by_id, errors = _revision_objects(facts)
    errors += _dangling(revisions, by_id) if not errors else []
    if errors:
        return _failed(source, fingerprint, errors)
    rev_map = RevisionMap(lambda: revisions)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            order = list(
                rev_map.iterate_revisions(
                    "heads", "base", inclusive=True, assert_relative_length=False
                )
            )
    except CycleDetected as exc:
        members = [m for m in exc.revisions if m in by_id] or list(by_id)
        first = by_id[members[0]]
        shown = ", ".join(members[:20])
        problem = f"{exc.kind.lower()} in the revision graph involving {shown}"
        error = GraphError(problem, first.path, first.lines.get("down_revision"))
        return _failed(source, fingerprint, [error])
    except (RevisionError, KeyError) as exc:
        return _failed(source, fingerprint, [GraphError(f"{type(exc).__name__}: {exc}")])
    position = {rev.revision: i for i, rev in enumerate(order)}
    infos = tuple(_info(rev, by_id[rev.revision], position) for rev in order)
    return RevisionGraph(
        source=source,
        fingerprint=fingerprint,
        revisions=infos,
        heads=tuple(rev_map.heads),
        real_heads=tuple(rev_map._real_heads),
        bases=tuple(rev_map.bases),
        branch_points=tuple(r.id for r in infos if r.is_branch_point),
        merge_points=tuple(r.id for r in infos if r.is_merge_point),
        _rev_map=rev_map,
        _by_id={r.id: r for r in infos},
        load_order=tuple(r.revision for r in revisions),
    )


def _info(rev: Revision, facts: RevisionFileFacts, position: dict[str, int]) -> RevisionInfo:
    return RevisionInfo(
        id=rev.revision,
        down_revisions=rev._versioned_down_revisions,
        branch_labels=facts.branch_labels,
        depends_on=facts.depends_on,
        message=facts.doc,
        longdoc=facts.longdoc,
        create_date=facts.create_date,
        path=facts.path,
        sha256=facts.sha256,
        children=tuple(sorted(rev.nextrev, key=lambda r: position.get(r, 0))),
        is_head=rev.is_head,
        is_base=rev.is_base,
        is_branch_point=rev.is_branch_point,
        is_merge_point=rev.is_merge_point,
        spans=facts.spans,
    )
