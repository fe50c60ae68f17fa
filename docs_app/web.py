"""What views, the admin and the login signal receivers share about HTTP: the actor of a request and what the
client asked for. Services never see a request; they get the Actor built here."""

from __future__ import annotations

import re

from django.http import HttpRequest

from docs_app.services.access import user_reviews_audit_only
from docs_app.services.actor import ADDRESS_MAX, Actor, AnyUser


def client_address(request: HttpRequest | None) -> str:
    """Also django-axes' idea of the client (AXES_CLIENT_IP_CALLABLE), so lockouts and the log agree."""
    # REMOTE_ADDR only: X-Forwarded-For is client-controlled unless a trusted proxy rewrites it.
    if request is None:
        return ""
    return str(request.META.get("REMOTE_ADDR", ""))[:ADDRESS_MAX]


def request_actor(request: HttpRequest | None, user: AnyUser | None = None) -> Actor:
    """The request's user (or `user`, for signals that name the account themselves) and address."""
    if user is None and request is not None:
        user = getattr(request, "user", None)  # absent on a request that skipped the auth middleware
    return Actor(user=user, address=client_address(request))


# An id or page number from the client is ASCII 0-9 and nothing else: `str.isdigit()` accepts every Unicode digit
# (superscripts, Arabic-Indic, mathematical) and `int()` then rejects some of them (a 500) or reads others as
# ASCII digits (issue 10, item 11).
_ID = re.compile(r"[0-9]{1,18}")


def int_or_none(raw: str | None) -> int | None:
    """The non-negative integer `raw` spells in ASCII digits (surrounding spaces allowed), else None."""
    text = (raw or "").strip()
    return int(text) if _ID.fullmatch(text) else None


def ints(values: list[str]) -> list[int]:
    """The values that are strict integers, in order; the rest are ignored."""
    return [n for n in (int_or_none(v) for v in values) if n is not None]


def wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def navigation(request: HttpRequest) -> dict[str, object]:
    """Template context: whether the person only reviews the audit log (the menu then leaves out Library,
    Search and Ask, which would be empty for them). Computed when a template asks."""
    user = getattr(request, "user", None)
    return {"audit_only": lambda: user is not None and user_reviews_audit_only(user)}
