from django.urls import path

from dashboard.environments import views

app_name = "environments"

urlpatterns = [
    path("<slug:slug>/", views.environment_detail, name="detail"),
    path("<slug:slug>/refresh", views.environment_refresh, name="refresh"),
    path("<slug:slug>/plan.sql", views.environment_sql, name="sql"),
    path("<slug:slug>/drift-revision.py", views.environment_drift_revision, name="drift_revision"),
]
