"""Who is acting in this request, for code that Django calls without one (signal receivers).

The membership audit (docs_app.membership_audit) records changes made by the stock admin forms through
m2m_changed, which knows nothing of the request: this middleware keeps the request's user and address in a
context variable for the duration of the request. Outside a request (a shell, a command) there is none.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.http import HttpRequest, HttpResponse

from docs_app.services.audit import client_address

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser


@dataclass(frozen=True)
class RequestActor:
    user: AbstractBaseUser | AnonymousUser
    address: str


_current: ContextVar[RequestActor | None] = ContextVar("docs_request_actor", default=None)


def request_actor() -> RequestActor | None:
    return _current.get()


class RequestActorMiddleware:
    """Placed after AuthenticationMiddleware."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        token = _current.set(RequestActor(user=request.user, address=client_address(request)))
        try:
            return self.get_response(request)
        finally:
            _current.reset(token)
