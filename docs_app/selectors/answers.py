"""Reads for the ask pages: a conversation's questions and answers, an answer rendered with its citation links,
and the events of an answer being written, relayed from its Redis Stream (or replayed from the DB).

Sources are stored by id (chunk, document, page); links to the viewer are built here, when an answer is shown,
so a route change never breaks an old answer. Old rows may still carry a "url": it is ignored. What a user is
shown is filtered by what they may read now, not when the answer was written.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from django.db.models import QuerySet
from django.urls import reverse

from docs_app.models import Answer, AnswerStatus, Collection, Conversation, Document
from docs_app.pipeline.prompt import citations_parse
from docs_app.services.access import collections_readable, document_ids_readable
from docs_app.services.actor import AnyUser
from docs_app.services.streams import TERMINAL_EVENTS, stream_exists, stream_read

# A relay waits this long for the next entry before it sends a keep-alive.
KEEPALIVE_S = 15
# A relay ends after this long even if the answer has not; the browser reconnects with Last-Event-ID.
STREAM_MAX_S = 600


def viewer_url(*, document_id: int, page: int, chunk_id: int) -> str:
    return f"{reverse('document', args=[document_id])}?page={page}&chunk={chunk_id}"


def _linked(source: dict[str, Any]) -> dict[str, Any]:
    """A stored or streamed source (ids and places) with its viewer link, built now."""
    return {**source, "url": viewer_url(document_id=int(source["document_id"]), page=int(source["page"]),
                                        chunk_id=int(source["chunk_id"]))}


def _readable_only(user: AnyUser, items: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    items = list(items)
    readable = document_ids_readable(user, {item.get("document_id") for item in items})
    return [_linked(item) for item in items if item.get("document_id") in readable]


# --- Rendering a stored answer ----------------------------------------------------------------------------

@dataclass
class RenderedAnswer:
    answer: Answer
    segments: list[tuple[str, list[tuple[int, str]]]] = field(default_factory=list)
    sources: list[dict[str, Any]] = field(default_factory=list)
    hidden_sources: int = 0

    @property
    def finished(self) -> bool:
        return self.answer.is_finished

    @property
    def uncited(self) -> bool:
        """A finished answer that links no source: with a small model this is common, and the reader must
        know the text is not backed by the passages shown."""
        return self.answer.status == AnswerStatus.DONE and not any(links for _text, links in self.segments)


def answer_render(*, answer: Answer, readable: set[int]) -> RenderedAnswer:
    """The answer as text segments followed by citation links. A marker becomes a link only if it names a
    source the model was given and the user may still read (`readable`: document ids); anything else stays
    plain text."""
    sources = [_linked(s) for s in answer.sources if s.get("document_id") in readable]
    urls = {int(s["number"]): str(s["url"]) for s in sources if not s.get("nearest")}
    segments, _cited = citations_parse(answer.text, valid_numbers=urls)
    return RenderedAnswer(
        answer=answer,
        segments=[(seg.text, [(n, urls[n]) for n in seg.source_numbers]) for seg in segments],
        sources=sources,
        hidden_sources=len(answer.sources) - len(sources),
    )


@dataclass(frozen=True)
class ConversationPage:
    items: list[dict[str, Any]]  # {"question": Question, "answer": RenderedAnswer | None}, oldest first
    collections: QuerySet[Collection]
    documents: list[Document]  # the chosen documents, when the conversation is about a few of them
    working: bool  # an answer is still being written


def conversation_page(*, user: AnyUser, conversation: Conversation) -> ConversationPage:
    questions = list(conversation.questions.select_related("answer").order_by("created_at", "id"))
    answers = [q.answer for q in questions if hasattr(q, "answer")]
    readable = document_ids_readable(user, {s.get("document_id") for a in answers for s in a.sources})
    return ConversationPage(
        items=[{"question": q,
                "answer": answer_render(answer=q.answer, readable=readable) if hasattr(q, "answer") else None}
               for q in questions],
        collections=conversation.collections.filter(id__in=collections_readable(user)),
        documents=list(conversation.documents.filter(collection__in=collections_readable(user))),
        working=any(not a.is_finished for a in answers),
    )


def documents_scope(*, user: AnyUser, document_ids: list[int]) -> list[Document]:
    """The requested documents the user may read, to ask about them alone."""
    if not document_ids:
        return []
    return list(Document.objects.filter(id__in=document_ids, collection__in=collections_readable(user))
                .order_by("title", "id"))


def conversations_recent(*, user: AnyUser, limit: int = 20) -> QuerySet[Conversation]:
    return Conversation.objects.filter(owner_id=user.pk).order_by("-created_at")[:limit]


# --- Following an answer as it is written -----------------------------------------------------------------

@dataclass(frozen=True)
class AnswerEvent:
    event: str
    data: str
    entry_id: str = ""  # empty for events replayed from the DB


def answer_events(*, user: AnyUser, answer: Answer, after: str) -> Iterator[AnswerEvent | None]:
    """The answer's events after entry id `after`, each filtered for the user; None marks a quiet spell (the
    caller sends a keep-alive). Ends after the terminal event, or after STREAM_MAX_S."""
    if not stream_exists(answer_id=answer.pk) and answer.is_finished:
        yield from _from_db(user, answer)
        return
    deadline = time.monotonic() + STREAM_MAX_S
    while time.monotonic() < deadline:
        entries = stream_read(answer_id=answer.pk, after=after, block_ms=KEEPALIVE_S * 1000)
        if not entries:
            if not stream_exists(answer_id=answer.pk):
                answer.refresh_from_db()
                if answer.is_finished:
                    yield from _from_db(user, answer)
                    return
            yield None
            continue
        for entry_id, event, data in entries:
            after = entry_id
            yield AnswerEvent(event, _relayable(user, event, data), entry_id)
            if event in TERMINAL_EVENTS:
                return


def _relayable(user: AnyUser, event: str, data: str) -> str:
    if event == "sources":
        return json.dumps(_readable_only(user, json.loads(data)))
    if event == "done":
        payload = json.loads(data)
        payload["citations"] = _readable_only(user, payload.get("citations", []))
        return json.dumps(payload)
    return data


def _from_db(user: AnyUser, answer: Answer) -> Iterator[AnswerEvent]:
    """A finished answer whose stream has expired: replayed from the DB, without entry ids."""
    rendered = answer_render(answer=answer,
                             readable=document_ids_readable(user, {s.get("document_id") for s in answer.sources}))
    yield AnswerEvent("sources", json.dumps(rendered.sources))
    if answer.status == AnswerStatus.FAILED:
        yield AnswerEvent("error", json.dumps({"message": answer.error or "The answer failed."}))
        return
    citations = [{"number": n, "url": url} for _text, links in rendered.segments for n, url in links]
    yield AnswerEvent("done", json.dumps({"status": answer.status, "text": answer.text, "citations": citations}))
