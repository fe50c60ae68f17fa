"""Child side of page rendering: `python -m docs_app.pipeline.pdf_render_child`, request on stdin (or as the one
argument, when forked by the PDF server, which passes the PDF and the output file as open descriptors).

The parent (`docs_app.services.pages`) writes one JSON object to stdin:

    {"path": "...", "page": n, "out": "...png", "max_side_px": 2000, "width_px": 1100, "memory_mb": 2048,
     "highlight": {"start": a, "end": b, "text": "...", "boxes": [[x0, y0, x1, y1], ...]} | null}

(served: "out_fd": n, an open file to write the PNG to, instead of "out")

renders page n (1-based) to `out` as PNG, with the passage at characters [start, end) of the page's
`get_text("text")` painted over in translucent yellow (on a page read by OCR, which has no text layer, the
given "boxes" are painted instead: the passage's lines on the unrotated page), and prints one JSON line:

    {"ok": true, "highlighted": k}        k rectangles drawn (0: no highlight asked, or not located)
    {"error": "..."}                      the page could not be rendered

Rendering decodes images and fonts that text extraction never touched, so an untrusted PDF gets the same
treatment here as in pdf_extract_child (pipeline.sandbox): an address-space limit, no core dump, exit code
EXIT_OUT_OF_MEMORY when memory runs out, and a parent that kills us on a timeout. Keep imports light: no Django.
"""

import json
import sys
from typing import Any, TextIO

from docs_app.pipeline.normalize import comparable
from docs_app.pipeline.sandbox import exit_if_out_of_memory, out_of_memory, protocol_out, pymupdf_limited, send

_HIGHLIGHT_FILL = (1.0, 0.84, 0.0)
_HIGHLIGHT_OPACITY = 0.4


def main() -> None:
    # Forked by the PDF server (stdin is /dev/null there) the request is the argument instead.
    request = json.loads(sys.argv[1]) if len(sys.argv) > 1 else json.load(sys.stdin)
    out = protocol_out()
    try:
        _render(out, request)
    except Exception as exc:
        exit_if_out_of_memory(exc)
        raise


def _render(out: TextIO, request: dict[str, Any]) -> None:
    # The one file it writes is the PNG: 2400 px a side of RGB is 17 MB before compression.
    pymupdf = pymupdf_limited(int(request["memory_mb"]), max_file_bytes=64 * 1024 * 1024)
    try:
        doc = pymupdf.open(request["path"], filetype="pdf")
        if doc.needs_pass:
            send(out, {"error": "password protected"})
            return
        number = int(request["page"])
        if not 1 <= number <= doc.page_count:
            send(out, {"error": "no such page"})
            return
        page = doc.load_page(number - 1)
        highlighted = 0
        if request.get("highlight"):
            boxes = request["highlight"].get("boxes")
            rects = ([pymupdf.Rect(box) for box in boxes] if isinstance(boxes, list)
                     else _passage_rects(pymupdf, page, request["highlight"]))
            for rect in rects:
                # Drawn into the in-memory copy only; the stored file is never written.
                page.draw_rect(rect, color=None, fill=_HIGHLIGHT_FILL, fill_opacity=_HIGHLIGHT_OPACITY,
                               overlay=True)
            highlighted = len(rects)
        # Fit the laptop-screen width, but cap the longest side: a hostile page can declare a MediaBox of
        # metres, and the pixmap would take gigabytes.
        longest = max(page.rect.width, page.rect.height, 1.0)
        zoom = min(float(request["width_px"]) / max(page.rect.width, 1.0),
                   float(request["max_side_px"]) / longest)
        pixmap = page.get_pixmap(matrix=pymupdf.Matrix(zoom, zoom), alpha=False)
        if "out_fd" in request:  # served: MuPDF's save would try to replace the file, which is only a descriptor
            with open(int(request["out_fd"]), "wb", closefd=False) as png:
                png.write(pixmap.tobytes(output="png"))
        else:
            pixmap.save(request["out"], output="png")
    except Exception as exc:
        if out_of_memory(exc):
            raise
        send(out, {"error": f"{type(exc).__name__}: {exc}"[:300]})
        return
    send(out, {"ok": True, "highlighted": highlighted})


def _passage_rects(pymupdf: Any, page: Any, highlight: dict[str, Any]) -> list[Any]:
    """One rectangle per text line the passage touches.

    Characters are walked in the order get_text("text") emits them (chars of each line, then a newline), so
    the chunk's character offsets, taken from that text at ingestion, point at the same characters here.
    If the rebuilt text disagrees (a different MuPDF version extracted it), fall back to searching the
    passage's lines on the page."""
    start, end = int(highlight["start"]), int(highlight["end"])
    chars: list[tuple[str, Any, int]] = []  # (character, bbox, line number)
    line_no = 0
    for block in page.get_text("rawdict")["blocks"]:
        if block.get("type") != 0:
            continue
        for line in block["lines"]:
            for span in line["spans"]:
                for char in span["chars"]:
                    chars.append((char["c"], char["bbox"], line_no))
            chars.append(("\n", None, line_no))
            line_no += 1
    rebuilt = "".join(c for c, _, _ in chars)
    passage = str(highlight.get("text", ""))
    # The passage is stored normalised (pipeline.normalize: ligatures, hyphenation), its offsets are not.
    if comparable(rebuilt[start:end]) == comparable(passage):
        by_line: dict[int, Any] = {}
        for _, bbox, number in chars[start:end]:
            if bbox is None:
                continue
            rect = pymupdf.Rect(bbox)
            if rect.is_empty:
                continue
            by_line[number] = by_line[number] | rect if number in by_line else rect
        return list(by_line.values())
    rects: list[Any] = []
    for text_line in passage.splitlines():
        needle = " ".join(text_line.split())
        # Short lines ("1.", "(a)") match all over the page; only distinctive ones are worth searching.
        if len(needle) >= 12:
            rects.extend(page.search_for(needle))
    return rects


if __name__ == "__main__":
    main()
