"""The overview at scale (issue 11, item 17): a constant number of queries, no heavy columns.

The cards read the denormalised drift summary and last run on each row; the
drift comparison (operations, the autogenerate draft) is never loaded.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from dashboard.environments.models import Environment

pytestmark = pytest.mark.django_db

HEAVY_DRIFT = {
    "state": "drift",
    "operations": [f"column pages.extra_{i} is only in the database" for i in range(40)],
    "python": "op.drop_column('pages', 'extra')\n" * 400,
    "python_downgrade": "pass",
}


def _environments(count: int, *, start: int = 0) -> None:
    Environment.objects.bulk_create(
        Environment(
            slug=f"env-{i}",
            name=f"Env {i}",
            position=i,
            url_env="UNUSED_URL",
            status_state="up_to_date",
            current_heads=["abc"],
            status_detail={"head_messages": {"abc": "a message"}},
            drift=HEAVY_DRIFT,
            drift_state="drift",
            drift_count=40,
            last_run_outcome="failed",
            last_run_request_id=1000 + i,
        )
        for i in range(start, start + count)
    )


def _overview_queries(user: Any) -> tuple[int, list[str], str]:
    client = Client()
    client.force_login(user)
    client.get("/")  # warm: session, permissions caches are per request anyway
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/")
    assert response.status_code == 200
    return len(queries), [q["sql"] for q in queries.captured_queries], response.content.decode()


def test_it_answers_with_the_same_number_of_queries_for_3_and_30_environments(
    developer: Any,
) -> None:
    _environments(3)
    few, _, html = _overview_queries(developer)
    assert html.count('class="env-card"') == 3
    _environments(27, start=3)
    many, statements, html = _overview_queries(developer)
    assert html.count('class="env-card"') == 30
    assert many == few, "\n".join(statements)


def test_it_never_loads_the_drift_comparison_or_the_configuration(developer: Any) -> None:
    _environments(3)
    _, statements, html = _overview_queries(developer)
    [select] = [sql for sql in statements if 'FROM "environments_environment"' in sql]
    assert '."drift",' not in select and '."drift" ' not in select
    assert '."description"' not in select and '."url_env"' not in select
    assert "drop_column" not in html
    # ...and the card still says how much drift there is, from the summary.
    assert "40 differences" in html


def test_the_last_run_is_a_status_badge_linking_to_its_request(developer: Any) -> None:
    _environments(1)
    _, _, html = _overview_queries(developer)
    assert '<a href="/requests/1000/"><span class="dash-badge dash-status danger"' in html
    assert 'data-status="failed">Failed</span>' in html
