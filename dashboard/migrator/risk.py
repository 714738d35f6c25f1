"""Risk of a plan's SQL: squawk findings plus a plain-language summary per revision.

Linting is delegated to squawk (``squawk-cli``), the maintained PostgreSQL
migration linter, run with ``--reporter json`` on each revision's PostgreSQL
rendering; findings are mapped back to the statement and revision they belong
to. Only the short plain-language summary (destructive, locks writes, data
migration, not reversible) is derived here, from the statements themselves,
because no library states those facts per revision in words a reviewer reads.

Public API (stable)::

    lint_plan(revision_sqls, *, script=None, config_path=None) -> list[RevisionRisk]
    lint_revision_sql(revision_sqls, *, config_path=None) -> dict[str, list[Finding]]
    revision_reversibility(script, revision) -> str | None
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from alembic.script import ScriptDirectory

from dashboard.migrator.sql import RevisionSQL, SQLRenderError, render_revision_sql

__all__ = [
    "Finding",
    "LintError",
    "RevisionRisk",
    "Statement",
    "lint_plan",
    "lint_revision_sql",
    "revision_reversibility",
    "split_statements",
]

SQUAWK_DOCS = "https://squawkhq.com/docs/{rule}"
SQUAWK_TIMEOUT = 60


class LintError(Exception):
    """squawk is missing or failed; the message says why."""


@dataclass(frozen=True)
class Statement:
    text: str
    first_line: int  # 0-based, as squawk reports lines
    last_line: int


@dataclass(frozen=True)
class Finding:
    revision: str
    rule: str
    level: str
    message: str
    help: str
    statement: str
    line: int

    @property
    def doc_url(self) -> str:
        return SQUAWK_DOCS.format(rule=self.rule)


@dataclass
class RevisionRisk:
    """Everything a reviewer should know about one revision of a plan."""

    revision: str
    findings: list[Finding] = field(default_factory=list)
    destructive: list[str] = field(default_factory=list)
    locks_writes: list[str] = field(default_factory=list)
    data_migration: list[str] = field(default_factory=list)
    not_reversible: str | None = None
    # Why squawk could not lint this revision ("" when it did). A plan that
    # could not be linted is treated as destructive until it is.
    lint_unavailable: str = ""

    @property
    def needs_care(self) -> bool:
        """Destructive, or not linted: the approver must confirm they read the SQL."""
        return bool(self.destructive or self.lint_unavailable)

    @property
    def badges(self) -> list[str]:
        """Short labels in order of severity, for list views."""
        labels = []
        if self.destructive:
            labels.append("destructive")
        if self.lint_unavailable:
            labels.append("lint unavailable")
        if self.locks_writes:
            labels.append("locks writes")
        if self.data_migration:
            labels.append("data migration")
        if self.not_reversible:
            labels.append("not reversible")
        return labels

    @property
    def summary(self) -> list[str]:
        lines = [*self.destructive, *self.locks_writes, *self.data_migration]
        if self.not_reversible:
            lines.append(self.not_reversible)
        return lines


_TRANSACTION = re.compile(r"^\s*(BEGIN|COMMIT|ROLLBACK)\s*;\s*$", re.IGNORECASE)


def split_statements(sql: str) -> list[Statement]:
    """Split Alembic's offline output into statements with their line span.

    Alembic terminates every statement with ``;`` at the end of a line and
    separates statements by a blank line; comments (``-- Running ...``) and
    transaction control are skipped.
    """
    statements: list[Statement] = []
    buffer: list[str] = []
    start = 0
    for number, line in enumerate(sql.splitlines()):
        stripped = line.strip()
        if not buffer and (not stripped or stripped.startswith("--")):
            continue
        if not buffer:
            start = number
        buffer.append(line)
        if stripped.endswith(";"):
            text = "\n".join(buffer).strip()
            if not _TRANSACTION.match(text):
                statements.append(Statement(text=text, first_line=start, last_line=number))
            buffer = []
    if buffer:
        statements.append(Statement("\n".join(buffer).strip(), start, start + len(buffer) - 1))
    return statements


def _squawk_binary() -> str:
    candidate = Path(sys.executable).with_name("squawk")
    if candidate.exists():
        return str(candidate)
    found = shutil.which("squawk")
    if not found:
        raise LintError("squawk is not installed (pip install squawk-cli)")
    return found


def _for_squawk(sql: str) -> str:
    """Blank out BEGIN/COMMIT lines (keeping line numbers): squawk assumes a transaction."""
    return "\n".join("" if _TRANSACTION.match(line) else line for line in sql.splitlines())


def lint_revision_sql(
    revision_sqls: Sequence[RevisionSQL],
    *,
    config_path: str | Path | None = None,
    version_table: str = "alembic_version",
) -> dict[str, list[Finding]]:
    """Run squawk once over every revision's PostgreSQL SQL; findings keyed by revision.

    ``config_path`` is a ``.squawk.toml`` (rules the team accepts are excluded
    there). Raises ``LintError`` when squawk cannot run or its output is not JSON.
    """
    result: dict[str, list[Finding]] = {item.revision: [] for item in revision_sqls}
    if not revision_sqls:
        return result
    with tempfile.TemporaryDirectory(prefix="squawk-") as tmp:
        files: dict[str, RevisionSQL] = {}
        for index, item in enumerate(revision_sqls):
            path = Path(tmp) / f"{index:04d}_{item.revision}.sql"
            path.write_text(_for_squawk(item.sql), encoding="utf-8")
            files[str(path)] = item
        command = [_squawk_binary(), "--reporter", "json", "--assume-in-transaction"]
        if config_path and Path(config_path).exists():
            command += ["--config", str(Path(config_path).resolve())]
        try:
            done = subprocess.run(
                [*command, *files],
                capture_output=True,
                text=True,
                timeout=SQUAWK_TIMEOUT,
                cwd=tmp,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise LintError(f"squawk did not run: {exc}") from None
        if done.returncode not in (0, 1) or (done.returncode == 1 and not done.stdout.strip()):
            raise LintError(f"squawk failed: {(done.stderr or done.stdout).strip()[:500]}")
        try:
            raw = json.loads(done.stdout or "[]")
        except json.JSONDecodeError:
            raise LintError(
                f"squawk failed: {(done.stderr or done.stdout).strip()[:500]}"
            ) from None
    statements = {name: split_statements(item.sql) for name, item in files.items()}
    for entry in raw:
        item = files.get(entry.get("file", ""))
        if item is None:
            continue
        line = int(entry.get("line", 0))
        owner = next(
            (s for s in statements[entry["file"]] if s.first_line <= line <= s.last_line), None
        )
        if owner is not None and version_table in owner.text:
            continue  # Alembic's own bookkeeping table is not the team's schema
        result[item.revision].append(
            Finding(
                revision=item.revision,
                rule=entry.get("rule_name", ""),
                level=entry.get("level", "Warning"),
                message=entry.get("message", ""),
                help=entry.get("help") or "",
                statement=owner.text if owner else "",
                line=line,
            )
        )
    return result


_DROP_TABLE = re.compile(r"^DROP TABLE (?:IF EXISTS )?(\S+)", re.IGNORECASE)
_ALTER_TABLE = re.compile(r"^ALTER TABLE (?:ONLY )?(?:IF EXISTS )?(\S+)\s+(.*)", re.I | re.S)
_DROP_COLUMN = re.compile(r"DROP COLUMN (?:IF EXISTS )?(\S+)", re.IGNORECASE)
_TYPE_CHANGE = re.compile(
    r"ALTER COLUMN (\S+) (?:SET DATA )?TYPE (.+?)(?: USING .*)?$", re.I | re.S
)
_CREATE_INDEX = re.compile(r"^CREATE (?:UNIQUE )?INDEX (?!CONCURRENTLY)(?:\S+ )?ON (\S+)", re.I)
_DROP_INDEX = re.compile(r"^DROP INDEX (?!CONCURRENTLY)(?:IF EXISTS )?(\S+)", re.IGNORECASE)
_DATA = re.compile(r"^(UPDATE|INSERT INTO|DELETE FROM)\s+(\S+)", re.IGNORECASE)


def _describe(risk: RevisionRisk, statement: str, version_table: str) -> None:
    text = " ".join(statement.split()).rstrip(";")
    if version_table in text and _DATA.match(text):
        return  # Alembic's own bookkeeping
    if match := _DROP_TABLE.match(text):
        risk.destructive.append(f"drops table {match[1]} and all its rows")
    elif match := _ALTER_TABLE.match(text):
        table, rest = match[1], match[2]
        for column in _DROP_COLUMN.findall(rest):
            risk.destructive.append(f"drops column {table}.{column} and its data")
        if change := _TYPE_CHANGE.search(rest):
            risk.destructive.append(
                f"changes the type of {table}.{change[1]} to {change[2].strip()}: "
                "loses data if the new type is narrower"
            )
        risk.locks_writes.append(f"locks table {table} (ACCESS EXCLUSIVE) while it runs")
    elif match := _CREATE_INDEX.match(text):
        risk.locks_writes.append(f"blocks writes to {match[1]} while the index is built")
    elif match := _DROP_INDEX.match(text):
        risk.locks_writes.append(f"drops index {match[1]}: locks its table while it runs")
    elif match := _DATA.match(text):
        risk.data_migration.append(f"data migration: {match[1].split()[0]} on {match[2]}")


def revision_reversibility(script: ScriptDirectory, revision: str) -> str | None:
    """``None`` when the revision's downgrade does something; otherwise why it is not reversible.

    A downgrade that raises offline, or that emits no statement besides the
    version table bookkeeping while the upgrade does, counts as not reversible.
    """
    try:
        down = render_revision_sql(script, revision, dialect="postgresql", direction="downgrade")
        up = render_revision_sql(script, revision, dialect="postgresql")
    except SQLRenderError as exc:
        return f"not reversible: the downgrade raises ({exc})"

    def real(sql: str) -> list[Statement]:
        return [s for s in split_statements(sql) if "alembic_version" not in s.text]

    if real(up.sql) and not real(down.sql):
        return "not reversible: the downgrade is empty"
    return None


def lint_plan(
    revision_sqls: Sequence[RevisionSQL],
    *,
    script: ScriptDirectory | None = None,
    config_path: str | Path | None = None,
    version_table: str = "alembic_version",
) -> list[RevisionRisk]:
    """Risk per revision of a plan rendered for PostgreSQL (see ``render_plan_sql``).

    ``script`` enables the reversibility check of upgrade steps. The built-in
    classification (destructive, locks, data migration) runs whatever squawk
    does; when squawk cannot run (missing, timed out, bad output) every
    revision carries ``lint_unavailable`` and counts as needing care
    (:attr:`RevisionRisk.needs_care`): a plan is never *less* careful because
    its linter failed.
    """
    try:
        findings = lint_revision_sql(
            revision_sqls, config_path=config_path, version_table=version_table
        )
        unavailable = ""
    except LintError as exc:
        findings, unavailable = {}, str(exc)
    risks = []
    for item in revision_sqls:
        risk = RevisionRisk(
            revision=item.revision,
            findings=findings.get(item.revision, []),
            lint_unavailable=unavailable,
        )
        for statement in split_statements(item.sql):
            _describe(risk, statement.text, version_table)
        if script is not None and item.direction == "upgrade":
            risk.not_reversible = revision_reversibility(script, item.revision)
        risks.append(risk)
    return risks
