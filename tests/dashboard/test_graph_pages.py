"""The graph page and the revision detail, as developers, tech leads and outsiders see them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.test import Client

from dashboard.environments.models import Environment
from tests.migrator.graph_histories import (
    BAD_KINDS,
    write_bad_history,
    write_ini,
    write_revision,
)

pytestmark = pytest.mark.django_db


def two_head_project(root: Path) -> Path:
    """base -> core -> (feature_a [label 'ui'] | feature_b): two open heads."""
    versions = root / "versions"
    write_revision(versions, "0a1b2c3d4e01", None, message="create pages", order=0)
    write_revision(versions, "0a1b2c3d4e02", "0a1b2c3d4e01", message="add slugs", order=1)
    write_revision(
        versions, "0a1b2c3d4e03", "0a1b2c3d4e02", message="add webinar banner", labels="ui", order=2
    )
    write_revision(
        versions, "0a1b2c3d4e04", "0a1b2c3d4e02", message="index page translations", order=3
    )
    return write_ini(root, "%(here)s")


@pytest.fixture
def project(tmp_path: Path, settings) -> Path:  # type: ignore[no-untyped-def]
    settings.ALEMBIC_CONFIG = str(two_head_project(tmp_path))
    return tmp_path


def client_for(user: object | None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def test_it_redirects_anonymous_users_to_the_admin_login(project: Path) -> None:
    for url in ("/graph/", "/graph/revisions/0a1b2c3d4e01/"):
        response = client_for(None).get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/")


def test_it_forbids_users_without_the_view_permission(project: Path, outsider: object) -> None:
    client = client_for(outsider)
    assert client.get("/graph/").status_code == 403
    assert client.get("/graph/revisions/0a1b2c3d4e01/").status_code == 403


def test_every_role_sees_the_graph(
    project: Path, developer: object, lead: object, auditor: object
) -> None:
    for user in (developer, lead, auditor):
        response = client_for(user).get("/graph/")
        assert response.status_code == 200
        assert b'id="rev-0a1b2c3d4e01"' in response.content


def test_it_lists_both_heads_and_warns(project: Path, developer: object) -> None:
    html = client_for(developer).get("/graph/").content.decode()
    heads = html.split('class="graph-head-list"')[1].split("</ul>")[0]
    assert "0a1b2c3d4e03" in heads and "0a1b2c3d4e04" in heads
    assert "<code>alembic upgrade head</code> will fail: merge or use <code>heads</code>" in html
    assert html.count('class="graph-row row-') == 4
    assert '<span class="graph-tag">ui</span>' in html


def test_a_single_head_gives_no_warning(tmp_path: Path, settings, developer: object) -> None:  # type: ignore[no-untyped-def]
    write_revision(tmp_path / "versions", "1111aaaa0001", None, order=0)
    settings.ALEMBIC_CONFIG = str(write_ini(tmp_path, "%(here)s"))
    html = client_for(developer).get("/graph/").content.decode()
    assert "Open heads (1)" in html and "will fail" not in html


def test_it_marks_where_each_environment_stands(project: Path, developer: object) -> None:
    Environment.objects.create(
        slug="staging", name="Staging", url_env="X_URL", current_heads=["0a1b2c3d4e03"]
    )
    html = client_for(developer).get("/graph/").content.decode()
    row = html.split('id="rev-0a1b2c3d4e03"')[1].split("</li>")[0]
    assert 'class="env-mark"' in row and "Staging" in row
    assert "Staging" not in html.split('id="rev-0a1b2c3d4e04"')[1].split("</li>")[0]

    detail = client_for(developer).get("/graph/revisions/0a1b2c3d4e01/").content.decode()
    assert "Staging" in detail.split('class="applied-in"')[1].split("</dd>")[0]
    other = client_for(developer).get("/graph/revisions/0a1b2c3d4e04/").content.decode()
    assert "no environment" in other.split('class="applied-in"')[1].split("</dd>")[0]


def test_the_detail_is_a_fragment_for_htmx_and_a_page_otherwise(
    project: Path, developer: object
) -> None:
    client = client_for(developer)
    fragment = client.get("/graph/revisions/0a1b2c3d4e02/", HTTP_HX_REQUEST="true")
    text = fragment.content.decode()
    assert "<html" not in text and 'data-revision="0a1b2c3d4e02"' in text
    page = client.get("/graph/revisions/0a1b2c3d4e02/").content.decode()
    assert "<html" in page and 'data-revision="0a1b2c3d4e02"' in page
    assert client.get("/graph/revisions/ffffffffffff/").status_code == 404


def test_the_detail_shows_relations_source_and_offline_sql(
    project: Path, developer: object
) -> None:
    html = client_for(developer).get("/graph/revisions/0a1b2c3d4e02/").content.decode()
    assert "add slugs" in html
    assert "0a1b2c3d4e02_add_slugs.py" in html
    assert "2024-01-02 12:00:00" in html
    parents = html.split("<dt>Parents</dt>")[1].split("</dd>")[0]
    children = html.split("<dt>Children</dt>")[1].split("</dd>")[0]
    assert "0a1b2c3d4e01" in parents
    assert "0a1b2c3d4e03" in children and "0a1b2c3d4e04" in children
    assert '<div class="highlight">' in html  # Pygments
    assert "t_0a1b2c3d4e02" in html.split("<h3>upgrade()</h3>")[1]
    sql_pg = html.split("(postgresql, offline)")[1].split("<h3>")[0]
    sql_lite = html.split("(sqlite, offline)")[1]
    assert "SERIAL" in sql_pg and "t_0a1b2c3d4e02" in sql_pg
    assert "INTEGER" in sql_lite and "t_0a1b2c3d4e02" in sql_lite


def test_search_finds_by_id_prefix_and_message_words(project: Path, developer: object) -> None:
    client = client_for(developer)
    by_words = client.get(
        "/graph/?q=webinar banner",
        HTTP_HX_REQUEST="true",
        HTTP_HX_TARGET="graph-search-results",
    ).content.decode()
    assert "<html" not in by_words
    assert 'href="#rev-0a1b2c3d4e03"' in by_words and "0a1b2c3d4e04" not in by_words
    by_prefix = client.get("/graph/?q=0a1b2c3d4e0").content.decode()
    assert "4 revisions match" in by_prefix
    assert "No revision matches" in client.get("/graph/?q=zzz").content.decode()


def test_the_branch_filter_shows_one_lineage(project: Path, developer: object) -> None:
    html = client_for(developer).get("/graph/?branch=ui").content.decode()
    assert html.count('class="graph-row row-') == 3
    assert 'id="rev-0a1b2c3d4e04"' not in html


def test_an_empty_script_directory_has_an_empty_state(
    tmp_path: Path,
    settings,
    developer: object,  # type: ignore[no-untyped-def]
) -> None:
    (tmp_path / "versions").mkdir()
    settings.ALEMBIC_CONFIG = str(write_ini(tmp_path, "%(here)s"))
    html = client_for(developer).get("/graph/").content.decode()
    assert "This script directory has no revisions yet." in html


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_a_load_error_is_shown_with_file_and_line(
    tmp_path: Path,
    settings,
    developer: object,
    kind: str,  # type: ignore[no-untyped-def]
) -> None:
    location, problem, file_name, line = write_bad_history(tmp_path, kind)
    ini = tmp_path / "alembic.ini"
    ini.write_text(f"[alembic]\nscript_location = {location}\n")
    settings.ALEMBIC_CONFIG = str(ini)
    response = client_for(developer).get("/graph/")
    assert response.status_code == 200
    html = response.content.decode()
    errors = html.split('class="errornote graph-errors"')[1].split("</div>")[0]
    assert problem in errors.replace("&#x27;", "'")
    if file_name:
        assert f"{file_name}:{line}" in errors


def test_a_history_importing_a_missing_package_still_shows(
    tmp_path: Path,
    settings,
    developer: object,  # type: ignore[no-untyped-def]
) -> None:
    imports = ["import magnetiq_nonexistent_pkg_for_tests"]
    write_revision(tmp_path / "versions", "9e9e9e9e9e01", None, imports=imports, order=0)
    settings.ALEMBIC_CONFIG = str(write_ini(tmp_path, "%(here)s"))
    client = client_for(developer)
    assert b'id="rev-9e9e9e9e9e01"' in client.get("/graph/").content
    detail = client.get("/graph/revisions/9e9e9e9e9e01/").content.decode()
    assert "def upgrade()" in re.sub(r"<[^>]+>", "", detail)
    assert "Cannot render offline" in detail and "magnetiq_nonexistent_pkg_for_tests" in detail


# --- the graph remembers (#12 item 14) ----------------------------------------


def _panel(html: str) -> str:
    return html.split('id="revision-detail"')[1].split("</aside>")[0]


def test_a_shared_link_opens_that_revisions_detail_in_the_panel(
    project: Path, developer: object
) -> None:
    client = client_for(developer)
    html = client.get("/graph/?revision=0a1b2c3d4e02").content.decode()
    panel = _panel(html)
    assert 'data-revision="0a1b2c3d4e02"' in panel and "add slugs" in panel
    assert html.count('class="graph-row row-') == 4  # the whole graph is still there
    assert "Click a revision" in _panel(client.get("/graph/").content.decode())
    unknown = client.get("/graph/?revision=ffffffffffff")
    assert unknown.status_code == 200
    assert "This history has no revision <code>ffffffffffff</code>" in _panel(
        unknown.content.decode()
    )


def test_opening_a_revision_pushes_the_graphs_address_with_it(
    project: Path, developer: object
) -> None:
    client = client_for(developer)
    on_graph = client.get(
        "/graph/revisions/0a1b2c3d4e03/",
        headers={
            "HX-Request": "true",
            "HX-Target": "revision-detail",
            "HX-Current-URL": "http://testserver/graph/?q=add&branch=ui&revision=0a1b2c3d4e01",
        },
    )
    assert on_graph["HX-Push-Url"] == "/graph/?q=add&branch=ui&revision=0a1b2c3d4e03"
    first = client.get(
        "/graph/revisions/0a1b2c3d4e01/",
        headers={"HX-Request": "true", "HX-Current-URL": "http://testserver/graph/"},
    )
    assert first["HX-Push-Url"] == "/graph/?revision=0a1b2c3d4e01"
    # From a revision's own page, the address is the other revision's own page.
    own_page = client.get(
        "/graph/revisions/0a1b2c3d4e01/",
        headers={
            "HX-Request": "true",
            "HX-Current-URL": "http://testserver/graph/revisions/0a1b2c3d4e02/",
        },
    )
    assert own_page["HX-Push-Url"] == "/graph/revisions/0a1b2c3d4e01/"
    # Another origin's address is not trusted: the revision's own page.
    foreign = client.get(
        "/graph/revisions/0a1b2c3d4e01/",
        headers={"HX-Request": "true", "HX-Current-URL": "https://evil.example/graph/?q=x"},
    )
    assert foreign["HX-Push-Url"] == "/graph/revisions/0a1b2c3d4e01/"


def test_going_back_restores_whole_pages(project: Path, developer: object) -> None:
    """htmx restores a history entry by asking for it with HX-History-Restore-Request."""
    client = client_for(developer)
    restore = {"HX-Request": "true", "HX-History-Restore-Request": "true"}
    graph = client.get("/graph/?revision=0a1b2c3d4e02", headers=restore).content.decode()
    assert "<html" in graph and 'data-revision="0a1b2c3d4e02"' in _panel(graph)
    own = client.get("/graph/revisions/0a1b2c3d4e02/", headers=restore)
    assert "<html" in own.content.decode() and "HX-Push-Url" not in own


def test_a_request_from_the_detail_asks_which_environment(
    project: Path, developer: object, auditor: object
) -> None:
    Environment.objects.create(
        slug="staging", name="Staging", position=2, url_env="X", current_heads=["0a1b2c3d4e03"]
    )
    Environment.objects.create(slug="dev", name="Development", position=1, url_env="Y")
    for url in ("/graph/revisions/0a1b2c3d4e02/", "/graph/?revision=0a1b2c3d4e02"):
        html = client_for(developer).get(url).content.decode()
        form = html.split('<form class="rev-request"')[1].split("</form>")[0]
        assert 'method="get" action="/requests/new/"' in form
        assert '<input type="hidden" name="target" value="0a1b2c3d4e02">' in form
        select = form.split('name="environment" required>')[1].split("</select>")[0]
        options = re.findall(r'<option value="([^"]*)"( selected)?>([^<]*)<', select)
        # No environment is chosen for the user: the empty choice is, and it is required.
        assert options == [
            ("", " selected", "Choose one…"),
            ("dev", "", "Development"),
            ("staging", "", "Staging (has it applied)"),
        ]
        buttons = re.findall(
            r'<button type="submit" class="button" name="direction" value="(\w+)"', form
        )
        assert buttons == ["upgrade", "downgrade"]
        assert "Request a downgrade to it</button>" in form
    assert (
        "rev-request"
        not in client_for(auditor).get("/graph/revisions/0a1b2c3d4e02/").content.decode()
    )


def test_search_results_name_their_matches_for_the_highlight(
    project: Path, developer: object
) -> None:
    html = (
        client_for(developer)
        .get("/graph/?q=add", headers={"HX-Request": "true", "HX-Target": "graph-search-results"})
        .content.decode()
    )
    assert 'data-matches="0a1b2c3d4e03 0a1b2c3d4e02"' in html
    page = client_for(developer).get("/graph/").content.decode()
    svg = page.split('<svg class="graph-svg"')[1].split("</svg>")[0]
    assert 'data-rev="0a1b2c3d4e02"' in svg  # the node, for the highlight
    assert '<script src="/static/graph/graph.js" defer></script>' in page


def test_the_live_search_keeps_its_words_in_the_address(project: Path, developer: object) -> None:
    client = client_for(developer)
    search = {"HX-Request": "true", "HX-Target": "graph-search-results"}
    current = "http://testserver/graph/?branch=ui&revision=0a1b2c3d4e01"
    typed = client.get("/graph/?q=webinar", headers={**search, "HX-Current-URL": current})
    assert typed["HX-Replace-Url"] == "/graph/?q=webinar&branch=ui&revision=0a1b2c3d4e01"
    cleared = client.get(
        "/graph/?q=", headers={**search, "HX-Current-URL": "http://testserver/graph/?q=web"}
    )
    assert cleared["HX-Replace-Url"] == "/graph/"
