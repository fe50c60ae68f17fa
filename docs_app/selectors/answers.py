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
import logging
import statistics
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import redis
from django.conf import settings
from django.db.models import QuerySet
from django.urls import reverse

from docs_app.models import Answer, AnswerStatus, Collection, Conversation, Document
from docs_app.pipeline.answer_check import answer_check
from docs_app.pipeline.prompt import SYSTEM_RULES, citations_parse
from docs_app.services.access import chunks_readable, collections_readable, documents_readable
from docs_app.services.actor import AnyUser
from docs_app.services.streams import TERMINAL_EVENTS, stream_exists, stream_read

log = logging.getLogger(__name__)

# A relay waits this long for the next entry before it sends a keep-alive.
KEEPALIVE_S = 15
# While an answer waits in the queue, the relay looks at its place this often (and sends it when it changes);
# while Redis is unreachable, it looks at the database this often.
QUEUE_POLL_S = 2
WAITING_STATUSES = (AnswerStatus.PENDING, AnswerStatus.STREAMING)


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
    documents: list[Document]  # the chosen documents, when the conversation is about a few of them
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


# --- The answer queue -------------------------------------------------------------------------------------

def answers_waiting_count() -> int:
    """Answers waiting for a run or being written: what back-pressure counts (settings.ANSWER_QUEUE_MAX)."""
    return Answer.objects.filter(status__in=WAITING_STATUSES).count()


# Back-pressure's clock: the recent answers whose cost it takes the median of.
SERVICE_SAMPLE = 20


def answer_service_time_s() -> float | None:
    """What one answer has lately cost a worker (median of the last SERVICE_SAMPLE, from the start of the run
    that wrote it to its end); None until three have been written."""
    rows = (Answer.objects.filter(status__in=[AnswerStatus.DONE, AnswerStatus.ABSTAINED], started_at__isnull=False,
                                  finished_at__isnull=False)
            .order_by("-finished_at").values_list("started_at", "finished_at")[:SERVICE_SAMPLE])
    durations = [(finished - started).total_seconds() for started, finished in rows if started and finished]
    return statistics.median(durations) if len(durations) >= 3 else None


def answer_wait_estimate_s(*, ahead: int) -> float | None:
    """About how long until an answer with `ahead` answers waiting before it is written: the workers write as
    many at once as are being written now (at least one)."""
    service = answer_service_time_s()
    if service is None:
        return None
    writing = Answer.objects.filter(status=AnswerStatus.STREAMING).count()
    return (ahead + 1) * service / max(1, writing)


def answer_queue_position(*, answer_id: int) -> int | None:
    """1 when the answer is the next to be written; None when it is being written or finished."""
    status = Answer.objects.filter(pk=answer_id).values_list("status", flat=True).first()
    if status != AnswerStatus.PENDING:
        return None
    return Answer.objects.filter(status=AnswerStatus.PENDING, pk__lt=answer_id).count() + 1


# --- Following an answer as it is written -----------------------------------------------------------------

def answer_events(*, user: AnyUser, answer: Answer, after: str) -> Iterator[AnswerEvent | None]:
    """The answer's events after entry id `after`, each filtered for the user; None marks a quiet spell (the
    caller sends a keep-alive). While the answer waits in the queue, `queued` events say its place (and whether
    the queue itself is unreachable). Ends after the terminal event, or after settings.ANSWER_STREAM_MAX_S."""
    if answer.is_finished and not _stream_exists(answer.pk):
        yield from _from_db(user, answer)
        return
    relay = _Relay(user)
    deadline = time.monotonic() + settings.ANSWER_STREAM_MAX_S
    shown: tuple[int | None, bool] | None = None
    while time.monotonic() < deadline:
        position = answer_queue_position(answer_id=answer.pk)
        try:
            entries = stream_read(answer_id=answer.pk, after=after,
                                  block_ms=(QUEUE_POLL_S if position else KEEPALIVE_S) * 1000)
            queue_down = False
        except redis.RedisError as exc:
            log.warning("answer %s: the stream is unreachable (%s); following the database", answer.pk, exc)
            entries, queue_down = [], True
        if (position is not None or queue_down) and shown != (position, queue_down):
            shown = (position, queue_down)
            yield AnswerEvent("queued", json.dumps({"position": position, "queue_down": queue_down}))
        if not entries:
            answer.refresh_from_db()
            if answer.is_finished and (queue_down or not _stream_exists(answer.pk)):
                yield from _from_db(user, answer)
                return
            if queue_down:
                time.sleep(QUEUE_POLL_S)
            yield None
            continue
        for entry_id, event, data in entries:
            after = entry_id
            yield AnswerEvent(event, relay.event(event, data), entry_id)
            if event in TERMINAL_EVENTS:
                return


def _stream_exists(answer_id: int) -> bool:
    try:
        return stream_exists(answer_id=answer_id)
    except redis.RedisError:
        return False  # the database has the answer; the relay reads it from there



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
