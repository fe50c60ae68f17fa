"""Reads behind the audit page and its CSV export. Who may review the log is the `docs_app.review_audit`
permission, checked by the views."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from django.db.models import QuerySet, Value
from django.db.models.functions import Lower

from docs_app.models import AuditEvent
from docs_app.services.audit import Action

CSV_COLUMNS = ["id", "created_at", "actor_id", "actor_name", "action", "target_type", "target_id",
               "collection_id", "document_id", "client_address", "outcome", "details", "prev_hash", "hash",
               "chain_version"]
# A cell starting with one of these runs as a formula when a reviewer opens the export in a spreadsheet; a
# user name or uploaded file name is enough to plant one.
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def audit_events_filter(
    *,
    actor_name: str = "",
    action: str = "",
    collection_id: int | None = None,
    document_id: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[AuditEvent]:
    events = AuditEvent.objects.all()
    if actor_name:
        # lower() = lower() in the database, not iexact's LIKE: the same match (the database folds case the same
        # way on both sides), and it uses the index on lower(actor_name).
        events = events.alias(actor_lower=Lower("actor_name")).filter(actor_lower=Lower(Value(actor_name)))
    if action:
        events = events.filter(action=action)
    if collection_id is not None:
        events = events.filter(collection_id_ref=collection_id)
    if document_id is not None:
        events = events.filter(document_id_ref=document_id)
    if since is not None:
        events = events.filter(created_at__gte=since)
    if until is not None:
        events = events.filter(created_at__lt=until)
    return events.order_by("-id")


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


def _csv_cell(value: object) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_PREFIXES) else text


def audit_csv_rows(events: QuerySet[AuditEvent]) -> Iterator[list[str]]:
    """Header, then one row per event, read in batches so a year of events streams in constant memory."""
    yield CSV_COLUMNS
    for event in events.iterator(chunk_size=2000):
        created = event.created_at.astimezone(UTC).isoformat(timespec="microseconds")
        yield [_csv_cell(v) for v in (
            event.pk, created, event.actor_id, event.actor_name, event.action, event.target_type,
            event.target_id, event.collection_id_ref, event.document_id_ref, event.client_address,
            event.outcome, json.dumps(audit_details_shown(event), sort_keys=True), event.prev_hash, event.hash,
            event.chain_version,
        )]
