"""The auditor's pages: permissions, filters, keyset pages, exports, admin."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable
from datetime import UTC, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from django.test import Client
from django.urls import reverse

from dashboard.audit.chain import CHAIN_FIELDS
from dashboard.audit.models import AuditEvent
from dashboard.audit.selectors import EventFilters, audit_event_page
from dashboard.audit.services import audit_record

pytestmark = pytest.mark.django_db

PRODUCTION = SimpleNamespace(pk=1, slug="production")
STAGING = SimpleNamespace(pk=2, slug="staging")


def _client(user: object) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _seed(actor: object) -> None:
    """A small, varied log: 30 events over two environments and several actions."""
    for number in range(30):
        audit_record(
            action=["dashboard.request.created", "dashboard.run.started", "dashboard.run.failed"][
                number % 3
            ],
            actor=actor if number % 2 == 0 else None,
            environment=PRODUCTION if number % 5 else STAGING,
            request=SimpleNamespace(pk=100 + number // 3),
            from_revisions=[f"base{number:03d}"],
            to_revisions=[f"head{number:03d}"],
            payload={"n": number},
        )


def _export(client: Client, name: str, filters: dict[str, str] | None = None) -> str:
    response = client.post(reverse(name), filters or {})
    assert response.status_code == 200
    assert response.streaming
    return b"".join(response.streaming_content).decode("utf-8")


# --- permissions ------------------------------------------------------------------


@pytest.mark.parametrize("url_name", ["audit:log", "audit:timeline", "audit:export_csv"])
def test_it_sends_anonymous_visitors_to_the_login_page(url_name: str) -> None:
    response = Client().get(reverse(url_name))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_it_shows_the_log_to_an_auditor_and_lets_them_export(auditor: object, lead: object) -> None:
    _seed(lead)
    client = _client(auditor)

    page = client.get(reverse("audit:log"))
    detail = client.get(reverse("audit:detail", args=[1]))
    timeline = client.get(reverse("audit:timeline") + "?environment=production")

    assert page.status_code == detail.status_code == timeline.status_code == 200
    assert b"dashboard.run.failed" in page.content
    assert b'id="export-csv"' in page.content
    existing = AuditEvent.objects.count()  # 30 seeded + the auditor's login
    assert _export(client, "audit:export_csv").count("\n") == existing + 1  # + header


@pytest.mark.parametrize("person", ["developer", "lead", "outsider"])
@pytest.mark.parametrize(
    "url",
    [
        "/audit/",
        "/audit/events/1/",
        "/audit/timeline/",
        "/audit/export.csv",
        "/audit/export.jsonl",
    ],
)
def test_it_refuses_people_without_the_audit_permission(
    person: str, url: str, request: pytest.FixtureRequest, lead: object
) -> None:
    audit_record(action="dashboard.environment.changed", actor=lead)
    user = request.getfixturevalue(person)

    client = _client(user)

    assert client.get(url).status_code == 403
    if "export" in url:
        assert client.post(url).status_code == 403
    assert not AuditEvent.objects.filter(action="dashboard.audit.exported").exists()


def test_it_needs_the_export_permission_to_export(make_user: Callable[..., object]) -> None:
    from django.contrib.auth.models import Permission

    viewer = make_user("viewer")
    viewer.user_permissions.add(
        Permission.objects.get(codename="view_auditlog", content_type__app_label="dashboard")
    )
    client = _client(viewer)

    assert client.get(reverse("audit:log")).status_code == 200
    assert b'id="export-csv"' not in client.get(reverse("audit:log")).content
    assert client.get(reverse("audit:export_csv")).status_code == 403
    assert client.post(reverse("audit:export_csv")).status_code == 403
    assert not AuditEvent.objects.filter(action="dashboard.audit.exported").exists()


def test_it_lets_a_superuser_see_the_log(make_user: Callable[..., object]) -> None:
    root = make_user("root", superuser=True)
    assert _client(root).get(reverse("audit:log")).status_code == 200


def test_it_offers_no_add_change_or_delete_in_the_admin(
    auditor: object, make_user: Callable[..., object], lead: object
) -> None:
    event = audit_record(action="dashboard.environment.changed", actor=lead)
    root = make_user("root", superuser=True)
    changelist = reverse("admin:audit_auditevent_changelist")
    change = reverse("admin:audit_auditevent_change", args=[event.seq])

    for user in (auditor, root):
        client = _client(user)
        assert client.get(changelist).status_code == 200
        assert client.get(change).status_code == 200  # read-only view
        assert client.get(reverse("admin:audit_auditevent_add")).status_code == 403
        assert (
            client.get(reverse("admin:audit_auditevent_delete", args=[event.seq])).status_code
            == 403
        )
        posted = client.post(change, {"action": "dashboard.tampered"})
        assert posted.status_code == 403
    assert _client(lead).get(changelist).status_code == 403
    assert AuditEvent.objects.get(seq=event.seq).action == "dashboard.environment.changed"


# --- filters and pages ---------------------------------------------------------------


def test_it_filters_by_environment_action_actor_revision_and_request(
    auditor: object, lead: object
) -> None:
    _seed(lead)
    client = _client(auditor)

    def shown(query: str) -> set[int]:
        html = client.get(reverse("audit:log") + query).content.decode()
        return {event.seq for event in AuditEvent.objects.all() if f">{event.seq}</a>" in html}

    everything = AuditEvent.objects.all()
    assert shown("?environment=staging") == {
        e.seq for e in everything if e.environment_slug == "staging"
    }
    assert shown("?environment=production&action=dashboard.run.failed") == {
        e.seq
        for e in everything
        if e.environment_slug == "production" and e.action == "dashboard.run.failed"
    }
    assert shown("?action=dashboard.run.*") == {
        e.seq for e in everything if e.action.startswith("dashboard.run.")
    }
    assert shown("?actor=lead") == {e.seq for e in everything if e.actor_username == "lead"}
    assert shown("?revision=head007") == {8}
    assert shown("?revision=base012") == {13}
    assert shown("?request=101") == {4, 5, 6}


def test_it_filters_by_inclusive_utc_date_range(auditor: object, lead: object) -> None:
    _seed(lead)
    today = AuditEvent.objects.get(seq=1).created_at.date()
    yesterday, tomorrow = today - timedelta(days=1), today + timedelta(days=1)

    everything = audit_event_page(filters=EventFilters(date_from=today, date_to=today), size=100)
    nothing = audit_event_page(filters=EventFilters(date_to=yesterday), size=100)
    later = audit_event_page(filters=EventFilters(date_from=tomorrow), size=100)

    assert len(everything.events) == 30
    assert nothing.events == later.events == []
    response = _client(auditor).get(reverse("audit:log") + f"?date_to={yesterday.isoformat()}")
    assert b"No event matches" in response.content


def test_it_ignores_an_invalid_filter_and_says_so(auditor: object, lead: object) -> None:
    _seed(lead)

    response = _client(auditor).get(reverse("audit:log") + "?request=abc&environment=staging")

    assert response.status_code == 200
    assert b"errornote" in response.content and b"(ignored)" in response.content
    assert {event.environment_slug for event in response.context["page"].events} == {"staging"}


def test_it_answers_htmx_with_the_table_only(auditor: object, lead: object) -> None:
    _seed(lead)
    response = _client(auditor).get(
        reverse("audit:log") + "?environment=staging", headers={"HX-Request": "true"}
    )

    html = response.content.decode()
    assert html.lstrip().startswith('<div id="audit-table">')
    assert "<html" not in html and 'id="audit-filters"' not in html
    # The export form (a POST) carries the current filters as hidden inputs.
    assert '<input type="hidden" name="environment" value="staging">' in html


def test_it_pages_through_1000_events_without_duplicates_or_gaps_while_new_ones_arrive(
    auditor: object, lead: object
) -> None:
    client = _client(auditor)  # logging in writes event #1
    for number in range(999):
        audit_record(action="dashboard.environment.changed", actor=lead, payload={"n": number})
    seen: list[int] = []
    before = ""
    for _ in range(30):  # 1000 / 50 = 20 pages; bounded
        response = client.get(reverse("audit:log") + (f"?before={before}" if before else ""))
        page = response.context["page"]
        seen.extend(event.seq for event in page.events)
        audit_record(action="dashboard.auth.login", actor=lead)  # a newcomer on every page
        if page.next_before is None:
            break
        assert len(page.events) == 50
        assert f"before={page.next_before}" in response.content.decode()
        before = str(page.next_before)

    assert seen == list(range(1000, 0, -1))


# --- exports -------------------------------------------------------------------------


def test_it_exports_csv_matching_the_database_and_records_the_export(
    auditor: object, lead: object
) -> None:
    _seed(lead)
    client = _client(auditor)

    text = _export(
        client, "audit:export_csv", {"environment": "production", "action": "dashboard.run.*"}
    )

    rows = list(csv.DictReader(io.StringIO(text)))
    expected = AuditEvent.objects.filter(
        environment_slug="production", action__startswith="dashboard.run."
    ).order_by("seq")
    assert [int(row["seq"]) for row in rows] == [event.seq for event in expected]
    for row, event in zip(rows, expected, strict=True):
        assert row["hash"] == event.hash and row["prev_hash"] == event.prev_hash
        assert row["action"] == event.action and row["actor_username"] == event.actor_username
        assert row["to_revisions"] == event.to_revisions
        assert json.loads(row["payload"]) == event.payload
    assert list(rows[0].keys()) == [*CHAIN_FIELDS, "hash"]
    exported = AuditEvent.objects.get(action="dashboard.audit.exported")
    assert exported.actor_username == "auditor"
    assert exported.payload["filters"] == {"environment": "production", "action": "dashboard.run.*"}
    assert exported.payload["format"] == "csv" and exported.payload["up_to_seq"] == exported.seq - 1


def test_it_exports_json_lines_matching_the_database(auditor: object, lead: object) -> None:
    _seed(lead)

    text = _export(_client(auditor), "audit:export_jsonl", {"request": "103"})

    documents = [json.loads(line) for line in text.splitlines()]
    expected = AuditEvent.objects.filter(request_id=103).order_by("seq")
    assert [document["seq"] for document in documents] == [event.seq for event in expected]
    for document, event in zip(documents, expected, strict=True):
        assert {key: document[key] for key in CHAIN_FIELDS} == event.chain_fields()
        assert document["hash"] == event.hash


def test_it_shows_an_event_with_its_neighbours_hashes(auditor: object, lead: object) -> None:
    _seed(lead)
    previous, event, following = (AuditEvent.objects.get(seq=seq) for seq in (9, 10, 11))

    html = _client(auditor).get(reverse("audit:detail", args=[10])).content.decode()

    for value in (event.hash, event.prev_hash, previous.hash, following.hash, "&quot;n&quot;: 9"):
        assert value in html
    assert "hash matches contents" in html
    assert "?environment=production" in html and "?request=103" in html
    assert 'href="/requests/103/"' in html and 'href="/environments/production/"' in html


# --- exports are POSTs ----------------------------------------------------------------


def test_it_answers_get_on_an_export_with_405_and_records_nothing(auditor: object) -> None:
    client = _client(auditor)

    for name in ("audit:export_csv", "audit:export_jsonl"):
        assert client.get(reverse(name) + "?environment=production").status_code == 405
    assert not AuditEvent.objects.filter(action="dashboard.audit.exported").exists()


def test_it_refuses_a_cross_site_export_without_the_csrf_token(auditor: object) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(auditor)

    response = client.post(reverse("audit:export_csv"), {"environment": "production"})

    assert response.status_code == 403
    assert not AuditEvent.objects.filter(action="dashboard.audit.exported").exists()


def test_it_offers_the_export_as_a_form_that_keeps_the_filters(
    auditor: object, lead: object
) -> None:
    """The log page's export form, submitted as a browser would, exports that filter."""
    _seed(lead)
    client = Client(enforce_csrf_checks=True)
    client.force_login(auditor)
    html = client.get(reverse("audit:log") + "?environment=staging&before=20").content.decode()
    form = html[
        html.index('<form method="post"') : html.index("</form>", html.index('id="audit-export"'))
    ]
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', form))

    assert f'action="{reverse("audit:export_csv")}"' in form
    assert f'formaction="{reverse("audit:export_jsonl")}"' in form
    assert set(fields) == {"csrfmiddlewaretoken", "environment"}  # not the page cursor
    response = client.post(reverse("audit:export_jsonl"), fields)
    assert response.status_code == 200
    exported = [json.loads(line) for line in b"".join(response.streaming_content).splitlines()]
    assert {document["environment_slug"] for document in exported} == {"staging"}
    event = AuditEvent.objects.get(action="dashboard.audit.exported")
    assert event.payload["filters"] == {"environment": "staging"}
    assert event.payload["format"] == "jsonl"


