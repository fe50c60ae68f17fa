"""Validate and extract page text from untrusted PDFs.

Nothing in this process parses the PDF: `pdf_validate` only looks at the size and the first bytes,
and `pdf_extract_pages` runs PyMuPDF in a child process (`pdf_extract_child`) under an address-space
limit and a wall-clock timeout. A segfault, decompression bomb or endless loop in MuPDF kills only
that child and becomes an `ExtractionError` whose reason the user sees on the document.
"""

import json
import os
import selectors
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from docs_app.pipeline.pdf_server import SERVED_FILE, PdfServer, ServedChild, ServerUnavailable, pdf_server
from docs_app.pipeline.sandbox import BASIC_SANDBOX, EXIT_OUT_OF_MEMORY, Sandbox, child_command

_MAGIC_WINDOW = 1024
_DETAIL_CHARS = 300
_READ_SIZE = 1 << 16
_UNEXPECTED_OUTPUT = "extraction failed (unexpected output from the extractor)"
_CHILD = "docs_app.pipeline.pdf_extract_child"

# Leading bytes of formats people upload by mistake, to name them in the rejection.
_KNOWN_FORMATS: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "PNG image"),
    (b"\xff\xd8\xff", "JPEG image"),
    (b"GIF87a", "GIF image"),
    (b"GIF89a", "GIF image"),
    (b"II*\x00", "TIFF image"),
    (b"MM\x00*", "TIFF image"),
    (b"PK\x03\x04", "ZIP archive or Office document"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "legacy Office document"),
    (b"{\\rtf", "RTF document"),
)


