"""The revision graph pages: the whole history, and one revision's detail.

Both need login (anonymous users go to the admin login) and the permission
``environments.view_environment`` (403 without it); htmx requests get the
fragment (``request.htmx``), others the whole page.

The graph remembers the open revision in its address: ``/graph/?revision=<id>``
renders the page with that revision's detail in the side panel, so the link
can be shared and reloaded. A detail loaded by htmx answers with
``HX-Push-Url`` (the page's own address with ``revision`` set), so the
browser's back and forward buttons step through the revisions opened; the
live search replaces ``q`` in the address (``HX-Replace-Url``) without adding
a history entry per keystroke. htmx restores an entry by asking for the whole
page again (``HX-History-Restore-Request``), which both views answer with the page.
"""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit

from django.contrib.auth.decorators import login_required, permission_required
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET
from django_htmx.http import push_url, replace_url

from dashboard.graph import selectors

VIEW_PERMISSION = "environments.view_environment"


def _fragment_wanted(request: HttpRequest) -> bool:
    return bool(request.htmx) and not request.htmx.history_restore_request


@require_GET
@login_required
@permission_required(VIEW_PERMISSION, raise_exception=True)
def graph(request: HttpRequest) -> HttpResponse:
    """The whole history with heads, search, branch filter, environment markers, one detail."""
    query = request.GET.get("q", "")[:200]
    context = selectors.graph_page(
        query=query,
        branch=request.GET.get("branch", "")[:200],
        revision=request.GET.get("revision", "")[:200],
    )
    if not (_fragment_wanted(request) and request.htmx.target == "graph-search-results"):
        return render(request, "graph/graph.html", context)
    response = render(request, "graph/graph.html#search-results", context)
    address = _graph_address(request, q=query.strip())
    return replace_url(response, address) if address else response


@require_GET
@login_required
@permission_required(VIEW_PERMISSION, raise_exception=True)
def revision(request: HttpRequest, revision_id: str) -> HttpResponse:
    """One revision: message, relations, source, offline SQL, environments that have it."""
    context = selectors.revision_detail(revision_id=revision_id)
    if context is None:
        raise Http404("No such revision in the history.")
    if not _fragment_wanted(request):
        return render(request, "graph/revision.html", context)
    response = render(request, "graph/graph.html#revision-detail", context)
    # On the graph page: its address with the revision; elsewhere, the revision's own page.
    address = _graph_address(request, revision=revision_id)
    return push_url(response, address or reverse("graph:revision", args=[revision_id]))


def _graph_address(request: HttpRequest, **changes: str) -> str | None:
    """The graph page's address the browser shows, with ``changes`` (None off that page).

    Only our own path and the page's own parameters are kept: ``HX-Current-URL``
    comes from the browser (another origin's address is ignored by django-htmx).
    """
    graph_path = reverse("graph:graph")
    current = urlsplit(request.htmx.current_url_abs_path or "")
    if current.path != graph_path:
        return None
    query = QueryDict(current.query, mutable=True)
    for key, value in changes.items():
        query[key] = value
    kept = [(key, query[key]) for key in ("q", "branch", "revision") if query.get(key)]
    return f"{graph_path}?{urlencode(kept)}" if kept else graph_path
