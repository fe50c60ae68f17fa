"""The production compose file, read as Docker reads it (issue 10, item 12)."""

from __future__ import annotations

from typing import Any

import yaml

from tests.data import REPO


def _compose() -> dict[str, Any]:
    return dict(yaml.safe_load((REPO / "docker-compose.yml").read_text()))


def test_no_service_publishes_a_port_on_the_host() -> None:
    """gunicorn speaks plain HTTP and production settings trust X-Forwarded-Proto: a published port would let
    anyone on the LAN talk to it directly and claim to be HTTPS."""
    services = _compose()["services"]
    assert {name: spec["ports"] for name, spec in services.items() if spec.get("ports")} == {}


def test_only_web_is_on_the_proxy_network_and_every_network_is_internal() -> None:
    compose = _compose()
    networks = compose["networks"]
    assert all(spec.get("internal") is True for spec in networks.values())
    on_proxy = sorted(name for name, spec in compose["services"].items() if "proxy" in spec.get("networks", []))
    assert on_proxy == ["web"]
    assert all(spec.get("networks") for spec in compose["services"].values())