class ExtractionError(Exception):
    """A PDF that cannot be ingested. `reason` is a short, human-readable sentence shown to the user."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class ExtractedPage:
    """The text of one page.

    `text` is `page.get_text("text")`: content-stream order, which is reading order for the
    word-processor and EDGAR output that legal and medical offices hold. `sort=True` reorders
    blocks by position, which interleaves columns and table cells; on the CUAD dev queries it
    found one gold clause fewer (119 of 120, plain 120, comparing alphanumerics only).
    """

    number: int  # 1-based
    text: str
    # No usable text layer (none, a broken font map's garbage, or a few words over a scan): OCR should read it
    # (pdf_ocr.pdf_ocr_pages).
    needs_ocr: bool = False
    # First page only: its first lines as laid out, (font size, text), and the PDF's info dictionary (title,
    # author, ...): what the metadata extractor reads besides the text.
    lines: tuple[tuple[float, str], ...] = ()
    info: tuple[tuple[str, str], ...] = ()


def pdf_validate(path: Path, *, max_bytes: int) -> None:
    """Reject files that are missing, empty, too large or not PDFs, without parsing them.

    Cheap enough for the upload request; raises ExtractionError.
    """
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            head = handle.read(_MAGIC_WINDOW)
    except OSError as exc:
        raise ExtractionError(f"file cannot be read ({exc.strerror or type(exc).__name__})") from exc
    if size == 0:
        raise ExtractionError("empty file")
    if size > max_bytes:
        raise ExtractionError(f"file too large ({_megabytes(size)} MB > limit {_megabytes(max_bytes)} MB)")
    # Readers accept junk before the header (a mail or HTTP prefix), so search a window, not offset 0.
    if b"%PDF-" not in head:
        raise ExtractionError(f"not a PDF (looks like {_sniff_format(head)})")


def pdf_extract_pages(
    path: Path,
    *,
    max_pages: int,
    timeout_s: float,
    memory_limit_mb: int,
    on_page: Callable[[int, int], None] | None = None,
    sandbox: Sandbox = BASIC_SANDBOX,
    served: bool = False,
) -> list[ExtractedPage]:
    """Extract the text of every page in a sandboxed child process: a fresh one, or with `served` one forked by
    this process's PDF server (pipeline.pdf_server: the same confinement without a new interpreter and PyMuPDF
    import per document; a fresh child when the server cannot serve).

    Calls `on_page(0, total)` once the page count is known, then `on_page(done, total)` after each
    page. Raises ExtractionError with a reason for every way a bad PDF can fail; an exception raised
    by `on_page` propagates (after the child is killed). The text received from the child counts
    against `memory_limit_mb` too, so a text bomb cannot exhaust this process either.
    """
    pages: list[ExtractedPage] = []
    total: int | None = None

    def receive(message: object) -> None:
        nonlocal total
        match message:
            case {"error": "password"}:
                raise ExtractionError("password protected")
            case {"error": "damaged", "detail": str(detail)}:
                raise ExtractionError(f"damaged PDF: {_shorten(detail)}")
            case {"pages": int(count)} if total is None:
                if count == 0:
                    raise ExtractionError("PDF has no pages")
                if count > max_pages:
                    raise ExtractionError(f"too many pages ({count} > limit {max_pages})")
                total = count
                if on_page is not None:
                    on_page(0, total)
            case {"page": int(number), "text": str(text), **rest} if total is not None and number == len(pages) + 1:
                pages.append(ExtractedPage(number=number, text=text, needs_ocr=rest.get("ocr") is True,
                                           lines=_lines(message), info=_info(message)))
                if on_page is not None:
                    on_page(number, total)
            case _:
                raise ExtractionError(_UNEXPECTED_OUTPUT)

    # The child confines itself once its imports are done (pipeline.sandbox.pymupdf_limited); the sandbox
    # it starts in sees only this file (a served child gets it as an open descriptor).
    source = path.resolve()

    def watch(child: ChildProcess) -> tuple[int, str]:
        return run_started(child, timeout_s=timeout_s, max_output_bytes=memory_limit_mb * 1024 * 1024,
                           on_message=receive)

    returncode: int | None = None
    if served:
        with pdf_server(sandbox) as server:
            child = _served_child(server, source, max_pages=max_pages, memory_limit_mb=memory_limit_mb)
            if child is not None:
                returncode, stderr_tail = watch(child)
    if returncode is None:
        command = sandbox.command(child_command(_CHILD, str(source), str(max_pages), str(memory_limit_mb)),
                                  readable=[source])
        returncode, stderr_tail = watch(PopenChild(command, env=sandbox.env()))
        returncode = sandbox.returncode(returncode)
    if returncode == EXIT_OUT_OF_MEMORY:
        raise ExtractionError(f"extraction ran out of memory (limit {memory_limit_mb} MB)")
    if returncode < 0:
        raise ExtractionError(f"extraction crashed (signal {_signal_name(-returncode)})")
    if returncode != 0:
        raise ExtractionError(_with_detail(f"extraction failed (exit code {returncode})", stderr_tail))
    if total is None or len(pages) != total:
        raise ExtractionError(_with_detail("extraction stopped early", stderr_tail))
    return pages


class ChildProcess(Protocol):
    """A started child whose stdout carries JSON lines: a fresh process (`PopenChild`) or one forked by the PDF
    server (pdf_server.ServedChild)."""

    stdout_fd: int
    stderr_fd: int

    def wait(self, timeout: float) -> int:
        """The exit code (negative: the signal that killed it); subprocess.TimeoutExpired after `timeout`."""
        ...

    def kill(self) -> None:
        """Kill it if it still runs, and reap it."""
        ...

    def close(self) -> None: ...


class PopenChild:
    def __init__(self, command: list[str], *, env: dict[str, str]) -> None:
        self._process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,  # the sandbox's minimal environment, never this process's secrets
            start_new_session=True,  # its own process group, so one kill reaches anything it started
        )
        assert self._process.stdout is not None and self._process.stderr is not None
        self.stdout_fd = self._process.stdout.fileno()
        self.stderr_fd = self._process.stderr.fileno()

    def wait(self, timeout: float) -> int:
        return self._process.wait(timeout=timeout)

    def kill(self) -> None:
        if self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait()

    def close(self) -> None:
        assert self._process.stdout is not None and self._process.stderr is not None
        self._process.stdout.close()
        self._process.stderr.close()


def _served_child(server: PdfServer | None, source: Path, *, max_pages: int,
                  memory_limit_mb: int) -> ServedChild | None:
    if server is None:
        return None
    try:
        return server.spawn(_CHILD, [SERVED_FILE, str(max_pages), str(memory_limit_mb)], file=source)
    except ServerUnavailable:
        return None
    except OSError as exc:
        raise ExtractionError(f"file cannot be read ({exc.strerror or type(exc).__name__})") from exc


def run_child(
    command: list[str],
    *,
    env: dict[str, str],
    timeout_s: float,
    max_output_bytes: int,
    on_message: Callable[[object], None],
    idle_timeout_s: float | None = None,
) -> tuple[int, str]:
    """Start the command as a fresh child and run it as `run_started` does."""
    return run_started(PopenChild(command, env=env), timeout_s=timeout_s, max_output_bytes=max_output_bytes,
                       on_message=on_message, idle_timeout_s=idle_timeout_s)


def run_started(
    child: ChildProcess,
    *,
    timeout_s: float,
    max_output_bytes: int,
    on_message: Callable[[object], None],
    idle_timeout_s: float | None = None,
    activity: str = "extraction",
) -> tuple[int, str]:
    """Feed each stdout JSON line of the child to on_message; return (returncode, stderr tail). `activity` names
    what timed out in the error.

    The child is killed on timeout, after `idle_timeout_s` without a line on stdout, and whenever on_message
    raises (fail fast).
    """
    deadline = time.monotonic() + timeout_s
    idle_deadline = time.monotonic() + idle_timeout_s if idle_timeout_s is not None else deadline
    stdout_fd = child.stdout_fd
    line = bytearray()
    received = 0
    # Only the end of stderr is kept: a hostile file can make MuPDF complain without end.
    stderr_tail = b""
    finished = False
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(stdout_fd, selectors.EVENT_READ)
            selector.register(child.stderr_fd, selectors.EVENT_READ)
            while selector.get_map():
                remaining = min(deadline, idle_deadline) - time.monotonic()
                events = selector.select(timeout=remaining) if remaining > 0 else []
                if not events and time.monotonic() >= idle_deadline and idle_deadline < deadline:
                    raise ExtractionError(f"no progress for {idle_timeout_s:g} s")
                if not events:
                    raise ExtractionError(f"{activity} timed out after {timeout_s:g} s")
                for key, _ in events:
                    chunk = os.read(key.fd, _READ_SIZE)
                    if not chunk:
                        selector.unregister(key.fd)
                    elif key.fd != stdout_fd:
                        stderr_tail = (stderr_tail + chunk)[-4 * _DETAIL_CHARS :]
                    else:
                        received += len(chunk)
                        if received > max_output_bytes:
                            limit = _megabytes(max_output_bytes)
                            raise ExtractionError(f"too much text (more than {limit} MB)")
                        # Search only the new bytes: one page's line can be megabytes long.
                        searched = len(line)
                        line += chunk
                        end = line.find(b"\n", searched)
                        while end >= 0:
                            if idle_timeout_s is not None:
                                idle_deadline = time.monotonic() + idle_timeout_s
                            on_message(_decode(bytes(line[:end])))
                            del line[: end + 1]
                            end = line.find(b"\n")
        try:
            returncode = child.wait(timeout=max(deadline - time.monotonic(), 0))
        except subprocess.TimeoutExpired:
            raise ExtractionError(f"{activity} timed out after {timeout_s:g} s") from None
        finished = True
    finally:
        if not finished:
            child.kill()
        child.close()
    return returncode, stderr_tail.decode("utf-8", "replace")


def _lines(message: object) -> tuple[tuple[float, str], ...]:
    raw = message.get("lines") if isinstance(message, dict) else None
    if not isinstance(raw, list):
        return ()
    return tuple((float(item[0]), item[1]) for item in raw
                 if isinstance(item, list) and len(item) == 2 and isinstance(item[0], int | float)
                 and isinstance(item[1], str))


def _info(message: object) -> tuple[tuple[str, str], ...]:
    raw = message.get("info") if isinstance(message, dict) else None
    if not isinstance(raw, dict):
        return ()
    return tuple((str(key), value) for key, value in raw.items() if isinstance(value, str))


def _decode(line: bytes) -> object:
    try:
        return json.loads(line)
    except ValueError:
        raise ExtractionError(_UNEXPECTED_OUTPUT) from None


def _sniff_format(head: bytes) -> str:
    for magic, name in _KNOWN_FORMATS:
        if head.startswith(magic):
            return name
    if head.lstrip()[:14].lower().startswith((b"<!doctype html", b"<html")):
        return "HTML page"
    if all(byte >= 0x20 or byte in b"\t\n\r\f" for byte in head):
        return "plain text"
    return "unknown format"


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f}".removesuffix(".0")


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


def _shorten(text: str) -> str:
    collapsed = " ".join(text.split())
    return collapsed if len(collapsed) <= _DETAIL_CHARS else "..." + collapsed[-_DETAIL_CHARS:]


def _with_detail(reason: str, stderr_tail: str) -> str:
    detail = _shorten(stderr_tail)
    return f"{reason}: {detail}" if detail else reason
