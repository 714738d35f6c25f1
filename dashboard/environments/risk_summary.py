"""The one-glance risk of a plan, for the environment page and the request page.

``plan_risk_summary(findings=..., revision_count=..., environment=..., sql=...)``
takes findings in the form a request pins them (``dashboard/approvals/planning.py``:
a list of ``{"revision", "badges", "summary", "lint": [{"rule", "level",
"message", "statement"}]}``; the environment page converts its live
``RevisionRisk`` objects with ``findings_from_risks``) and returns a
:class:`PlanRiskSummary`:

- one line of counts, e.g. Magnetiq2's production plan of the demo: "8 revisions
  · 2 destructive · 2 take ACCESS EXCLUSIVE · 1 builds an index that blocks
  writes · est. lock targets: user_sessions, pages, webinar_registrations";
- per revision, the plain-language lines and squawk's findings *deduplicated*:
  the same rule on the same table once, with a count.

Rendered by ``templates/dashboard/partials/risk_summary.html`` (the line) and
``templates/dashboard/partials/revision_risk.html`` (one revision).

squawk's ``require-lock-timeout`` / ``require-statement-timeout`` are dropped
when the environment sets that timeout: the worker sends ``SET lock_timeout``
and ``SET statement_timeout`` with the environment's values before the first
statement of a run (``dashboard/migrator/runner.py``), which squawk cannot see
in the offline SQL. What squawk 2 reports on Magnetiq2's plans without a
configuration: ``require-lock-timeout`` ("Missing `set lock_timeout` before
potentially slow operations") and ``require-statement-timeout`` on every
CREATE TABLE, CREATE INDEX and ALTER TABLE. The repository's ``.squawk.toml``
excludes both for the live preview (every environment has a lock timeout by
default); the filter here also covers findings a request pinned without that
configuration, and keeps them for an environment whose timeout is zero
("none" in PostgreSQL).

The lock facts are read from the plain-language lines ``dashboard.migrator.risk``
writes ("locks table T (ACCESS EXCLUSIVE) while it runs", "blocks writes to T
while the index is built", "drops table T ...", "drops index I: locks its
table ..."), which are all a pinned request keeps; tests render the real
Magnetiq2 plan through both paths. Tables the plan itself creates are not
lock targets (nobody else uses them yet), when the plan's SQL is given.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from dashboard.migrator.risk import SQUAWK_DOCS, RevisionRisk

# rule -> the environment's field that makes it moot when set (see the docstring).
TIMEOUT_RULES = {
    "require-lock-timeout": "lock_timeout",
    "require-statement-timeout": "statement_timeout",
}

_ACCESS_EXCLUSIVE = re.compile(r"^locks table (\S+) \(ACCESS EXCLUSIVE\)")
_DROPS_TABLE = re.compile(r"^drops table (\S+)")
_DROPS_INDEX = re.compile(r"^drops index (\S+): locks its table")
_INDEX_BUILD = re.compile(r"^blocks writes to (\S+) while the index is built")
_CREATED_TABLE = re.compile(r"^\s*CREATE TABLE (?:IF NOT EXISTS )?([^\s(]+)", re.I | re.M)
_STATEMENT_TABLE = re.compile(
    r"^\s*(?:CREATE TABLE(?: IF NOT EXISTS)?|ALTER TABLE(?: ONLY)?(?: IF EXISTS)?"
    r"|DROP TABLE(?: IF EXISTS)?|CREATE (?:UNIQUE )?INDEX(?: CONCURRENTLY)?(?: IF NOT EXISTS)?"
    r"(?: \S+)? ON(?: ONLY)?|INSERT INTO|UPDATE|DELETE FROM|COMMENT ON (?:TABLE|COLUMN))"
    r"\s+([^\s(]+)",
    re.I,
)


@dataclass(frozen=True)
class Line:
    """A plain-language line and how often the revision says it."""

    text: str
    count: int = 1


@dataclass(frozen=True)
class LintGroup:
    """One squawk rule on one table, however many statements or columns it fired on."""

    rule: str
    level: str
    message: str
    table: str
    count: int
    statement: str

    @property
    def doc_url(self) -> str:
        return SQUAWK_DOCS.format(rule=self.rule)


@dataclass
class RevisionRiskView:
    revision: str
    badges: list[str] = field(default_factory=list)
    summary: list[Line] = field(default_factory=list)
    lint: list[LintGroup] = field(default_factory=list)

    @property
    def lint_total(self) -> int:
        return sum(group.count for group in self.lint)


@dataclass
class PlanRiskSummary:
    revisions: int
    destructive: list[str] = field(default_factory=list)
    access_exclusive: list[str] = field(default_factory=list)
    index_builds: list[str] = field(default_factory=list)
    data_migrations: list[str] = field(default_factory=list)
    not_reversible: list[str] = field(default_factory=list)
    lock_targets: list[str] = field(default_factory=list)
    destructive_lines: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # plan-level, e.g. "lint unavailable"
    accepted_rules: list[str] = field(default_factory=list)
    by_revision: dict[str, RevisionRiskView] = field(default_factory=dict)

    @property
    def parts(self) -> list[tuple[str, str]]:
        """(text, tone) of the one-glance line, in reading order."""
        n = self.revisions
        parts = [(f"{n} revision{'s' if n != 1 else ''}", "")]
        for items, one, many, tone in (
            (self.destructive, "destructive", "destructive", "danger"),
            (self.access_exclusive, "takes ACCESS EXCLUSIVE", "take ACCESS EXCLUSIVE", "danger"),
            (
                self.index_builds,
                "builds an index that blocks writes",
                "build indexes that block writes",
                "warn",
            ),
            (self.data_migrations, "migrates data", "migrate data", "warn"),
            (self.not_reversible, "not reversible", "not reversible", "danger"),
        ):
            if items:
                parts.append((f"{len(items)} {one if len(items) == 1 else many}", tone))
        if self.lock_targets:
            parts.append((f"est. lock targets: {', '.join(self.lock_targets)}", ""))
        elif n and len(parts) == 1 and not self.notes:
            parts.append(("nothing risky found", "ok"))
        return parts


def findings_from_risks(risks: Iterable[RevisionRisk | None]) -> list[dict[str, Any]]:
    """Live ``RevisionRisk`` objects in the form a request pins (see the module docstring)."""
    return [
        {
            "revision": risk.revision,
            "badges": risk.badges,
            "summary": risk.summary,
            "lint": [
                {"rule": f.rule, "level": f.level, "message": f.message, "statement": f.statement}
                for f in risk.findings
            ],
        }
        for risk in risks
        if risk is not None
    ]


def _timeout_set(environment: Any, name: str) -> bool:
    value = getattr(environment, name, None) if environment is not None else None
    return isinstance(value, timedelta) and value > timedelta(0)


def _statement_table(statement: str) -> str:
    match = _STATEMENT_TABLE.match(statement or "")
    return match[1].strip('"') if match else ""


def _dedupe_lines(lines: Iterable[str]) -> list[Line]:
    counts = Counter(lines)
    return [Line(text, count) for text, count in counts.items()]


def _lint_groups(lint: Sequence[Mapping[str, Any]], skip: set[str]) -> list[LintGroup]:
    counts: Counter[tuple[str, str, str, str]] = Counter()
    first_statement: dict[tuple[str, str, str, str], str] = {}
    for item in lint:
        rule = str(item.get("rule", ""))
        if rule in skip:
            continue
        statement = str(item.get("statement", ""))
        key = (rule, str(item.get("level", "")), str(item.get("message", "")))
        key += (_statement_table(statement),)
        counts[key] += 1
        first_statement.setdefault(key, statement)
    return [
        LintGroup(
            rule, level, message, table, count, first_statement[(rule, level, message, table)]
        )
        for (rule, level, message, table), count in counts.items()
    ]


def plan_risk_summary(
    *,
    findings: Sequence[Mapping[str, Any]],
    revision_count: int,
    environment: Any = None,
    sql: str = "",
) -> PlanRiskSummary:
    """The summary of a plan of ``revision_count`` revisions (see the module docstring).

    ``environment`` (its ``lock_timeout``/``statement_timeout``) decides which
    timeout findings are moot; ``sql`` (the plan's SQL) names the tables the
    plan creates, which are left out of the lock targets.
    """
    skip = {rule for rule, name in TIMEOUT_RULES.items() if _timeout_set(environment, name)}
    summary = PlanRiskSummary(revisions=revision_count, accepted_rules=sorted(skip))
    created = {name.strip('"') for name in _CREATED_TABLE.findall(sql or "")}
    targets: dict[str, None] = {}
    for item in findings:
        revision = str(item.get("revision", ""))
        badges = [str(badge) for badge in item.get("badges") or ()]
        lines = [str(line) for line in item.get("summary") or ()]
        if not revision:  # plan-level, e.g. squawk could not run
            summary.notes.extend(lines or badges)
            continue
        view = RevisionRiskView(
            revision=revision,
            badges=badges,
            summary=_dedupe_lines(lines),
            lint=_lint_groups(item.get("lint") or (), skip),
        )
        summary.by_revision[revision] = view
        _count(summary, view, lines, targets, created)
    summary.lock_targets = list(targets)
    return summary


def _count(
    summary: PlanRiskSummary,
    view: RevisionRiskView,
    lines: list[str],
    targets: dict[str, None],
    created: set[str],
) -> None:
    """Add one revision's facts; locks on tables the plan creates block nobody."""
    revision = view.revision
    exclusive = index_build = False
    for line in lines:
        if match := _ACCESS_EXCLUSIVE.match(line) or _DROPS_TABLE.match(line):
            if match[1] not in created:
                exclusive = True
                targets[match[1]] = None
        elif _DROPS_INDEX.match(line):
            exclusive = True
        elif (match := _INDEX_BUILD.match(line)) and match[1] not in created:
            index_build = True
            targets[match[1]] = None
    if "destructive" in view.badges:
        summary.destructive.append(revision)
        summary.destructive_lines += [
            (revision, line)
            for line in dict.fromkeys(lines)
            if line.startswith(("drops ", "changes the type")) and not _DROPS_INDEX.match(line)
        ]
    if exclusive:
        summary.access_exclusive.append(revision)
    if index_build:
        summary.index_builds.append(revision)
    if "data migration" in view.badges:
        summary.data_migrations.append(revision)
    if "not reversible" in view.badges:
        summary.not_reversible.append(revision)
