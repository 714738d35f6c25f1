"""PostgreSQL trigger that makes ``audit_auditevent`` append-only.

``UPDATE`` and ``DELETE`` (per row) and ``TRUNCATE`` (per statement) raise.
The only escape hatch is ``TRUNCATE`` in a session that set
``dashboard.audit_allow_truncate = on`` on a database whose name starts with
``test_`` (pytest-django's naming): the test suite sets it on its own
throw-away database because Django flushes tables with ``TRUNCATE`` after
transactional tests. Altering events still needs a superuser who disables the
trigger, which ``audit_verify`` then exposes through the broken hash chain.

SQLite: skipped on purpose. SQLite has no ``TRUNCATE`` and the demo database
is a local file whose owner can rewrite it anyway; the model and the admin
still refuse changes, and the hash chain still exposes tampering.
"""

from __future__ import annotations

from django.db import migrations

from dashboard.append_only import postgres_append_only

install, remove = postgres_append_only(table="audit_auditevent", name="audit_event")


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_initial")]

    operations = [migrations.RunPython(install, remove, elidable=False)]
