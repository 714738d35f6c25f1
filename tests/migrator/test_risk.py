"""squawk findings and the plain-language risk summary of a plan."""

from __future__ import annotations

from pathlib import Path

import pytest

from dashboard.migrator.plan import compute_plan, render_plan_sql
from dashboard.migrator.risk import lint_plan, split_statements
from tests.migrator.environments_support import script_directory, write_history

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def risks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    history = write_history(tmp_path_factory.mktemp("history"))
    script = script_directory(history)
    plan = compute_plan(script, current_heads=(), target="heads", direction="upgrade")
    sql = render_plan_sql(script, plan, dialect="postgresql")
    return {risk.revision: risk for risk in lint_plan(sql, script=script)}


def test_squawk_flags_a_not_null_column_without_default(risks: dict) -> None:
    finding = next(f for f in risks["b"].findings if f.rule == "adding-required-field")
    assert finding.revision == "b"
    assert finding.statement.startswith("ALTER TABLE users ADD COLUMN email VARCHAR(200) NOT NULL")
    assert finding.doc_url == "https://squawkhq.com/docs/adding-required-field"


def test_squawk_flags_a_dropped_column(risks: dict) -> None:
    finding = next(f for f in risks["e"].findings if f.rule == "ban-drop-column")
    assert finding.statement == "ALTER TABLE users DROP COLUMN last;"
    assert "ban-drop-column" not in {f.rule for f in risks["b"].findings}


def test_the_summary_speaks_plainly(risks: dict) -> None:
    assert risks["e"].badges[:2] == ["destructive", "locks writes"]
    assert "drops column users.last and its data" in risks["e"].summary
    assert "data migration" in risks["d"].badges
    assert "blocks writes to pages while the index is built" in risks["c2"].summary
    assert risks["m"].badges == []


def test_an_empty_or_failing_downgrade_is_not_reversible(tmp_path: Path) -> None:
    history = write_history(tmp_path / "h")
    path = next((history / "versions").glob("c1_*.py"))
    path.write_text(path.read_text().replace('op.drop_table("pages")', "pass"))
    path = next((history / "versions").glob("c2_*.py"))
    source = path.read_text().replace(
        'op.drop_index("ix_pages_slug", table_name="pages")',
        'raise NotImplementedError("one way")',
    )
    path.write_text(source)
    script = script_directory(history)
    plan = compute_plan(script, current_heads=("b",), target="c2", direction="upgrade")
    risks = {
        r.revision: r
        for r in lint_plan(render_plan_sql(script, plan, dialect="postgresql"), script=script)
    }
    assert risks["c1"].not_reversible == "not reversible: the downgrade is empty"
    assert "downgrade raises" in (risks["c2"].not_reversible or "")
    assert "not reversible" in risks["c2"].badges


def test_the_repository_squawk_config_silences_accepted_rules(tmp_path: Path) -> None:
    history = write_history(tmp_path / "h")
    script = script_directory(history)
    plan = compute_plan(script, current_heads=("m",), target="e", direction="upgrade")
    sql = render_plan_sql(script, plan, dialect="postgresql")
    plain = {f.rule for r in lint_plan(sql) for f in r.findings}
    configured = {
        f.rule for r in lint_plan(sql, config_path=REPO / ".squawk.toml") for f in r.findings
    }
    assert "require-lock-timeout" in plain
    assert "require-lock-timeout" not in configured
    assert "ban-drop-column" in configured


def test_statements_keep_their_lines() -> None:
    sql = "BEGIN;\n\n-- Running x\n\nCREATE TABLE t (\n    id int\n);\n\nDROP TABLE u;\n\nCOMMIT;\n"
    statements = split_statements(sql)
    assert [(s.first_line, s.last_line) for s in statements] == [(4, 6), (8, 8)]


@pytest.mark.parametrize("broken", ["missing", "hangs", "garbage"])
def test_a_linter_that_cannot_run_makes_the_plan_more_careful_never_less(
    broken: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """squawk missing, timing out or answering nonsense: built-in findings stay, and
    every revision is marked not linted (the approver must confirm the SQL)."""
    from dashboard.migrator import risk as risk_module
    from dashboard.migrator.sql import RevisionSQL

    fake = tmp_path / "squawk"
    if broken == "missing":
        monkeypatch.setattr(risk_module.shutil, "which", lambda name: None)
        monkeypatch.setattr(risk_module.sys, "executable", str(tmp_path / "no-python"))
    else:
        script = "sleep 30" if broken == "hangs" else "echo not json; exit 1"
        fake.write_text(f"#!/bin/sh\n{script}\n")
        fake.chmod(0o755)
        monkeypatch.setattr(risk_module, "_squawk_binary", lambda: str(fake))
        monkeypatch.setattr(risk_module, "SQUAWK_TIMEOUT", 1)
    plan = [
        RevisionSQL("drop", "upgrade", "DROP TABLE users;\n"),
        RevisionSQL("add", "upgrade", "ALTER TABLE pages ADD COLUMN note TEXT;\n"),
    ]

    drop, add = lint_plan(plan)

    assert drop.destructive == ["drops table users and all its rows"]
    assert drop.lint_unavailable and add.lint_unavailable
    assert "lint unavailable" in add.badges and add.needs_care and not add.destructive
