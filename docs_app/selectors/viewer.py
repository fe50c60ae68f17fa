"""Reads for the document viewer: the page's text as indexed, with the cited passage marked."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from docs_app.models import Chunk, Document, Page, PageSource
from docs_app.selectors.library import pages_to_review


@dataclass(frozen=True)
class TextSegment:
    text: str
    cited: bool


def page_text_segments(*, document: Document, page: int, cited: Chunk | None) -> list[TextSegment]:
    """The page's text as indexed, rebuilt from its Chunk rows (no PDF is parsed for this), with the cited
    chunk's character range marked. Chunks overlap by a few sentences, so each contributes only the part
    past what earlier chunks covered; text no chunk holds (a bare page number) is left out."""
    chunks = Chunk.objects.filter(document=document, page=page).order_by("char_start", "ordinal")
    mark = (cited.char_start, cited.char_end) if cited is not None and cited.page == page else None
    pieces: list[tuple[int, str]] = []  # (page offset, text) without overlaps
    covered = 0
    for chunk in chunks:
        if chunk.char_end <= covered:
            continue
        skip = max(0, covered - chunk.char_start)
        if pieces and chunk.char_start > covered:
            pieces.append((covered, "\n"))
        pieces.append((chunk.char_start + skip, chunk.text[skip:]))
        covered = chunk.char_end
    segments: list[TextSegment] = []
    for offset, text in pieces:
        if mark is None:
            segments.append(TextSegment(text, False))
            continue
        end = offset + len(text)
        lo, hi = max(offset, mark[0]), min(end, mark[1])
        if lo >= hi:
            segments.append(TextSegment(text, False))
            continue
        segments.extend(seg for seg in (
            TextSegment(text[: lo - offset], False),
            TextSegment(text[lo - offset: hi - offset], True),
            TextSegment(text[hi - offset:], False),
        ) if seg.text)
    return segments


@dataclass(frozen=True)
class PageOrigin:
    """How the viewer describes where a page's text came from."""

    source: str  # PageSource
    confidence: float | None
    low_confidence: bool
    failed: bool
    note: str


def page_origin(*, document: Document, page: int) -> PageOrigin | None:
    """None for documents ingested before pages were recorded."""
    row = Page.objects.filter(document=document, number=page).first()
    if row is None:
        return None
    low = row.source == PageSource.OCR and (row.ocr_confidence or 0) < settings.OCR_LOW_CONFIDENCE
    return PageOrigin(source=row.source, confidence=row.ocr_confidence, low_confidence=low, failed=row.ocr_failed,
                      note=row.note)


def document_review_pages(*, document: Document) -> list[int]:
    """The numbers of the document's pages a person should check (selectors.library.pages_to_review)."""
    return list(pages_to_review().filter(document=document).order_by("number").values_list("number", flat=True))


def chunk_of_document(*, document: Document, chunk_id: int | None) -> Chunk | None:
    """The chunk if it belongs to the document; a chunk of another document is ignored, never shown (the id
    comes from the client)."""
    if chunk_id is None:
        return None
    return Chunk.objects.filter(pk=chunk_id, document=document).first()
