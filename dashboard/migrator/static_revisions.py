"""Read an Alembic revision file without executing it.

Contract: :func:`read_revision_file` returns the module-level ``revision``,
``down_revision``, ``branch_labels`` and ``depends_on`` values, the module
docstring (split into Alembic's ``doc``/``longdoc``), the ``Create Date`` line,
the SHA-256 of the file bytes and the line span of ``upgrade()`` and
``downgrade()``. It never imports the file, so it works when the file imports
packages that are not installed here.

Why hand-written: Alembic only knows how to *execute* a revision file. The
static reader follows the same rules as Alembic's ``Script``: the value that
counts is the last module-level assignment of each name; ``doc`` is the first
paragraph of the stripped docstring. When one of the four names is assigned
something that is not a literal (``down_revision = OTHER``), static reading
cannot be exact, and :class:`NotStatic` tells the caller to fall back to
Alembic's own loader for that file.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

_IDENTIFIERS = ("revision", "down_revision", "branch_labels", "depends_on")
_CREATE_DATE_RE = re.compile(r"^\s*Create Date:\s*(.+?)\s*$", re.MULTILINE)


class RevisionFileError(Exception):
    """A revision file that cannot be read: carries the path, line and problem."""

    def __init__(self, problem: str, *, path: str, line: int | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.path = path
        self.line = line


class NotStatic(Exception):  # noqa: N818 - a signal, not an error for the user
    """An identifier is computed at import time; read the file with Alembic instead."""


@dataclass(frozen=True, slots=True)
class RevisionFileFacts:
    """What one revision file declares, read statically.

    ``down_revision``/``depends_on``/``branch_labels`` are normalised to tuples;
    ``lines`` maps each identifier and ``upgrade``/``downgrade`` to its first
    line (1-based) and ``spans`` maps the two functions to ``(first, last)``.
    """

    path: str
    revision: str | None
    down_revision: tuple[str, ...]
    branch_labels: tuple[str, ...]
    depends_on: tuple[str, ...]
    longdoc: str
    create_date: str | None
    sha256: str
    lines: dict[str, int]
    spans: dict[str, tuple[int, int]]

    @property
    def doc(self) -> str:
        """The first paragraph of the docstring: Alembic's ``Script.doc``."""
        return re.split("\n\n", self.longdoc)[0]


def _as_tuple(value: object, *, name: str, path: str, line: int) -> tuple[str, ...]:
    if value is None or value == ():
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list | tuple | set | frozenset) and all(
        isinstance(item, str) for item in value
    ):
        return tuple(value)
    raise RevisionFileError(
        f"`{name}` must be a string, a tuple of strings or None, not {value!r}",
        path=path,
        line=line,
    )


def _assigned_names(node: ast.stmt) -> tuple[list[str], ast.expr | None]:
    """Names bound by a module-level statement and the literal candidate value."""
    if isinstance(node, ast.Assign):
        names = [t.id for t in node.targets if isinstance(t, ast.Name)]
        if any(not isinstance(t, ast.Name) for t in node.targets):
            names += [n.id for t in node.targets for n in ast.walk(t) if isinstance(n, ast.Name)]
            return names, None
        return names, node.value
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return [node.target.id], node.value
    if isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
        return [node.target.id], None
    return [], None


def _collect(tree: ast.Module, *, path: str) -> tuple[dict[str, object], dict[str, int]]:
    values: dict[str, object] = {}
    lines: dict[str, int] = {}
    for node in tree.body:
        names, value_node = _assigned_names(node)
        for name in names:
            if name not in _IDENTIFIERS:
                continue
            if value_node is None:
                raise NotStatic(f"{path}: `{name}` is computed")
            try:
                values[name] = ast.literal_eval(value_node)
            except ValueError:
                raise NotStatic(f"{path}: `{name}` is not a literal")
            lines[name] = node.lineno
    return values, lines


def _function_spans(tree: ast.Module) -> dict[str, tuple[int, int]]:
    spans: dict[str, tuple[int, int]] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name in (
            "upgrade",
            "downgrade",
        ):
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            spans[node.name] = (first, node.end_lineno or node.lineno)
    return spans


def _values_by_import(path: str) -> dict[str, object]:
    """Alembic's own way: execute the file; only for computed identifiers."""
    from alembic.util import load_python_file

    try:
        module = load_python_file(Path(path).parent, Path(path).name)
    except Exception as exc:  # the file's own code failed: report, don't crash
        raise RevisionFileError(
            "identifiers are computed at import time and importing failed: "
            f"{type(exc).__name__}: {exc}",
            path=path,
        ) from exc
    return {name: getattr(module, name) for name in _IDENTIFIERS if hasattr(module, name)}


def read_revision_file(path: str | Path) -> RevisionFileFacts:
    """Read one revision file statically.

    Raises :class:`RevisionFileError` for an unreadable file or a syntax error
    (with its line). When an identifier is computed (not a literal) the file is
    executed with Alembic's loader instead, as ``alembic`` itself would.
    A file without a ``revision`` variable yields ``revision=None``; the caller
    decides (Alembic falls back to a legacy file-name rule, then errors).
    """
    path_str = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise RevisionFileError(f"cannot read file: {exc.strerror}", path=path_str) from exc
    try:
        tree = ast.parse(data, filename=path_str)
    except SyntaxError as exc:
        raise RevisionFileError(f"syntax error: {exc.msg}", path=path_str, line=exc.lineno) from exc
    except ValueError as exc:  # e.g. null bytes
        raise RevisionFileError(f"cannot parse file: {exc}", path=path_str) from exc
    try:
        values, lines = _collect(tree, path=path_str)
    except NotStatic:
        values, lines = _values_by_import(path_str), {}
    if "revision" not in values:  # perhaps set in a block we do not follow: ask Alembic's way
        # if importing fails, the caller applies Alembic's legacy file-name rule
        with contextlib.suppress(RevisionFileError):
            values, lines = _values_by_import(path_str), {}
    docstring = ast.get_docstring(tree, clean=False) or ""
    longdoc = docstring.strip()
    match = _CREATE_DATE_RE.search(longdoc)
    revision = values.get("revision")
    if revision is not None and not isinstance(revision, str):
        raise RevisionFileError(
            f"`revision` must be a string, not {revision!r}",
            path=path_str,
            line=lines.get("revision"),
        )
    tuples = {
        name: _as_tuple(values.get(name), name=name, path=path_str, line=lines.get(name, 1))
        for name in ("down_revision", "branch_labels", "depends_on")
    }
    return RevisionFileFacts(
        path=path_str,
        revision=revision,
        down_revision=tuples["down_revision"],
        branch_labels=tuples["branch_labels"],
        depends_on=tuples["depends_on"],
        longdoc=longdoc,
        create_date=match.group(1) if match else None,
        sha256=hashlib.sha256(data).hexdigest(),
        lines=lines,
        spans=_function_spans(tree),
    )


def function_source(path: str | Path, span: tuple[int, int] | None) -> str:
    """The source text of lines ``span`` (inclusive, 1-based) of ``path``; '' if none."""
    if span is None:
        return ""
    text = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    return "\n".join(text[span[0] - 1 : span[1]])
