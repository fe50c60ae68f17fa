"""OCR during ingestion: the settings turned into the sandboxed readers' options, and each page's text merged
from its text layer and what OCR read.

A page is OCR'd when the text pass found no usable text layer on it (pipeline.ocr decides); pages with good text
are never OCR'd. OCR replaces a page's text layer only when it read words: a page of broken-font garbage that
OCR cannot read either keeps what it had.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from django.conf import settings

from docs_app.models import PageSource
from docs_app.pipeline.pdf_extract import ExtractedPage
from docs_app.pipeline.pdf_ocr import OcrOptions, OcrResult, OcrUnavailable, pdf_ocr_pages
from docs_app.services.sandboxing import pdf_sandbox

_DEBIAN_TESSDATA = "/usr/share/tesseract-ocr"


@dataclass(frozen=True)
class PageReading:
    """How a page's text was obtained, as a Page row records it."""

    source: str  # PageSource
    confidence: float | None = None
    words: tuple[tuple[float, ...], ...] = ()
    note: str = ""
    failed: bool = False


def ocr_options() -> OcrOptions:
    """The configured OCR, checked: raises OcrUnavailable, saying what to install, when it cannot run here."""
    if not settings.OCR_ENABLED:
        raise OcrUnavailable("OCR is turned off (DOCS_OCR)")
    languages = [name for name in settings.OCR_LANGUAGES.split("+") if name]
    tessdata = _tessdata_dir(languages)
    missing = [name for name in languages if not (tessdata / f"{name}.traineddata").is_file()]
    if not languages or missing:
        packages = " ".join(f"tesseract-ocr-{name.replace('_', '-')}" for name in missing or ["eng"])
        raise OcrUnavailable(f"no Tesseract language data for {'+'.join(missing) or 'any language'} in {tessdata} "
                             f"(install {packages})")
    processes = settings.OCR_PROCESSES or len(os.sched_getaffinity(0))
    return OcrOptions(tessdata=str(tessdata), languages="+".join(languages),
                      page_timeout_s=float(settings.OCR_PAGE_TIMEOUT_S),
                      timeout_s=float(settings.OCR_DOCUMENT_TIMEOUT_S), processes=max(1, processes),
                      memory_limit_mb=settings.INGEST_EXTRACT_MEMORY_MB, sandbox=pdf_sandbox())


def _tessdata_dir(languages: list[str]) -> Path:
    configured = settings.OCR_TESSDATA_DIR or os.environ.get("TESSDATA_PREFIX", "")
    if configured:
        return Path(configured)
    # Debian keeps one directory per Tesseract data version (4.00, 5): the newest that has the first language.
    first = languages[0] if languages else "eng"
    found = sorted(Path(_DEBIAN_TESSDATA).glob(f"*/tessdata/{first}.traineddata"), reverse=True)
    return found[0].parent if found else Path(_DEBIAN_TESSDATA) / "5" / "tessdata"


def pages_ocr(
    path: Path,
    pages: Sequence[ExtractedPage],
    *,
    on_start: Callable[[int], None],
    on_page: Callable[[int], None],
) -> tuple[list[ExtractedPage], list[PageReading]]:
    """The pages with OCR text where their text layer is unusable, and how each page's text was obtained.
    `on_start(n)` is called with the number of pages to OCR (only when there are some), `on_page(done)` after each.
    Raises ExtractionError for a file the OCR readers cannot open."""
    wanted = [page.number for page in pages if page.needs_ocr]
    results: dict[int, OcrResult] = {}
    unavailable = ""
    if wanted:
        try:
            options = ocr_options()
            on_start(len(wanted))
            results = pdf_ocr_pages(path, wanted, options=options, on_page=on_page)
        except OcrUnavailable as exc:
            unavailable = f"OCR unavailable: {exc.reason}"
    merged: list[ExtractedPage] = []
    readings: list[PageReading] = []
    for page in pages:
        result = results.get(page.number)
        if result is not None and result.text.strip():
            merged.append(replace(page, text=result.text))
            readings.append(PageReading(PageSource.OCR, result.confidence, result.words))
            continue
        merged.append(page)
        source = PageSource.TEXT if page.text.strip() else PageSource.NONE
        if not page.needs_ocr:
            readings.append(PageReading(source))
        elif result is None:
            readings.append(PageReading(source, note=unavailable[:300], failed=True))
        else:
            readings.append(PageReading(source, note=result.note[:300], failed=result.failed))
    return merged, readings


def no_text_reason(readings: Sequence[PageReading]) -> str:
    """Why a document without any text failed, once OCR had its say."""
    unavailable = next((r.note for r in readings if r.note.startswith("OCR unavailable")), "")
    if unavailable:
        return f"no text layer (needs OCR; {unavailable})"
    if any(reading.failed for reading in readings):
        note = next(reading.note for reading in readings if reading.failed)
        return f"no text found: no text layer, and OCR did not finish ({note})"
    if any(reading.note for reading in readings):  # OCR read at least one page, and found nothing to index
        return "no text found: no text layer, and OCR read no legible word (blank pages or pictures?)"
    return "no text found: the text layer holds too little to index"
