"""Keep loaded revision graphs on disk between processes (no Django here).

Contract: a graph is stored as JSON under ``cache_dir`` with its fingerprint,
the stat of its ini and the resolved folders; :func:`stored_graph` returns it
only for exactly the same fingerprint, and :func:`seed_file_cache` lets a
changed history re-read only the files whose (path, mtime, size) changed.
JSON, not pickle: the cache directory never holds anything executable.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from dashboard.migrator.graph_model import INFO_FIELDS, RevisionGraph, RevisionInfo, ScriptSource
from dashboard.migrator.static_revisions import RevisionFileFacts

_STORE_FORMAT = 1
_STORED_LISTS = ("heads", "real_heads", "bases", "branch_points", "merge_points", "load_order")


def store_path(cache_dir: str | os.PathLike[str], key: tuple) -> Path:
    name = hashlib.blake2b(repr(key).encode(), digest_size=8).hexdigest()
    return Path(cache_dir) / f"revision-graph-{name}.json"


def store_write(
    path: Path, graph: RevisionGraph, config_stat: tuple, entries: list[tuple[str, int, int]]
) -> None:
    """Write the graph as JSON atomically; a cache that cannot be written is skipped."""
    source = graph.source
    data: dict[str, object] = {
        "format": _STORE_FORMAT,
        "files": entries,
        "fingerprint": graph.fingerprint,
        "config_stat": list(config_stat),
        "source": {f: getattr(source, f) for f in ScriptSource.__dataclass_fields__},
        "revisions": [{f: getattr(r, f) for f in INFO_FIELDS} for r in graph.revisions],
    }
    data.update({name: getattr(graph, name) for name in _STORED_LISTS})
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass


def store_load(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("format") == _STORE_FORMAT else None


def stored_source(stored: dict | None, config_stat: tuple) -> ScriptSource | None:
    """The resolved folders kept with a stored graph, while the ini is unchanged."""
    if not stored or stored.get("config_stat") != list(config_stat):
        return None
    fields = dict(stored["source"])
    fields["version_locations"] = tuple(fields["version_locations"])
    fields["prepend_sys_path"] = tuple(fields["prepend_sys_path"])
    return ScriptSource(**fields)


def seed_file_cache(
    stored: dict, live: set[tuple[str, int, int]], file_cache: dict
) -> list[tuple[str, int, int]]:
    """Reuse the stored facts of files that did not change since the graph was stored."""
    unchanged = {entry[0]: entry for entry in map(tuple, stored.get("files", ())) if entry in live}
    seeded = []
    for item in stored.get("revisions", ()):
        entry = unchanged.get(item["path"])
        if entry is None or entry in file_cache:
            continue
        file_cache[entry] = RevisionFileFacts(
            path=item["path"],
            revision=item["id"],
            down_revision=tuple(item["down_revisions"]),
            branch_labels=tuple(item["branch_labels"]),
            depends_on=tuple(item["depends_on"]),
            longdoc=item["longdoc"],
            create_date=item["create_date"],
            sha256=item["sha256"],
            lines={},
            spans={name: tuple(span) for name, span in item["spans"].items()},
        )
        seeded.append(entry)
    return seeded


def stored_graph(stored: dict, source: ScriptSource, fingerprint: str) -> RevisionGraph | None:
    """The stored graph if it was written for exactly this fingerprint, else None."""
    if stored.get("fingerprint") != fingerprint:
        return None
    infos = []
    for item in stored["revisions"]:
        for name in ("down_revisions", "branch_labels", "depends_on", "children"):
            item[name] = tuple(item[name])
        item["spans"] = {name: tuple(span) for name, span in item["spans"].items()}
        infos.append(RevisionInfo(**item))
    return RevisionGraph(
        source=source,
        fingerprint=fingerprint,
        revisions=tuple(infos),
        _by_id={r.id: r for r in infos},
        **{name: tuple(stored[name]) for name in _STORED_LISTS},
    )
