"""Page images for the viewer, rendered on the server with the cited passage highlighted.

Rendering runs in a child process (`pipeline/pdf_render_child`) in the same sandbox as text extraction
(pipeline.sandbox: minimal environment, limits, seccomp, no network, read-only view of everything but its input
and output) under a wall-clock timeout, not in the web process. The file already passed sandboxed extraction,
but rasterising decodes images, fonts and shadings that text extraction never touched: a decompression
bomb or a MuPDF crash there must cost one child, not a web worker. The child is forked by the web process's PDF
server (pipeline.pdf_server, as in ingestion) when it can serve, else started fresh (about 0.1 s more); renders
are cached per document version under PAGE_CACHE_DIR/<document id>/, which erasure deletes.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from django.conf import settings

from docs_app.models import Chunk, Document, Page, PageSource
from docs_app.pipeline.ocr import passage_boxes
from docs_app.pipeline.pdf_extract import ExtractionError, run_started
from docs_app.pipeline.pdf_server import SERVED_EXTRA_FD, SERVED_FILE, ServerLost, ServerUnavailable, pdf_server
from docs_app.pipeline.sandbox import Sandbox, child_command
from docs_app.services.sandboxing import pdf_sandbox
from docs_app.storage import page_cache_dir, stored_file_local

PAGE_WIDTH_PX = 1100  # fills the viewer column on a laptop screen, sharp enough to read small print
PAGE_MAX_SIDE_PX = 2400
RENDER_TIMEOUT_S = 20
_RENDER_CHILD = "docs_app.pipeline.pdf_render_child"
_REPLY_MAX_BYTES = 1 << 20


class PageRenderError(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def page_render(*, document: Document, page: int, chunk: Chunk | None = None) -> Path:
    """The PNG of one page, rendering it on first use. `chunk` must belong to `document` (the caller checks)
    and is highlighted only when it lies on this page."""
    if chunk is not None and (chunk.document_id != document.pk or chunk.page != page):
        chunk = None
    version_dir = page_cache_dir(document) / f"v{document.version}"
    target = version_dir / (f"{page}-c{chunk.pk}.png" if chunk is not None else f"{page}.png")
    if target.exists():
        return target
    version_dir.mkdir(parents=True, exist_ok=True)
    # One render per picture: twenty people opening the same page at once wait for one child instead of
    # starting twenty (which, on a small machine, all ran into the timeout: seen under bench/load.py).
    with (version_dir / f".{target.name}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if target.exists():
            return target
        fd, tmp_name = tempfile.mkstemp(dir=version_dir, prefix=".render-", suffix=".png")
        try:
            _render_in_child(document=document, page=page, chunk=chunk, out=Path(tmp_name), out_fd=fd)
            os.replace(tmp_name, target)
        finally:
            os.close(fd)
            Path(tmp_name).unlink(missing_ok=True)
    if not Document.objects.filter(pk=document.pk).exists():
        # Erased while we rendered: erasure already removed the cache directory, and this render must not
        # leave a picture of the erased page behind.
        shutil.rmtree(page_cache_dir(document), ignore_errors=True)
        raise PageRenderError("the document was deleted")
    return target


def _render_in_child(*, document: Document, page: int, chunk: Chunk | None, out: Path, out_fd: int) -> None:
    highlight: dict[str, object] | None = None
    if chunk is not None:
        highlight = {"start": chunk.char_start, "end": chunk.char_end, "text": chunk.text}
        reading = Page.objects.filter(document=document, number=page, source=PageSource.OCR).first()
        if reading is not None:
            # A scanned page has no text layer to find the passage in: OCR's word boxes say where it is.
            highlight["boxes"] = passage_boxes(reading.ocr_words, chunk.char_start, chunk.char_end)
    # From an object store this is a copy of the whole original per render, kept no longer than the child runs:
    # renders are cached, so a page costs it once per host.
    with stored_file_local(document.stored_name) as path:
        if path is None:
            raise PageRenderError("the stored file is missing")
        _render_child_run(path=path, page=page, out=out, out_fd=out_fd, highlight=highlight)


def _render_child_run(*, path: Path, page: int, out: Path, out_fd: int, highlight: dict[str, object] | None) -> None:
    request = render_request(path=path, page=page, out=out, highlight=highlight)
    sandbox = pdf_sandbox()
    served = render_served(sandbox, request, path=path, out_fd=out_fd)
    if served is not None:
        reply, returncode = served
    else:
        reply, returncode = render_fresh(sandbox, request, path=path, out=out)
    if returncode != 0 or not reply.get("ok"):
        reason = reply.get("error") or f"the renderer stopped (exit code {returncode})"
        raise PageRenderError(str(reason))


def render_request(*, path: Path, page: int, out: Path, highlight: dict[str, object] | None) -> dict[str, object]:
    """What pipeline.pdf_render_child is asked (a served child gets the PDF and `out` as descriptors instead)."""
    return {
        "path": str(path),
        "page": page,
        "out": str(out),
        "width_px": PAGE_WIDTH_PX,
        "max_side_px": PAGE_MAX_SIDE_PX,
        "memory_mb": settings.INGEST_EXTRACT_MEMORY_MB,
        "highlight": highlight,
    }


def render_served(sandbox: Sandbox, request: dict[str, object], *, path: Path,
                   out_fd: int) -> tuple[dict[str, object], int] | None:
    """Render in a child forked by this process's PDF server (pipeline.pdf_server: no interpreter start and
    PyMuPDF import per page, about 0.1 s of a 0.16 s render); it gets the PDF and the output file as descriptors.
    None: no server could serve (busy with another thread's render, or unavailable), or it was lost."""
    with pdf_server(sandbox) as server:
        if server is None:
            return None
        served = {key: value for key, value in request.items() if key != "out"}
        served |= {"path": SERVED_FILE, "out_fd": SERVED_EXTRA_FD}
        try:
            child = server.spawn(_RENDER_CHILD, [json.dumps(served)], file=path, extra_fds=[out_fd])
        except ServerUnavailable:
            return None
        replies: list[object] = []
        try:
            returncode, _ = run_started(child, timeout_s=RENDER_TIMEOUT_S, max_output_bytes=_REPLY_MAX_BYTES,
                                        on_message=replies.append, activity="rendering")
        except ExtractionError as exc:
            raise PageRenderError(exc.reason) from None
        except ServerLost:
            return None
    reply = replies[-1] if replies and isinstance(replies[-1], dict) else {}
    return reply, returncode


def render_fresh(sandbox: Sandbox, request: dict[str, object], *, path: Path,
                  out: Path) -> tuple[dict[str, object], int]:
    # Sees the PDF (read-only) and the directory of renders of this document version, where it writes (MuPDF
    # replaces the output file, so the file alone cannot be bound); not the rest of the data directory, the
    # database or the keys.
    command = sandbox.command(child_command(_RENDER_CHILD), readable=[path], writable=[out.parent])
    try:
        done = subprocess.run(command, input=json.dumps(request).encode(), capture_output=True,
                              timeout=RENDER_TIMEOUT_S, env=sandbox.env(), check=False, start_new_session=True)
    except subprocess.TimeoutExpired:
        raise PageRenderError(f"rendering timed out after {RENDER_TIMEOUT_S} s") from None
    reply: dict[str, object] = {}
    lines = done.stdout.decode("utf-8", "replace").strip().splitlines()
    if lines:
        try:
            reply = json.loads(lines[-1])
        except ValueError:
            reply = {}
    return reply, sandbox.returncode(done.returncode)
