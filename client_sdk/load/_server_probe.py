"""The server's CPU and RSS, when it runs on this host (psutil, optional).

The server is the process listening on the URL's port. Without psutil, for a
remote server, or without the right to see the process, there is no probe
and the report says so instead of guessing.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from typing import Any
from urllib.parse import urlsplit

__all__ = ["ServerProbe", "is_loopback_url"]


def _is_loopback_address(text: str) -> bool:
    try:
        address = ipaddress.ip_address(text.partition("%")[0])  # an IPv6 zone is not the address
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def is_loopback_url(url: str) -> bool:
    """Whether ``url`` points at this machine: every address its host name resolves to is loopback.

    A name is resolved, not read: ``127.example.com`` may point anywhere, and a
    name that does not resolve is not known to be this machine.
    """
    host = urlsplit(url).hostname or ""
    if not host:
        return False
    if _is_loopback_address(host):
        return True
    try:
        found = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return False
    return bool(found) and all(_is_loopback_address(str(info[4][0])) for info in found)


class ServerProbe:
    """Samples one process: (elapsed seconds, CPU percent, RSS MiB)."""

    def __init__(self, process: Any) -> None:
        self._process = process
        self.samples: list[tuple[float, float, float]] = []
        process.cpu_percent(None)  # the first call only starts the measurement

    @classmethod
    def for_url(cls, url: str) -> ServerProbe | None:
        """The probe of the local process serving ``url``, if there is one to see."""
        if not is_loopback_url(url):
            return None
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            import psutil
        except ModuleNotFoundError:
            return None
        with contextlib.suppress(psutil.Error, OSError):
            for conn in psutil.net_connections(kind="tcp"):
                if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port and conn.pid:
                    return cls(psutil.Process(conn.pid))
        return None

    @property
    def pid(self) -> int:
        return int(self._process.pid)

    def sample(self, elapsed: float) -> tuple[float, float, float] | None:
        """Take one sample (call about once a second)."""
        try:
            cpu = float(self._process.cpu_percent(None))
            rss = self._process.memory_info().rss / 2**20
        except Exception:  # the server went away: keep what was measured
            return None
        point = (round(elapsed, 1), round(cpu, 1), round(rss, 1))
        self.samples.append(point)
        return point

    def summary(self) -> dict[str, Any]:
        """CPU mean/max, RSS first/last/max, and the series (for the soak's "flat" check)."""
        if not self.samples:
            return {"pid": self.pid, "samples": []}
        cpu = [s[1] for s in self.samples]
        rss = [s[2] for s in self.samples]
        return {
            "pid": self.pid,
            "cpu_percent_mean": round(sum(cpu) / len(cpu), 1),
            "cpu_percent_max": max(cpu),
            "rss_mib_first": rss[0],
            "rss_mib_last": rss[-1],
            "rss_mib_max": max(rss),
            "samples": [{"t": t, "cpu_percent": c, "rss_mib": r} for t, c, r in self.samples],
        }
