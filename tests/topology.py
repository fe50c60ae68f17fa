"""Hosts for the topology test (tests/integration/test_topology.py): each "host" a Linux network namespace made
with iproute2, with its own address on a bridge this run makes and no route beyond it; where namespaces cannot be
made (not root, no `ip`, a kernel or container that refuses), every host is a name on loopback instead.

Everything made here is named after the run's subnet and removed by `remove()`, also after a failed test."""

from __future__ import annotations

import ipaddress
import os
import random
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field

# The run picks a free /24 in here; the addresses exist only on the bridge and in the namespaces it makes.
_SUPERNET = "10.231"


@dataclass(frozen=True)
class Host:
    name: str
    address: str
    netns: str = ""
    link: str = ""  # the host's end of its cable on the bridge side: down = the host is cut off

    def argv(self, argv: Sequence[str]) -> list[str]:
        """A command run on this host."""
        return ["ip", "netns", "exec", self.netns, *argv] if self.netns else list(argv)


@dataclass
class Network:
    hosts: dict[str, Host]
    subnet: str = ""  # empty on loopback
    bridge: str = ""
    why_loopback: str = ""
    _made: list[list[str]] = field(default_factory=list)  # commands that undo what was made, last first

    @property
    def namespaces(self) -> bool:
        return bool(self.subnet)

    @classmethod
    def make(cls, names: Sequence[str]) -> Network:
        """Namespaces where they can be made; DOCS_TEST_TOPOLOGY=loopback asks for the fallback (to check it)."""
        if os.environ.get("DOCS_TEST_TOPOLOGY") == "loopback":
            return cls.loopback(names, "DOCS_TEST_TOPOLOGY=loopback")
        reason = _namespaces_unavailable()
        if reason:
            return cls.loopback(names, reason)
        network = cls(hosts={})
        try:
            network._make_namespaces(names)
        except subprocess.CalledProcessError as exc:
            network.remove()
            return cls.loopback(names, f"iproute2 refused: {' '.join(exc.cmd)}: {exc.stderr.strip()}")
        return network

    @classmethod
    def loopback(cls, names: Sequence[str], why: str) -> Network:
        return cls(hosts={name: Host(name, "127.0.0.1") for name in names}, why_loopback=why)

    def _make_namespaces(self, names: Sequence[str]) -> None:
        third = _free_third_octet()
        self.subnet = f"{_SUPERNET}.{third}.0/24"
        self.bridge = f"dbr{third}"
        _ip("link", "add", self.bridge, "type", "bridge")
        self._made.append(["link", "del", self.bridge])
        _ip("addr", "add", f"{_SUPERNET}.{third}.1/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        for number, name in enumerate(names, start=2):
            netns, link, inside = f"docs{third}-{name}", f"d{third}h{number}", f"d{third}h{number}i"
            address = f"{_SUPERNET}.{third}.{number}"
            _ip("netns", "add", netns)
            self._made.append(["netns", "del", netns])
            _ip("link", "add", link, "type", "veth", "peer", "name", inside)
            self._made.append(["link", "del", link])
            _ip("link", "set", inside, "netns", netns)
            _ip("link", "set", link, "master", self.bridge)
            _ip("link", "set", link, "up")
            _ip("-n", netns, "addr", "add", f"{address}/24", "dev", inside)
            _ip("-n", netns, "link", "set", inside, "up")
            _ip("-n", netns, "link", "set", "lo", "up")
            self.hosts[name] = Host(name, address, netns, link)

    def cut(self, name: str) -> None:
        """Unplug the host's cable (namespaces only; on loopback there is no cable to pull)."""
        host = self.hosts[name]
        if host.link:
            _ip("link", "set", host.link, "down")

    def plug(self, name: str) -> None:
        host = self.hosts[name]
        if host.link:
            _ip("link", "set", host.link, "up")

    def remove(self) -> None:
        while self._made:
            subprocess.run(["ip", *self._made.pop()], capture_output=True, check=False)


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], capture_output=True, text=True, check=True)


def _namespaces_unavailable() -> str:
    if os.geteuid() != 0:
        return "not root: network namespaces need CAP_NET_ADMIN"
    if shutil.which("ip") is None:
        return "iproute2's `ip` is not installed"
    return ""


def _free_third_octet() -> int:
    """A /24 of 10.231.0.0/16 that no interface or route of this machine uses (another run's, or the office's)."""
    used = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True, check=True).stdout + \
        subprocess.run(["ip", "route"], capture_output=True, text=True, check=True).stdout
    candidates = list(range(1, 255))
    random.shuffle(candidates)
    for third in candidates:
        network = ipaddress.ip_network(f"{_SUPERNET}.{third}.0/24")
        if str(network.network_address)[:-1] not in used and f"dbr{third}" not in used:
            return third
    raise RuntimeError(f"no free /24 in {_SUPERNET}.0.0/16")
