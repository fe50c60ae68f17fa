"""Child side of PDF extraction: `python -m docs_app.pipeline.pdf_extract_child <path> <max_pages>`.

The parent (`pdf_extract.pdf_extract_pages`) starts this with a memory limit and a timeout and reads
one JSON object per line from stdout:

    {"pages": N}                          first, as soon as the page count is known
    {"page": n, "text": "..."}            then once per page, n = 1..N, in order
    {"error": "password"}                 the PDF needs a password to be read
    {"error": "damaged", "detail": "..."} MuPDF could not open the file

Nothing follows an error line. When N > max_pages the child stops after the count line. Running out
of memory ends the process with EXIT_OUT_OF_MEMORY. Keep imports light: no Django, no torch.
"""

import json
import os
import sys
from typing import TextIO

# A distinct exit code, because under a memory limit there may be no memory left to write JSON.
EXIT_OUT_OF_MEMORY = 86


def _send(out: TextIO, message: dict[str, object]) -> None:
    out.write(json.dumps(message) + "\n")
    out.flush()


def _extract(out: TextIO, path: str, max_pages: int) -> None:
    import pymupdf

    # MuPDF reports every repair it makes; the parent only keeps a short tail of stderr anyway.
    pymupdf.TOOLS.mupdf_display_errors(False)
    pymupdf.TOOLS.mupdf_display_warnings(False)
    try:
        # filetype="pdf": never let MuPDF sniff a renamed image or e-book into a "document".
        doc = pymupdf.open(path, filetype="pdf")
    except MemoryError:
        raise
    except Exception as exc:
        _send(out, {"error": "damaged", "detail": str(exc).replace(path, "file")})
        return
    # MuPDF already tried the empty user password: an owner-password-only PDF reads fine here.
    if doc.needs_pass:
        _send(out, {"error": "password"})
        return
    _send(out, {"pages": doc.page_count})
    if doc.page_count > max_pages:
        return
    for number, page in enumerate(doc, start=1):
        try:
            # Plain content-stream order, not sort=True: see pdf_extract.ExtractedPage.
            text = page.get_text("text")
        except MemoryError:
            raise
        except Exception:
            # One broken page (bad content stream, font) must not lose the rest of the document.
            text = ""
        _send(out, {"page": number, "text": text})


def main() -> None:
    path, max_pages = sys.argv[1], int(sys.argv[2])
    # Keep the protocol on a private descriptor and point fd 1 at stderr, so that anything MuPDF
    # or another C library prints to stdout cannot corrupt the JSON stream.
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    try:
        _extract(out, path, max_pages)
    except MemoryError:
        os._exit(EXIT_OUT_OF_MEMORY)


if __name__ == "__main__":
    main()
