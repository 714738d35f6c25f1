"""PostgreSQL indexes that keep the log's filters fast at ten million events (issue 11 item 18).

- ``audit_action_prefix``: btree ``(action text_pattern_ops, seq)``. Under any
  collation but ``C`` a plain btree cannot serve ``LIKE 'dashboard.run.%'``;
  this one can. The log resolves an action prefix to the codes in the log by
  a loose scan of it (one probe per code), then walks ``audit_action_seq``
  once per code (see ``selectors.audit_event_page``).
- ``audit_actor_action_seq``: btree ``(actor_username, action, seq DESC)``, the
  actor's twin of ``audit_env_action_seq``: with an actor and an action prefix,
  each code's walk is exact even when the person has no event of that code
  (without it, one such code reads every event of the person).
- ``audit_revisions_trgm``: GIN ``(from_revisions || ' ' || to_revisions)
  gin_trgm_ops``, which serves the revision filter's ``LIKE '%part%'`` (an id
  or part of one) instead of a sequential scan. ``selectors.REVISIONS_EXPRESSION``
  must stay the same expression.

``benchmarks/audit_scale_bench.py`` measured both against the alternatives
(docs/benchmarks-audit.md). Built ``CONCURRENTLY`` (so ``atomic = False``): on a
live log a plain ``CREATE INDEX`` would block every ``audit_record`` — every
state change of the product — for the minutes the build takes. An index left
invalid by an interrupted build is dropped and built again.

``pg_trgm`` is a trusted extension: the owner of the database may create it.
SQLite (the demo): skipped, its tables are small.
"""

from __future__ import annotations

from typing import Any

from django.db import migrations

INDEXES = {
    "audit_action_prefix": "ON audit_auditevent (action text_pattern_ops, seq)",
    "audit_actor_action_seq": "ON audit_auditevent (actor_username, action, seq DESC)",
    "audit_revisions_trgm": (
        "ON audit_auditevent USING gin ((from_revisions || ' ' || to_revisions) gin_trgm_ops)"
    ),
}


def install(apps: Any, schema_editor: Any) -> None:
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        try:
            cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        except Exception as exc:
            raise RuntimeError(
                "audit/0004 needs the pg_trgm extension: the database owner (or a superuser)"
                " can run CREATE EXTENSION pg_trgm in this database, then migrate again"
            ) from exc
        for name, definition in INDEXES.items():
            cursor.execute(
                "SELECT NOT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)", [name]
            )
            invalid = cursor.fetchone()
            if invalid and invalid[0]:
                cursor.execute(f"DROP INDEX CONCURRENTLY {name}")
            cursor.execute(f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} {definition}")


def remove(apps: Any, schema_editor: Any) -> None:
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        for name in INDEXES:
            cursor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")


class Migration(migrations.Migration):
    atomic = False
    dependencies = [("audit", "0003_chain_verification_mode")]

    operations = [migrations.RunPython(install, remove, elidable=False)]
