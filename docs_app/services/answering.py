"""Questions and answers: the web side asks (rows + enqueue), the answer worker answers (retrieve -> prompt ->
stream -> cite -> save).

Contract of `answer_generate`: it may run any number of times for one answer (acks_late redelivery after a
worker died) and always ends with the answer DONE, ABSTAINED or FAILED. A run that finds the answer finished
does nothing; a run that finds it half-streamed announces `restart` on the stream and starts over.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from docs_app import registry
from docs_app.adapters.llm_runtime import ModelUnavailable
from docs_app.models import Answer, AnswerStatus, AuditEvent, Citation, Conversation, Document, Question
from docs_app.pipeline.answer_check import answer_check
from docs_app.pipeline.prompt import (
    SYSTEM_RULES,
    ChatMessage,
    PromptBudgetError,
    Source,
    citations_parse,
    prompt_build,
)
from docs_app.selectors.answers import answer_wait_estimate_s, answers_waiting_count
from docs_app.selectors.retrieval import (
    RetrievedChunk,
    allowed_collection_ids,
    allowed_document_ids,
    chunks_retrieve,
)
from docs_app.services.access import conversation_check_owner, documents_readable
from docs_app.services.actor import Actor
from docs_app.services.audit import Action, audit_record
from docs_app.services.enqueue import answer_generate_enqueue
from docs_app.services.model_status import model_loaded_publish
from docs_app.services.streams import (
    AnswerLease,
    LeaseLost,
    answer_lease,
    stream_exists,
    stream_finish,
    stream_publish,
)

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from docs_app.adapters.llm import LanguageModel

log = logging.getLogger(__name__)

MAX_QUESTION_CHARS = 2000
NEAREST_SHOWN = 3
# Below this cosine similarity (all-MiniLM-L6-v2) between what is asked and the best passage, nothing the user
# can read is about the question: abstain rather than let the model guess. Measured on the bench corpora: the
# best passage of real questions scores from 0.32 (5th percentile 0.39, median 0.50) on CUAD and from 0.29
# (5th percentile 0.50, median 0.74) on PubMedQA; off-topic questions score 0.06-0.25 against one contract,
# but up to 0.34 against 60 (a sponsorship deal is "near" a football question). So the bar is a floor, not a
# proof of relevance: above it the model still has rule 3 of its prompt (say the sources do not answer).
MIN_SIMILARITY = 0.30
# Room for the chat template's turn tokens and tokenizer drift between count_tokens and the real prompt.
PROMPT_MARGIN_TOKENS = 96
TEMPERATURE = 0.1
ABSTAIN_TEXT = (
    "The documents you can access do not answer this question. The passages nearest to it are listed as "
    "sources for reference; they are not evidence for an answer."
)
CRASHED_TEXT = ("The answer could not be written: the answer worker stopped {runs} times while generating it "
                "(the model process crashed), so it was not tried again. Please ask again later; an "
                "administrator can see the model's state on the status page.")
BUSY_TEXT = ("Busy, try again: {waiting} questions are waiting for the answer service{eta}. Please ask again in "
             "a few minutes.")
WAITED_TEXT = ("Busy, try again: no answer worker took this question within {minutes} minutes (too many questions, "
               "or the answer service is not running). Please ask again later.")


class AnswerQueueFull(Exception):
    """Back-pressure: settings.ANSWER_QUEUE_MAX answers wait already, or those waiting would take longer than
    settings.ANSWER_WAIT_TARGET_S to write; the question is refused, not queued."""

    def __init__(self, waiting: int, estimate_s: float | None = None) -> None:
        eta = f", about {max(1, round(estimate_s / 60))} minutes of work" if estimate_s is not None else ""
        super().__init__(BUSY_TEXT.format(waiting=waiting, eta=eta))
        self.waiting = waiting
        self.estimate_s = estimate_s


# --- the web side -------------------------------------------------------------------------------------------

def conversation_start(*, actor: Actor, text: str, collection_ids: Sequence[int] | None,
                       document_ids: Sequence[int] | None = None) -> Answer:
    """A new conversation over the chosen collections, or the chosen documents (narrowed to what the user may
    read), and its first question. Every follow-up keeps that scope."""
    user = _asker(actor)
    clean = _question_clean(text)
    documents: list[int] = []
    if document_ids:
        documents = allowed_document_ids(user=user, document_ids=document_ids, collection_ids=collection_ids)
        if not documents:
            raise ValidationError("None of the chosen documents can be read.")
        collection_ids = sorted(set(Document.objects.filter(id__in=documents).values_list("collection_id",
                                                                                          flat=True)))
    allowed = allowed_collection_ids(user=user, collection_ids=collection_ids)
    with transaction.atomic():
        conversation = Conversation.objects.create(owner=user, title=" ".join(clean.split())[:300])
        conversation.collections.set(allowed)
        conversation.documents.set(documents)
        return question_ask(conversation=conversation, actor=actor, text=clean)


def question_ask(*, conversation: Conversation, actor: Actor, text: str) -> Answer:
    """Record the question with a pending answer and queue it for the answer worker once committed; raises
    AnswerQueueFull instead when settings.ANSWER_QUEUE_MAX answers are already waiting or being written, or when
    those waiting would take longer than settings.ANSWER_WAIT_TARGET_S. If the queue (Redis) is unreachable the
    question is still recorded: the reconciler queues it when Redis is back."""
    user = _asker(actor)
    conversation_check_owner(user, conversation)
    clean = _question_clean(text)
    with transaction.atomic():
        # Counted inside the write transaction: on SQLite (IMMEDIATE) no other ask slips in between.
        waiting = answers_waiting_count()
        if waiting >= settings.ANSWER_QUEUE_MAX:
            raise AnswerQueueFull(waiting)
        estimate = answer_wait_estimate_s(ahead=Answer.objects.filter(status=AnswerStatus.PENDING).count())
        if estimate is not None and estimate > settings.ANSWER_WAIT_TARGET_S:
            raise AnswerQueueFull(waiting, estimate)
        question = Question.objects.create(conversation=conversation, asked_by=user, text=clean,
                                           client_address=actor.address)
        answer = Answer.objects.create(question=question)
        answer_generate_enqueue(answer_id=answer.pk)
    return answer


def _asker(actor: Actor) -> User:
    user = actor.account
    if user is None:
        raise PermissionDenied("Sign in to ask")
    return user


def _question_clean(text: str) -> str:
    clean = text.strip()
    if not clean:
        raise ValidationError("Please type a question.")
    if len(clean) > MAX_QUESTION_CHARS:
        raise ValidationError(f"Please keep the question under {MAX_QUESTION_CHARS} characters.")
    return clean


# --- the worker side ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Shown:
    number: int
    hit: RetrievedChunk
    nearest: bool  # shown for reference after abstaining, not as evidence

    def stored(self) -> dict[str, Any]:
        """What the Answer row keeps and the stream carries: ids and places, never the passage text or the
        title (the Chunk and Document rows have them, the web side loads them with an access check, and an
        erased document must take them along), nor a link (selectors.answers builds it when shown)."""
        hit = self.hit
        return {"number": self.number, "chunk_id": hit.chunk_id, "document_id": hit.document_id,
                "page": hit.page, "nearest": self.nearest}


def answer_generate(*, answer_id: int) -> None:
    answer = Answer.objects.select_related("question__conversation", "question__asked_by").filter(
        pk=answer_id).first()
    if answer is None or answer.is_finished:
        return  # deleted, or a redelivered message for finished work
    with answer_lease(answer_id=answer_id) as lease:
        # Counted before any work: a run that kills its process (a native crash in the model) never gets to
        # record anything afterwards, and its message comes back (reject_on_worker_lost).
        Answer.objects.filter(pk=answer_id).update(attempts=F("attempts") + 1)
        runs = Answer.objects.values_list("attempts", flat=True).get(pk=answer_id)
        if runs > settings.ANSWER_MAX_RUNS:
            answer_fail(answer=answer, message=CRASHED_TEXT.format(runs=runs - 1))
            return
        if answer.status == AnswerStatus.STREAMING or stream_exists(answer_id=answer_id):
            # A worker died mid-answer: readers drop what they have shown and follow the new run.
            stream_publish(answer_id=answer_id, event="restart", data="")
        Answer.objects.filter(pk=answer_id).update(status=AnswerStatus.STREAMING, text="", error="",
                                                   started_at=timezone.now())
        try:
            _answer(answer, lease=lease)
        except LeaseLost:
            # Presumed dead and taken over (this process stalled past its lease): the new run owns the answer.
            log.warning("answer %s: lease lost to another run; this run stops", answer_id)
        except Exception as exc:  # any failure must end as a FAILED answer, never a stuck one
            log.exception("answer %s failed", answer_id)
            answer_fail(answer=answer, message=_readable(exc))


def _answer(answer: Answer, *, lease: AnswerLease) -> None:
    question = answer.question
    hits, relevant = answer_evidence(question)
    if not relevant:
        shown = [_Shown(n, hit, nearest=True) for n, hit in enumerate(hits[:NEAREST_SHOWN], start=1)]
        _audit_ask(question=question, hits=hits, shown=shown)
        _abstain(answer=answer, shown=shown)
        return

    try:
        model, loaded_at = language_model_loaded()
    except ModelUnavailable:
        # No model: the person still gets the passages retrieval found, labelled as not an answer.
        shown = [_Shown(n, hit, nearest=True) for n, hit in enumerate(relevant, start=1)]
        _audit_ask(question=question, hits=hits, shown=shown)
        Answer.objects.filter(pk=answer.pk).update(sources=[s.stored() for s in shown])
        stream_publish(answer_id=answer.pk, event="sources", data=json.dumps([s.stored() for s in shown]))
        raise
    lease.check()  # the first load of a large model can take a while
    model_loaded_publish(model, loaded_at=loaded_at)
    messages, shown = answer_prompt(question, relevant=relevant, model=model)
    _audit_ask(question=question, hits=hits, shown=shown)
    lease.check()
    stream_publish(answer_id=answer.pk, event="sources", data=json.dumps([s.stored() for s in shown]))

    pieces: list[str] = []
    tokens = model.stream_chat(messages, max_tokens=settings.LLM_MAX_ANSWER_TOKENS, temperature=TEMPERATURE)
    try:
        for piece in tokens:
            lease.check()  # never a token after another run took over
            pieces.append(piece)
            stream_publish(answer_id=answer.pk, event="token", data=piece)
    finally:
        tokens.close()  # frees the model for the next answer even when we stop early
    text = "".join(pieces).strip()
    _finish(answer=answer, status=AnswerStatus.DONE, text=text, shown=shown,
            model_name=str(model.describe().get("name", "")))


def answer_evidence(question: Question) -> tuple[list[RetrievedChunk], list[RetrievedChunk]]:
    """The passages retrieved for a question, in its conversation's scope (collections, and the documents chosen
    if any; a follow-up that names no document is asked about those its previous question named), and those
    close enough to it to count as evidence."""
    conversation = question.conversation
    collection_ids = list(conversation.collections.values_list("id", flat=True))
    document_ids = list(conversation.documents.values_list("id", flat=True)) or None
    previous = (Question.objects.filter(conversation_id=question.conversation_id, id__lt=question.pk)
                .order_by("-id").values_list("text", flat=True).first())
    hits = chunks_retrieve(user=question.asked_by, query=question.text, collection_ids=collection_ids,
                           document_ids=document_ids, previous=previous, k=settings.ANSWER_MAX_SOURCES)
    return hits, [hit for hit in hits if hit.similarity >= MIN_SIMILARITY]


def answer_prompt(question: Question, *, relevant: list[RetrievedChunk],
                  model: LanguageModel) -> tuple[list[ChatMessage], list[_Shown]]:
    """The messages for the model (sources that fit its context, numbered) and the sources as shown."""
    budget = model.context_tokens - settings.LLM_MAX_ANSWER_TOKENS - PROMPT_MARGIN_TOKENS
    sources = [Source(number=n, title=hit.title, page=hit.page, text=hit.text)
               for n, hit in enumerate(relevant, start=1)]
    messages, used = prompt_build(question=question.text, sources=sources, history=_history(question),
                                  budget_tokens=budget, token_len=model.count_tokens)
    return messages, [_Shown(source.number, relevant[source.number - 1], nearest=False) for source in used]


def _abstain(*, answer: Answer, shown: list[_Shown]) -> None:
    stream_publish(answer_id=answer.pk, event="sources", data=json.dumps([s.stored() for s in shown]))
    stream_publish(answer_id=answer.pk, event="token", data=ABSTAIN_TEXT)
    _finish(answer=answer, status=AnswerStatus.ABSTAINED, text=ABSTAIN_TEXT, shown=shown, model_name="")


def _finish(*, answer: Answer, status: str, text: str, shown: list[_Shown], model_name: str) -> None:
    by_number = {s.number: s for s in shown if not s.nearest}
    _segments, cited = citations_parse(text, valid_numbers=by_number)
    check = answer_check(text, instructions=[SYSTEM_RULES]) if status == AnswerStatus.DONE else None
    if check is not None and not check.usable:
        cited = []  # markers in echoed instructions or copied markup cite nothing
    with transaction.atomic():
        Citation.objects.filter(answer_id=answer.pk).delete()  # a replay writes them afresh
        Citation.objects.bulk_create([
            Citation(answer_id=answer.pk, number=n, chunk_id=by_number[n].hit.chunk_id,
                     document_id=by_number[n].hit.document_id, page=by_number[n].hit.page)
            for n in cited
        ])
        Answer.objects.filter(pk=answer.pk).update(
            status=status, text=text, error="", sources=[s.stored() for s in shown],
            model_name=model_name[:200], finished_at=timezone.now(),
        )
        question = answer.question
        audit_record(action=Action.ANSWER, actor=_asked_by(question), target_type="answer", target_id=answer.pk,
                     outcome=str(status),
                     details={"question_id": question.pk,
                              "cited_chunks": [by_number[n].hit.chunk_id for n in cited],
                              **({"unusable": check.summary()} if check is not None and not check.usable else {})})
    keys = ("number", "chunk_id", "document_id", "page")
    citations = [{key: by_number[n].stored()[key] for key in keys} for n in cited]
    stream_publish(answer_id=answer.pk, event="done",
                   data=json.dumps({"status": str(status), "text": text, "citations": citations,
                                    "unusable": check.summary() if check is not None and not check.usable else ""}))
    stream_finish(answer_id=answer.pk)


def answer_fail(*, answer: Answer, message: str) -> None:
    """FAILED with a message a person can read, on the stream too; never raises (it runs after a failure)."""
    try:
        with transaction.atomic():
            Answer.objects.filter(pk=answer.pk).update(status=AnswerStatus.FAILED, error=message[:2000],
                                                       finished_at=timezone.now())
            audit_record(action=Action.ANSWER, actor=_asked_by(answer.question), target_type="answer",
                         target_id=answer.pk, outcome="failed",
                         details={"question_id": answer.question_id, "reason": message[:300]})
    except Exception:  # the stream below still tells the reader
        log.exception("could not record the failure of answer %s", answer.pk)
    try:
        stream_publish(answer_id=answer.pk, event="error", data=json.dumps({"message": message}))
        stream_finish(answer_id=answer.pk)
    except Exception:  # Redis down: the page shows the DB status on reload
        log.exception("could not publish the failure of answer %s", answer.pk)


def _asked_by(question: Question) -> Actor:
    # The worker acts for a request made earlier: the asker, at the address recorded with the question.
    return Actor(user=question.asked_by, address=question.client_address)


def _readable(exc: BaseException) -> str:
    if isinstance(exc, PromptBudgetError):
        return "The question is too long for the model's context window. Please shorten it."
    if isinstance(exc, ModelUnavailable):
        return ("The answer model cannot run on this machine, so no answer was written. The passages found are "
                "listed as sources. An administrator can see why on the status page.")
    return (f"The answer could not be generated ({type(exc).__name__}). "
            "Please try again or ask an administrator.")


def _audit_ask(*, question: Question, hits: list[RetrievedChunk], shown: list[_Shown]) -> None:
    # One ASK event per question, also when a redelivered task runs the retrieval again.
    earlier = AuditEvent.objects.filter(action=Action.ASK, target_type="question", target_id=str(question.pk))
    if earlier.exists():
        return
    audit_record(action=Action.ASK, actor=_asked_by(question), target_type="question", target_id=question.pk,
                 details={"conversation_id": question.conversation_id,
                          "retrieved": [hit.chunk_id for hit in hits],
                          "shown": [s.hit.chunk_id for s in shown]})


def _history(question: Question) -> list[tuple[str, str]]:
    """Earlier turns for the prompt, without an answer that drew on a document the asker can no longer read:
    its text would otherwise reach the model, and the new answer, through the back door (issue 10, item 2)."""
    earlier = list(Question.objects.filter(conversation_id=question.conversation_id, id__lt=question.pk,
                                           answer__status=AnswerStatus.DONE)
                   .order_by("id").values_list("text", "answer__text", "answer__sources"))
    cited = {s.get("document_id") for _q, _a, sources in earlier for s in sources or []}
    readable = set(documents_readable(question.asked_by).filter(id__in=[d for d in cited if isinstance(d, int)])
                   .values_list("id", flat=True))
    return [(q, a) for q, a, sources in earlier
            if all(s.get("document_id") in readable for s in sources or [])]


REDACTED_TEXT = "This answer is withheld: it drew on a document that has since been erased."


def answers_redact_for_document(*, document_id: int, collection_id: int) -> list[int]:
    """Erasure (called inside document_delete's transaction): every answer shown a passage of the document
    loses its text, and so does every later answer in the same conversation (the earlier answer was in its
    prompt). The sources keep ids and places; titles go. Returns the redacted answers' ids, whose Redis streams
    the caller deletes once the erasure commits."""
    candidates = (Answer.objects.filter(question__conversation__collections=collection_id)
                  .select_related("question").order_by("question_id"))
    first_per_conversation: dict[int, int] = {}
    for answer in candidates:
        if any(s.get("document_id") == document_id for s in answer.sources):
            conversation_id = answer.question.conversation_id
            first_per_conversation.setdefault(conversation_id, answer.question_id)
    redacted: list[int] = []
    for conversation_id, first_question in first_per_conversation.items():
        for answer in Answer.objects.filter(question__conversation_id=conversation_id,
                                            question_id__gte=first_question):
            sources = [{k: v for k, v in s.items() if k != "title"}
                       | ({"erased": True} if s.get("document_id") == document_id else {})
                       for s in answer.sources]
            Answer.objects.filter(pk=answer.pk).update(text=REDACTED_TEXT, sources=sources)
            redacted.append(answer.pk)
    return redacted



_model_lock = threading.Lock()
_model: tuple[LanguageModel, str] | None = None


def language_model_loaded() -> tuple[LanguageModel, str]:
    """The process's model and when it was loaded (for the status page). Thread-safe: the worker loads it in
    the background at start while the first question may already want it."""
    global _model
    with _model_lock:
        if _model is None:
            _model = (registry.language_model(), timezone.now().isoformat())
        return _model


def answer_model_preload() -> None:
    """Load the model when the answer worker starts, not when the first person asks (a minute for a large
    model), and the embedder retrieval needs (seconds, longer on a busy machine: time the first question's
    first token would otherwise carry). Failures are logged and published; the answers then fail with the
    reason."""
    try:
        model, loaded_at = language_model_loaded()
        model_loaded_publish(model, loaded_at=loaded_at)
    except Exception:
        log.exception("the answer model could not be loaded")
    try:
        registry.embedder().embed(["warm-up"])
    except Exception:
        log.exception("the embedder could not be loaded")


