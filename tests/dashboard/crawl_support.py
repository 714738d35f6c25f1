"""The world the permission crawl walks through, and the checks made on every answer.

``build_world`` makes real objects for every URL's arguments, through the
product's own services (no hand-set statuses):

- ``production``: a PostgreSQL target at revision ``a`` of the generated
  project (``tests/migrator/execution_project.py``). Its URL carries a canary
  password; the server trusts loopback so the password is ignored, and the
  crawl asserts it never appears in any answer. Its last status read holds a
  detected drift so the draft-revision download has something to serve.
- ``broken``: an unreachable PostgreSQL URL with the same canary password
  (its error message is shown on pages).
- ``done``: a request approved by two tech leads, claimed and run to success.
- ``open``: a pending request by the developer with one of two approvals
  (by ``lead2``), so ``lead`` can still approve or reject it and the
  developer can cancel it.
- one API token per role, an audit event, a revision id of the graph.
"""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from django.test import Client

CANARY_PASSWORD = "CrawlCanary" + secrets.token_hex(6)
CSRF_SECRET = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(32))
ROLES = ("anonymous", "developer", "lead", "auditor", "nobody")
SCRIPT_TYPES_THAT_RUN = ("", "text/javascript", "module", "application/javascript")


@dataclass
class World:
    """Objects the URLs point at, and who is who."""

    users: dict[str, Any]
    tokens: dict[str, str]
    production: Any
    broken: Any
    done: Any
    open: Any
    audit_seq: int
    revision_id: str


def canary_url(database_url: str) -> str:
    """``database_url`` with the canary password put in (PostgreSQL trusts loopback)."""
    from sqlalchemy.engine import make_url

    return (
        make_url(database_url).set(password=CANARY_PASSWORD).render_as_string(hide_password=False)
    )


def build_world(*, users: dict[str, Any], target_url: str, directory: Path) -> World:
    """Create environments, requests (one done, one open), tokens; see the module docstring."""
    from dashboard.api.services import api_token_create
    from dashboard.approvals import transitions
    from dashboard.approvals.services.decisions import migration_request_approve
    from dashboard.approvals.services.requests import migration_request_create
    from dashboard.audit.models import AuditEvent
    from dashboard.environments.models import Environment
    from dashboard.environments.services import environment_status_refresh
    from tests.dashboard.approvals_support import make_environment

    production = make_environment(slug="production", url=target_url, directory=directory)
    broken = make_environment(
        slug="broken",
        url=f"postgresql+psycopg://postgres:{CANARY_PASSWORD}@127.0.0.1:1/nothing",
        directory=directory,
    )
    environment_status_refresh(environment=production, check_drift=False)
    environment_status_refresh(environment=broken, check_drift=False)
    # A detected drift as the status refresh stores it (the detection itself
    # is tested in the environments tests); the download renders it.
    Environment.objects.filter(pk=production.pk).update(
        drift={
            "state": "drift",
            "operations": ["add_table stray"],
            "python": "op.drop_table('stray')",
            "python_downgrade": "pass",
        }
    )

    developer, lead, lead2 = users["developer"], users["lead"], users["lead2"]
    done = migration_request_create(
        environment=production, actor=developer, direction="upgrade", target="c", reason="crawl"
    )
    for approver in (lead2, lead):
        done = migration_request_approve(request=done, actor=approver)
    run = transitions.run_claimed(done, worker="crawl")
    assert run is not None
    transitions.run_finished(run, transitions.RunRecord(outcome="succeeded", final_heads=["c"]))

    open_request = migration_request_create(
        environment=production, actor=developer, direction="upgrade", target="c", reason="crawl"
    )
    migration_request_approve(request=open_request, actor=lead2)

    tokens = {
        role: api_token_create(owner=user, name=f"crawl-{role}", actor=user)[1]
        for role, user in users.items()
        if role in ROLES
    }
    return World(
        users=users,
        tokens=tokens,
        production=production,
        broken=broken,
        done=done,
        open=open_request,
        audit_seq=AuditEvent.objects.order_by("-seq").values_list("seq", flat=True)[0],
        revision_id="b",
    )


def client_for(world: World, role: str, *, csrf: bool = True, token: bool = False) -> Client:
    """A test client as ``role``: a session (or a bearer token), CSRF enforced.

    With ``csrf`` the client carries what a browser has after loading a page:
    the CSRF cookie and the same value in ``X-CSRFToken`` (htmx sends it from
    ``<body hx-headers=...>``). Without it, POSTs carry no token at all.
    """
    headers: dict[str, str] = {}
    if token and role in world.tokens:
        headers["Authorization"] = f"Bearer {world.tokens[role]}"
    if csrf:
        headers["X-CSRFToken"] = CSRF_SECRET
    client = Client(enforce_csrf_checks=True, raise_request_exception=False, headers=headers)
    if csrf:
        client.cookies["csrftoken"] = CSRF_SECRET
    if not token and role != "anonymous":
        client.force_login(world.users[role])
    return client


def body_of(response: Any) -> str:
    content = b"".join(response.streaming_content) if response.streaming else response.content
    return content.decode("utf-8", errors="replace")


class _ScriptFinder(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.inline: list[str] = []
        self._open: dict[str, str] | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script":
            self._open = {name: value or "" for name, value in attrs}
            self._text = []

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag != "script" or self._open is None:
            return
        kind = self._open.get("type", "").strip().lower()
        if "src" not in self._open and kind in SCRIPT_TYPES_THAT_RUN:
            self.inline.append("".join(self._text).strip()[:80])
        self._open = None


def inline_scripts(html: str) -> list[str]:
    """The executable ``<script>`` elements without ``src`` (CSP forbids them)."""
    finder = _ScriptFinder()
    finder.feed(html)
    finder.close()
    return finder.inline


def answer_problems(response: Any, body: str) -> list[str]:
    """What is wrong with an answer whatever its status: leaked secret, inline script."""
    problems = []
    if CANARY_PASSWORD in body or CANARY_PASSWORD in str(response.headers):
        problems.append("the database password appears in the answer")
    if response.status_code == 200 and "html" in response.get("Content-Type", ""):
        problems.extend(f"inline <script>: {text!r}" for text in inline_scripts(body))
    return problems
