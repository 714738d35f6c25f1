from django.urls import path

from dashboard.environments import views

app_name = "environments"

urlpatterns = [
    path("<slug:slug>/", views.environment_detail, name="detail"),
    path("<slug:slug>/status", views.environment_status, name="status"),
    path("<slug:slug>/refresh", views.environment_refresh, name="refresh"),
    path("<slug:slug>/first-read", views.environment_first_read, name="first_read"),
    path("<slug:slug>/plan.sql", views.environment_sql, name="sql"),
    path("<slug:slug>/drift-revision.py", views.environment_drift_revision, name="drift_revision"),
]