@pytest.mark.parametrize(
    ("name", "suffix"), [("audit:export_csv", "csv"), ("audit:export_jsonl", "jsonl")]
)
def test_it_names_the_download_after_the_utc_time(auditor: object, name: str, suffix: str) -> None:
    response = _client(auditor).post(reverse(name))

    assert re.fullmatch(
        rf'attachment; filename="audit-\d{{8}}T\d{{6}}Z\.{suffix}"', response["Content-Disposition"]
    )


# --- times in UTC ------------------------------------------------------------------------


def test_it_shows_times_in_utc_whatever_the_time_zone(
    settings: object, auditor: object, lead: object
) -> None:
    from dashboard.audit.services import audit_chain_verify

    settings.TIME_ZONE = "America/New_York"  # type: ignore[attr-defined]
    audit_record(
        action="dashboard.request.created",
        actor=lead,
        environment=PRODUCTION,
        request=SimpleNamespace(pk=5),
        payload={"revisions": ["r1"]},
    )
    verification = audit_chain_verify()
    event = AuditEvent.objects.get(seq=1)
    utc_time = event.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    new_york = event.created_at.astimezone(ZoneInfo("America/New_York")).strftime("%Y-%m-%d %H:%M")
    checked = verification.checked_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    client = _client(auditor)

    log = client.get(reverse("audit:log")).content.decode()
    detail = client.get(reverse("audit:detail", args=[1])).content.decode()
    timeline = client.get(reverse("audit:timeline") + "?environment=production").content.decode()

    assert "<th>Time (UTC)</th>" in log and utc_time in log
    assert f"Chain last verified {checked} UTC" in log
    assert "<th>Time (UTC)</th>" in detail and utc_time in detail
    assert "Requested by (time UTC)" in timeline and utc_time in timeline
    for html in (log, detail, timeline):
        assert new_york not in html


