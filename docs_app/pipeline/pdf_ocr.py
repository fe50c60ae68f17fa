"""OCR of the pages that have no usable text layer, in sandboxed extraction children working in parallel.

Each child (`pdf_extract_child --ocr`) opens the file under the same confinement as text extraction and reads
its share of the pages with Tesseract, page by page, each within `page_timeout_s` (Tesseract's own deadline).
The children run side by side, as many as `processes` (the cores the office gave OCR): OCR costs about a
hundred times what a text layer does, a few seconds a page. A child that stops answering (a page whose
rendering hangs) is killed after `idle_timeout_s`; one that dies on a page is restarted after it: that page
alone is given up, with the reason, and the rest of the share is still read. When the whole document's
`timeout_s` runs out, the pages not read yet are given up with that reason.

The children are watched from threads (each with `run_child`); this thread only collects what they read and
reports progress, so `on_page` runs here and may touch the database.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from docs_app.pipeline.pdf_extract import ExtractionError, run_child
from docs_app.pipeline.sandbox import BASIC_SANDBOX, EXIT_OUT_OF_MEMORY, Sandbox, child_command

# A page's render plus its recognition, and the child's start-up (language data) on top.
_IDLE_SLACK_S = 30.0


class OcrUnavailable(Exception):
    """Tesseract cannot run here (library or language data missing): an administrator's problem, not the file's."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class OcrOptions:
    tessdata: str  # the directory holding <language>.traineddata
    languages: str  # Tesseract's form: "eng", "eng+deu"
    page_timeout_s: float
    timeout_s: float  # the whole document
    processes: int
    memory_limit_mb: int
    # The same sandbox as text extraction; it sees only the PDF and the language data.
    sandbox: Sandbox = BASIC_SANDBOX


@dataclass(frozen=True)
class OcrResult:
    """One page as OCR read it: `words` are (start, end, x0, y0, x1, y1) in `text` and on the unrotated page;
    an empty text comes with a `note` saying why."""

    number: int
    text: str
    confidence: float | None
    words: tuple[tuple[float, ...], ...]
    note: str = ""
    failed: bool = False  # not read to the end (time budget, a crash, the document's time limit)


def pdf_ocr_pages(
    path: Path,
    numbers: Sequence[int],
    *,
    options: OcrOptions,
    on_page: Callable[[int], None] | None = None,
) -> dict[int, OcrResult]:
    """Read the given pages (1-based); returns a result for every one of them. Calls `on_page(done)` after each.

    Raises OcrUnavailable when Tesseract cannot start, and ExtractionError when the file cannot be opened; an
    exception raised by `on_page` stops every child and propagates."""
    pending = list(dict.fromkeys(numbers))
    if not pending:
        return {}
    processes = max(1, min(options.processes, len(pending)))
    deadline = time.monotonic() + options.timeout_s
    stop = threading.Event()
    found: queue.Queue[OcrResult | BaseException | None] = queue.Queue()
    workers = [
        threading.Thread(target=_read_share, args=(path, pending[k::processes], options, deadline, stop, found),
                         name=f"ocr-{k}", daemon=True)
        for k in range(processes)
    ]
    for worker in workers:
        worker.start()
    results: dict[int, OcrResult] = {}
    running = len(workers)
    try:
        while running:
            item = found.get()
            if item is None:
                running -= 1
            elif isinstance(item, BaseException):
                raise item
            else:
                results[item.number] = item
                if on_page is not None:
                    on_page(len(results))
    finally:
        stop.set()
        for worker in workers:
            worker.join()
    return results


def _read_share(path: Path, share: list[int], options: OcrOptions, deadline: float, stop: threading.Event,
                found: queue.Queue[OcrResult | BaseException | None]) -> None:
    """One child at a time over `share`, restarted after a page that killed it; reports to `found`."""
    remaining = list(share)
    try:
        while remaining and not stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                for number in remaining:
                    found.put(_given_up(number, f"OCR did not reach this page within {options.timeout_s:g} s"))
                return
            reason = _run_share_child(path, remaining, options, timeout_s=left, stop=stop, found=found)
            if reason is not None and remaining:
                # The page it was reading when it stopped: given up; the child restarts after it.
                found.put(_given_up(remaining.pop(0), reason))
    except BaseException as exc:  # handed to the collecting thread, which raises it
        found.put(exc)
    finally:
        found.put(None)


def _run_share_child(path: Path, remaining: list[int], options: OcrOptions, *, timeout_s: float,
                     stop: threading.Event, found: queue.Queue[OcrResult | BaseException | None]) -> str | None:
    """Run one child over `remaining`, removing each page it reports; None when it finished them all, else why
    it stopped."""

    def receive(message: object) -> None:
        if stop.is_set():
            raise ExtractionError("stopped")
        match message:
            case {"error": "ocr", "detail": str(detail)}:
                raise OcrUnavailable(detail)
            case {"error": "damaged", "detail": str(detail)}:
                raise ExtractionError(f"damaged PDF: {detail}")
            case {"page": int(number), "text": str(text), **rest} if remaining and number == remaining[0]:
                remaining.pop(0)
                found.put(_result(number, text, rest))
            case _:
                raise ExtractionError("extraction failed (unexpected output from the OCR reader)")

    request = {"path": str(path.resolve()), "pages": remaining, "memory_mb": options.memory_limit_mb,
               "tessdata": options.tessdata, "languages": options.languages,
               "page_timeout_s": options.page_timeout_s}
    sandbox = options.sandbox
    command = sandbox.command(child_command("docs_app.pipeline.pdf_extract_child", "--ocr", json.dumps(request)),
                              readable=[path.resolve(), Path(options.tessdata).resolve()])
    try:
        returncode, _ = run_child(command, env=sandbox.env(), timeout_s=timeout_s,
                                  max_output_bytes=options.memory_limit_mb << 20, on_message=receive,
                                  idle_timeout_s=options.page_timeout_s * 2 + _IDLE_SLACK_S)
    except ExtractionError as exc:
        if stop.is_set():
            return None
        if exc.reason.startswith("damaged PDF"):
            raise
        return f"OCR stopped on this page ({exc.reason})"
    returncode = sandbox.returncode(returncode)
    if returncode == EXIT_OUT_OF_MEMORY:
        return f"OCR ran out of memory on this page (limit {options.memory_limit_mb} MB)"
    if returncode < 0:
        return f"OCR crashed on this page (signal {-returncode})"
    if returncode != 0:
        return f"OCR stopped on this page (exit code {returncode})"
    return "OCR stopped before this page" if remaining else None


def _result(number: int, text: str, fields: Mapping[object, object]) -> OcrResult:
    confidence = fields.get("confidence")
    words = fields.get("words")
    note = fields.get("note")
    return OcrResult(
        number=number,
        text=text,
        confidence=float(confidence) if isinstance(confidence, int | float) else None,
        words=tuple(tuple(float(v) for v in word) for word in words if _is_word(word))
        if isinstance(words, list) else (),
        note=note if isinstance(note, str) else "",
        failed=fields.get("failed") is True,
    )


def _is_word(word: object) -> bool:
    return isinstance(word, list) and len(word) == 6 and all(isinstance(v, int | float) for v in word)


def _given_up(number: int, reason: str) -> OcrResult:
    return OcrResult(number=number, text="", confidence=None, words=(), note=reason, failed=True)
