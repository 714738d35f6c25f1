"""Declarative base, the one ``MetaData`` and the column types shared by every model.

Contract: every table of Magnetiq2 is registered on :data:`metadata`, whose naming
convention makes constraint and index names deterministic (``pk_<table>``,
``uq_<table>_<column>``, ``fk_<table>_<column>_<referred table>``,
``ix_<table>_<column>``), so Alembic revisions can name them identically and
``alembic check`` stays clean on PostgreSQL and SQLite.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)

#: JSON on SQLite, JSONB on PostgreSQL; used for multilingual ``{"en": ..., "de": ...}``
#: values, tag lists and free-form settings.
JSONVariant = sa.JSON().with_variant(JSONB(), "postgresql")

#: A multilingual text value: language code -> text.
Multilingual = dict[str, str]


class Base(DeclarativeBase):
    """Declarative base of every Magnetiq2 model; all tables land on :data:`metadata`."""

    metadata = metadata
    type_annotation_map = {
        dict[str, str]: JSONVariant,
        dict[str, Any]: JSONVariant,
        list[str]: JSONVariant,
        list[dict[str, Any]]: JSONVariant,
        dt.datetime: sa.DateTime(timezone=True),
    }


class TimestampMixin:
    """``created_at`` / ``updated_at`` filled by the database clock."""

    created_at: Mapped[dt.datetime] = mapped_column(server_default=sa.func.now())
    updated_at: Mapped[dt.datetime] = mapped_column(
        server_default=sa.func.now(), onupdate=sa.func.now()
    )


class SoftDeleteMixin:
    """Rows are hidden by setting ``deleted_at`` instead of being deleted."""

    deleted_at: Mapped[dt.datetime | None]
