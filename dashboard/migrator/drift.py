"""Schema drift: the live schema of a target against the SQLAlchemy models.

Built on Alembic's autogenerate (``compare_metadata`` with type and server
default comparison, ``produce_migrations`` + ``render_python_code`` for the
draft revision), so differences are exactly what ``alembic revision
--autogenerate`` would see. Approach: *at head only* -- drift is meaningful
when the environment stands at the head the models describe; callers check
that and say so for environments that are not at head.

Public API (stable)::

    drift_compare(url, metadata, *, version_table, connect_timeout) -> DriftReport
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from alembic.autogenerate import produce_migrations, render_python_code
from alembic.runtime.migration import MigrationContext
from sqlalchemy import MetaData
from sqlalchemy.exc import SQLAlchemyError

from dashboard.migrator.status import TargetUnreachable, _engine, _reason

__all__ = [
    "AUTOGENERATE_BLIND_SPOTS",
    "DriftReport",
    "describe_diff",
    "draft_revision_file",
    "drift_compare",
]

AUTOGENERATE_BLIND_SPOTS = (
    "Autogenerate cannot see renames of tables or columns: it proposes a drop and an add.",
    "Some constraint changes are invisible (CHECK constraints, anonymous constraints, "
    "some unique constraints on SQLite).",
    "Changes to the members of an ENUM type and to sequences are not detected.",
    "Review every operation before committing the draft; data is not migrated for you.",
)


@dataclass(frozen=True)
class DriftReport:
    """``operations`` are readable lines, one per difference; empty means no drift."""

    operations: tuple[str, ...] = ()
    python: str = ""
    python_downgrade: str = ""
    raw: tuple[Any, ...] = field(default=(), repr=False)

    @property
    def has_drift(self) -> bool:
        return bool(self.operations)


def _name(obj: Any) -> str:
    table = getattr(obj, "table", None)
    if table is not None and getattr(obj, "name", None):
        return f"{table.name}.{obj.name}"
    return str(getattr(obj, "name", obj))


def describe_diff(diff: Any) -> list[str]:
    """Turn one ``compare_metadata`` entry into readable sentences."""
    if isinstance(diff, list):  # column modifications come grouped per column
        return [line for item in diff for line in describe_diff(item)]
    kind = diff[0]
    if kind in ("add_table", "remove_table"):
        verb = "missing in the database" if kind == "add_table" else "only in the database"
        return [f"table {diff[1].name} is {verb}"]
    if kind in ("add_column", "remove_column"):
        verb = "missing in the database" if kind == "add_column" else "only in the database"
        return [f"column {diff[2]}.{diff[3].name} is {verb}"]
    if kind.startswith("modify_"):
        _, _schema, table, column, _info, db_value, model_value = diff
        what = kind.removeprefix("modify_").replace("_", " ")
        return [
            f"{table}.{column}: {what} is {db_value!r} in the database, {model_value!r} in models"
        ]
    if kind.startswith(("add_", "remove_")):
        obj = diff[1]
        thing = kind.split("_", 1)[1].replace("_", " ")
        verb = "missing in the database" if kind.startswith("add_") else "only in the database"
        return [f"{thing} {_name(obj)} is {verb}"]
    return [repr(diff)]


def drift_compare(
    url: str,
    metadata: MetaData | Sequence[MetaData],
    *,
    version_table: str = "alembic_version",
    connect_timeout: float = 3.0,
) -> DriftReport:
    """Compare the live schema at ``url`` with ``metadata``.

    Raises ``TargetUnreachable`` (password-free reason) when the database
    cannot be read. The version table is ignored.
    """

    def include_object(obj: Any, name: str | None, kind: str, reflected: bool, other: Any) -> bool:
        return not (kind == "table" and name == version_table)

    opts = {
        "compare_type": True,
        "compare_server_default": True,
        "include_object": include_object,
        "target_metadata": metadata,
    }
    engine = _engine(url, connect_timeout=connect_timeout)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts=opts)
            # One comparison: Alembic's compare_metadata is exactly this
            # produce_migrations(...).upgrade_ops.as_diffs() (reflection is the cost).
            script = produce_migrations(context, metadata)
            assert script.upgrade_ops is not None
            diffs = script.upgrade_ops.as_diffs()
    except SQLAlchemyError as exc:
        raise TargetUnreachable(_reason(exc, url)) from None
    finally:
        engine.dispose()
    operations = tuple(line for diff in diffs for line in describe_diff(diff))
    if not operations:
        return DriftReport(raw=tuple(diffs))
    return DriftReport(
        operations=operations,
        python=render_python_code(script.upgrade_ops),
        python_downgrade=render_python_code(script.downgrade_ops),
        raw=tuple(diffs),
    )


def draft_revision_file(*, report: DriftReport, message: str = "fix schema drift") -> str:
    """A draft revision module for ``report``, to download and review (revision ids left blank)."""
    blind = "\n".join(f"#   - {line}" for line in AUTOGENERATE_BLIND_SPOTS)
    # render_python_code indents every line but the first (the template's job).
    upgrade = "    " + report.python.strip("\n") if report.python else "    pass"
    downgrade = (
        "    " + report.python_downgrade.strip("\n") if report.python_downgrade else "    pass"
    )
    return (
        f'"""{message}\n\nDraft generated by the migrations dashboard from detected drift.\n"""\n'
        f"# Review before use. What autogenerate cannot see:\n{blind}\n\n"
        "import sqlalchemy as sa\nfrom alembic import op\n\n"
        'revision = "CHANGE_ME"\ndown_revision = "CHANGE_ME"\n'
        "branch_labels = None\ndepends_on = None\n\n\n"
        f"def upgrade() -> None:\n{upgrade}\n\n\n"
        f"def downgrade() -> None:\n{downgrade}\n"
    )
