from django.apps import AppConfig


class EnvironmentsConfig(AppConfig):
    name = "dashboard.environments"
    label = "environments"
    verbose_name = "Environments"
