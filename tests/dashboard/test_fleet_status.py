"""Status at fleet scale (issue 13): the overview card, the fleet page, targets, CLI, API, admin.

Fleets are declared through the TOML loader with a ``targets_file``, as a
team would. Targets are SQLite files copied from two templates migrated with
the real Magnetiq2 history (one at head, one two revisions behind), one with a
stray table (drifted), and missing files (unreachable). The 500-target tests
count the dashboard database's queries of the fleet page and of
``environment_status --refresh`` for 20 and for 500 targets: they must not grow.
"""
# ruff: noqa: F811  (fixtures imported from tests.dashboard.api_support)

from __future__ import annotations

import io
import json
import os
import shutil
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from dashboard.environments.config_file import environments_load
from dashboard.environments.models import Environment
from dashboard.environments.services import (
    alembic_script,
    environment_status_refresh,
    fleet_targets_refresh,
)
from dashboard.environments.tasks import environment_refresh
from tests.conftest import browser_login, save_screenshot
from tests.dashboard.api_support import bearer, make_token  # noqa: F401
from tests.dashboard.approvals_support import Worker
from tests.dashboard.environments_helpers import make_environment, migrate_target
from tests.dashboard.refresh_support import environments_queue, queued_reads

pytestmark = pytest.mark.django_db
REDIS = os.environ["TEST_REDIS_URL"]
# Rollout order of the small fleet; "wonka" joins later and is never read.
TENANTS = ["acme", "globex", "initech", "umbrella", "hooli", "stark", "wayne"]


def _behind(steps: int) -> str:
    script = alembic_script()
    revision = script.get_current_head()
    for _ in range(steps):
        revision = script.get_revision(revision).down_revision
    return revision


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """SQLite files of the real history: at head, two behind, and at head with a stray table."""
    directory = tmp_path_factory.mktemp("fleet-templates")
    files = {"head": directory / "head.sqlite3", "behind": directory / "behind.sqlite3"}
    migrate_target(f"sqlite:///{files['head']}", "heads")
    migrate_target(f"sqlite:///{files['behind']}", _behind(2))
    files["drifted"] = directory / "drifted.sqlite3"
    shutil.copyfile(files["head"], files["drifted"])
    with sqlite3.connect(files["drifted"]) as db:
        db.execute("CREATE TABLE stray_by_hand (id INTEGER PRIMARY KEY)")
    return files


def load_fleet(
    directory: Path, slug: str, names: list[str], files: dict[str, Path] | None = None
) -> Environment:
    """Declare the fleet in TOML with a targets file and load it; copy the targets' files."""
    data = directory / slug
    data.mkdir(exist_ok=True)
    for name, source in (files or {}).items():
        shutil.copyfile(source, data / f"{name}.sqlite3")
    (directory / f"{slug}.txt").write_text("# one tenant a line\n" + "\n".join(names) + "\n")
    url_file = directory / f"{slug}.url"
    url_file.write_text(f"sqlite:///{data}/{{target}}.sqlite3")
    toml = directory / f"{slug}.toml"
    toml.write_text(
        f'[environments.{slug}]\nname = "{slug.title()}"\nposition = 4\n'
        f'url_file = "{url_file}"\ntargets_file = "{slug}.txt"\n'
        'waves = [1, "10%", "100%"]\nparallelism = 8\nrequired_approvals = 2\n'
        'approver_group = "Tech leads"\n'
    )
    environments_load(path=toml)
    return Environment.objects.get(slug=slug)


