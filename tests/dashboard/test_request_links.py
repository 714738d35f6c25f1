"""The ways into "Request a migration": from an environment's plan and from a revision."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse

from dashboard.environments.services import alembic_script, environment_status_refresh
from tests.dashboard.environments_helpers import make_environment, migrate_target

pytestmark = pytest.mark.django_db


def _client(user: object) -> Client:
    client = Client()
    client.force_login(user)  # type: ignore[arg-type]
    return client


@pytest.fixture
def staging(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> object:
    url = f"sqlite:///{tmp_path / 'staging.sqlite3'}"
    head = alembic_script().get_current_head()
    behind = alembic_script().get_revision(head).down_revision
    migrate_target(url, behind)
    environment = make_environment(monkeypatch, "staging", url)
    return environment_status_refresh(environment=environment, check_drift=False)


def test_a_developer_requests_the_pending_plan_from_the_environment_page(
    staging, developer
) -> None:  # type: ignore[no-untyped-def]
    page = _client(developer).get(reverse("environments:detail", args=["staging"]))
    assert page.status_code == 200
    link = (
        f"{reverse('approvals:create')}?environment=staging&amp;target=heads&amp;direction=upgrade"
    )
    assert link.encode() in page.content

    form = _client(developer).get(link.replace("&amp;", "&"))
    assert form.status_code == 200
    head = alembic_script().get_current_head()
    assert head.encode() in form.content  # the plan preview lists the pending revision


def test_an_auditor_sees_no_request_button(staging, auditor) -> None:  # type: ignore[no-untyped-def]
    page = _client(auditor).get(reverse("environments:detail", args=["staging"]))
    assert page.status_code == 200
    assert b'id="request-this"' not in page.content


def test_a_revision_in_the_graph_offers_requests_to_it(staging, developer) -> None:  # type: ignore[no-untyped-def]
    head = alembic_script().get_current_head()
    detail = _client(developer).get(reverse("graph:revision", args=[head])).content.decode()
    # A small form: which environment (none preselected), the revision, the direction.
    assert f'action="{reverse("approvals:create")}"' in detail
    assert f'name="target" value="{head}"' in detail
    assert 'name="direction" value="upgrade"' in detail
    assert 'name="direction" value="downgrade"' in detail

    link = f"{reverse('approvals:create')}?environment=staging&target={head}&direction=upgrade"
    form = _client(developer).get(link)
    assert form.status_code == 200
    assert f'value="{head}"'.encode() in form.content
    assert b"This field is required" not in form.content


def test_the_plan_preview_is_cached_until_the_heads_change(staging, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from dashboard.environments import services

    computed: list[str] = []
    real = services._environment_plan

    def counting(**kwargs):  # type: ignore[no-untyped-def]
        computed.append(kwargs["target"])
        return real(**kwargs)

    monkeypatch.setattr(services, "_environment_plan", counting)
    first = services.environment_plan(environment=staging)
    again = services.environment_plan(environment=staging)
    assert [r.revision for r in again.revisions] == [r.revision for r in first.revisions]
    assert len(first.revisions) == 1
    assert computed == ["heads"]  # the second answer came from the cache

    migrate_target(staging.database_url(), "heads")
    refreshed = environment_status_refresh(environment=staging, check_drift=False)
    assert services.environment_plan(environment=refreshed).revisions == []
    assert computed == ["heads", "heads"]
