"""Child side of PDF extraction: `python -m docs_app.pipeline.pdf_extract_child PATH MAX_PAGES MEMORY_MB`.

The parent (`pdf_extract.pdf_extract_pages`) starts this with a timeout and reads one JSON object
per line from stdout:

    {"pages": N}                          first, as soon as the page count is known
    {"page": n, "text": "..."}            then once per page, n = 1..N, in order
    {"error": "password"}                 the PDF needs a password to be read
    {"error": "damaged", "detail": "..."} MuPDF could not open the file

Nothing follows an error line. When N > MAX_PAGES the child stops after the count line. Running out
of MEMORY_MB of address space ends the process with EXIT_OUT_OF_MEMORY. Keep imports light: no
Django, no torch.
"""

import importlib
import json
import os
import re
import resource
import sys
from typing import Any, TextIO

# A distinct exit code, because under a memory limit there may be no memory left to write JSON.
EXIT_OUT_OF_MEMORY = 86
# MuPDF reports a failed allocation as FzErrorSystem "malloc (16 bytes) failed", not MemoryError.
_ALLOCATION_FAILED = re.compile(r"alloc \(.*\) failed")
_ERROR_CODE = re.compile(r"^code=\d+: ")


def main() -> None:
    path, max_pages, memory_limit_mb = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    # Keep the protocol on a private descriptor and point fd 1 at stderr, so that anything MuPDF
    # or another C library prints to stdout cannot corrupt the JSON stream.
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    try:
        _extract(out, path, max_pages=max_pages, memory_limit_mb=memory_limit_mb)
    except Exception as exc:
        if _out_of_memory(exc):
            os._exit(EXIT_OUT_OF_MEMORY)
        raise


def _extract(out: TextIO, path: str, *, max_pages: int, memory_limit_mb: int) -> None:
    # PyMuPDF 2 also imports pymupdf4llm and its layout analyzer when installed: numpy, onnxruntime
    # and ONNX models, 0.6 s and 450 MB of address space that plain get_text never uses. PyMuPDF
    # imports them optionally, so marking them missing makes it skip them.
    sys.modules["pymupdf4llm"] = None  # type: ignore[assignment]
    sys.modules["pymupdf.layout"] = None  # type: ignore[assignment]
    # Imported as Any: PyMuPDF ships py.typed but its functions carry no annotations.
    pymupdf: Any = importlib.import_module("pymupdf")
    # The limit is set here, after the import and before the file is touched, rather than before
    # exec: the interpreter and MuPDF (about 90 MB) then always load, and a limit set too low fails
    # as "out of memory" instead of as a confusing ImportError.
    limit = memory_limit_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    # A core dump would write the confidential document's pages to disk.
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    # MuPDF reports every repair it makes; the parent only keeps a short tail of stderr anyway.
    pymupdf.TOOLS.mupdf_display_errors(False)
    pymupdf.TOOLS.mupdf_display_warnings(False)
    try:
        # filetype="pdf": never let MuPDF sniff a renamed image or e-book into a "document".
        doc = pymupdf.open(path, filetype="pdf")
        # MuPDF already tried the empty user password: an owner-password-only PDF reads fine here.
        page_count = None if doc.needs_pass else doc.page_count
    except Exception as exc:
        if _out_of_memory(exc):
            raise
        _send(out, {"error": "damaged", "detail": _message(exc).replace(path, "file")})
        return
    if page_count is None:
        _send(out, {"error": "password"})
        return
    if page_count == 0 and doc.is_repaired:
        # Truncated or broken rather than an empty document: the user can fix that at the source.
        _send(out, {"error": "damaged", "detail": "no pages could be recovered"})
        return
    _send(out, {"pages": page_count})
    if page_count > max_pages:
        return
    for index in range(page_count):
        try:
            # Plain content-stream order, not sort=True: see pdf_extract.ExtractedPage.
            text = doc.load_page(index).get_text("text")
        except Exception as exc:
            if _out_of_memory(exc):
                raise
            # One broken page (bad content stream, font) must not lose the rest of the document.
            text = ""
        _send(out, {"page": index + 1, "text": text})


def _out_of_memory(exc: Exception) -> bool:
    return isinstance(exc, MemoryError) or _ALLOCATION_FAILED.search(_message(exc)) is not None


def _message(exc: Exception) -> str:
    # PyMuPDF wraps MuPDF's own error ("code=7: cannot find startxref") in a generic "Failed to
    # open file"; the wrapped one says what is wrong.
    return _ERROR_CODE.sub("", str(exc.__cause__ or exc))


def _send(out: TextIO, message: dict[str, object]) -> None:
    out.write(json.dumps(message) + "\n")
    out.flush()


if __name__ == "__main__":
    main()
