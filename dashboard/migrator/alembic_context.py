"""One Alembic context per process: the guard around Alembic's process-global proxies.

``alembic.op`` and ``alembic.context`` are module-level proxies that point at
whichever ``Operations`` / ``EnvironmentContext`` was installed last in the
process. Two migrations (or a migration and an offline rendering) in two
threads of one process would send one's DDL to the other's database or
buffer -- seen with a thread-pool Celery worker: run A "succeeded" with its
table missing, run B failed with a KeyError. So:

- a run (:func:`exclusive_run`) waits for the guard at most 2 s (long
  enough for a rendering to finish) and refuses with
  :class:`ConcurrentRunRefused` when another thread still holds it:
  runs belong on a prefork or solo worker (the ``runs`` queue);
- an offline rendering (:data:`ALEMBIC_CONTEXT` used as a plain lock) waits
  for it: renderings are short, and a rendering in the worker itself happens
  in the run's own thread (the lock is re-entrant).

Never imports Django.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

__all__ = ["ALEMBIC_CONTEXT", "ConcurrentRunRefused", "exclusive_run"]

ALEMBIC_CONTEXT = threading.RLock()


class ConcurrentRunRefused(RuntimeError):
    """Another migration uses this process's Alembic context right now."""


@contextlib.contextmanager
def exclusive_run(*, wait: float = 2.0) -> Iterator[None]:
    """Hold the process's Alembic context for a migration, or refuse within ``wait`` seconds."""
    if not ALEMBIC_CONTEXT.acquire(timeout=wait):
        raise ConcurrentRunRefused(
            "another migration is running in this worker process, and Alembic's op/context"
            " proxies are process-global: run migrations on a prefork or solo worker"
            " (the runs queue), never on a thread pool"
        )
    try:
        yield
    finally:
        ALEMBIC_CONTEXT.release()
