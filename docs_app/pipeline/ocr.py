"""OCR for pages without a usable text layer: which pages need it, and reading one page with Tesseract.

The reading runs in the sandboxed extraction child (`pdf_extract_child --ocr`). Tesseract is a library there
(tesserocr links libtesseract into the process), never a program started: the sandbox allows no exec and no new
process. PyMuPDF's own OCR would find its language data by running `tesseract --list-langs` when none is named,
and reports no confidence, so it is not used. The language data (`<lang>.traineddata`, Debian's
tesseract-ocr-<lang> packages) is read from a directory the parent names, never from the child's environment.

Imported by the child before its confinement: the standard library only at module level.
"""

from __future__ import annotations

import math
import time
import unicodedata
from dataclasses import dataclass
from typing import Any

# A text layer whose characters are this often control, private-use, unassigned or U+FFFD characters is the
# output of a broken font map (glyph ids passed off as text), not something a person wrote.
_GARBAGE_SHARE = 0.1
_BAD_CATEGORIES = frozenset({"Cc", "Co", "Cn", "Cs"})
# A page of a scan often carries a few words of real text over the picture: a Bates number, a fax header, the
# scanner's stamp. Fewer words than this over images covering at least half the page: the picture is the page.
SPARSE_WORDS = 20
SCAN_COVER = 0.5

# Tesseract reads best near the scan's own resolution: resampling a 150 dpi scan up to 300 dpi invents
# edges (measured on noisy 150 dpi CUAD scans: 0.98 of the words found at 150 dpi, 0.96 at 300, twice as slow).
MIN_DPI = 150
MAX_DPI = 300
VECTOR_DPI = 200  # pages drawn without images (outlined text, broken fonts): crisp at any resolution
MAX_PIXELS = 40_000_000  # a hostile MediaBox of metres must not become a gigapixel render
# Words of punctuation only that Tesseract is not sure of are rules, borders and specks, not text.
_JUNK_CONFIDENCE = 50.0
# What Tesseract makes of a photo, a drawing or a script it has no data for is short words it is unsure of. A page
# counts as read when at least one word is legible: this sure of it, with this many letters or digits. (Measured
# on the hostile set: photos, shapes and Armenian read as English have none; a Russian certificate read as
# English has 27 on its first page, "Certificate of periodic technical inspection" among them.)
_LEGIBLE_CONFIDENCE = 75.0
_LEGIBLE_CHARS = 3


def text_layer_usable(text: str) -> bool:
    """Whether a page's text layer is worth indexing as it is: some text, and not the garbage of a broken
    font map. (Pages with a little text over a scan are judged with `scan_with_sparse_text`.)"""
    chars = [char for char in text if not char.isspace()]
    if not chars:
        return False
    bad = sum(1 for char in chars if char == "\ufffd" or unicodedata.category(char) in _BAD_CATEGORIES)
    return bad < _GARBAGE_SHARE * len(chars)


def sparse_text(text: str) -> bool:
    return len(text.split()) < SPARSE_WORDS


def image_cover(page: Any, pymupdf: Any) -> float:
    """The share of the page's area under images (overlaps counted twice, capped at 1)."""
    area = abs(page.rect)
    if area <= 0:
        return 0.0
    covered = 0.0
    for info in page.get_image_info():
        box = pymupdf.Rect(info["bbox"]) & page.rect
        covered += 0.0 if box.is_empty else abs(box)
    return float(min(1.0, covered / area))


def render_dpi(page: Any, pymupdf: Any) -> int:
    """The resolution to read a page at: its largest image's own, within [MIN_DPI, MAX_DPI]."""
    best_area, dpi = 0.0, float(VECTOR_DPI)
    for info in page.get_image_info():
        box = pymupdf.Rect(info["bbox"])
        if box.is_empty or info.get("width", 0) <= 0 or info.get("height", 0) <= 0:
            continue
        if abs(box) > best_area:
            best_area = abs(box)
            # Geometric mean of both axes: the same for an image placed turned by 90 degrees.
            dpi = math.sqrt(info["width"] * info["height"] / abs(box)) * 72
    dpi = min(max(dpi, MIN_DPI), MAX_DPI)
    pixels = abs(page.rect) * (dpi / 72) ** 2
    if pixels > MAX_PIXELS:
        dpi *= math.sqrt(MAX_PIXELS / pixels)
    return max(1, int(dpi))


@dataclass(frozen=True)
class OcrPage:
    """What Tesseract read on one page. `words` are (start, end, x0, y0, x1, y1): the word's characters in
    `text` and its box in the page's unrotated coordinates (those of PyMuPDF's text extraction and drawing)."""

    text: str
    confidence: float | None
    words: list[list[float]]
    note: str = ""
    failed: bool = False  # not read to the end (time budget, an error), as opposed to read and found empty

    def message(self, number: int) -> dict[str, object]:
        message: dict[str, object] = {"page": number, "text": self.text, "words": self.words}
        if self.confidence is not None:
            message["confidence"] = self.confidence
        if self.note:
            message["note"] = self.note
        if self.failed:
            message["failed"] = True
        return message


