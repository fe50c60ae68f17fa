"""Who does something, and from where: the one value services take instead of an HTTP request.

Views build it from the request (docs_app.web.request_actor); workers build it from what the request left in
the DB (a question keeps its asker's address); commands and the system act as `SYSTEM`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TypeAlias

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User

AnyUser: TypeAlias = AbstractBaseUser | AnonymousUser

# The length of AuditEvent.client_address and Question.client_address.
ADDRESS_MAX = 64


@dataclass(frozen=True)
class Actor:
    user: AnyUser | None = None
    address: str = ""  # the client's address as the server saw it; empty when no request is behind the act

    def __post_init__(self) -> None:
        object.__setattr__(self, "address", self.address[:ADDRESS_MAX])

    @property
    def account(self) -> User | None:
        """The signed-in account, or None for the system, an anonymous or an inactive session."""
        user = self.user
        return user if isinstance(user, User) and user.is_authenticated else None


SYSTEM = Actor()


# Who is acting in this request, for code that Django calls without an actor: the signal receivers of
# docs_app.membership_audit record changes made by the stock admin forms, which know nothing of the request.
# docs_app.middleware.ActingMiddleware sets it for each request; outside one (a shell, a command) it is None.
_acting: ContextVar[Actor | None] = ContextVar("docs_acting", default=None)


def actor_current() -> Actor | None:
    return _acting.get()


@contextmanager
def acting_as(actor: Actor) -> Iterator[None]:
    token = _acting.set(actor)
    try:
        yield
    finally:
        _acting.reset(token)
