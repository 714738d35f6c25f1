"""WSGI entry of the load test's *what-if* runs: the product plus candidate fixes.

Not product code. ``benchmarks/load_bench.py --what-if NAME[,NAME]`` serves
``benchmarks.load.whatif_wsgi:application`` instead of ``dashboard.wsgi`` so
a suggested fix can be measured under the same load before its owner
implements it properly. Without ``LOAD_WHAT_IF`` it is exactly
``dashboard.wsgi``.

- ``persistent-connections``: ``CONN_MAX_AGE = 60`` (one PostgreSQL
  connection per worker instead of one per request; the product sets 0).
- ``cached-plan``: the environment page's plan preview (plan, offline SQL,
  squawk findings) memoised per worker, keyed by everything it depends on
  (environment, its cached heads and refresh time, the history's files,
  target, direction, dialect) — what a cache in ``environment_plan`` would do.
"""

from __future__ import annotations

import os
from typing import Any

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")
application = get_wsgi_application()
WHAT_IF = {name for name in os.environ.get("LOAD_WHAT_IF", "").split(",") if name}
KNOWN = {"persistent-connections", "cached-plan"}
if WHAT_IF - KNOWN:
    raise SystemExit(f"unknown what-if {sorted(WHAT_IF - KNOWN)}; known: {sorted(KNOWN)}")


def _persistent_connections() -> None:
    from django.conf import settings

    settings.DATABASES["default"]["CONN_MAX_AGE"] = 60


def _cached_plan() -> None:
    from dashboard.environments import services, views
    from dashboard.graph.selectors import graph_current

    original = services.environment_plan
    memo: dict[tuple[Any, ...], Any] = {}

    def environment_plan(*, environment: Any, **kwargs: Any) -> Any:
        key = (
            environment.pk,
            tuple(environment.current_heads or ()),
            environment.status_refreshed_at,
            environment.status_state,
            graph_current().fingerprint,
            tuple(sorted(kwargs.items())),
        )
        if key not in memo:
            memo[key] = original(environment=environment, **kwargs)
        return memo[key]

    views.environment_plan = environment_plan


if "persistent-connections" in WHAT_IF:
    _persistent_connections()
if "cached-plan" in WHAT_IF:
    _cached_plan()
