"""Ask questions, read answers, follow an answer as it is written (Server-Sent Events relayed from Redis).

Thin: permissions come from services.access, writes from services.answering. The web process loads no model
and opens no vector store; it only reads the DB and the answer's Redis Stream.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from docs_app.models import Answer, AnswerStatus, Conversation
from docs_app.pipeline.prompt import citations_parse
from docs_app.services.access import collections_readable, documents_readable
from docs_app.services.answering import conversation_start, question_ask
from docs_app.services.streams import TERMINAL_EVENTS, entry_id_valid, stream_exists, stream_read

if TYPE_CHECKING:
    from django.contrib.auth.models import User

KEEPALIVE_S = 15
# A stream request ends after this long even if the answer has not; the browser reconnects with Last-Event-ID.
STREAM_MAX_S = 600
FINISHED = {AnswerStatus.DONE, AnswerStatus.ABSTAINED, AnswerStatus.FAILED}


@login_required
@require_http_methods(["GET", "POST"])
def ask_start(request: HttpRequest) -> HttpResponse:
    collections = list(collections_readable(request.user).order_by("name"))
    error = ""
    if request.method == "POST":
        chosen = [int(v) for v in request.POST.getlist("collections") if v.isdigit()]
        try:
            answer = conversation_start(user=_user(request), text=request.POST.get("question", ""),
                                        collection_ids=chosen or None, request=request)
        except ValidationError as exc:
            error = " ".join(exc.messages)
        else:
            return _asked(request, answer)
    recent = Conversation.objects.filter(owner_id=request.user.pk).order_by("-created_at")[:20]
    return render(request, "ask/start.html", {"collections": collections, "recent": recent, "error": error,
                                              "question": request.POST.get("question", "")},
                  status=400 if error else 200)


@login_required
@require_GET
def conversation_view(request: HttpRequest, pk: int) -> HttpResponse:
    conversation = _own_conversation(request, pk)
    questions = list(conversation.questions.select_related("answer").order_by("created_at", "id"))
    answers = [q.answer for q in questions if hasattr(q, "answer")]
    readable = _readable_documents(request, {s.get("document_id") for a in answers for s in a.sources})
    items = [{"question": q, "answer": _rendered(q.answer, readable) if hasattr(q, "answer") else None}
             for q in questions]
    return render(request, "ask/conversation.html", {
        "conversation": conversation, "items": items,
        "collections": conversation.collections.filter(id__in=collections_readable(request.user)),
        "working": any(a.status not in FINISHED for a in answers),
    })


@login_required
@require_POST
def question_create(request: HttpRequest, pk: int) -> HttpResponse:
    conversation = _own_conversation(request, pk)
    try:
        answer = question_ask(conversation=conversation, user=_user(request),
                              text=request.POST.get("question", ""), request=request)
    except ValidationError as exc:
        if _wants_json(request):
            return JsonResponse({"error": " ".join(exc.messages)}, status=400)
        messages.error(request, " ".join(exc.messages))
        return redirect("conversation", pk=conversation.pk)
    return _asked(request, answer)


@login_required
@require_GET
def answer_stream(request: HttpRequest, pk: int) -> HttpResponseBase:
    answer = Answer.objects.filter(pk=pk, question__asked_by_id=request.user.pk).first()
    if answer is None:
        raise Http404("No such answer")
    last_id = request.headers.get("Last-Event-ID", "") or request.GET.get("last_id", "")
    response = StreamingHttpResponse(_events(request, answer, last_id if entry_id_valid(last_id) else "0-0"),
                                     content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # a buffering proxy would hold the tokens back
    return response


# --- helpers ------------------------------------------------------------------------------------------------

def _user(request: HttpRequest) -> User:
    # Every view here is login_required, so the user is a real account.
    return cast("User", request.user)


def _own_conversation(request: HttpRequest, pk: int) -> Conversation:
    # Someone else's conversation looks exactly like a missing one.
    conversation = Conversation.objects.filter(pk=pk, owner_id=request.user.pk).first()
    if conversation is None:
        raise Http404("No such conversation")
    return conversation


def _wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def _asked(request: HttpRequest, answer: Answer) -> HttpResponse:
    conversation_id = answer.question.conversation_id
    if _wants_json(request):
        return JsonResponse({"answer_id": answer.pk, "stream_url": reverse("answer_stream", args=[answer.pk]),
                             "conversation_url": reverse("conversation", args=[conversation_id])}, status=201)
    return redirect(f"{reverse('conversation', args=[conversation_id])}#answer-{answer.pk}")


def _readable_documents(request: HttpRequest, document_ids: set[Any]) -> set[int]:
    ids = {int(d) for d in document_ids if isinstance(d, int)}
    return set(documents_readable(request.user).filter(id__in=ids).values_list("id", flat=True))


@dataclass
class _RenderedAnswer:
    answer: Answer
    segments: list[tuple[str, list[tuple[int, str]]]] = field(default_factory=list)
    sources: list[dict[str, Any]] = field(default_factory=list)
    hidden_sources: int = 0

    @property
    def finished(self) -> bool:
        return self.answer.status in FINISHED

    @property
    def uncited(self) -> bool:
        """A finished answer that links no source: with a small model this is common, and the reader must
        know the text is not backed by the passages shown."""
        return self.answer.status == AnswerStatus.DONE and not any(links for _text, links in self.segments)


def _rendered(answer: Answer, readable: set[int]) -> _RenderedAnswer:
    """The answer as text segments followed by citation links. A marker becomes a link only if it names a
    source the model was given and the user may still read; anything else stays plain text."""
    sources = [s for s in answer.sources if s.get("document_id") in readable]
    urls = {int(s["number"]): str(s["url"]) for s in sources if not s.get("nearest")}
    segments, _cited = citations_parse(answer.text, valid_numbers=urls)
    return _RenderedAnswer(
        answer=answer,
        segments=[(seg.text, [(n, urls[n]) for n in seg.source_numbers]) for seg in segments],
        sources=sources,
        hidden_sources=len(answer.sources) - len(sources),
    )


def _sse(event: str, data: str, entry_id: str = "") -> str:
    lines = [f"id: {entry_id}"] if entry_id else []
    lines.append(f"event: {event}")
    lines += [f"data: {line}" for line in data.split("\n")]
    return "\n".join(lines) + "\n\n"


def _relayable(request: HttpRequest, event: str, data: str) -> str:
    """Sources and citations are filtered by what the user may read now, not when the answer was written."""
    if event == "sources":
        items = json.loads(data)
        readable = _readable_documents(request, {item.get("document_id") for item in items})
        return json.dumps([item for item in items if item.get("document_id") in readable])
    if event == "done":
        payload = json.loads(data)
        citations = payload.get("citations", [])
        readable = _readable_documents(request, {c.get("document_id") for c in citations})
        payload["citations"] = [c for c in citations if c.get("document_id") in readable]
        return json.dumps(payload)
    return data


def _from_db(request: HttpRequest, answer: Answer) -> Iterator[str]:
    """A finished answer whose stream has expired: replay it from the DB, without entry ids."""
    rendered = _rendered(answer, _readable_documents(request, {s.get("document_id") for s in answer.sources}))
    yield _sse("sources", json.dumps(rendered.sources))
    if answer.status == AnswerStatus.FAILED:
        yield _sse("error", json.dumps({"message": answer.error or "The answer failed."}))
        return
    citations = [{"number": n, "url": url} for _text, links in rendered.segments for n, url in links]
    yield _sse("done", json.dumps({"status": answer.status, "text": answer.text, "citations": citations}))


def _events(request: HttpRequest, answer: Answer, last_id: str) -> Iterator[str]:
    yield "retry: 2000\n\n"
    if not stream_exists(answer_id=answer.pk) and answer.status in FINISHED:
        yield from _from_db(request, answer)
        return
    deadline = time.monotonic() + STREAM_MAX_S
    while time.monotonic() < deadline:
        entries = stream_read(answer_id=answer.pk, after=last_id, block_ms=KEEPALIVE_S * 1000)
        if not entries:
            if not stream_exists(answer_id=answer.pk):
                answer.refresh_from_db()
                if answer.status in FINISHED:
                    yield from _from_db(request, answer)
                    return
            yield ": keep-alive\n\n"
            continue
        for entry_id, event, data in entries:
            last_id = entry_id
            yield _sse(event, _relayable(request, event, data), entry_id)
            if event in TERMINAL_EVENTS:
                return
