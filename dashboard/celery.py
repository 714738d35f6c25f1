"""The Celery application: ``celery -A dashboard worker`` / ``celery -A dashboard beat``.

Configured from Django settings under the ``CELERY_`` namespace; tasks are
discovered in every installed app's ``tasks`` module. Messages carry ids only.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")

app = Celery("dashboard")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
