"""Child side of PDF extraction, in two modes.

Text layers: `python -m docs_app.pipeline.pdf_extract_child PATH MAX_PAGES MEMORY_MB`. The parent
(`pdf_extract.pdf_extract_pages`) starts this with a timeout and reads one JSON object per line from stdout:

    {"pages": N}                          first, as soon as the page count is known
    {"page": n, "text": "...", "ocr": b}  then once per page, n = 1..N, in order; "ocr": true when the page
                                          has no usable text layer (pipeline.ocr decides); page 1 also carries
                                          "lines": [[font size, text], ...] (its first lines as laid out)
                                          and "info": {"title": ..., "author": ...} (the PDF's info dict)
    {"error": "password"}                 the PDF needs a password to be read
    {"error": "damaged", "detail": "..."} MuPDF could not open the file

Nothing follows an error line. When N > MAX_PAGES the child stops after the count line.

OCR: `python -m docs_app.pipeline.pdf_extract_child --ocr REQUEST`, REQUEST a JSON object {"path", "pages": [n, ...],
"memory_mb", "tessdata", "languages", "page_timeout_s"}. The parent (`pdf_ocr.pdf_ocr_pages`) reads, per page
in the order asked:

    {"page": n, "text": "...", "words": [[start, end, x0, y0, x1, y1], ...], "confidence": c, "note": "...",
     "failed": true}                      (confidence, note and failed only when there is something to say)
    {"error": "ocr", "detail": "..."}     Tesseract cannot start (no library, no language data): nothing follows
    {"error": "damaged", "detail": "..."} MuPDF could not open the file

Running out of MEMORY_MB of address space ends the process with EXIT_OUT_OF_MEMORY (pipeline.sandbox, which also
starts and confines it). Keep imports light: no Django, no torch.
"""

import importlib
import json
import re
import sys
from typing import Any, TextIO

from docs_app.pipeline.ocr import SCAN_COVER, OcrPage, Reader, image_cover, sparse_text, text_layer_usable
from docs_app.pipeline.sandbox import exit_if_out_of_memory, out_of_memory, protocol_out, pymupdf_limited, send

_ERROR_CODE = re.compile(r"^code=\d+: ")
_MAX_LINES = 80
_LINE_CHARS = 300
_INFO_KEYS = ("title", "author", "subject", "keywords", "creationDate")
_INFO_CHARS = 500


def main() -> None:
    out = protocol_out()
    try:
        if sys.argv[1] == "--ocr":
            _ocr(out, json.loads(sys.argv[2]))
        else:
            _extract(out, sys.argv[1], max_pages=int(sys.argv[2]), memory_limit_mb=int(sys.argv[3]))
    except Exception as exc:
        exit_if_out_of_memory(exc)
        raise


def _extract(out: TextIO, path: str, *, max_pages: int, memory_limit_mb: int) -> None:
    pymupdf = pymupdf_limited(memory_limit_mb, max_file_bytes=0)  # extraction writes no file
    try:
        # filetype="pdf": never let MuPDF sniff a renamed image or e-book into a "document".
        doc = pymupdf.open(path, filetype="pdf")
        # MuPDF already tried the empty user password: an owner-password-only PDF reads fine here.
        page_count = None if doc.needs_pass else doc.page_count
    except Exception as exc:
        if out_of_memory(exc):
            raise
        send(out, {"error": "damaged", "detail": _message(exc).replace(path, "file")})
        return
    if page_count is None:
        send(out, {"error": "password"})
        return
    if page_count == 0 and doc.is_repaired:
        # Truncated or broken rather than an empty document: the user can fix that at the source.
        send(out, {"error": "damaged", "detail": "no pages could be recovered"})
        return
    send(out, {"pages": page_count})
    if page_count > max_pages:
        return
    for index in range(page_count):
        message: dict[str, object] = {"page": index + 1}
        try:
            page = doc.load_page(index)
            # Plain content-stream order, not sort=True: see pdf_extract.ExtractedPage.
            text = page.get_text("text")
            message.update(text=text, ocr=_needs_ocr(pymupdf, page, text))
            if index == 0:
                # For the metadata extractor: a title is often the largest print on the first page.
                message["lines"] = _sized_lines(page)
                message["info"] = {key: str(value)[:_INFO_CHARS] for key, value in (doc.metadata or {}).items()
                                   if key in _INFO_KEYS and value}
        except Exception as exc:
            if out_of_memory(exc):
                raise
            # One broken page (bad content stream, font) must not lose the rest of the document.
            message = {"page": index + 1, "text": "", "ocr": True}
        send(out, message)


def _needs_ocr(pymupdf: Any, page: Any, text: str) -> bool:
    if not text_layer_usable(text):
        return True
    # Images are looked at only when there is little text: most pages have plenty and need no second pass.
    return sparse_text(text) and image_cover(page, pymupdf) >= SCAN_COVER


def _ocr(out: TextIO, request: dict[str, Any]) -> None:
    try:
        # Imported, like PyMuPDF, before the limits are set: its libraries load outside the confinement.
        tesserocr = importlib.import_module("tesserocr")
    except ImportError:
        tesserocr = None
    pymupdf = pymupdf_limited(int(request["memory_mb"]), max_file_bytes=0)  # OCR writes no file
    if tesserocr is None:
        send(out, {"error": "ocr", "detail": "the tesserocr package is not installed"})
        return
    try:
        reader = Reader(tesserocr=tesserocr, pymupdf=pymupdf, tessdata=str(request["tessdata"]),
                        languages=str(request["languages"]))
    except Exception as exc:
        if out_of_memory(exc):
            raise
        send(out, {"error": "ocr", "detail": f"Tesseract cannot start: {exc}"})
        return
    path = str(request["path"])
    try:
        doc = pymupdf.open(path, filetype="pdf")
    except Exception as exc:
        if out_of_memory(exc):
            raise
        send(out, {"error": "damaged", "detail": _message(exc).replace(path, "file")})
        return
    for number in request["pages"]:
        try:
            result = reader.read(doc.load_page(int(number) - 1), timeout_s=float(request["page_timeout_s"]))
        except Exception as exc:
            if out_of_memory(exc):
                raise
            note = f"the page could not be read ({_message(exc)})"[:300]
            result = OcrPage(text="", confidence=None, words=[], note=note, failed=True)
        send(out, result.message(int(number)))
    reader.close()


def _sized_lines(page: Any) -> list[list[object]]:
    """The first lines of a page as [font size, text], the size being that of the line's largest span."""
    lines: list[list[object]] = []
    for block in page.get_text("dict")["blocks"]:
        for line in block.get("lines", ()):
            spans = [span for span in line.get("spans", ()) if span.get("text", "").strip()]
            if spans:
                text = " ".join(span["text"].strip() for span in spans)
                lines.append([round(max(float(span["size"]) for span in spans), 1), text[:_LINE_CHARS]])
            if len(lines) >= _MAX_LINES:
                return lines
    return lines


def _message(exc: Exception) -> str:
    # PyMuPDF wraps MuPDF's own error ("code=7: cannot find startxref") in a generic "Failed to
    # open file"; the wrapped one says what is wrong.
    return _ERROR_CODE.sub("", str(exc.__cause__ or exc))


if __name__ == "__main__":
    main()
