from django.apps import AppConfig


class GraphConfig(AppConfig):
    name = "dashboard.graph"
    label = "graph"
    verbose_name = "Revision graph"
