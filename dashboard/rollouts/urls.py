"""The rollout page of a fleet's request, under the request's URL (``/requests/<id>/rollout/``)."""

from django.urls import path

from dashboard.rollouts import views

app_name = "rollouts"

urlpatterns = [
    path("<int:pk>/rollout/", views.rollout, name="rollout"),
    path("<int:pk>/rollout/live/", views.live, name="live"),
    path("<int:pk>/rollout/resume/", views.resume, name="resume"),
    path("<int:pk>/rollout/cancel/", views.cancel, name="cancel"),
    path("<int:pk>/rollout/proceed/", views.proceed, name="proceed"),
    path("<int:pk>/rollout/rollback/", views.rollback, name="rollback"),
]
