"""An auditor filters the log by environment and action, opens an event, downloads the CSV."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from types import SimpleNamespace

import pytest

from dashboard.audit.models import AuditEvent
from dashboard.audit.services import audit_record
from tests.conftest import browser_login, save_screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_auditor_filters_opens_an_event_and_downloads_the_csv(
    live_server: object, page: object, auditor: object, lead: object
) -> None:
    production, staging = (
        SimpleNamespace(pk=1, slug="production"),
        SimpleNamespace(pk=2, slug="staging"),
    )
    for number in range(120):
        audit_record(
            action=["dashboard.run.started", "dashboard.run.failed", "dashboard.run.succeeded"][
                number % 3
            ],
            actor=lead,
            environment=production if number % 2 else staging,
            request=SimpleNamespace(pk=number // 3 + 1),
            to_revisions=[f"rev{number:03d}"],
        )
    expected = list(
        AuditEvent.objects.filter(environment_slug="production", action="dashboard.run.failed")
        .order_by("-seq")
        .values_list("seq", flat=True)
    )
    base = live_server.url  # type: ignore[attr-defined]

    browser_login(page, base, "auditor")
    page.goto(f"{base}/audit/")
    page.fill("#id_environment", "production")
    page.select_option("#id_action", "dashboard.run.failed")
    page.evaluate("window.notReloaded = true")
    with page.expect_response(lambda response: "/audit/?" in response.url):
        page.click("#audit-filters button[type=submit]")
    page.wait_for_selector("#audit-table tbody tr")

    assert page.evaluate("window.notReloaded === true")  # htmx swapped the table in place
    assert "environment=production" in page.url and "action=dashboard.run.failed" in page.url
    shown = [
        int(text)
        for text in page.locator("#audit-table tbody tr td:first-child a").all_inner_texts()
    ]
    assert shown == expected

    page.click(f"#audit-table a[href='/audit/events/{expected[0]}/']")
    page.wait_for_selector("#event-hash")
    assert page.inner_text("#event-hash") == AuditEvent.objects.get(seq=expected[0]).hash
    assert "hash matches contents" in page.content()
    save_screenshot(page, "audit_event_detail")

    page.go_back()
    page.wait_for_selector("#export-csv")
    with page.expect_download() as download_info:
        page.click("#export-csv")
    download = download_info.value
    rows = list(csv.DictReader(io.StringIO(Path(download.path()).read_text(encoding="utf-8"))))

    assert [int(row["seq"]) for row in rows] == sorted(expected)
    assert {row["environment_slug"] for row in rows} == {"production"}
    assert (
        AuditEvent.objects.filter(
            action="dashboard.audit.exported", actor_username="auditor"
        ).count()
        == 1
    )
    page.goto(f"{base}/audit/?action=dashboard.audit.exported")
    save_screenshot(page, "audit_journey")
