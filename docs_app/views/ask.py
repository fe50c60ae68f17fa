"""Ask questions, read answers, follow an answer as it is written (Server-Sent Events relayed from Redis).

Thin: permissions come from services.access, writes from services.answering, reads (rendering and the relay)
from selectors.answers. The web process loads no model and opens no vector store; it only reads the DB and the
answer's Redis Stream.
"""

from __future__ import annotations

from collections.abc import Iterator

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from docs_app.models import Answer
from docs_app.selectors.answers import (
    AnswerEvent,
    answer_events,
    answer_queue_position,
    conversation_page,
    conversations_recent,
    documents_scope,
)
from docs_app.services.access import answer_get, collections_readable, conversation_get
from docs_app.services.answering import AnswerQueueFull, conversation_start, question_ask
from docs_app.services.enqueue import queue_unreachable
from docs_app.services.streams import entry_id_valid
from docs_app.web import ints, request_actor, wants_json


@login_required
@require_http_methods(["GET", "POST"])
def ask_start(request: HttpRequest) -> HttpResponse:
    """Ask within collections, or within chosen documents ("ask this document": `documents` ids, sent by the
    viewer's form or an API client; only those the user may read count)."""
    collections = list(collections_readable(request.user).order_by("name"))
    data = request.POST if request.method == "POST" else request.GET
    documents = documents_scope(user=request.user, document_ids=ints(data.getlist("documents")))
    error = ""
    status = 200
    if request.method == "POST":
        chosen = ints(request.POST.getlist("collections"))
        try:
            if collections and not chosen and "collections_shown" in request.POST:
                # Unticking every box is not "search everything".
                raise ValidationError("Choose at least one collection to search in.")
            answer = conversation_start(actor=request_actor(request), text=request.POST.get("question", ""),
                                        collection_ids=None if documents else chosen or None,
                                        document_ids=[d.pk for d in documents] or None)
        except ValidationError as exc:
            error, status = " ".join(exc.messages), 400
        except AnswerQueueFull as busy:
            if wants_json(request):
                return _busy_json(busy)
            error, status = str(busy), BUSY_STATUS
        else:
            return _asked(request, answer)
    response = render(request, "ask/start.html", {"collections": collections, "documents": documents,
                                                  "recent": conversations_recent(user=request.user), "error": error,
                                                  "standin_model": not settings.LLM_MODEL_PATH,
                                                  "question": request.POST.get("question", "")},
                      status=status)
    if status == BUSY_STATUS:
        response["Retry-After"] = str(BUSY_RETRY_AFTER_S)
    return response


@login_required
@require_GET
def conversation_view(request: HttpRequest, pk: int) -> HttpResponse:
    conversation = conversation_get(request.user, pk)
    shown = conversation_page(user=request.user, conversation=conversation)
    return render(request, "ask/conversation.html", {
        "conversation": conversation, "items": shown.items, "collections": shown.collections,
        "documents": shown.documents, "working": shown.working, "standin_model": not settings.LLM_MODEL_PATH,
    })


@login_required
@require_POST
def question_create(request: HttpRequest, pk: int) -> HttpResponse:
    conversation = conversation_get(request.user, pk)
    try:
        answer = question_ask(conversation=conversation, actor=request_actor(request),
                              text=request.POST.get("question", ""))
    except ValidationError as exc:
        if wants_json(request):
            return JsonResponse({"error": " ".join(exc.messages)}, status=400)
        messages.error(request, " ".join(exc.messages))
        return redirect("conversation", pk=conversation.pk)
    except AnswerQueueFull as busy:
        if wants_json(request):
            return _busy_json(busy)
        messages.error(request, str(busy))
        return redirect("conversation", pk=conversation.pk)
    return _asked(request, answer)


@login_required
@require_GET
def answer_stream(request: HttpRequest, pk: int) -> HttpResponseBase:
    answer = answer_get(request.user, pk)
    last_id = request.headers.get("Last-Event-ID", "") or request.GET.get("last_id", "")
    events = answer_events(user=request.user, answer=answer, after=last_id if entry_id_valid(last_id) else "0-0")
    response = StreamingHttpResponse(_sse_stream(events), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # a buffering proxy would hold the tokens back
    return response


# "Busy, try again" is a refusal, not a failure: 429 with Retry-After, never a 5xx.
BUSY_STATUS = 429
BUSY_RETRY_AFTER_S = 60


def _busy_json(busy: AnswerQueueFull) -> JsonResponse:
    response = JsonResponse({"error": "busy", "message": str(busy), "waiting": busy.waiting,
                             "wait_estimate_s": busy.estimate_s, "retry_after_s": BUSY_RETRY_AFTER_S},
                            status=BUSY_STATUS)
    response["Retry-After"] = str(BUSY_RETRY_AFTER_S)
    return response


def _asked(request: HttpRequest, answer: Answer) -> HttpResponse:
    conversation_id = answer.question.conversation_id
    if wants_json(request):
        return JsonResponse({"answer_id": answer.pk, "stream_url": reverse("answer_stream", args=[answer.pk]),
                             "conversation_url": reverse("conversation", args=[conversation_id]),
                             "queue_position": answer_queue_position(answer_id=answer.pk),
                             "queue_down": queue_unreachable()}, status=201)
    return redirect(f"{reverse('conversation', args=[conversation_id])}#answer-{answer.pk}")


def _sse_stream(events: Iterator[AnswerEvent | None]) -> Iterator[str]:
    yield "retry: 2000\n\n"
    for event in events:
        yield _sse(event) if event is not None else ": keep-alive\n\n"


def _sse(event: AnswerEvent) -> str:
    lines = [f"id: {event.entry_id}"] if event.entry_id else []
    lines.append(f"event: {event.event}")
    lines += [f"data: {line}" for line in event.data.split("\n")]
    return "\n".join(lines) + "\n\n"
