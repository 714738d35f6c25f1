"""Load an Alembic project so that the code that runs is byte for byte the code that was approved.

``ScriptDirectory.from_config`` imports every revision file through
``importlib`` (which may use a ``__pycache__`` file whose source changed
within the same second at the same size) and ``command.upgrade`` reloads the
files and ``env.py`` from disk again: a file that lands between a check and a
run would be applied unreviewed. :func:`load_pinned_script` closes both gaps:

1. it loads the script directory once (its revision map, for the graph and
   the plan);
2. for every revision of the pinned plan it reads the file's bytes once,
   compares their SHA-256 with the pinned hash, compiles *those bytes* and
   puts the resulting module in place of the one Alembic imported (so
   ``upgrade()``/``downgrade()`` are the hashed code), refusing when the
   module's ``revision``/``down_revision``/``depends_on``/``branch_labels``
   differ from what the revision map was built from;
3. it reads ``env.py``'s bytes once, compares their hash with the pinned one
   and keeps them; :func:`dashboard.migrator.runner.run_plan` executes those
   bytes instead of letting Alembic read the file again.

Hand-written because it is the product's promise ("exactly what was
approved"); Alembic has no API that runs given module objects. Never imports
Django.
"""

from __future__ import annotations

import hashlib
import threading
import types
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from alembic.config import Config
from alembic.script import Script, ScriptDirectory
from alembic.util import CommandError

__all__ = ["PinMismatch", "PinnedScript", "env_py_sha256", "load_pinned_script"]


class PinMismatch(Exception):
    """Pinned files differ from the files on disk; ``changed`` names them (revisions, ``env.py``)."""

    def __init__(self, changed: list[str]) -> None:
        super().__init__(f"files changed since approval: {', '.join(changed)}")
        self.changed = changed


@dataclass(frozen=True)
class PinnedScript:
    """A script directory whose plan revisions run the hashed bytes, and env.py's hashed bytes."""

    script: ScriptDirectory
    env_path: str
    env_source: bytes


def env_py_sha256(script: ScriptDirectory) -> str:
    """SHA-256 of the project's ``env.py`` (pinned on a request next to the revision files)."""
    return hashlib.sha256(Path(script.env_py_location).read_bytes()).hexdigest()


def _same_identity(original: Script, fresh: types.ModuleType) -> bool:
    def as_tuple(value: object) -> tuple[str, ...]:
        if value is None:
            return ()
        if isinstance(value, str):
            return (value,)
        return tuple(value)  # type: ignore[arg-type]

    return (
        getattr(fresh, "revision", None) == original.revision
        and as_tuple(getattr(fresh, "down_revision", None))
        == as_tuple(original.module.down_revision)
        and as_tuple(getattr(fresh, "depends_on", None))
        == as_tuple(getattr(original.module, "depends_on", None))
        and as_tuple(getattr(fresh, "branch_labels", None))
        == as_tuple(getattr(original.module, "branch_labels", None))
    )


def _module_from(source: bytes, path: str, name: str) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__file__ = path
    exec(compile(source, path, "exec"), module.__dict__)  # noqa: S102 -- the approved, hashed revision file
    return module


def load_pinned_script(
    config: Config, *, revision_hashes: Mapping[str, str], env_sha256: str | None
) -> PinnedScript:
    """The project of ``config`` with the plan's revisions bound to their pinned bytes.

    ``revision_hashes`` maps each revision of the plan to its pinned SHA-256;
    ``env_sha256`` is env.py's pinned hash (``None`` or ``""``: not pinned, for
    requests made before env.py was pinned; its current bytes are used).
    Raises :class:`PinMismatch` naming every file that differs or is gone,
    and ``CommandError`` when the directory cannot be loaded at all.
    """
    script = ScriptDirectory.from_config(config)
    signature = _signature(script, revision_hashes, env_sha256)
    cached = _cached(signature, revision_hashes, env_sha256)
    if cached is not None:
        return cached
    pinned = _load(script, revision_hashes=revision_hashes, env_sha256=env_sha256)
    with _CACHE_LOCK:
        _CACHE[signature] = pinned
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return pinned


# A worker runs the same plan on target after target (a fleet): the loaded
# project is kept while no file of it changed on disk (name, size, mtime of
# every .py of its version locations and env.py), and the plan's files are
# hashed again on every use, so a changed file is still refused.
_CACHE: OrderedDict[tuple[object, ...], PinnedScript] = OrderedDict()
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 8


def _signature(
    script: ScriptDirectory, revision_hashes: Mapping[str, str], env_sha256: str | None
) -> tuple[object, ...]:
    files = []
    for location in {script.dir, *script._version_locations}:
        folder = Path(location)
        if folder.is_dir():
            for path in folder.rglob("*.py"):
                if "__pycache__" not in path.parts:
                    stat = path.stat()
                    files.append((str(path), stat.st_size, stat.st_mtime_ns))
    return (
        script.dir,
        tuple(sorted(files)),
        tuple(sorted(revision_hashes.items())),
        env_sha256 or "",
    )


def _cached(
    signature: tuple[object, ...], revision_hashes: Mapping[str, str], env_sha256: str | None
) -> PinnedScript | None:
    with _CACHE_LOCK:
        pinned = _CACHE.get(signature)
    if pinned is None:
        return None
    for revision_id, digest in revision_hashes.items():
        revision = pinned.script.revision_map.get_revision(revision_id)
        path = getattr(revision, "path", None)
        if path is None or hashlib.sha256(Path(path).read_bytes()).hexdigest() != digest:
            return None
    env_source = Path(pinned.env_path).read_bytes()
    expected = env_sha256 or hashlib.sha256(pinned.env_source).hexdigest()
    if hashlib.sha256(env_source).hexdigest() != expected:
        return None
    return pinned


def _load(
    script: ScriptDirectory, *, revision_hashes: Mapping[str, str], env_sha256: str | None
) -> PinnedScript:
    revision_map = script.revision_map  # imports every file once
    changed: list[str] = []
    for revision_id, pinned in revision_hashes.items():
        try:
            revision = revision_map.get_revision(revision_id)
        except CommandError:
            revision = None
        if revision is None or not isinstance(revision, Script):
            changed.append(revision_id)
            continue
        source = Path(revision.path).read_bytes()
        if hashlib.sha256(source).hexdigest() != pinned:
            changed.append(revision_id)
            continue
        fresh = _module_from(source, revision.path, f"pinned_{revision_id}")
        if not _same_identity(revision, fresh):
            changed.append(revision_id)
            continue
        revision.module = fresh
    env_path = script.env_py_location
    env_source = Path(env_path).read_bytes()
    if env_sha256 and hashlib.sha256(env_source).hexdigest() != env_sha256:
        changed.append("env.py")
    if changed:
        raise PinMismatch(changed)
    return PinnedScript(script=script, env_path=env_path, env_source=env_source)
