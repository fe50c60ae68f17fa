"""Loaded at start-up by every Python process of the test run (PYTHONPATH points here): refuses and records
any connection or name lookup that is not for this machine (loopback, or the test hosts the run made itself).
The suite asserts the record stays empty."""

import ipaddress
import os
import socket

_LOG = os.environ.get("DOCS_NETGUARD_LOG")
_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_real_getaddrinfo = socket.getaddrinfo
_LOCAL_NAMES = {"localhost", "ip6-localhost", "ip6-loopback", ""}


def _test_hosts() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """The private network of the suite's own test hosts (tests/topology.py: network namespaces on a bridge it
    made, with no route beyond it), named by the run that made them. Read at each check: that test sets it after
    this process started."""
    raw = os.environ.get("DOCS_NETGUARD_TEST_HOSTS", "")
    return [ipaddress.ip_network(item) for item in raw.split(",") if item]


def _is_local(host: object) -> bool:
    if host is None:
        return True
    text = host.decode() if isinstance(host, bytes) else str(host)
    if text in _LOCAL_NAMES:
        return True
    try:
        address = ipaddress.ip_address(text.split("%")[0])
    except ValueError:
        return False
    return address.is_loopback or any(address in network for network in _test_hosts())


def _record(kind: str, target: object) -> None:
    if _LOG:
        with open(_LOG, "a", encoding="utf-8") as log:
            log.write(f"{os.getpid()} {kind} {target!r}\n")


def _check(self: socket.socket, address: object) -> None:
    inet = self.family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple)
    if inet and not _is_local(address[0]):  # type: ignore[index]
        _record("connect", address)
        raise ConnectionRefusedError(f"netguard: outbound connection to {address!r} refused")


def _connect(self: socket.socket, address: object) -> None:
    _check(self, address)
    return _real_connect(self, address)


def _connect_ex(self: socket.socket, address: object) -> int:
    _check(self, address)
    return _real_connect_ex(self, address)


def _getaddrinfo(host: object, *args: object, **kwargs: object) -> object:
    if not _is_local(host):
        _record("lookup", host)
        raise socket.gaierror(socket.EAI_NONAME, f"netguard: name lookup of {host!r} refused")
    return _real_getaddrinfo(host, *args, **kwargs)


if _LOG:
    socket.socket.connect = _connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _connect_ex  # type: ignore[method-assign]
    socket.getaddrinfo = _getaddrinfo  # type: ignore[assignment]
