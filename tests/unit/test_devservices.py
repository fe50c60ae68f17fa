"""The ports the tests and benchmarks give their services: never the same one twice in a process."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from docs_app import devservices


class _KernelRepeatingAPort:
    """socket.socket as a kernel that hands out the port it just freed again (Linux may)."""

    ports: Iterator[int] = iter(())

    def __init__(self) -> None:
        self.port = 0

    def __enter__(self) -> _KernelRepeatingAPort:
        return self

    def __exit__(self, *_exc: object) -> None:
        return None

    def bind(self, _address: tuple[str, int]) -> None:
        self.port = next(self.ports)

    def getsockname(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)


def test_a_port_the_kernel_hands_out_twice_is_given_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_KernelRepeatingAPort, "ports", iter([41001, 41001, 41001, 41002]))
    monkeypatch.setattr(devservices, "_ports_given", set())
    monkeypatch.setattr(devservices.socket, "socket", _KernelRepeatingAPort)
    assert [devservices.free_port(), devservices.free_port()] == [41001, 41002]


def test_ports_given_are_free_to_bind() -> None:
    port = devservices.free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
