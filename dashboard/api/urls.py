"""URLs of the API, included by ``dashboard/urls.py`` under ``api/v1/`` (namespace ``api``).

django-ninja's ``api.urls`` is a ``(patterns, app_name, namespace)`` tuple;
``include("dashboard.api.urls")`` needs a module, so its patterns are exposed
here. Ninja's own root view answers 404 to everyone; ours answers 401 to
callers without credentials and lists the API's entry points to the others.
Every view answers a wrong method with JSON, and the last pattern answers
every other path under ``/api/v1/`` with a JSON 404 (``views/errors.py``).
"""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, path, re_path

from dashboard.api.views.api import api
from dashboard.api.views.errors import api_not_found, json_method_errors, with_json_method_errors
from dashboard.api.views.root import api_root

app_name = "api"

urlpatterns: list[URLPattern | URLResolver] = [
    with_json_method_errors(pattern) if isinstance(pattern, URLPattern) else pattern
    for pattern in api.urls[0]
    if getattr(pattern, "name", None) != "api-root"
]
urlpatterns += [
    path("", json_method_errors(api_root), name="api-root"),
    re_path(r"^(?P<rest>.*)$", api_not_found, name="not-found"),
]
