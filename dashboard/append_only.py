"""PostgreSQL triggers that make a table append-only, for the migrations that install them.

``UPDATE`` and ``DELETE`` (per row) and ``TRUNCATE`` (per statement) raise
``insufficient_privilege``. The only escape hatch is ``TRUNCATE`` in a
session that set ``dashboard.audit_allow_truncate = on`` on a database whose
name starts with ``test_`` (pytest-django's naming): the test suite sets it
on its own throw-away database because Django flushes tables with
``TRUNCATE`` after transactional tests. Changing rows still needs a superuser
who disables the trigger.

SQLite: nothing is installed (no ``TRUNCATE``; the demo database is a local
file its owner can rewrite anyway); the models refuse changes there too.
Used by ``audit`` migration 0002 (the audit log) and ``approvals`` migration
0002 (the runs' log lines, i.e. the executed SQL).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Operation = Callable[[Any, Any], None]


def _install_sql(table: str, name: str) -> str:
    return f"""
CREATE OR REPLACE FUNCTION {name}_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE'
       AND current_database() LIKE 'test\\_%'
       AND coalesce(current_setting('dashboard.audit_allow_truncate', true), '') = 'on' THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION '{table} is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER {name}_no_update_delete
    BEFORE UPDATE OR DELETE ON {table}
    FOR EACH ROW EXECUTE FUNCTION {name}_append_only();
CREATE TRIGGER {name}_no_truncate
    BEFORE TRUNCATE ON {table}
    FOR EACH STATEMENT EXECUTE FUNCTION {name}_append_only();
"""


def _remove_sql(table: str, name: str) -> str:
    return f"""
DROP TRIGGER IF EXISTS {name}_no_truncate ON {table};
DROP TRIGGER IF EXISTS {name}_no_update_delete ON {table};
DROP FUNCTION IF EXISTS {name}_append_only();
"""


def postgres_append_only(*, table: str, name: str) -> tuple[Operation, Operation]:
    """``(install, remove)`` for ``migrations.RunPython``: the triggers on ``table``, PostgreSQL only.

    ``name`` prefixes the function (``<name>_append_only``) and the triggers.
    """

    def install(apps: Any, schema_editor: Any) -> None:
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(_install_sql(table, name), params=None)

    def remove(apps: Any, schema_editor: Any) -> None:
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(_remove_sql(table, name), params=None)

    return install, remove