# --- indexes at scale (PostgreSQL) ------------------------------------------------------------


def _plan(sql: str, params: object = ()) -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        # The test table is tiny: forbid the sequential scan to see what can serve the query.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {sql}", params)
        return "\n".join(row[0] for row in cursor.fetchall())


def test_it_serves_revision_and_action_prefix_filters_from_indexes(lead: object) -> None:
    from dashboard.audit.selectors import _ACTIONS_WITH_PREFIX, audit_event_queryset

    _seed(lead)
    revision = audit_event_queryset(filters=EventFilters(revision="head01")).order_by("-seq")[:51]

    assert "audit_revisions_trgm" in _plan(*revision.query.sql_with_params())
    assert "audit_action_prefix" in _plan(_ACTIONS_WITH_PREFIX, ["dashboard.run.%"] * 2)


def test_it_pages_an_action_prefix_across_its_codes_newest_first(lead: object) -> None:
    _seed(lead)  # 30 events: request.created, run.started, run.failed in turn
    for number in range(5):
        audit_record(action="dashboard.run.succeeded", actor=lead, payload={"n": number})
    expected = list(
        AuditEvent.objects.filter(action__startswith="dashboard.run.")
        .order_by("-seq")
        .values_list("seq", flat=True)
    )
    seen: list[int] = []
    before = None
    for _ in range(10):  # bounded
        page = audit_event_page(
            filters=EventFilters(action="dashboard.run.*"), before=before, size=7
        )
        seen.extend(event.seq for event in page.events)
        if page.next_before is None:
            break
        before = page.next_before

    assert seen == expected and len(seen) == 25
    assert audit_event_page(filters=EventFilters(action="dashboard.nothing.*")).events == []
    staging = audit_event_page(
        filters=EventFilters(action="dashboard.run.*", environment="staging", actor="lead")
    )
    assert {(e.environment_slug, e.actor_username) for e in staging.events} == {("staging", "lead")}


