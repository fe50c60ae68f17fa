"""What views, the admin and the login signal receivers share about HTTP: the actor of a request and what the
client asked for. Services never see a request; they get the Actor built here."""

from __future__ import annotations

from django.http import HttpRequest

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


def wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")
