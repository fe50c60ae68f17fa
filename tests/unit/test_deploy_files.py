"""The production compose file, read as Docker reads it (issue 10, item 12)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
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


def test_compose_file_is_valid_against_the_compose_specification() -> None:
    """Validated offline with check-jsonschema's vendored copy of the compose-spec schema (no container engine
    runs here): a misspelt key or a wrong type fails CI instead of the first `docker compose up`."""
    done = subprocess.run([str(Path(sys.executable).parent / "check-jsonschema"), "--builtin-schema",
                           "vendor.compose-spec", str(REPO / "docker-compose.yml")],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_compose_topology_matches_the_production_plan() -> None:
    services = _compose()["services"]
    assert set(services) == {"postgres", "redis", "chroma", "migrate", "web", "ingest", "answer", "answer-gpu",
                             "reconciler"}
    # Every long-running service says when it is healthy; the one-shot migrate does not run for long.
    assert sorted(name for name, spec in services.items() if "healthcheck" not in spec) == ["migrate", "reconciler"]
    redis = " ".join(services["redis"]["command"])
    assert "--appendonly yes" in redis and "--maxmemory-policy noeviction" in redis
    assert services["ingest"]["deploy"]["replicas"] >= 2
    gpu = services["answer-gpu"]
    assert gpu["profiles"] == ["gpu"] and "-DGGML_CUDA=ON" in gpu["build"]["args"]["LLAMA_CMAKE_ARGS"]
    assert "-DGGML_CUDA=ON" not in services["answer"]["build"]["args"]["LLAMA_CMAKE_ARGS"]
    assert "database_grant docs_app" in services["migrate"]["command"]
    # Migrations as the owner; web and workers as the app role, which cannot alter the audit table.
    assert services["migrate"]["environment"]["DOCS_DATABASE_URL"].startswith("postgres://docs:")
    for name in ("web", "ingest", "answer", "answer-gpu", "reconciler"):
        assert services[name]["environment"]["DOCS_DATABASE_URL"].startswith("postgres://docs_app:"), name
        assert "env_file" not in services[name] or all(e["path"] != ".env" for e in services[name]["env_file"])


def test_compose_file_bakes_in_no_secret() -> None:
    """Passwords and keys only as ${VARIABLE} references to .env, and .env is never committed."""
    services = _compose()["services"]
    secret = re.compile(r"PASSWORD|SECRET|KEY$")
    for name, spec in services.items():
        for variable, value in dict(spec.get("environment") or {}).items():
            if secret.search(variable) and variable != "DOCS_AUDIT_KEY_FILE":
                assert re.fullmatch(r"\$\{[A-Z_]+(:[?-][^}]*)?\}", str(value)), (name, variable)
            if variable == "DOCS_DATABASE_URL":
                assert re.search(r"://[a-z_]+:\$\{[A-Z_]+:\?[^}]*\}@", str(value)), (name, value)
    assert ".env" in (REPO / ".gitignore").read_text().split()
