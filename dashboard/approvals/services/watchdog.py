"""The heartbeat of a running migration, and its guard against runs that must stop.

One :class:`RunWatchdog` thread per run, alive from the claim until the
outcome is recorded:

- every ``DASHBOARD_RUN_HEARTBEAT`` it sets ``Run.heartbeat_at = now()`` --
  the dashboard database's clock, never the worker's, so workers on hosts
  whose clocks differ are judged alike -- tolerating a failed UPDATE (the
  dashboard database blinking must not get a live run reaped);
- it reads whether a tech lead asked to cancel the run or the run passed its
  deadline (``deadline_at``, both on the database clock) and then *trips*:
  the lock wait stops (``should_stop``), and once the run holds a target
  session it is cancelled (``pg_cancel_backend`` / SQLite ``interrupt()``)
  and, two beats later if the run has still not stopped,
  terminated (``pg_terminate_backend``), each from a connection of its own;
  if even that gets no effect (the path to the target is frozen behind a
  middlebox that keeps acknowledging), two beats later the run's own socket
  is shut down so its thread stops waiting: the server ends the session by
  itself (``idle_in_transaction_session_timeout``, its TCP keepalives).

The run's main thread reads :attr:`RunWatchdog.tripped` to name the outcome
(``cancelled`` or ``run_timeout``); its own heads read afterwards says what
was committed. Messages for the run's log are queued in :attr:`lines` (the
main thread writes them).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from dataclasses import dataclass
from typing import Any

from django.db import connection as django_connection
from django.db.models import BooleanField, Case, Value, When
from django.db.models.functions import Now

from dashboard.approvals.models import Run
from dashboard.migrator.connect import signal_backend

__all__ = ["RunWatchdog", "TargetHandle"]

logger = logging.getLogger(__name__)
Outcome = Run.Outcome
CANCELLED = "cancelled"
RUN_TIMEOUT = "run_timeout"


@dataclass(frozen=True)
class TargetHandle:
    """How to stop the run's target session from another thread."""

    url: str
    pid: int | None = None  # PostgreSQL backend pid
    application_name: str = ""
    dbapi_connection: Any = None  # SQLite: sqlite3.Connection.interrupt() is thread-safe
    socket_fd: int | None = None  # PostgreSQL: the client socket, shut down as a last resort


class RunWatchdog:
    """Heartbeat, deadline and cancel for run ``run_id`` while the ``with`` block runs."""

    TERMINATE_AFTER_BEATS = 2
    ABANDON_AFTER_BEATS = 4

    def __init__(self, run_id: int, *, interval: float) -> None:
        self.run_id = run_id
        self.interval = interval
        self.tripped = ""
        self.lines: list[str] = []
        self._stop = threading.Event()
        self._target: TargetHandle | None = None
        self._beats_since_cancel: int | None = None
        self._terminated = False
        self._abandoned = False
        self._thread = threading.Thread(
            target=self._loop, name=f"watchdog-run-{run_id}", daemon=True
        )

    def __enter__(self) -> RunWatchdog:
        self._beat()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval + 5)

    def should_stop(self) -> bool:
        return bool(self.tripped)

    def attach(self, handle: TargetHandle) -> None:
        """The run now holds a target session; stop it that way if the run trips."""
        self._target = handle

    def detach(self) -> None:
        self._target = None

    def _loop(self) -> None:
        try:
            while not self._stop.wait(self.interval):
                self._beat()
                if not self.tripped:
                    self._check()
                if self.tripped:
                    self._escalate()
        finally:
            django_connection.close()

    def _beat(self) -> None:
        try:
            Run.objects.filter(pk=self.run_id, outcome=Outcome.RUNNING).update(heartbeat_at=Now())
        except Exception:
            # A blip of the dashboard database must not stop the beat: reconnect
            # at the next interval (the reaper also asks the target's lock).
            logger.warning("heartbeat of run %s missed a beat", self.run_id, exc_info=True)
            django_connection.close()

    def _check(self) -> None:
        try:
            row = (
                Run.objects.filter(pk=self.run_id)
                .annotate(
                    overdue=Case(
                        When(deadline_at__lt=Now(), then=Value(True)),
                        default=Value(False),
                        output_field=BooleanField(),
                    )
                )
                .values_list("cancel_requested_at", "overdue")
                .first()
            )
        except Exception:
            django_connection.close()
            return
        if row is None:
            return
        cancel_requested, overdue = row
        if cancel_requested is not None:
            self.trip(CANCELLED, "a tech lead asked to cancel the run")
        elif overdue:
            self.trip(RUN_TIMEOUT, "the run passed its deadline (the environment's run timeout)")

    def trip(self, reason: str, why: str) -> None:
        if not self.tripped:
            self.tripped = reason
            self.lines.append(f"stopping: {why}")
            self._beats_since_cancel = None

    def _escalate(self) -> None:
        target = self._target
        if target is None:
            return  # not holding a target session: the lock wait stops by itself
        if self._beats_since_cancel is None:
            self._beats_since_cancel = 0
            self._signal(target, terminate=False)
            return
        self._beats_since_cancel += 1
        if self._beats_since_cancel >= self.TERMINATE_AFTER_BEATS and not self._terminated:
            self._terminated = True
            self._signal(target, terminate=True)
        elif self._beats_since_cancel >= self.ABANDON_AFTER_BEATS and not self._abandoned:
            self._abandoned = True
            self._abandon(target)

    def _abandon(self, target: TargetHandle) -> None:
        if target.socket_fd is None:
            return
        with contextlib.suppress(OSError):
            sock = socket.socket(fileno=os.dup(target.socket_fd))
            try:
                sock.shutdown(socket.SHUT_RDWR)
            finally:
                sock.close()
            self.lines.append(
                "the target did not answer the cancel or terminate: gave up the run's"
                " connection (the server ends the session when it notices)"
            )

    def _signal(self, target: TargetHandle, *, terminate: bool) -> None:
        """Signal from a thread of its own: a slow target must not stop the heartbeat."""

        def send() -> None:
            if target.dbapi_connection is not None:
                target.dbapi_connection.interrupt()
                self.lines.append("interrupted the SQLite statement in progress")
                return
            if target.pid is None:
                return
            done = signal_backend(
                target.url,
                pid=target.pid,
                application_name=target.application_name,
                terminate=terminate,
            )
            verb = "terminated" if terminate else "cancelled"
            if done is None:
                self.lines.append(f"could not reach the target to have its session {verb}")
            elif done:
                self.lines.append(f"{verb} the run's session on the target (pid {target.pid})")

        threading.Thread(target=send, name=f"stop-run-{self.run_id}", daemon=True).start()
