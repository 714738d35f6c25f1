"""Generated Alembic histories for the graph tests and ``benchmarks/graph_bench.py``.

Every history is written as real revision files in Alembic's own template
format, so Alembic's ``ScriptDirectory`` can load them as the reference.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

RevIds = str | tuple[str, ...] | None

_TEMPLATE = '''"""{message}

Revision ID: {rev}
Revises: {revises}
Create Date: 2024-01-{day:02d} 12:00:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
{imports}

# revision identifiers, used by Alembic.
revision: str = {rev!r}
down_revision: Union[str, Sequence[str], None] = {down!r}
branch_labels: Union[str, Sequence[str], None] = {labels!r}
depends_on: Union[str, Sequence[str], None] = {depends!r}


def upgrade() -> None:
    {upgrade}


def downgrade() -> None:
    {downgrade}
'''


def write_revision(
    folder: Path,
    rev: str,
    down: RevIds,
    *,
    message: str | None = None,
    labels: RevIds = None,
    depends_on: RevIds = None,
    imports: Sequence[str] = (),
    upgrade: str | None = None,
    downgrade: str | None = None,
    order: int = 0,
) -> Path:
    """Write one revision file; ``order`` prefixes the file name (Alembic sorts by name)."""
    folder.mkdir(parents=True, exist_ok=True)
    message = message or f"create table t_{rev}"
    revises = ", ".join(down) if isinstance(down, tuple) else (down or "")
    text = _TEMPLATE.format(
        message=message,
        rev=rev,
        revises=revises,
        day=order % 28 + 1,
        imports="\n".join(imports),
        down=down,
        labels=labels,
        depends=depends_on,
        upgrade=upgrade
        or f'op.create_table("t_{rev}", sa.Column("id", sa.Integer, primary_key=True))',
        downgrade=downgrade or f'op.drop_table("t_{rev}")',
    )
    path = folder / f"{order:05d}_{rev}_{'_'.join(message.split())[:30].lower()}.py"
    path.write_text(text, encoding="utf-8")
    return path


def write_ini(root: Path, script_location: str, version_locations: str | None = None) -> Path:
    """An alembic.ini naming ``script_location`` (and optional space-separated locations)."""
    lines = ["[alembic]", f"script_location = {script_location}"]
    if version_locations:
        lines += ["path_separator = space", f"version_locations = {version_locations}"]
    lines += ["sqlalchemy.url = sqlite://", ""]
    ini = root / "alembic.ini"
    ini.write_text("\n".join(lines), encoding="utf-8")
    return ini


def rev_id(rng: random.Random) -> str:
    """A 12-hex-digit revision id, like Alembic's."""
    return f"{rng.getrandbits(48):012x}"


def linear_history(folder: Path, count: int, *, seed: int = 1) -> list[str]:
    """``count`` revisions in one line; returns ids oldest first."""
    rng = random.Random(seed)
    ids: list[str] = []
    for i in range(count):
        ids.append(rev_id(rng))
        write_revision(folder, ids[-1], ids[-2] if i else None, order=i)
    return ids


def branchy_history(
    folder: Path, count: int, *, seed: int = 7, open_heads: int = 1, labels_every: int = 0
) -> list[str]:
    """``count`` revisions with forks and merges; ends with ``open_heads`` heads.

    Forks happen on ~6% of steps and merges on ~6% (while several tips are
    open), so 2,000 revisions carry roughly a hundred merges.
    """
    rng = random.Random(seed)
    tips: list[str] = []
    ids: list[str] = []

    def add(down: RevIds, **kw: object) -> str:
        rid = rev_id(rng)
        write_revision(folder, rid, down, order=len(ids), **kw)  # type: ignore[arg-type]
        ids.append(rid)
        return rid

    tips.append(add(None))
    while len(ids) < count - max(len(tips) - open_heads, 0):
        roll = rng.random()
        if roll < 0.06 and len(tips) >= 2:
            a, b = rng.sample(tips, 2)
            tips.remove(a)
            tips.remove(b)
            tips.append(add((a, b), message=f"merge {a} and {b}"))
        elif roll < 0.12 and len(tips) < 6:
            parent = rng.choice(tips)
            tips.remove(parent)
            label = f"line{len(ids)}" if labels_every and len(ids) % labels_every == 0 else None
            tips += [add(parent, labels=label), add(parent)]
        else:
            i = rng.randrange(len(tips))
            tips[i] = add(tips[i])
    while len(tips) < open_heads:
        tips.append(add(rng.choice(ids[:-1])))
    while len(tips) > open_heads:
        a, b = tips[0], tips[1]
        tips[:2] = [add((a, b), message=f"merge {a} and {b}")]
    return ids


BAD_KINDS = ("missing_folder", "syntax_error", "duplicate_id", "dangling_down", "cycle")


def write_bad_history(root: Path, kind: str) -> tuple[Path, str, str | None, int | None]:
    """A script directory under ``root`` broken in one way.

    Returns ``(script_location, expected problem fragment, expected file name
    or None, expected line or None)``.
    """
    versions = root / "versions"
    if kind == "missing_folder":
        return root / "does-not-exist", "not found", None, None
    write_revision(versions, "aaa000000001", None, order=0)
    if kind == "syntax_error":
        path = write_revision(versions, "aaa000000002", "aaa000000001", order=1)
        text = path.read_text().replace("def downgrade() -> None:", "def downgrade( -> None:")
        path.write_text(text)
        line = text.splitlines().index("def downgrade( -> None:") + 1
        return root, "syntax error", path.name, line
    if kind == "duplicate_id":
        write_revision(versions, "aaa000000002", "aaa000000001", order=1)
        path = write_revision(versions, "aaa000000002", "aaa000000001", order=2, message="again")
        return root, "defined twice", path.name, 15
    if kind == "dangling_down":
        path = write_revision(versions, "aaa000000002", "fffffffffff9", order=1)
        return root, "'fffffffffff9'", path.name, 16
    if kind == "cycle":
        write_revision(versions, "aaa000000002", "aaa000000001", order=1)
        path = write_revision(versions, "ccc000000001", "ccc000000002", order=2)
        write_revision(versions, "ccc000000002", "ccc000000001", order=3)
        return root, "cycle", path.name, 16
    raise ValueError(kind)
