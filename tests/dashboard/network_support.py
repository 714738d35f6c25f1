"""Real network pieces for tests: a PgBouncer, and a second host in a network namespace.

``SecondHost`` makes a Linux network namespace joined to this one by a veth
pair (root only; these machines allow it), and TCP forwarders (``socat``)
on this side so that processes started in the namespace reach the local
PostgreSQL and Redis over that link as a worker on another machine would.
Two addresses on each side let a test freeze one path only: a blackhole
route for the target path's addresses, on both sides, makes that path
silent (packets dropped, nothing answered) while the worker still reaches
Redis and the dashboard database.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from tests.dashboard.approvals_support import wait_for


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _answers(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


class PgBouncer:
    """A real PgBouncer on a loopback port in front of the local PostgreSQL."""

    def __init__(self, *, pool_mode: str = "transaction") -> None:
        binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
        self.port = free_port()
        # PgBouncer refuses to run as root and drops to `postgres`: its files live
        # in a directory of its own that user can read and write.
        directory = Path(tempfile.mkdtemp(prefix="pgbouncer-"))
        self.directory = directory
        if _is_root():
            shutil.chown(directory, "postgres")
        (directory / "users.txt").write_text('"postgres" ""\n')
        ini = directory / "pgbouncer.ini"
        ini.write_text(
            "[databases]\n* = host=127.0.0.1 port=5432\n\n[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\n"
            f"unix_socket_dir =\nauth_type = trust\nauth_file = {directory / 'users.txt'}\n"
            f"pool_mode = {pool_mode}\ndefault_pool_size = 5\nmax_client_conn = 50\n"
            f"logfile = {directory / 'pgbouncer.log'}\npidfile = {directory / 'pgbouncer.pid'}\n"
            "ignore_startup_parameters = extra_float_digits,options\n"
        )
        self.process = subprocess.Popen(
            [binary, "-u", "postgres", str(ini)] if _is_root() else [binary, str(ini)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        wait_for(lambda: _answers("127.0.0.1", self.port), timeout=15)

    def url_for(self, direct_url: str) -> str:
        return direct_url.replace("@127.0.0.1:5432/", f"@127.0.0.1:{self.port}/")

    def stop(self) -> None:
        self.process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)
        shutil.rmtree(self.directory, ignore_errors=True)


def _is_root() -> bool:
    import os

    return os.geteuid() == 0


def _ip(*args: str, netns: str | None = None) -> None:
    command = ["ip", *args] if netns is None else ["ip", "netns", "exec", netns, "ip", *args]
    subprocess.run(command, check=True, capture_output=True, timeout=10)


def namespaces_available() -> str | None:
    """None when network namespaces can be made here, else why not."""
    if not _is_root():
        return "network namespaces need root"
    if shutil.which("ip") is None or shutil.which("socat") is None:
        return "iproute2 (ip) and socat are needed"
    probe = f"probe{uuid.uuid4().hex[:6]}"
    try:
        _ip("netns", "add", probe)
    except (subprocess.CalledProcessError, OSError) as exc:
        return f"ip netns add failed: {exc}"
    _ip("netns", "del", probe)
    return None


class SecondHost:
    """A network namespace ("another machine") linked to this one by veth, with forwarders.

    Addresses (a /24 private net unique per instance): this side ``.1`` (services)
    and ``.5`` (targets), the namespace ``.2`` (services) and ``.6`` (its source
    address towards targets).
    """

    def __init__(self) -> None:
        token = uuid.uuid4().hex[:6]
        self.netns = f"dash{token}"
        self.outer, self.inner = f"vo{token}", f"vi{token}"
        octet = 100 + int(token[:2], 16) % 100
        self.net = f"10.{octet}.{int(token[2:4], 16)}"
        self.services_ip, self.targets_ip = f"{self.net}.1", f"{self.net}.5"
        self.inner_ip, self.inner_target_ip = f"{self.net}.2", f"{self.net}.6"
        self.forwarders: list[subprocess.Popen[bytes]] = []
        _ip("netns", "add", self.netns)
        try:
            _ip("link", "add", self.outer, "type", "veth", "peer", "name", self.inner)
            _ip("link", "set", self.inner, "netns", self.netns)
            for address in (self.services_ip, self.targets_ip):
                _ip("addr", "add", f"{address}/24", "dev", self.outer)
            _ip("link", "set", self.outer, "up")
            for address in (self.inner_ip, self.inner_target_ip):
                _ip("addr", "add", f"{address}/24", "dev", self.inner, netns=self.netns)
            _ip("link", "set", self.inner, "up", netns=self.netns)
            _ip("link", "set", "lo", "up", netns=self.netns)
            # Connections to the targets' address leave from the target source address.
            _ip(
                "route", "add", f"{self.targets_ip}/32", "dev", self.inner, "src",
                self.inner_target_ip, netns=self.netns,
            )  # fmt: skip
        except Exception:
            self.close()
            raise

    @property
    def command_prefix(self) -> tuple[str, ...]:
        return ("ip", "netns", "exec", self.netns)

    def forward(self, *, listen_ip: str, to_port: int) -> int:
        """Forward ``listen_ip:<new port>`` on this side to ``127.0.0.1:to_port``; the new port."""
        port = free_port(listen_ip)
        process = subprocess.Popen(
            [
                "socat",
                f"TCP-LISTEN:{port},bind={listen_ip},fork,reuseaddr",
                f"TCP:127.0.0.1:{to_port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.forwarders.append(process)
        wait_for(lambda: _answers(listen_ip, port), timeout=10)
        return port

    def freeze_targets(self) -> None:
        """Make the path to the targets silent both ways (dropped, never refused)."""
        _ip("route", "replace", "blackhole", f"{self.targets_ip}/32", netns=self.netns)
        _ip("route", "replace", "blackhole", f"{self.inner_target_ip}/32")

    def thaw_targets(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            _ip("route", "del", "blackhole", f"{self.inner_target_ip}/32")
        with contextlib.suppress(subprocess.CalledProcessError):
            _ip("route", "del", "blackhole", f"{self.targets_ip}/32", netns=self.netns)
            _ip(
                "route", "add", f"{self.targets_ip}/32", "dev", self.inner, "src",
                self.inner_target_ip, netns=self.netns,
            )  # fmt: skip

    def close(self) -> None:
        for process in self.forwarders:
            process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)
        # socat forks one child per connection: they die when their sockets do;
        # kill the stragglers of this host by their listen address.
        subprocess.run(["pkill", "-9", "-f", f"bind={self.net}."], capture_output=True, check=False)
        with contextlib.suppress(subprocess.CalledProcessError):
            _ip("route", "del", "blackhole", f"{self.inner_target_ip}/32")
        with contextlib.suppress(subprocess.CalledProcessError):
            _ip("link", "del", self.outer)
        with contextlib.suppress(subprocess.CalledProcessError):
            _ip("netns", "del", self.netns)
        time.sleep(0.1)
