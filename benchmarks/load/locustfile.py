"""Locust users of the load test: developers, tech leads and auditors browsing.

Run by ``benchmarks/load_bench.py``; needs ``LOAD_MANIFEST`` (written by
``seed.py``) and optionally ``LOAD_SAMPLES`` (a path: every request's name,
time, outcome and start time are written there as JSON when Locust quits, so
the runner computes exact percentiles instead of Locust's rounded ones).

Every user logs in once through the admin login form (CSRF token from the
form, session cookie), then browses with a think time of ``LOAD_WAIT_MIN``..
``LOAD_WAIT_MAX`` seconds (default 1..3) between pages. Redirects are not
followed: a page that answers anything but 200 (a lost session redirecting to
the login, a 403, a 500) counts as a failure, and so does a 200 that lacks the
page's marker text.
"""

from __future__ import annotations

import html
import json
import os
import random
import re
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import gevent
from locust import between, events, task
from locust.contrib.fasthttp import FastHttpUser

MANIFEST: dict[str, Any] = json.loads(Path(os.environ["LOAD_MANIFEST"]).read_text())
WAIT = (float(os.environ.get("LOAD_WAIT_MIN", "1")), float(os.environ.get("LOAD_WAIT_MAX", "3")))
CSRF_FIELD = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
OLDER_LINK = re.compile(r'<a href="\?([^"]*before=\d+)" id="older"')
HTMX = {"HX-Request": "true"}
FILTERS = [
    {"environment": "production", "action": "dashboard.run.succeeded"},
    {"environment": "staging"},
    {"action": "dashboard.run.*"},
    {"actor": "user7"},
]

_samples: list[tuple[str, float, bool, float]] = []
_samples_lock = threading.Lock()


@events.request.add_listener
def _record(
    name: str, response_time: float, exception: Exception | None, start_time: float, **_: Any
) -> None:
    with _samples_lock:
        _samples.append((name, response_time, exception is None, start_time))


@events.quitting.add_listener
def _dump(**_: Any) -> None:
    path = os.environ.get("LOAD_SAMPLES")
    if path:
        Path(path).write_text(json.dumps(_samples), encoding="utf-8")


class DashboardUser(FastHttpUser):
    """A logged-in person; subclasses say who and what they look at."""

    abstract = True
    wait_time = between(*WAIT)
    network_timeout = 60.0
    connection_timeout = 10.0
    role = "developers"

    def on_start(self) -> None:
        self.username = random.choice(MANIFEST["roles"][self.role])
        self.login()

    def login(self) -> None:
        page = self.client.get("/admin/login/?next=/", name="GET /admin/login/")
        token = CSRF_FIELD.search(page.text or "")
        body = urlencode(
            {
                "csrfmiddlewaretoken": token.group(1) if token else "",
                "username": self.username,
                "password": MANIFEST["password"],
                "next": "/",
            }
        )
        with self.client.post(
            "/admin/login/?next=/",
            data=body,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            name="POST /admin/login/ (log in)",
            allow_redirects=False,
            catch_response=True,
        ) as response:
            location = response.headers.get("Location", "") if response.headers else ""
            if response.status_code == 302 and "login" not in location:
                response.success()
            else:
                response.failure(f"login as {self.username} failed: {response.status_code}")

    def page(
        self, url: str, name: str, marker: str, *, headers: dict[str, str] | None = None
    ) -> str:
        """GET ``url`` (grouped as ``name``); a failure unless 200 with ``marker`` in the body."""
        with self.client.get(
            url, name=name, headers=headers, allow_redirects=False, catch_response=True
        ) as response:
            text = response.text or ""
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}")
            elif marker not in text:
                response.failure(f"200 without {marker!r}")
            else:
                response.success()
            return text

    # Pages every role sees -------------------------------------------------
    def overview(self) -> None:
        self.page("/", "/ (overview)", "Production")

    def graph(self) -> None:
        self.page("/graph/", "/graph/", random.choice(MANIFEST["revisions"][:20]))

    def revision_fragment(self) -> None:
        rev = random.choice(MANIFEST["revisions"])
        self.page(f"/graph/revisions/{rev}/", "/graph/revisions/[id]/ (htmx)", rev, headers=HTMX)

    def environment_page(self) -> None:
        slug = random.choice(list(MANIFEST["environments"]))
        self.page(f"/environments/{slug}/", "/environments/[slug]/", slug)

    def request_detail(self) -> None:
        pk = random.choice(MANIFEST["requests"])
        self.page(f"/requests/{pk}/", "/requests/[id]/", f"#{pk}")


