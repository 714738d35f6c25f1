"""Signals of the environments app, for the apps above it (environments import nothing of theirs).

``status_refreshed(sender=Environment, environment=...)`` is sent after an
environment's status was read and stored (the periodic refresh, the refresh
button, a run that just ended): the approvals app expires requests the new
heads made stale and settles runs whose outcome was unknown.
"""

from django.dispatch import Signal

status_refreshed = Signal()
