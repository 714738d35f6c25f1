"""URLs of the API, included by ``dashboard/urls.py`` under ``api/v1/`` (namespace ``api``).

django-ninja's ``api.urls`` is a ``(patterns, app_name, namespace)`` tuple;
``include("dashboard.api.urls")`` needs a module, so its patterns are exposed
here. Ninja's own root view answers 404 to everyone; ours answers 401 to
callers without credentials and lists the API's entry points to the others.
"""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from dashboard.api.views.api import api
from dashboard.api.views.root import api_root

app_name = "api"

urlpatterns: list[URLPattern | URLResolver] = [
    pattern for pattern in api.urls[0] if getattr(pattern, "name", None) != "api-root"
]
urlpatterns.append(path("", api_root, name="api-root"))
