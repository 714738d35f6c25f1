from django.urls import path

from dashboard.graph import views

app_name = "graph"

urlpatterns = [
    path("", views.graph, name="graph"),
    path("revisions/<str:revision_id>/", views.revision, name="revision"),
]
