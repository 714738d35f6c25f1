from django.urls import path

from dashboard.audit import views

app_name = "audit"

urlpatterns = [
    path("", views.log, name="log"),
    path("events/<int:seq>/", views.detail, name="detail"),
    path("timeline/", views.timeline, name="timeline"),
    path("export.csv", views.export, {"export_format": "csv"}, name="export_csv"),
    path("export.jsonl", views.export, {"export_format": "jsonl"}, name="export_jsonl"),
]
