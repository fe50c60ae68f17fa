"""Child side of PDF extraction: `python -m docs_app.pipeline.pdf_extract_child PATH MAX_PAGES MEMORY_MB`.

The parent (`pdf_extract.pdf_extract_pages`) starts this with a timeout and reads one JSON object
per line from stdout:

    {"pages": N}                          first, as soon as the page count is known
    {"page": n, "text": "..."}            then once per page, n = 1..N, in order; page 1 also carries
                                          "lines": [[font size, text], ...] (its first lines as laid out)
                                          and "info": {"title": ..., "author": ...} (the PDF's info dict)
    {"error": "password"}                 the PDF needs a password to be read
    {"error": "damaged", "detail": "..."} MuPDF could not open the file

Nothing follows an error line. When N > MAX_PAGES the child stops after the count line. Running out
of MEMORY_MB of address space ends the process with EXIT_OUT_OF_MEMORY (pipeline.sandbox). Keep
imports light: no Django, no torch.
"""

import re
import sys
from typing import Any, TextIO

from docs_app.pipeline.sandbox import exit_if_out_of_memory, out_of_memory, protocol_out, pymupdf_limited, send

_ERROR_CODE = re.compile(r"^code=\d+: ")
_MAX_LINES = 80
_LINE_CHARS = 300
_INFO_KEYS = ("title", "author", "subject", "keywords", "creationDate")
_INFO_CHARS = 500


def main() -> None:
    path, max_pages, memory_limit_mb = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    out = protocol_out()
    try:
        _extract(out, path, max_pages=max_pages, memory_limit_mb=memory_limit_mb)
    except Exception as exc:
        exit_if_out_of_memory(exc)
        raise


def _extract(out: TextIO, path: str, *, max_pages: int, memory_limit_mb: int) -> None:
    pymupdf = pymupdf_limited(memory_limit_mb)
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
            message["text"] = page.get_text("text")
            if index == 0:
                # For the metadata extractor: a title is often the largest print on the first page.
                message["lines"] = _sized_lines(page)
                message["info"] = {key: str(value)[:_INFO_CHARS] for key, value in (doc.metadata or {}).items()
                                   if key in _INFO_KEYS and value}
        except Exception as exc:
            if out_of_memory(exc):
                raise
            # One broken page (bad content stream, font) must not lose the rest of the document.
            message = {"page": index + 1, "text": ""}
        send(out, message)


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
