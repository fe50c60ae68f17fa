"""What the audit page shows an auditor beside each event, and the name filters: from live rows.

Events hold ids, never document titles, file names or collection names (an erasure could not take them back
from an append-only log). The page puts names to the ids from the rows as they are now, in one query per kind
of row for the whole page (never one per event): a document that was erased shows as "erased", a question whose
conversation was deleted likewise. The CSV export keeps ids only: a copy that leaves the system cannot be erased.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import CharField, Q, QuerySet
from django.db.models.functions import Cast

from docs_app.models import Answer, AuditEvent, Collection, Conversation, Document, Question
from docs_app.services.audit import Action

ERASED = "erased"
# Names an auditor may type match this many rows at most; a broader name is a search, not a filter.
NAME_MATCHES_MAX = 200


@dataclass(frozen=True)
class NamedRef:
    id: int
    name: str  # the live name, or ERASED when the row is gone

    @property
    def erased(self) -> bool:
        return self.name == ERASED


@dataclass
class AuditRow:
    event: AuditEvent
    target: str = ""
    question: str | None = None  # what was asked (question events), ERASED when the question is gone
    collections: list[NamedRef] = field(default_factory=list)
    documents: list[NamedRef] = field(default_factory=list)
    documents_label: str = ""  # what the documents were to the event: shown to the model, cited, acted on
    details: list[tuple[str, str]] = field(default_factory=list)


# Events written before issue 10 carried document titles, file names and collection names. The chain covers them
# as stored; the review page and the export show them withheld: ids say which document, names are content.
_NAME_KEYS = frozenset({"name", "title"})
_NAMED_ACTIONS = frozenset({Action.UPLOAD, Action.DELETE, Action.COLLECTION_CREATE})
WITHHELD = "(withheld)"


def audit_details_shown(event: AuditEvent) -> dict[str, Any]:
    details = dict(event.details or {})
    if event.action in _NAMED_ACTIONS:
        details.update({key: WITHHELD for key in _NAME_KEYS & details.keys()})
    return details



# --- Name filters ------------------------------------------------------------------------------------------

def _id_or_none(text: str) -> int | None:
    text = text.strip().lstrip("#")
    return int(text) if text.isascii() and text.isdigit() and len(text) < 19 else None


def collection_ids_named(name: str) -> list[int]:
    """Collections whose name contains `name` (any case); a number also matches that id (from an export)."""
    number = _id_or_none(name)
    query = Q(name__icontains=name.strip()) | (Q(pk=number) if number is not None else Q(pk__in=[]))
    found = list(Collection.objects.filter(query).values_list("id", flat=True)[:NAME_MATCHES_MAX])
    # An erased collection's id still names its events.
    return found if number is None or number in found else [*found, number]


def document_ids_named(name: str) -> list[int]:
    """Documents whose title, file name or printed title contains `name` (any case); a number also matches
    that id, which names an erased document's events too."""
    text = name.strip()
    number = _id_or_none(text)
    query = (Q(title__icontains=text) | Q(original_name__icontains=text) | Q(names__icontains=text)
             | (Q(pk=number) if number is not None else Q(pk__in=[])))
    found = list(Document.objects.filter(query).values_list("id", flat=True)[:NAME_MATCHES_MAX])
    return found if number is None or number in found else [*found, number]


def _question_events(question_ids: QuerySet[Any]) -> Q:
    """The ask events of these questions and the answer events of their answers (the ids as the log keeps
    them, text), as subqueries: the index on (target_type, target_id) finds them."""
    as_text = question_ids.annotate(ref=Cast("id", CharField())).values("ref")
    answers = (Answer.objects.filter(question_id__in=question_ids.values("id"))
               .annotate(ref=Cast("id", CharField())).values("ref"))
    return (Q(target_type="question", target_id__in=as_text)
            | Q(target_type="answer", target_id__in=answers))


def events_of_collections(collection_ids: list[int]) -> Q:
    """Events about the collections: those that name them, and questions asked in them."""
    questions = Question.objects.filter(conversation__collections__in=collection_ids)
    return Q(collection_id_ref__in=collection_ids) | _question_events(questions)


