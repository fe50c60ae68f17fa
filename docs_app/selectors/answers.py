"""Reads for the ask pages: a conversation's questions and answers, an answer rendered with its citation links,
and the events of an answer being written, relayed from its Redis Stream (or replayed from the DB).

Sources are stored by id (chunk, document, page); links to the viewer are built here, when an answer is shown,
so a route change never breaks an old answer. Old rows may still carry a "url" or a "title": they are ignored.
What a user is shown is filtered by what they may read now, not when the answer was written (issue 10, item 2):
if any source of an answer is no longer readable by them (revoked, walled, erased), the answer's text is
withheld too, on the page and on its stream, since it may quote that source. Passage text and titles never
travel in the stream: they are loaded here, through the same access check.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from django.urls import reverse

from docs_app.models import Answer, AnswerStatus, Collection, Conversation
from docs_app.pipeline.answer_check import answer_check
from docs_app.pipeline.prompt import SYSTEM_RULES, citations_parse
from docs_app.services.access import chunks_readable, collections_readable, documents_readable
from docs_app.services.actor import AnyUser
from docs_app.services.streams import TERMINAL_EVENTS, stream_exists, stream_read

# A relay waits this long for the next entry before it sends a keep-alive.
KEEPALIVE_S = 15
# A relay ends after this long even if the answer has not; the browser reconnects with Last-Event-ID.


def viewer_url(*, document_id: int, page: int, chunk_id: int) -> str:
    return f"{reverse('document', args=[document_id])}?page={page}&chunk={chunk_id}"


def _linked(source: dict[str, Any]) -> dict[str, Any]:
    """A stored or streamed source (ids and places) with its viewer link, built now."""
    return {**source, "url": viewer_url(document_id=int(source["document_id"]), page=int(source["page"]),
                                        chunk_id=int(source["chunk_id"]))}


def _readable_titles(user: AnyUser, document_ids: Iterable[object]) -> dict[int, str]:
    """{document id: title} for the given documents the user may read now."""
    ids = {d for d in document_ids if isinstance(d, int)}
    return dict(documents_readable(user).filter(id__in=ids).values_list("id", "title"))


def _readable_only(user: AnyUser, items: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    items = list(items)
    readable = _readable_titles(user, {item.get("document_id") for item in items})
    return [_linked(item) for item in items if item.get("document_id") in readable]


def _sources_shown(user: AnyUser, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Streamed sources (ids and places) the user may read now, with their passage text and title from the DB."""
    chunk_ids = [int(item["chunk_id"]) for item in items if isinstance(item.get("chunk_id"), int)]
    chunks = {row["id"]: row for row in chunks_readable(user).filter(id__in=chunk_ids)
              .values("id", "text", "document__title")}
    return [_linked({**item, "text": chunks[item["chunk_id"]]["text"],
                     "title": chunks[item["chunk_id"]]["document__title"]})
            for item in items if item.get("chunk_id") in chunks]


# --- Rendering a stored answer ----------------------------------------------------------------------------

@dataclass
class RenderedAnswer:
    answer: Answer
    segments: list[tuple[str, list[tuple[int, str]]]] = field(default_factory=list)
    sources: list[dict[str, Any]] = field(default_factory=list)
    hidden_sources: int = 0
    # Why the model's output is not an answer ("repeats its instructions"), or empty: such text is not shown.
    unusable: str = ""
    withheld: bool = False  # a source is no longer readable: the text is not shown

    @property
    def finished(self) -> bool:
        return self.answer.is_finished

    @property
    def uncited(self) -> bool:
        """A finished answer that links no source: with a small model this is common, and the reader must
        know the text is not backed by the passages shown."""
        return (self.answer.status == AnswerStatus.DONE and not self.unusable and not self.withheld
                and not any(links for _text, links in self.segments))