class Reader:
    """One Tesseract instance, kept for all the pages a child reads (loading a language takes a while)."""

    def __init__(self, *, tesserocr: Any, pymupdf: Any, tessdata: str, languages: str) -> None:
        self._tesserocr = tesserocr
        self._pymupdf = pymupdf
        # PSM AUTO: full layout analysis (columns, blocks); the LSTM engine, the only one tessdata_fast carries.
        self._api = tesserocr.PyTessBaseAPI(path=tessdata.rstrip("/") + "/", lang=languages,
                                            psm=tesserocr.PSM.AUTO, oem=tesserocr.OEM.LSTM_ONLY)

    def close(self) -> None:
        self._api.End()

    def read(self, page: Any, *, timeout_s: float) -> OcrPage:
        pymupdf = self._pymupdf
        dpi = render_dpi(page, pymupdf)
        zoom = dpi / 72
        pixmap = page.get_pixmap(matrix=pymupdf.Matrix(zoom, zoom), colorspace=pymupdf.csGRAY, alpha=False)
        samples = pixmap.samples
        # bytes.count, not Pixmap.is_unicolor: that walks the pixels in Python, ten seconds a page.
        if not samples or samples.count(samples[:1]) == len(samples):
            return OcrPage(text="", confidence=None, words=[], note="blank page")
        self._api.SetImageBytes(samples, pixmap.width, pixmap.height, 1, pixmap.stride)
        self._api.SetSourceResolution(dpi)
        started = time.monotonic()
        if not self._api.Recognize(max(1, int(timeout_s * 1000))):
            elapsed = time.monotonic() - started
            note = f"OCR stopped after {elapsed:.0f} s (the page budget is {timeout_s:g} s)"
            return OcrPage(text="", confidence=None, words=[], note=note, failed=True)
        # Pixels -> the rendered (rotated) page -> the unrotated page that PyMuPDF draws on.
        to_page = pymupdf.Matrix(1 / zoom, 1 / zoom) * page.derotation_matrix
        return self._collect(to_page, origin=(pixmap.x, pixmap.y))

    def _collect(self, to_page: Any, *, origin: tuple[int, int]) -> OcrPage:
        ril = self._tesserocr.RIL
        parts: list[str] = []
        words: list[list[float]] = []
        confidences: list[float] = []
        legible = False
        length = 0
        iterator = self._api.GetIterator()
        if iterator is None:
            return OcrPage(text="", confidence=None, words=[], note="no text found")
        gap = ""  # what separates the next kept word from the last: a skipped word's line break still counts
        for word in self._tesserocr.iterate_level(iterator, ril.WORD):
            if word.IsAtBeginningOf(ril.PARA) or word.IsAtBeginningOf(ril.BLOCK):
                gap = "\n\n"
            elif word.IsAtBeginningOf(ril.TEXTLINE) and gap != "\n\n":
                gap = "\n"
            try:
                text = (word.GetUTF8Text(ril.WORD) or "").strip()
            except RuntimeError:  # tesserocr's "No text returned" for an empty word
                continue
            box = word.BoundingBox(ril.WORD)
            confidence = float(word.Confidence(ril.WORD))
            if not text or box is None or _junk(text, confidence):
                continue
            if parts:
                parts.append(gap or " ")
                length += len(gap or " ")
            gap = ""
            x0, y0, x1, y1 = box
            rect = self._pymupdf.Rect(x0 + origin[0], y0 + origin[1], x1 + origin[0], y1 + origin[1]) * to_page
            words.append([length, length + len(text), *(round(value, 1) for value in rect)])
            parts.append(text)
            length += len(text)
            confidences.append(confidence)
            legible = legible or (confidence >= _LEGIBLE_CONFIDENCE
                                  and sum(char.isalnum() for char in text) >= _LEGIBLE_CHARS)
        if not confidences:
            return OcrPage(text="", confidence=None, words=[], note="no text found")
        confidence = round(sum(confidences) / len(confidences), 1)
        if not legible:
            return OcrPage(text="", confidence=confidence, words=[], note="no legible word found")
        return OcrPage(text="".join(parts) + "\n", confidence=confidence, words=words)


def _junk(text: str, confidence: float) -> bool:
    return confidence < _JUNK_CONFIDENCE and not any(char.isalnum() for char in text)


def passage_boxes(words: list[list[float]], start: int, end: int) -> list[tuple[float, float, float, float]]:
    """The rectangles to highlight for the characters [start, end) of an OCR page: one per stretch of a line,
    from the boxes of the words the passage touches (`words` as OcrPage keeps them, in reading order)."""
    boxes: list[list[float]] = []
    for word_start, word_end, x0, y0, x1, y1 in words:
        if word_end <= start or word_start >= end:
            continue
        if boxes and _same_line(boxes[-1], (x0, y0, x1, y1)):
            last = boxes[-1]
            boxes[-1] = [min(last[0], x0), min(last[1], y0), max(last[2], x1), max(last[3], y1)]
        else:
            boxes.append([x0, y0, x1, y1])
    return [(b[0], b[1], b[2], b[3]) for b in boxes]


def _same_line(box: list[float], word: tuple[float, float, float, float]) -> bool:
    """Whether a word continues the stretch of line in `box`: to its right, not across a gutter (a gap of more
    than two line heights: the next column, a table cell), overlapping it vertically by half a line."""
    height = min(box[3] - box[1], word[3] - word[1])
    overlap = min(box[3], word[3]) - max(box[1], word[1])
    return box[0] <= word[0] <= box[2] + 2 * height and overlap >= 0.5 * height
