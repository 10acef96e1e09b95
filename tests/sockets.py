"""Sockets in tests: this process's open TCP connections to a port (from /proc, Linux), and free
runs of ports for ``hfrag serve``, which listens on a base port and the ones after it."""

from __future__ import annotations

import os
import socket

#: How many ports ``hfrag serve`` takes from its base port on (one listener per deployment).
SERVE_PORTS = 5


def free_base_port(count: int = SERVE_PORTS) -> int:
    """A base port P with P .. P+count-1 all free on 127.0.0.1 when asked."""
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = int(s.getsockname()[1])
        if base + count - 1 > 65535:
            continue
        try:
            for offset in range(1, count):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", base + offset))
        except OSError:
            continue
        return base
    raise RuntimeError(f"no run of {count} free ports found on 127.0.0.1")


def _inodes_to_port(port: int) -> set[str]:
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as fh:
                rows = fh.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            remote_port = int(cols[2].rsplit(":", 1)[1], 16)
            if remote_port == port and cols[3] != "0A":  # 0A = LISTEN
                inodes.add(cols[9])
    return inodes


def open_connections(port: int) -> int:
    """How many sockets of this process are connected to ``port`` on any local address."""
    inodes = _inodes_to_port(port)
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in inodes:
            count += 1
    return count