def answer_render(*, answer: Answer, readable: dict[int, str]) -> RenderedAnswer:
    """The answer as text segments followed by citation links. A marker becomes a link only if it names a
    source the model was given and the user may still read (`readable`: {document id: title}); anything else
    stays plain text. If any source is no longer readable there is no text at all: it may quote what the user
    may not read."""
    sources = [_linked({**s, "title": readable[s["document_id"]]}) for s in answer.sources
               if s.get("document_id") in readable]
    hidden = len(answer.sources) - len(sources)
    withheld = hidden > 0
    check = answer_check(answer.text, instructions=[SYSTEM_RULES])
    if answer.status == AnswerStatus.DONE and not check.usable and not withheld:
        # Echoed instructions or markup would show "[1] or [2][3]" as if they were citations.
        return RenderedAnswer(answer=answer, sources=sources, hidden_sources=hidden, unusable=check.summary())
    urls = {int(s["number"]): str(s["url"]) for s in sources if not s.get("nearest")}
    segments, _cited = citations_parse("" if withheld else answer.text, valid_numbers=urls)
    return RenderedAnswer(
        answer=answer,
        segments=[(seg.text, [(n, urls[n]) for n in seg.source_numbers]) for seg in segments],
        sources=sources,
        hidden_sources=hidden,
        withheld=withheld,
    )


@dataclass(frozen=True)
class ConversationPage:
    items: list[dict[str, Any]]  # {"question": Question, "answer": RenderedAnswer | None}, oldest first
    collections: QuerySet[Collection]
    working: bool  # an answer is still being written


def conversation_page(*, user: AnyUser, conversation: Conversation) -> ConversationPage:
    questions = list(conversation.questions.select_related("answer").order_by("created_at", "id"))
    answers = [q.answer for q in questions if hasattr(q, "answer")]
    readable = _readable_titles(user, {s.get("document_id") for a in answers for s in a.sources})
    return ConversationPage(
        items=[{"question": q,
                "answer": answer_render(answer=q.answer, readable=readable) if hasattr(q, "answer") else None}
               for q in questions],
        collections=conversation.collections.filter(id__in=collections_readable(user)),
        working=any(not a.is_finished for a in answers),
    )


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
    caller sends a keep-alive). Ends after the terminal event, or after settings.ANSWER_STREAM_MAX_S."""
    if not stream_exists(answer_id=answer.pk) and answer.is_finished:
        yield from _from_db(user, answer)
        return
    relay = _Relay(user)
    deadline = time.monotonic() + settings.ANSWER_STREAM_MAX_S
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
            yield AnswerEvent(event, relay.event(event, data), entry_id)
            if event in TERMINAL_EVENTS:
                return


@dataclass
class _Relay:
    """One stream's events filtered by what the user may read now: sources get their passage text and title from
    the DB (readable chunks only); once a source is unreadable, the tokens and the final text are withheld."""

    user: AnyUser
    withheld: bool = False

    def event(self, event: str, data: str) -> str:
        if event == "restart":
            self.withheld = False
        elif event == "sources":
            items = json.loads(data)
            shown = _sources_shown(self.user, items)
            self.withheld = len(shown) < len(items)
            return json.dumps(shown)
        elif event == "token" and self.withheld:
            return ""
        elif event == "done":
            payload = json.loads(data)
            payload["citations"] = _readable_only(self.user, payload.get("citations", []))
            if self.withheld:
                payload.update(text="", citations=[], withheld=True)
            return json.dumps(payload)
        return data


def _from_db(user: AnyUser, answer: Answer) -> Iterator[AnswerEvent]:
    """A finished answer whose stream has gone: replayed from the DB, without entry ids."""
    rendered = answer_render(answer=answer,
                             readable=_readable_titles(user, {s.get("document_id") for s in answer.sources}))
    texts = dict(chunks_readable(user).filter(id__in=[s["chunk_id"] for s in rendered.sources])
                 .values_list("id", "text"))
    yield AnswerEvent("sources", json.dumps([{**s, "text": texts.get(s["chunk_id"], "")} for s in rendered.sources]))
    if answer.status == AnswerStatus.FAILED:
        yield AnswerEvent("error", json.dumps({"message": answer.error or "The answer failed."}))
        return
    citations = [{"number": n, "url": url} for _text, links in rendered.segments for n, url in links]
    payload: dict[str, Any] = {"status": answer.status, "text": "" if rendered.withheld else answer.text,
                               "citations": citations, "unusable": rendered.unusable}
    if rendered.withheld:
        payload["withheld"] = True
    yield AnswerEvent("done", json.dumps(payload))
