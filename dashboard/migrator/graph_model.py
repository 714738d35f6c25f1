"""The values of a loaded revision history (no Django, no Alembic at import).

Contract: :class:`GraphError`, :class:`ScriptSource`, :class:`RevisionInfo` and
:class:`RevisionGraph` are plain dataclasses; :data:`INFO_FIELDS` names the
fields of a :class:`RevisionInfo` in order (what the disk store keeps).
:mod:`dashboard.migrator.graph` builds them and
:mod:`dashboard.migrator.graph_store` writes and reads them; this module
imports neither, so the two never import each other. Alembic is imported only
when a graph is asked for its ``revision_map`` or ``script_directory()``.
"""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # importing alembic costs ~0.3 s; a graph read from disk needs none of it
    from alembic.script import ScriptDirectory
    from alembic.script.revision import RevisionMap

__all__ = ["INFO_FIELDS", "GraphError", "RevisionGraph", "RevisionInfo", "ScriptSource"]


@dataclass(frozen=True, slots=True)
class GraphError:
    """One reason the graph could not be loaded; ``str()`` reads ``path:line: problem``."""

    problem: str
    path: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        where = self.path or ""
        if self.path and self.line:
            where += f":{self.line}"
        return f"{where}: {self.problem}" if where else self.problem


@dataclass(frozen=True, slots=True)
class ScriptSource:
    """Where the revisions live: resolved absolute folders plus the config they came from."""

    script_dir: str | None
    version_locations: tuple[str, ...]
    recursive: bool = False
    config_path: str | None = None
    prepend_sys_path: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RevisionInfo:
    """Facts about one revision. ``children`` are the revisions whose down revision it is."""

    id: str
    down_revisions: tuple[str, ...]
    branch_labels: tuple[str, ...]
    depends_on: tuple[str, ...]
    message: str
    longdoc: str
    create_date: str | None
    path: str
    sha256: str
    children: tuple[str, ...]
    is_head: bool
    is_base: bool
    is_branch_point: bool
    is_merge_point: bool
    spans: dict[str, tuple[int, int]] = field(default_factory=dict)


INFO_FIELDS = tuple(RevisionInfo.__dataclass_fields__)


@dataclass(eq=False)
class RevisionGraph:
    """A loaded history; see the module docstring for the contract."""

    source: ScriptSource | None
    fingerprint: str
    revisions: tuple[RevisionInfo, ...] = ()
    heads: tuple[str, ...] = ()
    real_heads: tuple[str, ...] = ()
    bases: tuple[str, ...] = ()
    branch_points: tuple[str, ...] = ()
    merge_points: tuple[str, ...] = ()
    errors: tuple[GraphError, ...] = ()
    _rev_map: RevisionMap | None = field(default=None, repr=False)
    _by_id: dict[str, RevisionInfo] = field(default_factory=dict, repr=False)
    _script: ScriptDirectory | None = field(default=None, repr=False)
    load_order: tuple[str, ...] = field(default=(), repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def ok(self) -> bool:
        """True when the history loaded without errors (it may still be empty)."""
        return not self.errors

    @property
    def revision_map(self) -> RevisionMap | None:
        """Alembic's RevisionMap of these revisions (None if the load failed)."""
        if not self.ok:
            return None
        if self._rev_map is None:
            from alembic.script.revision import Revision, RevisionMap

            revisions = [
                Revision(
                    r.id,
                    r.down_revisions or None,
                    dependencies=r.depends_on or None,
                    branch_labels=r.branch_labels or None,
                )
                for r in (self._by_id[i] for i in self.load_order)
            ]
            self._rev_map = RevisionMap(lambda: revisions)
        return self._rev_map

    def get(self, revision_id: str) -> RevisionInfo | None:
        """The revision with exactly this id, or None."""
        return self._by_id.get(revision_id)

    def script_directory(self) -> ScriptDirectory | None:
        """Alembic's ScriptDirectory for the same folders (None if the load failed).

        Created once per graph; adds missing ``prepend_sys_path`` entries once.
        """
        if not self.ok or self.source is None:
            return None
        with self._lock:
            if self._script is None:
                self._script = _script_directory(self.source)
            return self._script


def _script_directory(source: ScriptSource) -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    for entry in reversed(source.prepend_sys_path):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    return ScriptDirectory(
        source.script_dir or source.version_locations[0],
        version_locations=list(source.version_locations),
        recursive_version_locations=source.recursive,
    )
