"""Environment pages: overview pipeline, detail (status, plan, risk, SQL, drift), refresh."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.test import Client
from sqlalchemy import create_engine, text

from dashboard.environments.models import Environment
from dashboard.environments.services import alembic_script, environment_status_refresh
from dashboard.environments.tasks import environment_refresh
from dashboard.migrator.plan import compute_plan
from tests.dashboard.environments_helpers import make_environment, migrate_target

pytestmark = pytest.mark.django_db


def client_for(user: object | None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)  # type: ignore[arg-type]
    return client


def _order() -> tuple[str, ...]:
    return compute_plan(
        alembic_script(), current_heads=(), target="heads", direction="upgrade"
    ).revisions


def _behind(steps: int) -> str:
    """The revision ``steps`` down-revisions below the (single) head."""
    script = alembic_script()
    revision = script.get_current_head()
    for _ in range(steps):
        revision = script.get_revision(revision).down_revision
    return revision


def _plan(heads: list[str], target: str, direction: str = "upgrade") -> list[str]:
    plan = compute_plan(alembic_script(), current_heads=heads, target=target, direction=direction)
    return list(plan.revisions)


@pytest.fixture
def pipeline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Environment]:
    """dev at heads, staging two revisions behind (SQLite, real Magnetiq2 history)."""
    envs = {}
    for position, (slug, target) in enumerate((("dev", "heads"), ("staging", _behind(2))), 1):
        url = f"sqlite:///{tmp_path / slug}.sqlite3"
        migrate_target(url, target)
        envs[slug] = make_environment(monkeypatch, slug, url, position=position)
        environment_status_refresh(environment=envs[slug])
    return envs


@pytest.fixture
def silent_port() -> Iterator[int]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    yield server.getsockname()[1]
    server.close()


def test_it_redirects_anonymous_users_and_forbids_outsiders(
    pipeline: dict[str, Environment], outsider: object
) -> None:
    urls = ["/environments/staging/", "/environments/staging/plan.sql"]
    for url in urls:
        response = client_for(None).get(url)
        assert response.status_code == 302 and "/admin/login/" in response["Location"]
        assert client_for(outsider).get(url).status_code == 403
    assert client_for(outsider).post("/environments/staging/refresh").status_code == 403
    overview = client_for(outsider).get("/").content.decode()
    assert "Staging" not in overview and "permission" in overview


def test_the_overview_shows_the_pipeline_side_by_side(
    pipeline: dict[str, Environment], developer: object
) -> None:
    html = client_for(developer).get("/").content.decode()
    dev_card = html[html.index('data-env="dev"') : html.index('data-env="staging"')]
    staging_card = html[html.index('data-env="staging"') :]
    assert "Up to date" in dev_card and "0 revisions" in dev_card
    assert "Pending upgrades" in staging_card and "2 revisions" in staging_card
    assert 'href="/environments/staging/"' in html
    head = pipeline["dev"].current_heads[0]
    assert head in dev_card and pipeline["dev"].status_detail["head_messages"][head] in dev_card


def test_the_detail_lists_the_pending_plan_with_risk_and_sql(
    pipeline: dict[str, Environment], lead: object
) -> None:
    staging = pipeline["staging"]
    html = client_for(lead).get("/environments/staging/").content.decode()
    shown = re.findall(r'<li data-revision="([0-9a-f]+)"', html)
    assert shown == staging.pending == _plan([_behind(2)], "heads") == list(_order()[-2:])
    assert 'class="highlight"' in html  # Pygments highlighting
    assert "only knows PostgreSQL" in html
    assert "squawkhq.com/docs/" in html


def test_a_downgrade_plan_comes_as_an_htmx_fragment(
    pipeline: dict[str, Environment], developer: object
) -> None:
    target = _behind(2)
    response = client_for(developer).get(
        "/environments/dev/",
        {"target": target, "direction": "downgrade"},
        headers={"HX-Request": "true", "HX-Target": "plan"},
    )
    html = response.content.decode()
    assert html.lstrip().startswith('<section id="plan"')
    assert "<html" not in html
    assert (
        re.findall(r'<li data-revision="([0-9a-f]+)"', html)
        == _plan(pipeline["dev"].current_heads, target, "downgrade")
        == [_behind(0), _behind(1)]
    )
    assert "Downgrade to" in html


def test_an_unknown_target_is_explained(
    pipeline: dict[str, Environment], developer: object
) -> None:
    html = client_for(developer).get("/environments/staging/", {"target": "nope"}).content.decode()
    assert 'id="plan-error"' in html and "nope" in html


def test_the_sql_downloads_as_one_file(pipeline: dict[str, Environment], developer: object) -> None:
    response = client_for(developer).get("/environments/staging/plan.sql")
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith('attachment; filename="staging-upgrade-heads')
    body = response.content.decode()
    for revision in pipeline["staging"].pending:
        assert f"-> {revision}" in body


def test_the_refresh_button_swaps_in_a_new_status(
    pipeline: dict[str, Environment], developer: object
) -> None:
    staging = pipeline["staging"]
    migrate_target(staging.database_url(), "heads")
    response = client_for(developer).post(
        "/environments/staging/refresh", headers={"HX-Request": "true"}
    )
    html = response.content.decode()
    assert html.lstrip().startswith('<section id="status"') and "Up to date" in html
    assert client_for(developer).post("/environments/staging/refresh").status_code == 302


def test_dead_targets_render_within_the_timeout(
    developer: object, monkeypatch: pytest.MonkeyPatch, silent_port: int, settings
) -> None:  # type: ignore[no-untyped-def]
    settings.ENVIRONMENTS_STATUS_TIMEOUT = 2
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    closed = probe.getsockname()[1]
    probe.close()
    make_environment(monkeypatch, "closed", f"postgresql+psycopg://m@127.0.0.1:{closed}/m")
    make_environment(monkeypatch, "silent", f"postgresql+psycopg://m@127.0.0.1:{silent_port}/m")
    client = client_for(developer)
    for slug, reason in (("closed", "refused"), ("silent", "timeout")):
        started = time.monotonic()
        html = client.post(f"/environments/{slug}/refresh", headers={"HX-Request": "true"})
        assert time.monotonic() - started < 8
        text_ = html.content.decode()
        assert "Unreachable" in text_ and reason in text_.lower()
        started = time.monotonic()
        assert client.get(f"/environments/{slug}/").status_code == 200
        assert time.monotonic() - started < 3  # pages read the cache only
    assert client.get("/").content.decode().count("Unreachable") == 2


def test_drift_on_postgres_at_head(
    developer: object, monkeypatch: pytest.MonkeyPatch, postgres_url: str
) -> None:
    migrate_target(postgres_url, "heads")
    env = make_environment(monkeypatch, "prod", postgres_url)
    environment_status_refresh(environment=env)
    assert env.status_state == "up_to_date"
    assert env.drift["state"] == "clean", env.drift
    client = client_for(developer)
    assert "No drift" in client.get("/environments/prod/").content.decode()
    assert client.get("/environments/prod/drift-revision.py").status_code == 404

    engine = create_engine(postgres_url)
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE pages ADD COLUMN legacy_flag boolean"))
    engine.dispose()
    environment_refresh(env.pk)  # the beat task trusts a fresh comparison at the same heads
    env.refresh_from_db()
    assert env.drift["state"] == "clean"
    client.post(
        "/environments/prod/refresh", headers={"HX-Request": "true"}
    )  # the button compares now
    html = client.get("/environments/prod/").content.decode()
    assert "column pages.legacy_flag is only in the database" in html
    draft = client.get("/environments/prod/drift-revision.py")
    assert draft.status_code == 200
    assert "op.drop_column('pages', 'legacy_flag')" in draft.content.decode()


def test_drift_is_not_compared_when_not_at_head(
    pipeline: dict[str, Environment], developer: object
) -> None:
    assert pipeline["staging"].drift["state"] == "not_at_head"
    html = client_for(developer).get("/environments/staging/").content.decode()
    assert "only when the environment is at head" in html


def test_admin_edits_are_audited_and_show_only_the_masked_url(
    make_user: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dashboard.audit.models import AuditEvent

    env = make_environment(
        monkeypatch, "qa", "postgresql+psycopg://magnetiq:Sekret-42@db-qa:5432/magnetiq"
    )
    admin = make_user("root", superuser=True)  # type: ignore[operator]
    client = client_for(admin)
    change_url = f"/admin/environments/environment/{env.pk}/change/"
    page = client.get(change_url).content.decode()
    assert "postgresql+psycopg://magnetiq@db-qa:5432/magnetiq" in page
    assert "Sekret-42" not in page
    assert 'name="run_timeout"' in page and 'name="idle_in_transaction_timeout"' in page
    form = {
        "name": "QA",
        "slug": "qa",
        "position": "4",
        "description": "",
        "url_env": env.url_env,
        "url_file": "",
        "version_table": "alembic_version",
        "version_table_schema": "",
        "lock_timeout": "00:00:05",
        "statement_timeout": "00:05:00",
        "lock_wait": "00:00:30",
        "run_timeout": "00:30:00",
        "idle_in_transaction_timeout": "00:02:00",
        "required_approvals": "2",
        "approver_group": "",
        "approval_ttl": "1 00:00:00",
    }
    response = client.post(change_url, form)
    assert response.status_code == 302, response.content.decode()[:2000]
    env.refresh_from_db()
    assert env.required_approvals == 2 and env.lock_timeout.total_seconds() == 5
    assert env.run_timeout.total_seconds() == 1800
    assert env.idle_in_transaction_timeout.total_seconds() == 120
    event = AuditEvent.objects.filter(action="dashboard.environment.changed").latest("seq")
    assert event.environment_slug == "qa"
    assert set(event.payload["changed"]) >= {
        "position",
        "lock_timeout",
        "run_timeout",
        "idle_in_transaction_timeout",
        "required_approvals",
    }


# --- request history served by the approvals app (issue 12, item 17) ------------


def _a_request(environment: Environment, user: object, status: str) -> object:
    from dashboard.approvals.models import MigrationRequest

    return MigrationRequest.objects.create(
        environment=environment,
        requested_by=user,
        direction="upgrade",
        target="heads",
        reason="history",
        status=status,
        dialect="sqlite",
        sql_sha256="0" * 64,
        steps=[{"revision": "a"}, {"revision": "b"}],
    )


def test_the_request_history_is_loaded_from_the_approvals_app_with_a_real_link(
    pipeline: dict[str, Environment], developer: object, auditor: object, outsider: object
) -> None:
    staging = pipeline["staging"]
    failed = _a_request(staging, developer, "failed")
    waiting = _a_request(staging, developer, "pending")
    page = client_for(developer).get("/environments/staging/").content.decode()
    section = page[page.index('<section id="requests"') :]
    assert 'hx-get="/requests/environments/staging/" hx-trigger="load"' in section
    assert '<a href="/requests/environments/staging/">' in section

    fragment = client_for(auditor).get(
        "/requests/environments/staging/", headers={"HX-Request": "true"}
    )
    html = fragment.content.decode()
    assert html.lstrip().startswith('<section id="requests"') and "<html" not in html
    assert f'<a href="/requests/{failed.pk}/">#{failed.pk}</a>' in html
    assert 'data-status="failed">Failed</span>' in html
    assert 'data-status="pending">Waiting for approval</span>' in html
    assert html.index(f"#{waiting.pk}<") < html.index(f"#{failed.pk}<")  # newest first
    whole = client_for(auditor).get("/requests/environments/staging/").content.decode()
    assert "<html" in whole and "Requests for Staging" in whole
    assert client_for(outsider).get("/requests/environments/staging/").status_code == 403
    assert client_for(developer).get("/requests/environments/nope/").status_code == 404


def test_nothing_under_dashboard_environments_imports_the_approvals_app() -> None:
    """Environments sit below approvals: checked on the source (imports inside functions too)."""
    import ast

    root = Path(__file__).resolve().parents[2] / "dashboard" / "environments"
    offenders = []
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [
                f"{path.relative_to(root)}: {name}"
                for name in names
                if name == "dashboard.approvals" or name.startswith("dashboard.approvals.")
            ]
    assert offenders == []


# --- drift as a list of differences (issue 12, item 13) ------------------------


def test_drift_is_rendered_as_a_list_of_differences(
    pipeline: dict[str, Environment], developer: object
) -> None:
    from django.template.loader import render_to_string

    drift = {
        "state": "drift",
        "operations": [
            "column pages.legacy_flag is only in the database",
            "table stray is only in the database",
        ],
        "python": "op.drop_table('stray')",
        "checked_at": "2026-12-04T13:03:00+00:00",
    }
    html = render_to_string("dashboard/partials/drift_list.html", {"drift": drift})
    assert "2 differences between the live schema and the models" in html
    assert "<li>column pages.legacy_flag is only in the database</li>" in html
    assert "{" not in html and "operations" not in html
    assert '<time datetime="2026-12-04T13:03:00+00:00">2026-12-04 13:03 UTC</time>' in html
    not_at_head = render_to_string(
        "dashboard/partials/drift_list.html", {"drift": {"state": "not_at_head"}}
    )
    assert "only when the environment is at head" in not_at_head
    assert "Not checked yet" in render_to_string("dashboard/partials/drift_list.html", {})

    Environment.objects.filter(pk=pipeline["dev"].pk).update(drift=drift)
    page = client_for(developer).get("/environments/dev/").content.decode()
    assert "<li>table stray is only in the database</li>" in page
    assert "draft_fix_drift_dev.py" in page
