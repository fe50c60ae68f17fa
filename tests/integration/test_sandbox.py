"""The PDF children's sandbox (issue 10, item 6): what a child can reach when MuPDF is compromised. The probe
(tests/sandbox_probe.py) is started the way the extraction and render children are (the same command and
environment from services.sandboxing.pdf_sandbox) and confines itself with the same call they make."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings

from docs_app.pipeline.pdf_extract import run_started
from docs_app.pipeline.pdf_server import SERVED_FILE, PdfServer
from docs_app.pipeline.sandbox import Sandbox, bwrap_works
from docs_app.services.sandboxing import pdf_sandbox
from tests.conftest import on_postgresql
from tests.data import REPO, WEB_HOSTING, cuad


def _probe(sandbox: Sandbox, *, readable: Path, secrets: dict[str, Path], write: Path) -> dict[str, object]:
    request = {"input": str(readable), "write": str(write), "parent": os.getpid(),
               "secrets": {name: str(path) for name, path in secrets.items()}}
    command = sandbox.command([sys.executable, "-s", "-m", "tests.sandbox_probe"], readable=[readable])
    done = subprocess.run(command, input=json.dumps(request), capture_output=True, text=True, timeout=60,
                          env=sandbox.env(), check=False)
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


@pytest.fixture
def secret_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """What a production web or worker process carries in its environment."""
    monkeypatch.setenv("DOCS_SECRET_KEY", "s3cret-django-key")
    monkeypatch.setenv("DOCS_DATABASE_URL", "postgres://docs:pw@db/docs")


@pytest.fixture
def data_dir_secret() -> Iterator[Path]:
    """A secret in a data directory next to the code (outside /tmp, whose sandbox copy is private anyway)."""
    data = REPO / "test-artifacts" / "sandbox-data"
    data.mkdir(parents=True, exist_ok=True)
    (data / "secret_key").write_text("dev-secret")
    yield data / "secret_key"
    (data / "secret_key").unlink()


def test_the_installed_sandbox_uses_namespaces_here() -> None:
    """scripts/system-deps.sh installs bubblewrap: on this machine and in CI the full sandbox must run."""
    assert bwrap_works()
    sandbox = pdf_sandbox()
    assert sandbox.uses_namespaces()
    assert {str(settings.DATA_DIR), str(settings.AUDIT_KEY_FILE.parent)} <= set(sandbox.hidden)


def test_a_child_gets_no_socket_no_secret_no_process_and_no_writable_file(secret_environment, data_dir_secret: Path,
                                                                           tmp_path: Path) -> None:
    secrets = {"data_dir_secret": data_dir_secret, "audit_key": settings.AUDIT_KEY_FILE}
    if on_postgresql():  # a server the child cannot reach: no socket of any kind (asserted below)
        expected_database = {}
    else:
        secrets["database"] = Path(settings.DATABASES["default"]["TEST"]["NAME"])
        expected_database = {"database": "FileNotFoundError"}
    sandbox = Sandbox(mode="namespaces", hidden=(*pdf_sandbox().hidden, str(data_dir_secret.parent)))
    outcomes = _probe(sandbox, readable=cuad(WEB_HOSTING), write=REPO / "test-artifacts" / "planted.txt",
                      secrets=secrets)
    assert outcomes == {
        "environment": [],
        "socket": "PermissionError", "unix_socket": "PermissionError",
        "exec": "PermissionError", "fork": "PermissionError",
        "input": "allowed",
        "write_elsewhere": "OSError",  # read-only file system
        "parent_environ": "FileNotFoundError",  # its own PID namespace: the parent is not there
        "parent_memory": "FileNotFoundError",
        "data_dir_secret": "FileNotFoundError", "audit_key": "FileNotFoundError", **expected_database,
    }
    assert not (REPO / "test-artifacts" / "planted.txt").exists()


def test_without_bubblewrap_the_child_still_gets_no_socket_exec_or_secret_environment(secret_environment,
                                                                                      tmp_path: Path) -> None:
    outcomes = _probe(Sandbox(mode="basic"), readable=cuad(WEB_HOSTING), write=tmp_path / "planted.txt", secrets={})
    assert outcomes["environment"] == []
    assert (outcomes["socket"], outcomes["exec"], outcomes["fork"]) == ("PermissionError",) * 3
    assert outcomes["input"] == "allowed"


def _served_probe(sandbox: Sandbox, *, secrets: dict[str, Path], write: Path) -> dict[str, object]:
    """The probe forked by the PDF server, as the extraction children of an ingest worker are."""
    request = {"input": SERVED_FILE, "write": str(write), "parent": "own",
               "secrets": {name: str(path) for name, path in secrets.items()}}
    server = PdfServer(sandbox)
    replies: list[object] = []
    try:
        child = server.spawn("tests.sandbox_probe", [json.dumps(request)], file=cuad(WEB_HOSTING))
        returncode, errors = run_started(child, timeout_s=60, max_output_bytes=1 << 20, on_message=replies.append)
    finally:
        server.close()
    assert returncode == 0, errors
    [outcomes] = replies
    assert isinstance(outcomes, dict)
    return outcomes


def test_a_child_forked_by_the_pdf_server_is_confined_like_a_fresh_one(secret_environment, data_dir_secret: Path,
                                                                      tmp_path: Path) -> None:
    """The server is not under seccomp (it forks) and its children share its memory layout: what a compromised
    MuPDF in such a child reaches must still be nothing. Its parent is now in its PID namespace: the server's
    memory and environment must be closed to it (PR_SET_DUMPABLE 0)."""
    secrets = {"data_dir_secret": data_dir_secret, "audit_key": settings.AUDIT_KEY_FILE,
               "stored_pdf_by_path": cuad(WEB_HOSTING)}
    hidden = (*pdf_sandbox().hidden, str(data_dir_secret.parent), str(cuad(WEB_HOSTING).parent))
    outcomes = _served_probe(Sandbox(mode="namespaces", hidden=hidden), secrets=secrets,
                             write=REPO / "test-artifacts" / "planted.txt")
    basic = _served_probe(Sandbox(mode="basic"), secrets={}, write=tmp_path / "planted.txt")
    assert outcomes == {
        "environment": [],
        "socket": "PermissionError", "unix_socket": "PermissionError",
        "exec": "PermissionError", "fork": "PermissionError",
        "input": "allowed",  # the descriptor the worker passed: the only way to the file
        "write_elsewhere": "OSError",
        "parent_environ": "PermissionError", "parent_memory": "PermissionError",  # the server, not dumpable
        "data_dir_secret": "FileNotFoundError", "audit_key": "FileNotFoundError",
        "stored_pdf_by_path": "FileNotFoundError",
    }
    assert not (REPO / "test-artifacts" / "planted.txt").exists()
    # Without namespaces the children still get no socket, exec or process; the server is closed to them unless
    # they run as root (its capabilities pass the non-dumpable check: run the app as its own user).
    assert basic["environment"] == [] and basic["input"] == "allowed"
    assert (basic["socket"], basic["exec"], basic["fork"]) == ("PermissionError",) * 3
    if os.geteuid() != 0:
        assert (basic["parent_environ"], basic["parent_memory"]) == ("PermissionError",) * 2


def test_extraction_and_rendering_still_work_inside_it() -> None:
    from docs_app.pipeline.pdf_extract import pdf_extract_pages

    pages = pdf_extract_pages(cuad(WEB_HOSTING), max_pages=100, timeout_s=60, memory_limit_mb=1024,
                              sandbox=pdf_sandbox())
    assert pages and any("Galacticomm" in page.text or "GALACTICOMM" in page.text for page in pages)


@pytest.mark.parametrize("highlighted", [False, True])
def test_a_served_render_draws_the_same_page_as_a_fresh_one(highlighted: bool) -> None:
    """The viewer's pages are rendered by children forked from the web process's PDF server, with the PDF and the
    output file passed as descriptors; a fresh child (the fallback) must draw the same picture."""
    from docs_app.pipeline.pdf_extract import pdf_extract_pages
    from docs_app.services.pages import render_fresh, render_request, render_served

    contract = cuad(WEB_HOSTING)
    text = pdf_extract_pages(contract, max_pages=100, timeout_s=60, memory_limit_mb=1024)[0].text
    start = text.index("Galacticomm") if "Galacticomm" in text else 100
    highlight = {"start": start, "end": start + 200, "text": text[start:start + 200]} if highlighted else None
    out_dir = REPO / "test-artifacts" / "renders"
    out_dir.mkdir(parents=True, exist_ok=True)
    fresh_out, served_out = out_dir / f"fresh-{highlighted}.png", out_dir / f"served-{highlighted}.png"
    request = render_request(path=contract, page=1, out=fresh_out, highlight=highlight)
    sandbox = pdf_sandbox()
    fresh = render_fresh(sandbox, request, path=contract, out=fresh_out)
    assert fresh[0]["ok"] is True and fresh[1] == 0
    assert (fresh[0]["highlighted"] != 0) == highlighted  # one rectangle per line of the passage
    with served_out.open("wb") as out:
        served = render_served(sandbox, request, path=contract, out_fd=out.fileno())
    assert served == fresh
    assert served_out.read_bytes().startswith(b"\x89PNG")
    assert served_out.read_bytes() == fresh_out.read_bytes()


def test_a_render_while_the_server_is_busy_is_left_to_a_fresh_child() -> None:
    """gunicorn runs many threads in a web process and the server forks one child at a time: a render that finds
    it busy must not wait for it (nor fail) but take the fresh path."""
    from docs_app.pipeline.pdf_server import pdf_server
    from docs_app.services.pages import render_fresh, render_request, render_served

    contract = cuad(WEB_HOSTING)
    out = REPO / "test-artifacts" / "renders" / "busy.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    request = render_request(path=contract, page=1, out=out, highlight=None)
    sandbox = pdf_sandbox()
    with pdf_server(sandbox) as busy, out.open("wb") as handle:
        assert busy is not None
        assert render_served(sandbox, request, path=contract, out_fd=handle.fileno()) is None
    assert render_fresh(sandbox, request, path=contract, out=out) == ({"ok": True, "highlighted": 0}, 0)
    assert out.read_bytes().startswith(b"\x89PNG")