def events_of_documents(document_ids: list[int]) -> Q:
    """Events about the documents: those that name them, and questions shown a passage of one. Which passages a
    question was shown is kept on its answer (Answer.sources); only conversations over the documents'
    collections can have been, so only their answers are read."""
    wanted = set(document_ids)
    collections = Document.objects.filter(id__in=document_ids).values("collection_id")
    answers = Answer.objects.filter(question__conversation__collections__in=collections)
    question_ids = {question_id for question_id, sources in answers.values_list("question_id", "sources")
                    .iterator(chunk_size=2000)
                    if any(isinstance(s, dict) and s.get("document_id") in wanted for s in sources or [])}
    return Q(document_id_ref__in=document_ids) | _question_events(Question.objects.filter(id__in=question_ids))


# --- Rows for one page -------------------------------------------------------------------------------------

_LABELS = {
    "sha256": "SHA-256", "size_bytes": "Size", "page_count": "Pages", "page": "Page", "chunk": "Passage id",
    "reason": "Reason", "principal_name": "Person or group", "principal_type": "Kind", "role": "Role",
    "previous_role": "Previous role", "filters": "Filters", "rows": "Rows", "conversation_id": "Conversation",
    "retrieved": "Passages retrieved", "shown": "Passages shown", "cited_chunks": "Passages cited",
    "unusable": "Unusable output", "chunks": "Passages", "reembed": "Re-embedded", "results": "Results",
}
# Ids the row already shows by name, or that say nothing to a person.
_HIDDEN = frozenset({"question_id", "principal_id"})
# Lists of passage ids: their documents are shown by name; the count is what a person reads.
_COUNTED = frozenset({"retrieved", "shown", "cited_chunks", "chunks"})


