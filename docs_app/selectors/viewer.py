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
    chunk marked. Chunks overlap by a few sentences, so each contributes only the part past what earlier chunks
    covered; text no chunk holds (a bare page number) is left out. Chunk texts are normalised (ligatures,
    hyphenation) while their offsets point into the text as extracted, so the overlap is measured on the
    texts themselves."""
    chunks = list(Chunk.objects.filter(document=document, page=page).order_by("char_start", "ordinal"))
    cited_id = cited.pk if cited is not None and cited.page == page else None
    segments: list[TextSegment] = []
    covered = 0  # end offset (as extracted) of the text shown so far
    previous = ""
    for chunk in chunks:
        if chunk.char_end <= covered:
            continue
        overlap = _shared_edge(previous, chunk.text) if chunk.char_start < covered else 0
        if segments and chunk.char_start > covered:
            segments.append(TextSegment("\n", False))
        if chunk.pk == cited_id and overlap:
            _mark_tail(segments, overlap)  # the cited passage begins inside the text already shown
        segments.append(TextSegment(chunk.text[overlap:], chunk.pk == cited_id))
        covered = chunk.char_end
        previous = chunk.text
    return [segment for segment in segments if segment.text]


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
def _shared_edge(before: str, after: str) -> int:
    """The length of the longest end of `before` that `after` starts with."""
    for length in range(min(len(before), len(after)), 0, -1):
        if before.endswith(after[:length]):
            return length
    return 0


def _mark_tail(segments: list[TextSegment], length: int) -> None:
    last = segments.pop()
    head, tail = last.text[: len(last.text) - length], last.text[len(last.text) - length:]
    segments.extend(seg for seg in (TextSegment(head, last.cited), TextSegment(tail, True)) if seg.text)


def chunk_of_document(*, document: Document, chunk_id: int | None) -> Chunk | None:
    """The chunk if it belongs to the document; a chunk of another document is ignored, never shown (the id
    comes from the client)."""
    if chunk_id is None:
        return None
    return Chunk.objects.filter(pk=chunk_id, document=document).first()