@pytest.fixture
def tenants(
    templates: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Environment:
    """Staging (a single environment) and a fleet of 8: 3 up to date, 2 pending, 1 drifted,
    1 unreachable (no file), and "wonka" added after the read (not read yet)."""
    staging_url = f"sqlite:///{tmp_path / 'staging.sqlite3'}"
    shutil.copyfile(templates["behind"], tmp_path / "staging.sqlite3")
    environment_status_refresh(
        environment=make_environment(monkeypatch, "staging", staging_url, position=2)
    )
    kinds = {"acme": "head", "globex": "head", "initech": "head", "umbrella": "behind"}
    kinds |= {"hooli": "behind", "stark": "drifted"}
    files = {name: templates[kind] for name, kind in kinds.items()}
    fleet = load_fleet(tmp_path, "tenants", TENANTS, files)
    fleet_targets_refresh(fleets=[fleet])
    return load_fleet(tmp_path, "tenants", [*TENANTS, "wonka"])


def client_for(user: object | None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)  # type: ignore[arg-type]
    return client


def _between(html: str, start: str, end: str) -> str:
    begin = html.index(start)
    return html[begin : html.index(end, begin)]


# --- the overview ---------------------------------------------------------------------


def test_the_overview_shows_the_fleet_as_one_card_with_its_counts(
    tenants: Environment, developer: Any
) -> None:
    html = client_for(developer).get("/").content.decode()
    card = _between(html, 'data-env="tenants"', "</article>")

    assert 'data-env="tenants--' not in html  # targets are never cards
    assert 'data-env="staging"' in html
    assert "Fleet of 8 targets" in card
    counts = {"up_to_date": 3, "pending": 2, "drifted": 1, "unreachable": 1, "unknown": 1}
    for state, count in counts.items():
        item = _between(card, f'<li data-state="{state}"', "</li>")
        assert f"<strong>{count}</strong>" in item, (state, item)
        assert f'href="/environments/tenants/?state={state}"' in item
    assert "not read yet" in card
    # Head sets: the drifted target is at head too (4), two are two behind.
    head, behind = alembic_script().get_current_head(), _behind(2)
    assert f"<code>{head}</code></a> on 4" in card
    assert f"<code>{behind}</code></a> on 2" in card
    assert f'href="/environments/tenants/?revision={behind}"' in card


def _overview_queries(user: Any) -> int:
    client = client_for(user)
    client.get("/")
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/").status_code == 200
    return len(queries)


def test_the_overview_costs_the_same_queries_for_20_and_500_targets(
    tmp_path: Path, developer: Any
) -> None:
    load_fleet(tmp_path, "small", [f"s{i:03}" for i in range(20)])
    load_fleet(tmp_path, "big", [f"b{i:03}" for i in range(20)])
    few = _overview_queries(developer)
    load_fleet(tmp_path, "big", [f"b{i:03}" for i in range(500)])
    many = _overview_queries(developer)

    assert many == few
    html = client_for(developer).get("/").content.decode()
    assert "Fleet of 500 targets" in html and "Fleet of 20 targets" in html
    assert html.count('class="env-card') == 2


# --- the fleet page -------------------------------------------------------------------


def _rows(html: str) -> list[str]:
    return [part.split('"', 1)[0] for part in html.split('<tr data-target="')[1:]]


def test_the_fleet_page_lists_every_target_with_its_state_heads_and_link(
    tenants: Environment, developer: Any
) -> None:
    response = client_for(developer).get("/environments/tenants/")
    html = response.content.decode()

    assert response.status_code == 200
    assert _rows(html) == [*TENANTS, "wonka"]  # rollout order
    umbrella = _between(html, '<tr data-target="umbrella"', "</tr>")
    assert 'href="/environments/tenants--umbrella/"' in umbrella
    assert "Pending upgrades" in umbrella and f"<code>{_behind(2)}</code>" in umbrella
    assert "<td>2</td>" in umbrella  # two revisions pending
    stark = _between(html, '<tr data-target="stark"', "</tr>")
    assert "Drifted (1)" in stark
    wayne = _between(html, '<tr data-target="wayne"', "</tr>")
    assert "Unreachable" in wayne and "does not exist" in wayne
    wonka = _between(html, '<tr data-target="wonka"', "</tr>")
    assert "Not read yet" in wonka and "never" in wonka
    # The map holds every target, each a link to its page.
    assert html.count('class="fleet-cell ') == 8
    # Waves [1, "10%", "100%"] over 8 targets: the canary, then the 7 others.
    assert "1 (canary) → 8" in html
    assert "Refresh now" in html and "Request an upgrade of the fleet" in html
    # A fleet's row has no database, plan or drift of its own: none is shown.
    assert 'id="plan"' not in html and 'id="drift"' not in html and "is a fleet" not in html


def test_the_grid_filters_by_state_revision_and_name_as_a_fragment_too(
    tenants: Environment, developer: Any
) -> None:
    client = client_for(developer)
    pending = client.get("/environments/tenants/", {"state": "pending"}).content.decode()
    assert _rows(pending) == ["umbrella", "hooli"]
    assert "Targets 1–2 of 2 matching the filters (8 in the fleet)" in pending
    assert '<option value="pending" selected>Pending</option>' in pending

    head = alembic_script().get_current_head()
    at_head = client.get("/environments/tenants/", {"revision": head}).content.decode()
    assert _rows(at_head) == ["acme", "globex", "initech", "stark"]
    none = client.get("/environments/tenants/", {"revision": "none"}).content.decode()
    assert _rows(none) == ["wayne", "wonka"]

    fragment = client.get(
        "/environments/tenants/",
        {"state": "up_to_date", "name": "GLO"},
        headers={"HX-Request": "true", "HX-Target": "targets"},
    ).content.decode()
    assert fragment.lstrip().startswith('<section id="targets"')
    assert _rows(fragment) == ["globex"]
    assert fragment.count("fleet-dim") == 7  # the map dims the others
    assert 'id="filter-clear"' in fragment

    nothing = client.get("/environments/tenants/", {"state": "drifted", "name": "acme"})
    assert "No target matches these filters." in nothing.content.decode()
    bogus = client.get("/environments/tenants/", {"state": "'; drop", "page": "x"})
    assert _rows(bogus.content.decode()) == [*TENANTS, "wonka"]


def test_the_grid_is_paginated_with_links_that_keep_the_filters(
    tmp_path: Path, developer: Any
) -> None:
    load_fleet(tmp_path, "shards", [f"shard{i:03}" for i in range(120)])
    client = client_for(developer)
    first = client.get("/environments/shards/").content.decode()
    assert len(_rows(first)) == 50 and "Targets 1–50 of 120" in first
    assert 'href="?page=2"' in first and 'rel="next"' in first

    last = client.get("/environments/shards/", {"state": "unknown", "page": 3}).content.decode()
    assert _rows(last)[0] == "shard100" and len(_rows(last)) == 20
    assert "Targets 101–120 of 120 matching the filters" in last
    assert 'href="?state=unknown&amp;page=2"' in last and 'aria-current="page">3<' in last


def test_a_target_page_says_which_fleet_and_links_back(
    tenants: Environment, developer: Any
) -> None:
    html = client_for(developer).get("/environments/tenants--umbrella/").content.decode()

    notice = _between(html, 'id="target-of"', "</p>")
    assert "Target <strong>umbrella</strong> of fleet" in notice
    assert '<a href="/environments/tenants/">Tenants</a>' in notice
    assert "number 4 in its rollout order" in notice
    breadcrumbs = _between(html, 'class="breadcrumbs"', "</div>")
    assert 'href="/environments/tenants/">Tenants</a> › umbrella' in breadcrumbs
    # Its own status and plan, as any environment; requested through the fleet.
    assert "Pending upgrades" in html and len(html.split("<li data-revision=")) == 3
    assert 'id="request-fleet"' in html and "environment=tenants&amp;" in html
    assert 'id="request-this"' not in html


def test_nothing_reads_plans_or_drafts_a_fleet_row(tenants: Environment, lead: Any) -> None:
    client = client_for(lead)
    for url in ("/environments/tenants/plan.sql", "/environments/tenants/drift-revision.py"):
        response = client.get(url)
        assert response.status_code == 404
        assert (
            "Tenants is a fleet: each of its targets has its own plan" in response.content.decode()
        )
    assert client.post("/environments/tenants/first-read").status_code == 302
    assert client.get("/environments/tenants/status").status_code == 302  # not htmx: the page
    assert _status("--slug", "tenants", "--refresh")[0] == 2  # reads the targets only
    with pytest.raises(ValueError, match="is a fleet"):
        environment_status_refresh(environment=tenants)

    tenants.refresh_from_db()
    assert tenants.status_state == "unknown" and tenants.status_refreshed_at is None
    assert tenants.status_refresh_queued_at is None


def test_people_without_the_view_permission_get_the_framed_refusal(
    tenants: Environment, outsider: Any, auditor: Any
) -> None:
    for url in ("/environments/tenants/", "/environments/tenants--acme/"):
        anonymous = client_for(None).get(url)
        assert anonymous.status_code == 302 and "/admin/login/" in anonymous["Location"]
        refused = client_for(outsider).get(url)
        assert refused.status_code == 403
        text = refused.content.decode()
        assert "Not allowed" in text and "signed in as <strong>outsider</strong>" in text
    assert client_for(outsider).post("/environments/tenants/refresh").status_code == 403
    assert "Tenants" not in client_for(outsider).get("/").content.decode()
    # An auditor reads the fleet but may not make the workers read its targets.
    page = client_for(auditor).get("/environments/tenants/")
    assert page.status_code == 200 and "8 targets" in page.content.decode()
    assert "Refresh now" not in page.content.decode()
    assert client_for(auditor).post("/environments/tenants/refresh").status_code == 403


@pytest.fixture
def queue() -> Iterator[str]:
    name = f"test-fleet-reads-{uuid.uuid4().hex[:8]}"
    with environments_queue(REDIS, name):
        yield name


def test_refresh_now_queues_one_read_per_target_and_the_summary_polls(
    tenants: Environment, developer: Any, queue: str
) -> None:
    client = client_for(developer)
    htmx = {"HX-Request": "true", "HX-Target": "fleet-summary"}
    fragment = client.post("/environments/tenants/refresh", headers=htmx).content.decode()

    targets = list(Environment.objects.targets_of(tenants).values_list("pk", flat=True))
    assert sorted(queued_reads(REDIS, queue)) == sorted(targets)
    assert fragment.lstrip().startswith('<section id="fleet-summary"')
    assert "8 target reads queued for the workers" in fragment
    assert 'hx-trigger="every 2s"' in fragment
    # Pressed again while they wait: nothing more is queued.
    again = client.post("/environments/tenants/refresh", headers=htmx).content.decode()
    assert len(queued_reads(REDIS, queue)) == 8 and "8 target reads queued" in again

    for pk in targets[:-1]:  # what the workers run for each message
        environment_refresh(pk)
    polled = client.get("/environments/tenants/status", headers=htmx)
    assert polled.status_code == 200 and "1 target read queued" in polled.content.decode()
    environment_refresh(targets[-1])
    done = client.get("/environments/tenants/status", headers=htmx)
    assert done.status_code == 286  # polling stops...
    assert json.loads(done["HX-Trigger"]) == {"fleet-read": {}}  # ...and the grid reloads
    assert "<strong>0</strong> not read yet" in done.content.decode()


# --- the command line -------------------------------------------------------------------


def _status(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    try:
        call_command("environment_status", *args, stdout=out)
    except SystemExit as exited:
        return int(exited.code or 0), out.getvalue()
    return 0, out.getvalue()


def test_environment_status_lists_a_fleet_with_its_targets_and_summary(
    tenants: Environment,
) -> None:
    code, out = _status("--json")
    assert code == 2  # wayne is unreachable
    entries = {entry["slug"]: entry for entry in json.loads(out)["environments"]}
    assert list(entries) == ["staging", "tenants"]  # targets are listed inside their fleet
    fleet = entries["tenants"]
    assert fleet["fleet"]["targets"] == 8
    states = fleet["fleet"]["summary"]["states"]
    assert states == {"up_to_date": 3, "pending": 2, "drifted": 1, "unreachable": 1, "unknown": 1}
    head, behind = alembic_script().get_current_head(), _behind(2)
    assert fleet["fleet"]["summary"]["head_sets"] == [
        {"heads": [head], "targets": 4},
        {"heads": [behind], "targets": 2},
    ]
    rows = {row["slug"]: row for row in fleet["targets"]}
    assert list(rows) == [f"tenants--{name}" for name in [*TENANTS, "wonka"]]
    assert all(set(row) == set(entries["staging"]) for row in rows.values())
    assert rows["tenants--umbrella"]["state"] == "pending" and rows["tenants--umbrella"]["pending"]
    assert rows["tenants--wayne"]["state"] == "unreachable"

    _, text = _status()
    lines = text.splitlines()
    assert len(lines) == 2 and lines[0].startswith("staging")
    assert (
        lines[1].startswith("tenants") and "fleet of 8 targets: 3 up to date, 2 pending" in lines[1]
    )
    assert f"heads: {head} (4), {behind} (2)" in lines[1]
    _, one_fleet = _status("--slug", "tenants")
    assert len(one_fleet.splitlines()) == 9 and "  tenants--wayne " in one_fleet
    assert _status("--targets")[1].count("  tenants--") == 8
    code, target = _status("--slug", "tenants--acme")
    assert code == 0 and target.startswith("tenants--acme") and "up_to_date" in target


def _fleet_page_queries(user: Any, slug: str) -> tuple[int, str]:
    client = client_for(user)
    client.get(f"/environments/{slug}/")
    with CaptureQueriesContext(connection) as queries:
        response = client.get(f"/environments/{slug}/", {"state": "unreachable", "page": 2})
    assert response.status_code == 200
    return len(queries), response.content.decode()


def _refresh_queries(slug: str) -> tuple[int, dict[str, Any]]:
    out = io.StringIO()
    with CaptureQueriesContext(connection) as queries, pytest.raises(SystemExit) as exited:
        call_command("environment_status", "--slug", slug, "--refresh", "--json", stdout=out)
    assert exited.value.code == 2  # the missing files are unreachable
    return len(queries), json.loads(out.getvalue())["environments"][0]


def test_500_targets_cost_the_same_queries_as_20_to_refresh_and_to_show(
    templates: dict[str, Path], tmp_path: Path, developer: Any
) -> None:
    """Five real tenants (two behind) in each fleet, the rest missing files (unreachable)."""
    counts = {}
    for size in (20, 500):
        names = [f"t{i:03}" for i in range(size)]
        files = {name: templates["behind"] for name in names[:5]}
        load_fleet(tmp_path, f"fleet{size}", names, files)
        refresh, entry = _refresh_queries(f"fleet{size}")
        states = entry["fleet"]["summary"]["states"]
        assert states["pending"] == 5 and states["unreachable"] == size - 5
        assert all(row["refreshed_at"] for row in entry["targets"])
        page, html = _fleet_page_queries(developer, f"fleet{size}")
        # Page 2 of the unreachable ones: 50 of 495; of 15, the only page.
        assert len(_rows(html)) == {20: 15, 500: 50}[size]
        counts[size] = (refresh, page)
    assert counts[500] == counts[20], counts
    fleet = Environment.objects.get(slug="fleet500")
    assert fleet.status_refreshed_at is None  # the fleet's own row is never read


# --- the API ---------------------------------------------------------------------------


def test_the_api_lists_a_fleet_with_its_summary_and_gets_a_target(
    tenants: Environment, developer: Any, make_token: Callable[..., str]
) -> None:
    token = bearer(make_token(developer))
    listed = Client().get("/api/v1/environments", **token).json()
    assert [env["slug"] for env in listed] == ["staging", "tenants"]
    fleet = listed[1]
    assert fleet["fleet"]["targets"] == 8 and fleet["target_of"] is None
    assert fleet["fleet"]["summary"]["states"]["drifted"] == 1
    assert fleet["fleet"]["summary"]["head_sets"][1] == {"heads": [_behind(2)], "targets": 2}
    assert listed[0]["fleet"] is None and listed[0]["target_of"] is None

    target = Client().get("/api/v1/environments/tenants--umbrella", **token).json()
    assert target["status"] == "pending" and target["fleet"] is None
    assert target["target_of"] == {
        "fleet": "tenants",
        "name": "umbrella",
        "position": 4,
        "retired": False,
    }
    assert target["url"].endswith("/environments/tenants--umbrella/")
    assert "MAGNETIQ" not in json.dumps(listed) and ".url" not in json.dumps(listed)

    schema = Client().get("/api/v1/openapi.json", **token).json()["components"]["schemas"]
    assert set(schema["FleetOut"]["properties"]) == {"targets", "summary"}
    assert {"fleet", "target_of"} <= set(schema["EnvironmentOut"]["required"])


# --- the admin ---------------------------------------------------------------------------


def test_the_admin_lists_the_pipeline_and_shows_targets_through_a_filter(
    tenants: Environment, make_user: Callable[..., Any]
) -> None:
    client = client_for(make_user("root", superuser=True))
    default = client.get("/admin/environments/environment/").content.decode()
    assert "fleet of 8 targets" in default and ">staging<" in default
    assert "tenants--acme" not in default
    assert "Pipeline (no targets)" in default and "Targets of Tenants" in default

    targets = client.get("/admin/environments/environment/", {"kind": "targets:tenants"})
    text = targets.content.decode()
    assert text.count("target of Tenants") == 8 and "8 environments" in text
    assert (
        "tenants--acme"
        in client.get("/admin/environments/environment/", {"q": "acme"}).content.decode()
    )

    acme = Environment.objects.get(slug="tenants--acme")
    page = client.get(f"/admin/environments/environment/{acme.pk}/change/").content.decode()
    assert "settings come from the fleet" in page
    assert 'name="url_file"' not in page  # a target's settings are the fleet's
    fleet_page = client.get(f"/admin/environments/environment/{tenants.pk}/change/")
    assert "{target}" in fleet_page.content.decode()  # the masked template, never "is a fleet"


def test_saving_a_fleet_in_the_admin_gives_its_targets_the_same_settings(
    tenants: Environment, make_user: Callable[..., Any]
) -> None:
    client = client_for(make_user("root", superuser=True))
    form = {
        "name": "Tenants",
        "slug": "tenants",
        "position": "4",
        "url_file": tenants.url_file,
        "version_table": "alembic_version",
        "lock_timeout": "00:00:05",
        "statement_timeout": "00:05:00",
        "lock_wait": "00:00:30",
        "idle_in_transaction_timeout": "00:01:00",
        "required_approvals": "2",
        "approver_group": str(tenants.approver_group_id),
        "approval_ttl": "1 00:00:00",
    }
    response = client.post(f"/admin/environments/environment/{tenants.pk}/change/", form)
    assert response.status_code == 302, response.content.decode()[:2000]

    targets = Environment.objects.filter(fleet=tenants)
    assert {target.lock_timeout.total_seconds() for target in targets} == {5.0}
    assert targets.count() == 8


# --- in Chromium, with a real worker ------------------------------------------------------


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[str]:
    name = f"test-fleet-{uuid.uuid4().hex[:8]}"
    with environments_queue(REDIS, name):
        process = Worker(
            broker_url=REDIS,
            queue=name,
            ini=Path(settings.ALEMBIC_CONFIG),
            log=tmp_path / "worker.log",
            pool="threads",
        )
        yield name
        process.stop()


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_in_chromium_at_1024_px_a_fleet_reads_itself_and_leads_to_each_target(
    live_server: Any,
    browser: Any,
    worker: str,
    templates: dict[str, Path],
    tmp_path: Path,
    lead: Any,
) -> None:
    names = [f"tenant{i:02}" for i in range(60)]
    files = {
        name: templates["behind" if i % 3 == 0 else "head"] for i, name in enumerate(names[:12])
    }
    load_fleet(tmp_path, "tenants", names, files)  # queues the targets' first reads

    context = browser.new_context(viewport={"width": 1024, "height": 768})
    context.set_default_timeout(30_000)
    page = context.new_page()
    browser_login(page, live_server.url, "lead")
    page.goto(f"{live_server.url}/")
    page.click('[data-env="tenants"] h2 a')
    assert page.url.endswith("/environments/tenants/")

    # The workers read the 60 targets; the summary follows, then the table reloads.
    page.wait_for_selector('#fleet-summary li[data-state="unknown"] strong:text-is("0")')
    page.wait_for_selector('#targets tr[data-state="pending"]')
    summary = page.inner_text("#fleet-summary")
    assert "4 pending" in summary and "8 up to date" in summary and "48 unreachable" in summary
    assert page.locator("#targets tbody tr").count() == 50
    assert page.evaluate("document.documentElement.scrollWidth") <= 1024  # no sideways scroll
    save_screenshot(page, "fleet-page-1024")
    height = page.evaluate("document.documentElement.scrollHeight")
    assert height <= 3 * 768, f"{height} px for a page of 50 targets"

    page.click("#fleet-summary button:text('Refresh now')")
    page.wait_for_selector("#fleet-summary[data-reads-queued]")
    page.wait_for_selector("#fleet-summary:not([data-reads-queued])")

    # Keyboard only: the state filter, then a name, then Enter.
    page.focus("#filter-state")
    page.select_option("#filter-state", "pending")
    page.wait_for_selector("#targets >> text=matching the filters")
    assert page.locator("#targets tbody tr").count() == 4 and "state=pending" in page.url
    page.keyboard.press("Tab")  # the revision filter
    page.keyboard.press("Tab")  # the name filter
    page.keyboard.type("tenant03")
    page.keyboard.press("Enter")
    page.wait_for_selector("#targets >> text=Targets 1–1 of 1")
    page.click('#targets tr[data-target="tenant03"] a')
    page.wait_for_selector("#target-of")
    assert "Target tenant03 of fleet Tenants" in page.inner_text("#target-of")
    assert "Pending upgrades" in page.inner_text("#status")
    save_screenshot(page, "fleet-target-page-1024")
    page.click("#target-of a")
    assert page.url.endswith("/environments/tenants/")
    page.click(".breadcrumbs a:text('Overview')")
    card = page.inner_text('[data-env="tenants"]')
    assert "Fleet of 60 targets" in card and "48 unreachable" in card and "4 pending" in card
    assert page.locator("[data-env^='tenants--']").count() == 0
    save_screenshot(page, "fleet-overview-1024")
    context.close()