def _value_text(key: str, value: object) -> str:
    if key in _COUNTED and isinstance(value, list):
        return str(len(value))
    if key == "size_bytes" and isinstance(value, int):
        return f"{value / 1024:.0f} KB" if value < 1024 * 1024 else f"{value / (1024 * 1024):.1f} MB"
    if value is None or value == "" or value == [] or value == {}:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        return "; ".join(f"{_label(k)}: {_value_text(k, v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(_value_text("", v) for v in value)
    return str(value)


def _label(key: str) -> str:
    return _LABELS.get(key) or key.replace("_", " ").capitalize()


def audit_details_pairs(details: dict[str, Any]) -> list[tuple[str, str]]:
    """An event's details as (label, value) pairs a person reads."""
    return [(_label(key), _value_text(key, value)) for key, value in details.items() if key not in _HIDDEN]


def _int(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return _id_or_none(value) if isinstance(value, str) else None


def _source_documents(sources: object, chunk_ids: object = None) -> list[int]:
    """Document ids of an answer's sources (as shown to the model), in order; only those of `chunk_ids` (the
    passages the answer cited) when given. The sources keep ids after an erasure, so an erased document is
    still counted, and shown as erased."""
    wanted = set(chunk_ids) if isinstance(chunk_ids, list) else None
    ids: list[int] = []
    for source in sources if isinstance(sources, list) else []:
        if not isinstance(source, dict) or (wanted is not None and source.get("chunk_id") not in wanted):
            continue
        document_id = _int(source.get("document_id"))
        if document_id is not None and document_id not in ids:
            ids.append(document_id)
    return ids


def _question_id(event: AuditEvent) -> int | None:
    if event.action == Action.ASK and event.target_type == "question":
        return _int(event.target_id)
    if event.action == Action.ANSWER and isinstance(event.details, dict):
        return _int(event.details.get("question_id"))
    return None


def _event_documents(event: AuditEvent, sources: object) -> tuple[list[int], str]:
    """The documents an event is about: a question's were shown to the model (its answer's sources), an
    answer's were cited; any other event's is the one it names."""
    details = event.details if isinstance(event.details, dict) else {}
    if event.action == Action.ASK:
        return _source_documents(sources), "Shown"
    if event.action == Action.ANSWER:
        return _source_documents(sources, details.get("cited_chunks", [])), "Cited"
    return ([event.document_id_ref] if event.document_id_ref is not None else []), ""


def _names(rows: Iterable[tuple[int, str]], wanted: Iterable[int]) -> dict[int, str]:
    found = dict(rows)
    return {i: found.get(i, ERASED) for i in wanted}


def audit_rows(events: Iterable[AuditEvent]) -> list[AuditRow]:
    """The page's events with names from live rows: one query per kind of row (questions, their answers'
    sources, conversations' collections, collections, documents, users), whatever the number of events."""
    events = list(events)
    question_of = {e.pk: _question_id(e) for e in events}
    question_ids = {q for q in question_of.values() if q is not None}
    sources_of = dict(Answer.objects.filter(question_id__in=question_ids).values_list("question_id", "sources"))
    docs_of = {e.pk: _event_documents(e, sources_of.get(question_of[e.pk] or 0)) for e in events}
    questions = {row["id"]: row for row in Question.objects.filter(id__in=question_ids)
                 .values("id", "text", "conversation_id")}
    conversation_collections: dict[int, list[int]] = {}
    for conversation_id, collection_id in Conversation.collections.through.objects.filter(
            conversation_id__in={q["conversation_id"] for q in questions.values()}
    ).values_list("conversation_id", "collection_id").order_by("conversation_id", "collection_id"):
        conversation_collections.setdefault(conversation_id, []).append(collection_id)

    collection_ids = {e.collection_id_ref for e in events if e.collection_id_ref is not None}
    collection_ids |= {c for ids in conversation_collections.values() for c in ids}
    collection_ids |= {i for e in events if e.target_type == "collection" and (i := _int(e.target_id)) is not None}
    collection_names = _names(Collection.objects.filter(id__in=collection_ids).values_list("id", "name"),
                              collection_ids)
    document_ids = {d for ids, _label_ in docs_of.values() for d in ids}
    document_ids |= {i for e in events if e.target_type == "document" and (i := _int(e.target_id)) is not None}
    document_names = _names(((d.pk, d.display_title) for d in Document.objects.filter(id__in=document_ids)
                             .only("id", "title", "metadata")), document_ids)
    user_ids = {i for e in events if e.target_type == "user" and (i := _int(e.target_id)) is not None}
    user_names = _names(get_user_model().objects.filter(id__in=user_ids).values_list("id", "username"), user_ids)

    rows = []
    for event in events:
        row = AuditRow(event=event, details=audit_details_pairs(audit_details_shown(event)))
        question_id = question_of[event.pk]
        if question_id is not None:
            question = questions.get(question_id)
            row.question = question["text"] if question is not None else ERASED
            row.collections = [NamedRef(c, collection_names[c])
                               for c in conversation_collections.get(question["conversation_id"], [])
                               ] if question is not None else []
        elif event.collection_id_ref is not None:
            row.collections = [NamedRef(event.collection_id_ref, collection_names[event.collection_id_ref])]
        ids, row.documents_label = docs_of[event.pk]
        row.documents = [NamedRef(d, document_names[d]) for d in ids]
        row.target = _target(event, collection_names, document_names, user_names)
        rows.append(row)
    return rows


def _target(event: AuditEvent, collections: dict[int, str], documents: dict[int, str],
            users: dict[int, str]) -> str:
    target_id = _int(event.target_id)
    names = {"collection": collections, "document": documents, "user": users}.get(event.target_type)
    if names is not None and target_id is not None:
        return f"{event.target_type} “{names[target_id]}”" if names[target_id] != ERASED else \
            f"{event.target_type} #{target_id} ({ERASED})"
    return f"{event.target_type} {event.target_id}".strip()


def audit_people() -> list[str]:
    """Active accounts' names, for the person filter's suggestions (a departed person is still typed in)."""
    return list(get_user_model().objects.filter(is_active=True).order_by("username")
                .values_list("username", flat=True)[:NAME_MATCHES_MAX])


def audit_collection_names() -> list[str]:
    return list(Collection.objects.order_by("name").values_list("name", flat=True)[:NAME_MATCHES_MAX])


def audit_filters_recorded(filters: dict[str, Any]) -> dict[str, Any]:
    """The filters as the export's own event records them: names typed by the auditor become the ids they
    matched (the log keeps no names of documents or collections)."""
    recorded = {k: v for k, v in filters.items() if k not in {"collection_name", "document_name"}}
    if filters.get("collection_name"):
        recorded["collection_ids"] = collection_ids_named(filters["collection_name"])
    if filters.get("document_name"):
        recorded["document_ids"] = document_ids_named(filters["document_name"])
    return recorded
