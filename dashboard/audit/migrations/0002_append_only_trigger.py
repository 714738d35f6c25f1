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

from typing import Any

from django.db import migrations

INSTALL = """
CREATE OR REPLACE FUNCTION audit_event_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE'
       AND current_database() LIKE 'test\\_%'
       AND coalesce(current_setting('dashboard.audit_allow_truncate', true), '') = 'on' THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'audit_auditevent is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_event_no_update_delete
    BEFORE UPDATE OR DELETE ON audit_auditevent
    FOR EACH ROW EXECUTE FUNCTION audit_event_append_only();
CREATE TRIGGER audit_event_no_truncate
    BEFORE TRUNCATE ON audit_auditevent
    FOR EACH STATEMENT EXECUTE FUNCTION audit_event_append_only();
"""

REMOVE = """
DROP TRIGGER IF EXISTS audit_event_no_truncate ON audit_auditevent;
DROP TRIGGER IF EXISTS audit_event_no_update_delete ON audit_auditevent;
DROP FUNCTION IF EXISTS audit_event_append_only();
"""


def install(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(INSTALL, params=None)


def remove(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(REMOVE, params=None)


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_initial")]

    operations = [migrations.RunPython(install, remove, elidable=False)]
