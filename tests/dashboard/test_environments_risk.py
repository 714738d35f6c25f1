"""The risk summary first (issue 12, item 9): one line, then each revision, findings collapsed
and deduplicated, SQL behind a click; squawk's timeout findings dropped where the worker sets them.

Rendered on the real Magnetiq2 plan of the demo's production (eight revisions
behind), through the environment page and through a request's pinned findings.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.template.loader import render_to_string
from django.test import Client

from dashboard.environments.models import Environment
from dashboard.environments.risk_summary import findings_from_risks, plan_risk_summary
from dashboard.environments.services import alembic_script, environment_status_refresh
from dashboard.migrator.plan import compute_plan, render_plan_sql
from dashboard.migrator.risk import lint_plan
from tests.dashboard.environments_helpers import make_environment, migrate_target

pytestmark = pytest.mark.django_db
SUMMARY = (
    "8 revisions · 2 destructive · 2 take ACCESS EXCLUSIVE · 1 builds an index that blocks"
    " writes · est. lock targets: user_sessions, pages, webinar_registrations"
)
TIMEOUT_RULES = ("require-lock-timeout", "require-statement-timeout")


def _eight_behind() -> str:
    order = compute_plan(alembic_script(), current_heads=(), target="heads", direction="upgrade")
    return order.revisions[-9]


@pytest.fixture
def production(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Environment:
    """The demo's production: a SQLite target eight revisions behind, status read."""
    url = f"sqlite:///{tmp_path / 'production.sqlite3'}"
    migrate_target(url, _eight_behind())
    env = make_environment(monkeypatch, "production", url, name="Production", position=3)
    return environment_status_refresh(environment=env, check_drift=False)


def _text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", "", html).split())


def _unconfigured_findings() -> tuple[list[dict[str, Any]], str]:
    """Findings as a request pins them: squawk without the repository's configuration."""
    script = alembic_script()
    plan = compute_plan(
        script, current_heads=(_eight_behind(),), target="heads", direction="upgrade"
    )
    sql = render_plan_sql(script, plan, dialect="postgresql")
    return findings_from_risks(lint_plan(sql, script=script)), "".join(s.sql for s in sql)


def test_the_page_opens_with_the_one_glance_summary(production: Environment, lead: Any) -> None:
    client = Client()
    client.force_login(lead)
    html = client.get("/environments/production/").content.decode()
    summary = html[html.index('id="risk-summary"') :]
    line = summary[: summary.index("</p>")]
    assert _text(line.split(">", 1)[1]) == SUMMARY
    assert html.index('id="risk-summary"') < html.index("<li data-revision=")
    destructive = _text(summary[: summary.index("</ul>")])
    assert "9c41d7e2f0ab drops column pages.legacy_html and its data" in destructive
    assert "0c5f7e3a9d28 changes the type of user_sessions.ip_address" in destructive


def test_findings_are_collapsed_and_each_rule_is_shown_once_per_table(
    production: Environment, lead: Any
) -> None:
    client = Client()
    client.force_login(lead)
    html = client.get("/environments/production/").content.decode()
    [item] = [
        part for part in html.split("<li data-revision=") if part.startswith('"9e6b3f15c40d"')
    ]
    findings = item[item.index('<details class="dash-findings">') : item.index("</details>")]
    raw = [
        f
        for risk in lint_plan(
            render_plan_sql(
                alembic_script(),
                compute_plan(
                    alembic_script(),
                    current_heads=(_eight_behind(),),
                    target="heads",
                    direction="upgrade",
                ),
                dialect="postgresql",
            ),
            config_path=Path(__file__).resolve().parents[2] / ".squawk.toml",
        )
        if risk.revision == "9e6b3f15c40d"
        for f in risk.findings
    ]
    assert len(raw) == 36  # what squawk says, statement by statement and column by column
    assert f"<summary>{len(raw)} squawk findings (12 distinct)</summary>" in findings
    assert findings.count("prefer-text-field</a> on <code>job_applications</code>") == 1
    assert "prefer-text-field</a> on <code>job_applications</code> " in findings
    assert '<span class="dash-count">×16</span>' in findings
    # the plain-language lines too: two indexes on job_applications are one line, ×2
    assert "blocks writes to job_applications while the index is built" in item
    assert item.count("blocks writes to job_applications while the index is built") == 1


def test_the_sql_is_behind_a_click_and_the_timeouts_the_worker_sets_are_not_reported(
    production: Environment, lead: Any
) -> None:
    client = Client()
    client.force_login(lead)
    html = client.get("/environments/production/").content.decode()
    assert html.count('<details class="env-sql-details"><summary>SQL</summary>') == 8
    assert "<details open" not in html
    assert 'id="download-sql"' in html and "/environments/production/plan.sql?" in html
    for rule in TIMEOUT_RULES:
        assert rule not in html.split("Not shown:")[0]


def test_pinned_findings_drop_the_timeout_rules_only_where_the_environment_sets_them(
    production: Environment,
) -> None:
    findings, sql = _unconfigured_findings()
    reported = Counter(lint["rule"] for item in findings for lint in item["lint"])
    assert reported["require-lock-timeout"] >= 5  # squawk 2 does say it, without the config

    summary = plan_risk_summary(
        findings=findings, revision_count=8, environment=production, sql=sql
    )
    shown = {group.rule for view in summary.by_revision.values() for group in view.lint}
    assert shown.isdisjoint(TIMEOUT_RULES)
    assert summary.accepted_rules == list(TIMEOUT_RULES)
    html = render_to_string("dashboard/partials/risk_summary.html", {"summary": summary})
    assert _text(html).startswith(SUMMARY)

    production.lock_timeout = timedelta(0)  # "no lock timeout": then squawk is right
    summary = plan_risk_summary(findings=findings, revision_count=8, environment=production)
    shown = {group.rule for view in summary.by_revision.values() for group in view.lint}
    assert "require-lock-timeout" in shown and "require-statement-timeout" not in shown


def test_a_plan_level_note_such_as_lint_unavailable_is_shown(production: Environment) -> None:
    findings = [
        {"revision": "", "badges": ["lint unavailable"], "summary": ["squawk is not installed"]}
    ]
    summary = plan_risk_summary(findings=findings, revision_count=2, environment=production)
    html = render_to_string("dashboard/partials/risk_summary.html", {"summary": summary})
    assert "2 revisions" in html and '<p class="errornote">squawk is not installed</p>' in html


def test_the_production_page_fits_in_a_few_screens(production: Environment, lead: Any) -> None:
    """A proxy the browser journey checks for real: the visible text of the page is short."""
    client = Client()
    client.force_login(lead)
    html = client.get("/environments/production/").content.decode()
    content = html[html.index('<div id="content"') :]
    visible = _text(re.sub(r"<details[^>]*>.*?</details>", "", content, flags=re.S))
    assert len(visible) < 4000, visible  # about two screens of text at 1024 px (2,900 now)
