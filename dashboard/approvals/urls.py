from django.urls import path

from dashboard.approvals import views

app_name = "approvals"

urlpatterns = [
    path("", views.mine, name="mine"),
    path("waiting/", views.waiting, name="waiting"),
    path("new/", views.create, name="create"),
    path("<int:pk>/", views.detail, name="detail"),
    path("<int:pk>/status/", views.run_status, name="status"),
    path("<int:pk>/approve/", views.approve, name="approve"),
    path("<int:pk>/reject/", views.reject, name="reject"),
    path("<int:pk>/cancel/", views.cancel, name="cancel"),
    path("<int:pk>/cancel-run/", views.cancel_run, name="cancel_run"),
    path("<int:pk>/sql/", views.request_sql, name="sql"),
    path("environments/<slug:slug>/", views.environment_history, name="environment_history"),
]
