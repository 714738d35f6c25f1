"""Stairway: every revision upgrades, downgrades and upgrades again, on both dialects.

Revisions are visited parents-first. A plain revision is undone alone with
``<rev>@-1`` (so the other branch of the history stays applied); a merge revision
is undone by downgrading to its first parent, which removes only the merge.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import command
from alembic.runtime.migration import MigrationContext

from tests.migrations.conftest import make_alembic_config, revisions_in_order


def _current_heads(engine: sa.Engine) -> set[str]:
    with engine.connect() as connection:
        return set(MigrationContext.configure(connection).get_current_heads())


def test_it_upgrades_downgrades_and_reupgrades_every_revision(alembic_engine: sa.Engine) -> None:
    config = make_alembic_config(alembic_engine)
    revisions = revisions_in_order()
    assert len(revisions) >= 14

    for script in revisions:
        command.upgrade(config, script.revision)
        assert script.revision in _current_heads(alembic_engine)

        if script.is_merge_point:
            parents = tuple(script.down_revision or ())
            command.downgrade(config, parents[0])
            assert _current_heads(alembic_engine) == set(parents)
        else:
            command.downgrade(config, f"{script.revision}@-1")
        assert script.revision not in _current_heads(alembic_engine)

        command.upgrade(config, script.revision)
        assert script.revision in _current_heads(alembic_engine)

    assert _current_heads(alembic_engine) == {revisions[-1].revision}