class Developer(DashboardUser):
    weight = 2
    role = "developers"

    @task(3)
    def t_overview(self) -> None:
        self.overview()

    @task(2)
    def t_graph(self) -> None:
        self.graph()

    @task(4)
    def t_revision(self) -> None:
        self.revision_fragment()

    @task(2)
    def t_environment(self) -> None:
        self.environment_page()

    @task(1)
    def t_my_requests(self) -> None:
        self.page("/requests/", "/requests/ (mine)", "My requests")

    @task(2)
    def t_request(self) -> None:
        self.request_detail()


class TechLead(DashboardUser):
    weight = 1
    role = "leads"

    @task(2)
    def t_overview(self) -> None:
        self.overview()

    @task(2)
    def t_waiting(self) -> None:
        self.page("/requests/waiting/", "/requests/waiting/", "Waiting for my approval")

    @task(3)
    def t_request(self) -> None:
        self.request_detail()

    @task(1)
    def t_watch_pending(self) -> None:
        """Open a pending request and let htmx poll its status a few times (every 1 s)."""
        pending = MANIFEST["pending_requests"] or MANIFEST["requests"]
        pk = random.choice(pending)
        self.page(f"/requests/{pk}/", "/requests/[id]/", f"#{pk}")
        for _ in range(3):
            gevent.sleep(1.0)  # htmx polls every second
            self.page(
                f"/requests/{pk}/status/", "/requests/[id]/status/ (htmx poll)", "", headers=HTMX
            )

    @task(1)
    def t_graph(self) -> None:
        self.graph()

    @task(2)
    def t_revision(self) -> None:
        self.revision_fragment()

    @task(2)
    def t_environment(self) -> None:
        self.environment_page()


class Auditor(DashboardUser):
    weight = 2
    role = "auditors"

    @task(1)
    def t_overview(self) -> None:
        self.overview()

    @task(3)
    def t_log_and_older(self) -> None:
        """The first page of the log, then the next page through its "Older" link."""
        text = self.page("/audit/", "/audit/ (first page)", '<tr class="audit-')
        older = OLDER_LINK.search(text)
        if older:
            query = html.unescape(older.group(1))
            self.page(f"/audit/?{query}", "/audit/?before= (older link)", '<tr class="audit-')

    @task(2)
    def t_filtered(self) -> None:
        query = urlencode(random.choice(FILTERS))
        self.page(f"/audit/?{query}", "/audit/?filters", '<tr class="audit-')

    @task(2)
    def t_deep(self) -> None:
        """A page deep in the log (keyset cursor far back), with filters."""
        before = random.randint(1000, max(1001, MANIFEST["audit_head_seq"] // 2))
        query = urlencode({**random.choice(FILTERS[:2]), "before": before})
        self.page(f"/audit/?{query}", "/audit/?filters&before= (deep)", '<tr class="audit-')

    @task(1)
    def t_event(self) -> None:
        seq = random.randint(1, MANIFEST["audit_head_seq"])
        self.page(f"/audit/events/{seq}/", "/audit/events/[seq]/", str(seq))

    @task(1)
    def t_timeline(self) -> None:
        slug = random.choice(list(MANIFEST["environments"]))
        self.page(f"/audit/timeline/?environment={slug}", "/audit/timeline/", slug)

    @task(1)
    def t_request(self) -> None:
        self.request_detail()
