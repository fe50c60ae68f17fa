"""From extracted pages to what is stored and embedded: normalised text, metadata and names, chunks.

Contract: every chunk's `text` is normalised (pipeline.normalize) and its `char_start`/`char_end` point into the
page text *as extracted*, which is what the page renderer rebuilds to draw a highlight. The text embedded for
a chunk carries a contextual header: its document's title and its section heading (pipeline.headings), cut to
CONTEXT_TOKENS so header and chunk stay inside the embedder's window. Django-free.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from docs_app.pipeline.chunking import ChunkSpan, chunk_pages, embedding_text
from docs_app.pipeline.mentions import document_names, names_text
from docs_app.pipeline.metadata import DocumentMetadata, Line, metadata_extract
from docs_app.pipeline.normalize import text_normalize, text_vocabulary
from docs_app.pipeline.pdf_extract import ExtractedPage

# Room for the header (title and section heading) in the embedder's window; chunks get the rest. all-MiniLM-L6-v2
# reads 256 word pieces: 2 special tokens, up to 40 of header, up to 214 of passage (200 by default).
CONTEXT_TOKENS = 40
_METADATA_PAGES = 2


@dataclass(frozen=True)
class PreparedDocument:
    metadata: DocumentMetadata
    names: str  # every name the document may be called by, folded (mentions.names_text)
    spans: list[ChunkSpan]


def document_prepare(pages: Sequence[ExtractedPage], *, file_name: str, max_tokens: int, overlap_tokens: int,
                     token_len: Callable[[str], int]) -> PreparedDocument:
    vocabulary = text_vocabulary(page.text for page in pages)
    normalized = [text_normalize(page.text, vocabulary=vocabulary) for page in pages]
    clean = [ExtractedPage(number=page.number, text=n.text) for page, n in zip(pages, normalized, strict=True)]
    first = pages[0] if pages else None
    metadata = metadata_extract(
        pages=[page.text for page in clean[:_METADATA_PAGES]], file_name=file_name,
        pdf_info=dict(first.info) if first else None,
        first_page_lines=[Line(text=text, size=size) for size, text in first.lines] if first else (),
    )
    by_number = {page.number: n for page, n in zip(pages, normalized, strict=True)}
    spans = []
    for span in chunk_pages(clean, max_tokens=max_tokens, overlap_tokens=overlap_tokens, token_len=token_len):
        start, end = by_number[span.page].original_span(span.char_start, span.char_end)
        spans.append(replace(span, char_start=start, char_end=end))
    return PreparedDocument(metadata=metadata, names=names_text(document_names(metadata, file_name=file_name)),
                            spans=spans)


def chunk_embedding_text(*, title: str, heading: str, text: str, token_len: Callable[[str], int]) -> str:
    """The contextual text embedded for a chunk: "<title> | <section heading>" on a line, then the passage."""
    context = " | ".join(part for part in (title, heading) if part)
    return embedding_text(context=context, text=text, token_len=token_len, max_context_tokens=CONTEXT_TOKENS)
