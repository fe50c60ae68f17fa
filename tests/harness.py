"""What many tests need and no test should invent again: users with one password, signed-in clients, the audit
events a block wrote, and the real upload-and-wait path. The fixtures in tests/conftest.py wrap these; the
shared data lives in tests/data.py (no Django there), re-exported here for convenience."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.contrib.auth.models import Group, User
from django.test import Client
from django.urls import reverse

from docs_app.models import AuditEvent, Collection, Document, DocumentStatus
from docs_app.services.actor import SYSTEM, Actor
from docs_app.services.documents import document_upload

PASSWORD = "correct horse battery staple"

# What the fixtures in tests/conftest.py hand a test.
UserFactory = Callable[..., User]
CollectionFactory = Callable[..., Collection]
DocumentFactory = Callable[..., Document]


def make_user(name: str, *groups: Group, **fields: object) -> User:
    """An account with the harness password, in the given groups (`is_staff=True` and the like as fields)."""
    user = User.objects.create_user(username=name, password=PASSWORD, **fields)  # type: ignore[arg-type]
    user.groups.add(*groups)
    return user


def logged_in(user: User) -> Client:
    """A test client signed in as the user."""
    client = Client()
    client.force_login(user)
    return client


@contextmanager
def new_events() -> Iterator[list[AuditEvent]]:
    """Collects the audit events written inside the block."""
    last = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
    found: list[AuditEvent] = []
    yield found
    found.extend(AuditEvent.objects.filter(id__gt=last).order_by("id"))


def wait_until(predicate: Callable[[], bool], *, timeout_s: float = 180, every_s: float = 0.5,
               what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(every_s)
    logs = Path(os.environ.get("DOCS_TEST_RUN_DIR", "")) / "logs"
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}; worker logs in {logs}")


def upload(collection: Collection, path: Path, *, actor: Actor = SYSTEM, name: str = "") -> int:
    """Store one file through the real upload service; it must be queued. Returns the document id."""
    with path.open("rb") as source:
        outcome = document_upload(collection=collection, name=name or path.name, source=source, actor=actor)
    assert outcome.status == "queued", outcome
    assert outcome.document_id is not None
    return outcome.document_id


def wait_terminal(document_id: int, *, timeout_s: float = 300) -> Document:
    """The document once the worker is done with it (READY or FAILED)."""
    wait_until(lambda: Document.objects.get(pk=document_id).is_terminal, timeout_s=timeout_s,
               what=f"document {document_id} to finish")
    return Document.objects.get(pk=document_id)


def wait_ready(document_id: int) -> Document:
    """The document once the worker is done with it, which must have made it READY."""
    document = wait_terminal(document_id)
    assert document.status == DocumentStatus.READY, document.error
    return document


def ingest(collection: Collection, path: Path, *, actor: Actor = SYSTEM) -> Document:
    """Upload, wait for the worker, and insist on READY: what a test that needs an indexed document wants."""
    return wait_ready(upload(collection, path, actor=actor))


# --- Asking, and reading an answer's Server-Sent Events -------------------------------------------------------

@dataclass(frozen=True)
class Event:
    id: str
    event: str
    data: str


def ask(client: Client, question: str) -> dict[str, Any]:
    """Start a conversation through the ask view (JSON): answer_id, stream_url, conversation_url."""
    response = client.post(reverse("ask"), {"question": question}, HTTP_ACCEPT="application/json")
    assert response.status_code == 201, response.content
    return dict(response.json())


def stream_events(client: Client, url: str, last_event_id: str = "", *, queued: bool = False) -> list[Event]:
    """Every event the answer stream relays (after `last_event_id`), read to its end; `queued` events (the answer's
    place while it waits for a worker) only when asked for."""
    headers = {"HTTP_LAST_EVENT_ID": last_event_id} if last_event_id else {}
    response = client.get(url, **headers)  # type: ignore[arg-type]
    assert response.status_code == 200
    assert response["Content-Type"] == "text/event-stream"
    body = b"".join(response.streaming_content).decode()  # type: ignore[attr-defined]
    events = []
    for block in body.split("\n\n"):
        fields: dict[str, list[str]] = {}
        for line in block.split("\n"):
            if line and not line.startswith(":"):
                name, _, value = line.partition(": ")
                fields.setdefault(name, []).append(value)
        if "event" in fields and (queued or fields["event"][0] != "queued"):
            events.append(Event(fields.get("id", [""])[0], fields["event"][0], "\n".join(fields.get("data", []))))
    return events
