"""Network namespaces as separate hosts on one machine, for tests and ``bench multihost``.

:class:`Hosts` makes namespaces ``a``, ``b``, ``c``, each with one veth interface ``eth0`` on
a bridge that lives in a fourth namespace, with addresses ``10.231.<net>.1-3/24`` that exist only
inside them; :meth:`Hosts.close` stops what it started and deletes every namespace. Needs root
(or CAP_NET_ADMIN) and iproute2's ``ip``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

__all__ = ["Hosts", "namespaces_unavailable"]

SUBNET = "10.231.{net}.{host}"


def namespaces_unavailable() -> str | None:
    """Why this machine cannot run the test, or None."""
    if not sys.platform.startswith("linux"):
        return "network namespaces are Linux only"
    if os.geteuid() != 0:
        return "needs root to create network namespaces (CI runs as root)"
    if shutil.which("ip") is None:
        return "needs the ip command (iproute2)"
    probe = f"bciprobe{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"cannot create a network namespace: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


class Hosts:
    """Namespaces ``a``, ``b``, ``c`` on one bridge; ``multicast`` adds the multicast route
    (without it, and without a default route, only unicast to known peers works)."""

    def __init__(self, net: int, multicast: bool, cwd: Path | None = None) -> None:
        self.prefix = f"bci{os.getpid() % 100000}n{net}"
        self.bridge = f"{self.prefix}br"
        self.address = {h: SUBNET.format(net=net, host=i + 1) for i, h in enumerate("abc")}
        self.cwd = cwd
        self.made: list[str] = []
        self.processes: list[subprocess.Popen] = []
        self._logs: list = []  # the processes' output files
        try:
            self._make(multicast)
        except Exception:
            self.close()
            raise

    def ns(self, host: str) -> str:
        return f"{self.prefix}{host}"

    def _make(self, multicast: bool) -> None:
        _ip("netns", "add", self.bridge)
        self.made.append(self.bridge)
        _ip("-n", self.bridge, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.bridge, "link", "set", "br0", "up")
        for host, address in self.address.items():
            ns = self.ns(host)
            _ip("netns", "add", ns)
            self.made.append(ns)
            # both ends are created inside the namespaces: nothing appears in the root one
            _ip("-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", f"p{host}",
                "netns", self.bridge)  # fmt: skip
            _ip("-n", self.bridge, "link", "set", f"p{host}", "master", "br0")
            _ip("-n", self.bridge, "link", "set", f"p{host}", "up")
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", ns, "addr", "add", f"{address}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
            if multicast:
                _ip("-n", ns, "route", "add", "224.0.0.0/4", "dev", "eth0")

    def start(self, host: str, *args: str, env: dict | None = None, log: Path) -> subprocess.Popen:
        """``args`` (a command line) in namespace ``host``, output to ``log``."""
        environment = {**os.environ, "QT_QPA_PLATFORM": "offscreen", **(env or {})}
        handle = log.open("w")
        self._logs.append(handle)
        process = subprocess.Popen(
            ["ip", "netns", "exec", self.ns(host), *args],
            stdout=handle, stderr=subprocess.STDOUT, env=environment, cwd=self.cwd,
        )  # fmt: skip
        self.processes.append(process)
        return process

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(5)
        for handle in self._logs:
            handle.close()
        self._logs.clear()
        for ns in reversed(self.made):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        self.made.clear()
