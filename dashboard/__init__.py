"""The migrations dashboard: Django project and its core app.

Importing the Celery app here makes ``@shared_task`` use it in every process
that loads Django (web, worker, beat).
"""

from dashboard.celery import app as celery_app

__all__ = ["celery_app"]
