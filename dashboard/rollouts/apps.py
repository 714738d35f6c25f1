from django.apps import AppConfig


class RolloutsConfig(AppConfig):
    name = "dashboard.rollouts"
    label = "rollouts"
    verbose_name = "Fleet rollouts"