def test_it_bounds_a_date_range_by_its_first_and_last_events(lead: object) -> None:
    _seed(lead)
    day = AuditEvent.objects.get(seq=1).created_at.astimezone(UTC).date()

    page = audit_event_page(
        filters=EventFilters(action="dashboard.run.*", date_from=day, date_to=day), size=100
    )
    before = audit_event_page(filters=EventFilters(date_to=day - timedelta(days=1)))
    none_of_the_codes = audit_event_page(
        filters=EventFilters(action="dashboard.run.*", date_from=day + timedelta(days=1))
    )

    assert [event.seq for event in page.events] == [
        seq for seq in range(30, 0, -1) if (seq - 1) % 3
    ]
    assert before.events == [] and none_of_the_codes.events == []


@pytest.mark.parametrize(
    "filters",
    [{"action": "dashboard.api.*"}, {"date_from": "2999-01-01"}],
    ids=["a prefix with no event", "dates without events"],
)
@pytest.mark.parametrize("name", ["audit:export_csv", "audit:export_jsonl"])
def test_it_exports_an_empty_file_for_a_filter_nothing_matches(
    auditor: object, lead: object, name: str, filters: dict[str, str]
) -> None:
    _seed(lead)

    text = _export(_client(auditor), name, filters)

    assert text.splitlines() == ([",".join(CHAIN_FIELDS) + ",hash"] if name.endswith("csv") else [])
