"""The revision graph pages: the whole history, and one revision's detail.

Both need login (anonymous users go to the admin login) and the permission
``environments.view_environment`` (403 without it); htmx requests get the
fragment (``request.htmx``), others the whole page.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required, permission_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from dashboard.graph import selectors

VIEW_PERMISSION = "environments.view_environment"


@require_GET
@login_required
@permission_required(VIEW_PERMISSION, raise_exception=True)
def graph(request: HttpRequest) -> HttpResponse:
    """The whole history with heads, search, branch filter and environment markers."""
    context = selectors.graph_page(
        query=request.GET.get("q", "")[:200], branch=request.GET.get("branch", "")[:200]
    )
    if request.htmx and request.htmx.target == "graph-search-results":
        return render(request, "graph/graph.html#search-results", context)
    return render(request, "graph/graph.html", context)


@require_GET
@login_required
@permission_required(VIEW_PERMISSION, raise_exception=True)
def revision(request: HttpRequest, revision_id: str) -> HttpResponse:
    """One revision: message, relations, source, offline SQL, environments that have it."""
    context = selectors.revision_detail(revision_id=revision_id)
    if context is None:
        raise Http404("No such revision in the history.")
    if request.htmx:
        return render(request, "graph/graph.html#revision-detail", context)
    return render(request, "graph/revision.html", context)
