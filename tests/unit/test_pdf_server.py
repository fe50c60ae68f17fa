"""The PDF server (pipeline.pdf_server): extraction children forked from one process that imported PyMuPDF once
must behave exactly as fresh children do, on good and hostile files, and a server that dies or cannot start must
lose no document. Its confinement is tested in tests/integration/test_sandbox.py.

No Django: these run with or without pytest-django.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from docs_app.pipeline import pdf_server
from docs_app.pipeline.pdf_extract import ExtractedPage, ExtractionError, pdf_extract_pages
from docs_app.pipeline.pdf_server import SERVED_FILE, PdfServer, ServerLost, ServerUnavailable
from docs_app.pipeline.sandbox import BASIC_SANDBOX
from tests.data import cuad_first, hostile


def extract(path: Path, *, served: bool, timeout_s: float = 60, memory_limit_mb: int = 1024,
            max_pages: int = 5000) -> list[ExtractedPage] | str:
    try:
        return pdf_extract_pages(path, max_pages=max_pages, timeout_s=timeout_s, memory_limit_mb=memory_limit_mb,
                                 served=served)
    except ExtractionError as error:
        return error.reason


def test_every_hostile_file_and_three_contracts_give_the_same_pages_or_reason_as_a_fresh_child() -> None:
    files = sorted(p for p in hostile().iterdir() if p.suffix.lower() == ".pdf") + cuad_first(3)
    assert len(files) > 20
    differences = {path.name: (fresh, served) for path in files
                   if (fresh := extract(path, served=False, timeout_s=20))
                   != (served := extract(path, served=True, timeout_s=20))}
    assert differences == {}


def test_limits_hold_in_a_served_child_and_the_server_serves_the_next_document() -> None:
    assert extract(hostile("gen__3000_pages.pdf"), served=True, max_pages=2000) == "too many pages (3000 > limit 2000)"
    started = time.monotonic()
    assert extract(hostile("gen__3000_pages.pdf"), served=True, timeout_s=0.2) == "extraction timed out after 0.2 s"
    assert time.monotonic() - started < 2
    assert extract(cuad_first(1)[0], served=True, memory_limit_mb=50) == "extraction ran out of memory (limit 50 MB)"
    pages = extract(cuad_first(1)[0], served=True)
    assert isinstance(pages, list) and len(pages) == 9


def test_one_server_serves_document_after_document() -> None:
    """The saving (no interpreter start and PyMuPDF import per document; bench/ingest.py measures it) holds only if
    the server lives on: three documents, one server process."""
    contract = cuad_first(1)[0]
    extract(contract, served=True)
    server = pdf_server._servers[BASIC_SANDBOX]
    for _ in range(3):
        pages = extract(contract, served=True)
        assert isinstance(pages, list) and len(pages) == 9
    assert pdf_server._servers[BASIC_SANDBOX] is server and server.alive()


def test_closing_the_workers_end_ends_the_server_and_the_child_it_runs() -> None:
    server = PdfServer(BASIC_SANDBOX)
    child = server.spawn("docs_app.pipeline.pdf_extract_child", [SERVED_FILE, "5000", "1024"],
                         file=hostile("gen__3000_pages.pdf"))
    assert os.read(child.stdout_fd, 100).startswith(b'{"pages": 3000}')
    server._socket.close()
    started = time.monotonic()
    while os.read(child.stdout_fd, 1 << 16):  # EOF once the child is gone: only it holds the pipe's write end
        assert time.monotonic() - started < 10
    assert server._process.wait(timeout=10) == 0
    child.close()


def test_a_server_that_dies_mid_document_loses_it_to_a_retry_not_a_verdict() -> None:
    """The document is not at fault: ServerLost (not ExtractionError) lets the ingest task retry it, and the next
    document gets a new server."""
    extract(cuad_first(1)[0], served=True)
    first = pdf_server._servers[BASIC_SANDBOX]

    def kill_server(done: int, total: int) -> None:
        if done == 10:
            first._process.kill()

    with pytest.raises(ServerLost):
        pdf_extract_pages(hostile("gen__3000_pages.pdf"), max_pages=5000, timeout_s=60, memory_limit_mb=1024,
                          on_page=kill_server, served=True)
    pages = extract(cuad_first(1)[0], served=True)
    assert isinstance(pages, list) and len(pages) == 9
    assert pdf_server._servers[BASIC_SANDBOX] is not first


def test_when_no_server_can_start_each_document_gets_a_fresh_child(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(_sandbox: object) -> PdfServer:
        raise ServerUnavailable("no server here")

    monkeypatch.setattr(pdf_server, "_servers", {})
    monkeypatch.setattr(pdf_server, "_unavailable_until", 0.0)
    monkeypatch.setattr(pdf_server, "PdfServer", refuse)
    pages = extract(cuad_first(1)[0], served=True)
    assert isinstance(pages, list) and len(pages) == 9
    assert pdf_server._unavailable_until > time.monotonic()  # not tried again for every document


def test_a_kill_after_the_child_ended_never_reaches_the_next_document() -> None:
    """A refused file (its child reports and exits at once while the worker kills it) followed by a good one, many
    times: each kill goes down that child's own pipe, so no late kill or stale exit code shifts onto the next."""
    refused = hostile("gen__3000_pages.pdf")
    for _ in range(15):
        assert extract(refused, served=True, max_pages=10) == "too many pages (3000 > limit 10)"
        pages = extract(cuad_first(1)[0], served=True)
        assert isinstance(pages, list) and len(pages) == 9
