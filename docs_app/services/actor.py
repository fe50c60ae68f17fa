"""Who does something, and from where: the one value services take instead of an HTTP request.

Views build it from the request (docs_app.web.request_actor); workers build it from what the request left in
the DB (a question keeps its asker's address); commands and the system act as `SYSTEM`.
"""

from __future__ import annotations

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
