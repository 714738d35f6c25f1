"""Where the dashboard keeps loaded revision graphs between processes."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings


def graph_cache_dir() -> Path:
    """``VAR_DIR/cache``: JSON copies of loaded graphs, keyed by their fingerprint."""
    return Path(settings.VAR_DIR) / "cache"
