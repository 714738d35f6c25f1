"""URL map. Every page lives inside the admin site's frame."""

from django.contrib import admin
from django.urls import include, path

from dashboard import security, views

admin.site.site_header = "Magnetiq2 migrations"
admin.site.site_title = "Migrations dashboard"
admin.site.index_title = "Control room"

core_patterns = (
    [
        path("", views.overview, name="overview"),
        path("healthz", views.healthz, name="healthz"),
        path("reauthenticate/", security.reauthenticate, name="reauthenticate"),
    ],
    "dashboard",
)

urlpatterns = [
    path("", include(core_patterns)),
    path("graph/", include("dashboard.graph.urls")),
    path("environments/", include("dashboard.environments.urls")),
    path("audit/", include("dashboard.audit.urls")),
    path("requests/", include("dashboard.approvals.urls")),
    path("requests/", include("dashboard.rollouts.urls")),
    path("api/v1/", include("dashboard.api.urls")),
    path("admin/", admin.site.urls),
]
