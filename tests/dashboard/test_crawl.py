"""The permission crawl: every URL of the dashboard, as every role, against a table.

Every URL pattern is enumerated from the resolver; a URL name without a row in
the tables below fails the test, so a view added later must say who may use it.
Django admin's own generic views (namespace ``admin``) are left out except the
ones in ``ADMIN_TABLE``.

Roles: ``anonymous`` (no session, no token), ``developer``, ``lead``,
``auditor`` (the groups of ``dashboard/roles.py``) and ``nobody`` (a staff
account in no group). Pages use a session; the API is crawled with each role's
bearer token *and* with its session (reads accept both), and with nothing
(401). Methods: ``GET``; ``HTMX`` (GET with ``HX-Request``, the fragment);
``POST`` (with a valid CSRF token; every POST is first sent without one and
must be refused with 403 and change nothing).

On every answer: the canary password of the target's URL never appears; every
200 HTML page or fragment has no inline ``<script>`` (CSP).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from tests.dashboard.approvals_support import migrate_target
from tests.dashboard.crawl_support import (
    CANARY_PASSWORD,
    ROLES,
    World,
    answer_problems,
    body_of,
    build_world,
    canary_url,
    client_for,
)
from tests.migrator.execution_project import throwaway_postgres, write_project

pytestmark = pytest.mark.django_db
LOGIN = "/admin/login/"


class Row(NamedTuple):
    name: str
    method: str
    expected: dict[str, int]
    acts: frozenset[str] = frozenset()  # POST: the roles whose POST changes the state


def _rows(*table: tuple[Any, ...]) -> list[Row]:
    rows = []
    for name, method, *statuses in table:
        acts = frozenset(statuses.pop().split()) if isinstance(statuses[-1], str) else frozenset()
        rows.append(Row(name, method, dict(zip(ROLES, statuses, strict=True)), acts))
    return rows


# fmt: off
# Pages and fragments (session). 302 = to the login page for anonymous; 403 =
# logged in without the permission; 405 = wrong method.
PAGE_TABLE = _rows(
    # url name                        method   anon  dev  lead  audit nobody  POST: who changes state
    ("dashboard:overview",            "GET",    302, 200, 200, 200, 200),  # nobody: environments hidden
    ("dashboard:healthz",             "GET",    200, 200, 200, 200, 200),  # public, two words
    ("dashboard:reauthenticate",      "GET",    302, 200, 200, 200, 200),
    ("dashboard:reauthenticate",      "POST",   302, 302, 302, 302, 302, ""),  # session only
    ("graph:graph",                   "GET",    302, 200, 200, 200, 403),
    ("graph:graph",                   "HTMX",   302, 200, 200, 200, 403),
    ("graph:revision",                "GET",    302, 200, 200, 200, 403),
    ("graph:revision",                "HTMX",   302, 200, 200, 200, 403),
    ("environments:detail",           "GET",    302, 200, 200, 200, 403),
    ("environments:detail",           "HTMX",   302, 200, 200, 200, 403),
    ("environments:sql",              "GET",    302, 200, 200, 200, 403),
    ("environments:drift_revision",   "GET",    302, 200, 200, 200, 403),
    ("environments:refresh",          "GET",    302, 405, 405, 405, 405),
    # Refresh re-reads the target's heads into the cached status (a read the
    # beat does every minute); it decides nothing, so every viewer may ask.
    ("environments:refresh",          "POST",   302, 302, 302, 403, 403, "developer lead"),
    # The status fragment a never-read page polls; for an environment already read htmx
    # is told to stop polling (286). Not htmx: to the page.
    ("environments:status",           "GET",    302, 302, 302, 302, 403),
    ("environments:status",           "HTMX",   302, 286, 286, 286, 403),
    ("environments:first_read",       "GET",    302, 405, 405, 405, 405),
    # Queues the first read of a never-read environment, for anyone who may view it;
    # the crawl's environments were read, so nothing changes (tests/dashboard/
    # test_environments_refresh_queue.py covers the first read itself).
    ("environments:first_read",       "POST",   302, 302, 302, 302, 403, ""),
    ("audit:log",                     "GET",    302, 403, 403, 200, 403),
    ("audit:log",                     "HTMX",   302, 403, 403, 200, 403),
    ("audit:detail",                  "GET",    302, 403, 403, 200, 403),
    ("audit:timeline",                "GET",    302, 403, 403, 200, 403),
    # An export writes an audit event: POST only (GET 405 once the permission is there).
    ("audit:export_csv",              "GET",    302, 403, 403, 405, 403),
    ("audit:export_csv",              "POST",   302, 403, 403, 200, 403, "auditor"),
    ("audit:export_jsonl",            "GET",    302, 403, 403, 405, 403),
    ("audit:export_jsonl",            "POST",   302, 403, 403, 200, 403, "auditor"),
    ("approvals:mine",                "GET",    302, 200, 200, 403, 403),
    ("approvals:waiting",             "GET",    302, 403, 200, 403, 403),
    ("approvals:create",              "GET",    302, 200, 200, 403, 403),
    ("approvals:create",              "HTMX",   302, 200, 200, 403, 403),
    ("approvals:create",              "POST",   302, 302, 302, 403, 403, "developer lead"),
    ("approvals:detail",              "GET",    302, 200, 200, 200, 403),
    ("approvals:status",              "GET",    302, 302, 302, 302, 403),  # not htmx: to the page
    ("approvals:status",              "HTMX",   302, 200, 200, 200, 403),
    # GET on a POST-only view: 405 once the permission is there (403 before).
    ("approvals:approve",             "GET",    302, 403, 405, 403, 403),
    ("approvals:approve",             "POST",   302, 403, 302, 403, 403, "lead"),
    ("approvals:reject",              "GET",    302, 403, 405, 403, 403),
    ("approvals:reject",              "POST",   302, 403, 302, 403, 403, "lead"),
    ("approvals:cancel",              "GET",    302, 405, 405, 403, 403),
    # Only the requester (the developer) may cancel; the lead is not the requester.
    ("approvals:cancel",              "POST",   302, 302, 403, 403, 403, "developer"),
    # An environment's request history: the fragment its page loads, or a page of its own.
    ("approvals:environment_history", "GET",    302, 200, 200, 200, 403),
    ("approvals:environment_history", "HTMX",   302, 200, 200, 200, 403),
    # The pinned SQL as a file, for whoever may read the request.
    ("approvals:sql",                 "GET",    302, 200, 200, 200, 403),
    # A tech lead cancels a running run; the crawl's open request has no run, so the
    # lead's POST is refused with a message and changes nothing.
    ("approvals:cancel_run",          "GET",    302, 403, 405, 403, 403),
    ("approvals:cancel_run",          "POST",   302, 403, 302, 403, 403, ""),
    # A fleet's rollout page, its polled fragment and its leads' actions; the crawl's
    # open request is a single environment's: 404 (it has no rollout) for its readers.
    ("rollouts:rollout",              "GET",    302, 404, 404, 404, 403),
    ("rollouts:live",                 "GET",    302, 302, 302, 302, 403),  # not htmx: to the page
    ("rollouts:live",                 "HTMX",   302, 404, 404, 404, 403),
    ("rollouts:resume",               "GET",    302, 405, 405, 405, 403),
    ("rollouts:resume",               "POST",   302, 404, 404, 404, 403, ""),
    ("rollouts:cancel",               "GET",    302, 405, 405, 405, 403),
    ("rollouts:cancel",               "POST",   302, 404, 404, 404, 403, ""),
    ("rollouts:proceed",              "GET",    302, 405, 405, 405, 403),
    ("rollouts:proceed",              "POST",   302, 404, 404, 404, 403, ""),
    ("rollouts:rollback",             "GET",    302, 405, 405, 405, 403),
    ("rollouts:rollback",             "POST",   302, 404, 404, 404, 403, ""),
)

# The API. anonymous = no credentials at all. Reads accept a token or a session.
API_TABLE = _rows(
    ("api:api-root",                  "GET",    401, 200, 200, 200, 200),  # only links
    ("api:openapi-json",              "GET",    401, 200, 200, 200, 200),
    ("api:openapi-view",              "GET",    302, 200, 200, 200, 200),  # HTML docs: to login
    ("api:environments",              "GET",    401, 200, 200, 200, 403),
    ("api:environment",               "GET",    401, 200, 200, 200, 403),
    ("api:graph",                     "GET",    401, 200, 200, 200, 403),
    ("api:requests",                  "GET",    401, 200, 200, 200, 403),
    ("api:request",                   "GET",    401, 200, 200, 200, 403),
    # Same path as api:requests; GET there is the list (above).
    ("api:requests_create",           "POST",   401, 201, 201, 403, 403, "developer lead"),
    # Not operations: refused with the policy's reason (approving stays in the browser).
    ("api:request_approve",           "POST",   401, 403, 403, 403, 403, ""),
    ("api:request_reject",            "POST",   401, 403, 403, 403, 403, ""),
    # A fleet's rollout is resumed or cancelled by its leads; the crawl's open request is
    # a single environment's: 404 (it has no rollout) for whoever may read it.
    ("api:request_resume",            "POST",   401, 404, 404, 404, 403, ""),
    ("api:request_cancel",            "POST",   401, 404, 404, 404, 403, ""),
    # Any other path under /api/v1/: a JSON 404, whoever asks.
    ("api:not-found",                 "GET",    404, 404, 404, 404, 404),
)

# Django admin pages tested explicitly. Viewers see change pages read-only
# (200) but nobody may add, change or delete here except their own API tokens.
ADMIN_TABLE = _rows(
    ("admin:index",                                 "GET",  302, 200, 200, 200, 200),
    ("admin:environments_environment_changelist",   "GET",  302, 200, 200, 200, 403),
    ("admin:environments_environment_add",          "GET",  302, 403, 403, 403, 403),
    ("admin:environments_environment_change",       "GET",  302, 200, 200, 200, 403),
    ("admin:environments_environment_change",       "POST", 302, 403, 403, 403, 403, ""),
    ("admin:environments_environment_delete",       "GET",  302, 403, 403, 403, 403),
    ("admin:environments_environment_delete",       "POST", 302, 403, 403, 403, 403, ""),
    ("admin:audit_auditevent_changelist",           "GET",  302, 403, 403, 200, 403),
    ("admin:audit_auditevent_add",                  "GET",  302, 403, 403, 403, 403),
    ("admin:audit_auditevent_change",               "GET",  302, 403, 403, 200, 403),
    ("admin:audit_auditevent_change",               "POST", 302, 403, 403, 403, 403, ""),
    ("admin:audit_auditevent_delete",               "GET",  302, 403, 403, 403, 403),
    ("admin:audit_chainverification_changelist",    "GET",  302, 403, 403, 200, 403),
    # Login lockouts (django-axes) are for superusers only.
    ("admin:axes_accessattempt_changelist",         "GET",  302, 403, 403, 403, 403),
    ("admin:approvals_migrationrequest_changelist", "GET",  302, 200, 200, 200, 403),
    ("admin:approvals_migrationrequest_add",        "GET",  302, 403, 403, 403, 403),
    ("admin:approvals_migrationrequest_change",     "GET",  302, 200, 200, 200, 403),
    ("admin:approvals_migrationrequest_change",     "POST", 302, 403, 403, 403, 403, ""),
    ("admin:approvals_migrationrequest_delete",     "GET",  302, 403, 403, 403, 403),
    ("admin:approvals_approval_changelist",         "GET",  302, 403, 200, 200, 403),
    ("admin:approvals_run_changelist",              "GET",  302, 200, 200, 200, 403),
    ("admin:api_apitoken_changelist",               "GET",  302, 200, 200, 403, 403),
    # The revoke action: people revoke their own tokens only (the lead's
    # queryset does not hold the developer's token, so nothing happens).
    ("admin:api_apitoken_changelist",               "POST", 302, 302, 302, 403, 403, "developer"),
    ("admin:api_apitoken_add",                      "GET",  302, 200, 200, 403, 403),
    ("admin:api_apitoken_add",                      "POST", 302, 200, 200, 403, 403, "developer lead"),
    # The developer's token: the lead cannot see it (admin says "does not exist").
    ("admin:api_apitoken_change",                   "GET",  302, 200, 302, 403, 403),
    ("admin:api_apitoken_delete",                   "GET",  302, 403, 403, 403, 403),
)
# fmt: on

HX_TARGETS = {
    "graph:graph": "graph-search-results",
    "environments:detail": "plan",
    "environments:status": "status",
    "approvals:environment_history": "requests",
}


def _paths(world: World) -> dict[str, list[str]]:
    """Concrete paths per URL name (several where the objects differ in kind)."""
    env, broken, done, open_ = world.production, world.broken, world.done, world.open
    token_pk = _token(world, "developer").pk
    return {
        "graph:graph": [reverse("graph:graph") + "?q=b"],
        "graph:revision": [reverse("graph:revision", args=[world.revision_id])],
        "environments:detail": [
            reverse("environments:detail", args=[env.slug]) + "?target=c&direction=upgrade",
            reverse("environments:detail", args=[broken.slug]),
        ],
        "environments:refresh": [reverse("environments:refresh", args=[env.slug])],
        "environments:status": [reverse("environments:status", args=[env.slug])],
        "environments:first_read": [reverse("environments:first_read", args=[env.slug])],
        "approvals:environment_history": [
            reverse("approvals:environment_history", args=[env.slug])
        ],
        "environments:sql": [reverse("environments:sql", args=[env.slug]) + "?target=c"],
        "environments:drift_revision": [reverse("environments:drift_revision", args=[env.slug])],
        "audit:detail": [reverse("audit:detail", args=[world.audit_seq])],
        "audit:timeline": [reverse("audit:timeline") + f"?environment={env.slug}"],
        "approvals:create": [reverse("approvals:create") + f"?environment={env.slug}&target=c"],
        "approvals:detail": [reverse("approvals:detail", args=[pk]) for pk in (done.pk, open_.pk)],
        "approvals:status": [reverse("approvals:status", args=[open_.pk])],
        "approvals:approve": [reverse("approvals:approve", args=[open_.pk])],
        "approvals:reject": [reverse("approvals:reject", args=[open_.pk])],
        "approvals:cancel": [reverse("approvals:cancel", args=[open_.pk])],
        "approvals:sql": [reverse("approvals:sql", args=[done.pk])],
        "approvals:cancel_run": [reverse("approvals:cancel_run", args=[open_.pk])],
        **{
            f"rollouts:{name}": [reverse(f"rollouts:{name}", args=[open_.pk])]
            for name in ("rollout", "live", "resume", "cancel", "proceed", "rollback")
        },
        "api:environment": [reverse("api:environment", kwargs={"slug": env.slug})],
        "api:request": [reverse("api:request", kwargs={"request_id": done.pk})],
        "api:requests_create": [reverse("api:requests")],
        "api:request_approve": [reverse("api:request_approve", kwargs={"request_id": open_.pk})],
        "api:request_reject": [reverse("api:request_reject", kwargs={"request_id": open_.pk})],
        "api:request_resume": [reverse("api:request_resume", kwargs={"request_id": open_.pk})],
        "api:request_cancel": [reverse("api:request_cancel", kwargs={"request_id": open_.pk})],
        "api:not-found": ["/api/v1/no-such-endpoint"],
        "admin:environments_environment_change": [_admin("environments_environment_change", env)],
        "admin:environments_environment_delete": [_admin("environments_environment_delete", env)],
        "admin:audit_auditevent_change": [
            reverse("admin:audit_auditevent_change", args=[world.audit_seq])
        ],
        "admin:audit_auditevent_delete": [
            reverse("admin:audit_auditevent_delete", args=[world.audit_seq])
        ],
        "admin:approvals_migrationrequest_change": [
            _admin("approvals_migrationrequest_change", done)
        ],
        "admin:approvals_migrationrequest_delete": [
            _admin("approvals_migrationrequest_delete", done)
        ],
        "admin:api_apitoken_change": [reverse("admin:api_apitoken_change", args=[token_pk])],
        "admin:api_apitoken_delete": [reverse("admin:api_apitoken_delete", args=[token_pk])],
    }


def _admin(name: str, obj: Any) -> str:
    return reverse(f"admin:{name}", args=[obj.pk])


def _token(world: World, role: str) -> Any:
    from dashboard.api.models import ApiToken

    return ApiToken.objects.get(user=world.users[role], name=f"crawl-{role}")


def _post_data(world: World, name: str) -> dict[str, Any]:
    env = world.production
    return {
        "dashboard:reauthenticate": {"password": "pw", "next": "/"},
        "approvals:create": {
            "environment": env.slug, "direction": "upgrade", "target": "c", "reason": "crawl",
        },
        "approvals:approve": {"comment": "ok", "sql_acknowledged": "on"},
        "api:requests_create": {
            "environment": env.slug, "direction": "upgrade", "target": "c", "reason": "crawl",
        },
        "approvals:reject": {"comment": "no"},
        "admin:environments_environment_change": {"name": "Changed", "slug": env.slug},
        "admin:environments_environment_delete": {"post": "yes"},
        "admin:audit_auditevent_change": {"action": "dashboard.forged"},
        "admin:approvals_migrationrequest_change": {"status": "approved", "reason": "forged"},
        "admin:api_apitoken_changelist": {
            "action": "revoke_tokens", "_selected_action": [_token(world, "developer").pk],
        },
        "admin:api_apitoken_add": {"name": "made by crawl"},
    }.get(name, {})  # fmt: skip


def _state(world: World, name: str) -> object:
    """What a POST to ``name`` would change, read from the database (None: nothing kept)."""
    from dashboard.api.models import ApiToken
    from dashboard.approvals.models import Approval, MigrationRequest, Run
    from dashboard.audit.models import AuditEvent
    from dashboard.environments.models import Environment

    open_ = MigrationRequest.objects.filter(pk=world.open.pk)
    readers: dict[str, Callable[[], object]] = {
        "environments:refresh": lambda: (
            Environment.objects.get(pk=world.production.pk).status_refreshed_at
        ),
        "environments:first_read": lambda: (
            Environment.objects.get(pk=world.production.pk).status_refresh_queued_at
        ),
        "approvals:create": lambda: MigrationRequest.objects.count(),
        "approvals:approve": lambda: (
            open_.get().status,
            Approval.objects.filter(request=world.open).count(),
        ),
        "approvals:reject": lambda: open_.get().status,
        "approvals:cancel": lambda: open_.get().status,
        "approvals:cancel_run": lambda: Run.objects.filter(
            cancel_requested_at__isnull=False
        ).count(),
        "api:requests_create": lambda: MigrationRequest.objects.count(),
        "admin:environments_environment_change": lambda: list(
            Environment.objects.values_list("name", flat=True)
        ),
        "admin:environments_environment_delete": lambda: Environment.objects.count(),
        "admin:audit_auditevent_change": lambda: AuditEvent.objects.get(seq=world.audit_seq).action,
        "audit:export_csv": lambda: AuditEvent.objects.filter(
            action="dashboard.audit.exported"
        ).count(),
        "audit:export_jsonl": lambda: AuditEvent.objects.filter(
            action="dashboard.audit.exported"
        ).count(),
        "admin:approvals_migrationrequest_change": lambda: (
            MigrationRequest.objects.get(pk=world.done.pk).reason
        ),
        "admin:api_apitoken_changelist": lambda: _token(world, "developer").revoked_at,
        "admin:api_apitoken_add": lambda: ApiToken.objects.count(),
    }
    reader = readers.get(name)
    return reader() if reader else None


# --- fixtures -------------------------------------------------------------------


@pytest.fixture(scope="module")
def project_ini(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_project(tmp_path_factory.mktemp("crawl_project"))


@pytest.fixture(scope="module")
def target_url(project_ini: Path) -> Iterator[str]:
    """A PostgreSQL target at ``a`` (nothing in the crawl runs a migration on it)."""
    with throwaway_postgres("crawl") as url:
        migrate_target(project_ini, url, "a")
        yield canary_url(url)


@pytest.fixture
def world(
    settings: Any,
    project_ini: Path,
    target_url: str,
    tmp_path: Path,
    make_user: Callable[..., Any],
) -> World:
    settings.ALEMBIC_CONFIG = str(project_ini)
    users = {
        "developer": make_user("developer", "Developers"),
        "lead": make_user("lead", "Tech leads"),
        "lead2": make_user("lead2", "Tech leads"),
        "auditor": make_user("auditor", "Auditors"),
        "nobody": make_user("nobody"),
    }
    return build_world(users=users, target_url=target_url, directory=tmp_path)


# --- the crawl ------------------------------------------------------------------


def _walk(patterns: list[Any], namespaces: tuple[str, ...] = ()) -> Iterator[str]:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            inner = namespaces + ((pattern.namespace,) if pattern.namespace else ())
            yield from _walk(pattern.url_patterns, inner)
        elif isinstance(pattern, URLPattern):
            yield ":".join((*namespaces, pattern.name or f"<unnamed {pattern.pattern}>"))


def test_every_url_of_the_dashboard_has_a_row_in_the_table() -> None:
    names = set(_walk(get_resolver().url_patterns))
    ours = {name for name in names if not name.startswith("admin:")}
    tabled = {row.name for row in PAGE_TABLE + API_TABLE}

    missing = sorted(ours - tabled)
    assert not missing, "\n".join(f"no expectation for URL name {name}" for name in missing)
    gone = sorted((tabled | {row.name for row in ADMIN_TABLE}) - names)
    assert not gone, f"rows for URL names that no longer exist: {gone}"


def _fetch(client: Any, method: str, name: str, path: str, data: dict[str, Any]) -> Any:
    if method == "POST":
        if name.startswith("api:"):
            return client.post(path, data, content_type="application/json")
        return client.post(path, data)
    headers = {}
    if method == "HTMX":
        headers = {"HX-Request": "true", "HX-Target": HX_TARGETS.get(name, "main")}
    return client.get(path, headers=headers)


def _check(response: Any, role: str, expected: int, label: str) -> list[str]:
    body = body_of(response)
    problems = [f"{label}: {problem}" for problem in answer_problems(response, body)]
    if response.status_code != expected:
        problems.append(f"{label}: expected {expected}, got {response.status_code} {body[:120]!r}")
    elif role == "anonymous" and expected == 302 and not response["Location"].startswith(LOGIN):
        problems.append(f"{label}: anonymous redirected to {response['Location']}, not to login")
    return problems


def _domain_snapshot() -> object:
    """Everything a person could change, except the append-only audit log itself."""
    from dashboard.api.models import ApiToken
    from dashboard.approvals.models import Approval, MigrationRequest, Run
    from dashboard.environments.models import Environment

    return (
        list(MigrationRequest.objects.order_by("pk").values_list("pk", "status", "reason")),
        list(Approval.objects.order_by("pk").values_list("pk", "decision", "expired_at")),
        list(Run.objects.order_by("pk").values_list("pk", "outcome")),
        list(Environment.objects.order_by("pk").values_list("pk", "name", "required_approvals")),
        list(ApiToken.objects.order_by("pk").values_list("pk", "revoked_at")),
    )


def _logged_text(caplog: pytest.LogCaptureFixture) -> str:
    """Every log line of the test so far (set-up included), with tracebacks."""
    formatter = logging.Formatter()
    records = caplog.get_records("setup") + caplog.get_records("call")
    return "\n".join(formatter.format(record) for record in records)


@pytest.mark.parametrize("role", ROLES)
def test_every_page_fragment_and_read_answers_as_the_table_says(
    world: World, role: str, caplog: pytest.LogCaptureFixture
) -> None:
    paths = _paths(world)
    session = client_for(world, role)
    token = client_for(world, role, token=True)
    before = _domain_snapshot()
    problems: list[str] = []
    for row in PAGE_TABLE + API_TABLE + ADMIN_TABLE:
        if row.method == "POST":
            continue
        clients = [("token", token), ("session", session)] if row.name.startswith("api:") else []
        for via, client in clients or [("session", session)]:
            for path in paths.get(row.name) or [reverse(row.name)]:
                response = _fetch(client, row.method, row.name, path, {})
                label = f"{row.method} {path} as {role} ({via})"
                problems += _check(response, role, row.expected[role], label)
    assert _domain_snapshot() == before, "reading pages changed something"
    assert not problems, "\n".join(problems)
    assert CANARY_PASSWORD not in _logged_text(caplog), "the database password was logged"


POST_ROWS = [row for row in PAGE_TABLE + API_TABLE + ADMIN_TABLE if row.method == "POST"]


@pytest.mark.parametrize("row", POST_ROWS, ids=[row.name for row in POST_ROWS])
def test_every_post_needs_csrf_and_the_permission(
    world: World, row: Row, caplog: pytest.LogCaptureFixture
) -> None:
    """Without a CSRF token: 403 for everyone. With one: the table's status; only ``acts`` change.

    Roles that must not act go first, so the state they must leave alone is
    the state the acting roles then change.
    """
    [path] = _paths(world).get(row.name) or [reverse(row.name)]
    data = _post_data(world, row.name)
    problems: list[str] = []
    for role in sorted(ROLES, key=lambda role: role in row.acts):
        before = _state(world, row.name)
        if row.name.startswith("api:"):
            # CI clients are no browsers: the write takes a token only, so a
            # session (whose cookie a forged form would carry) gets 401.
            response = _fetch(client_for(world, role, csrf=False), "POST", row.name, path, data)
            problems += _check(response, role, 401, f"POST {path} as {role} with a session")
            client = client_for(world, role, token=True, csrf=False)
        else:
            # As htmx would send it, minus the token (a forged cross-site request).
            response = client_for(world, role, csrf=False).post(
                path, data, headers={"HX-Request": "true"}
            )
            problems += _check(response, role, 403, f"POST {path} as {role} without CSRF")
            client = client_for(world, role)
        if _state(world, row.name) != before:
            problems.append(f"POST {path} as {role} without CSRF/token changed the state")
        response = _fetch(client, "POST", row.name, path, data)
        problems += _check(response, role, row.expected[role], f"POST {path} as {role}")
        changed = _state(world, row.name) != before
        if changed != (role in row.acts):
            verb = "changed" if changed else "did not change"
            problems.append(f"POST {path} as {role} {verb} the state ({before!r})")
    assert not problems, "\n".join(problems)
    assert CANARY_PASSWORD not in _logged_text(caplog), "the database password was logged"


def test_the_crawl_checks_would_catch_a_leak_and_an_inline_script() -> None:
    """The checks above are not vacuous: a leaked password and an inline script are caught."""
    from django.http import HttpResponse

    page = f'<html><script src="/static/x.js"></script><script>alert(1)</script>{CANARY_PASSWORD}'
    problems = answer_problems(HttpResponse(page), page)

    assert problems == [
        "the database password appears in the answer",
        "inline <script>: 'alert(1)'",
    ]
    data = '<script type="application/json">{"a": 1}</script>'
    assert answer_problems(HttpResponse(data), data) == []


def test_the_environment_page_shows_where_the_database_is_but_not_its_password(
    world: World,
) -> None:
    for role in ("developer", "auditor"):
        client = client_for(world, role)
        for environment, host in (
            (world.production, "127.0.0.1:5432"),
            (world.broken, "127.0.0.1:1"),
        ):
            response = client.get(reverse("environments:detail", args=[environment.slug]))
            body = body_of(response)

            assert response.status_code == 200
            assert host in body
            assert CANARY_PASSWORD not in body


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_no_other_method_changes_anything_or_fails(world: World, method: str) -> None:
    """PUT/PATCH/DELETE on every URL, as every role, with CSRF: no 5xx and nothing changes."""
    paths = _paths(world)
    before = _domain_snapshot()
    problems: list[str] = []
    for role in ROLES:
        clients = {"session": client_for(world, role), "token": client_for(world, role, token=True)}
        for name in sorted({row.name for row in PAGE_TABLE + API_TABLE}):
            via = "token" if name.startswith("api:") else "session"
            for path in paths.get(name) or [reverse(name)]:
                response = getattr(clients[via], method)(path)
                label = f"{method.upper()} {path} as {role} ({via})"
                problems += [f"{label}: {p}" for p in answer_problems(response, body_of(response))]
                if response.status_code >= 500:
                    problems.append(f"{label}: {response.status_code}")
    assert _domain_snapshot() == before, f"{method.upper()} changed something"
    assert not problems, "\n".join(problems)
