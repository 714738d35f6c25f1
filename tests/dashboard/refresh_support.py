"""Helpers of the status-read queue tests: environments' tasks on a Redis queue of the test's own.

``environments_queue(url, queue)`` points this process's Celery app at Redis
with every queue routed to ``queue`` (``approvals_support.broker``), so a test
counts exactly the messages it caused (and a worker started with ``-Q queue``
consumes them), and removes the queue's keys afterwards. ``queued_reads``
lists the environment ids of the ``environments.refresh`` messages waiting there.
"""

from __future__ import annotations

import ast
import contextlib
import json
from collections.abc import Iterator

import redis

from tests.dashboard.approvals_support import broker, drop_queue_keys


@contextlib.contextmanager
def environments_queue(redis_url: str, queue: str) -> Iterator[None]:
    try:
        with broker(redis_url, queue):
            yield
    finally:
        drop_queue_keys(redis_url, queue)


def queued_reads(redis_url: str, queue: str) -> list[int]:
    """Environment ids of the ``environments.refresh`` messages in ``queue``, oldest first."""
    client = redis.Redis.from_url(redis_url)
    try:
        raw = client.lrange(queue, 0, -1)
    finally:
        client.close()
    ids = []
    for message in reversed(raw):  # kombu LPUSHes: the oldest message is last
        headers = json.loads(message)["headers"]
        assert headers["task"] == "environments.refresh", headers["task"]
        (environment_id,) = ast.literal_eval(headers["argsrepr"])
        ids.append(environment_id)
    return ids
