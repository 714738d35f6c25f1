"""Pure Alembic + SQLAlchemy engine room of the dashboard; never imports Django."""
