"""Login, logout and failed logins into the audit log (connected in DocsAppConfig.ready).

Django hands `user_login_failed` the credentials with the password already masked; we still record only the
user name, and only when it names a real account: people type their password into the user-name field, and
that text must not land in a permanent, append-only log.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.http import HttpRequest

from docs_app.services.actor import Actor
from docs_app.services.audit import Action, audit_record
from docs_app.web import client_address, request_actor


def on_user_logged_in(sender: Any, request: HttpRequest | None, user: AbstractBaseUser,
                      **kwargs: Any) -> None:
    audit_record(action=Action.LOGIN, actor=request_actor(request, user), target_type="user", target_id=user.pk)


def on_user_logged_out(sender: Any, request: HttpRequest | None, user: AbstractBaseUser | None,
                       **kwargs: Any) -> None:
    if user is None:
        return  # a logout without a session logs nobody out
    reason = getattr(request, "docs_logout_reason", "user")
    audit_record(action=Action.LOGOUT, actor=request_actor(request, user), target_type="user", target_id=user.pk,
                 details={"reason": reason})


def on_user_login_failed(sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None,
                         **kwargs: Any) -> None:
    users = get_user_model()
    attempted = str(credentials.get(users.USERNAME_FIELD) or credentials.get("username") or "")
    account = (users._default_manager.filter(**{users.USERNAME_FIELD: attempted}).first()
               if attempted else None)
    # axes' own receiver runs first (its app is installed before ours) and marks a request it refused.
    locked = bool(getattr(request, "axes_locked_out", False))
    audit_record(
        action=Action.LOGIN_FAILED,
        actor=Actor(address=client_address(request)),  # nobody signed in: the address alone
        actor_name=account.get_username() if account is not None else "",
        target_type="user",
        target_id=account.pk if account is not None else "",
        outcome="locked_out" if locked else "failed",
        details={} if account is not None else {"unknown_account": True},
    )
