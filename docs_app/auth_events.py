"""Login, logout and failed logins into the audit log (connected in DocsAppConfig.ready).

Django hands `user_login_failed` the credentials with the password already masked; we still record only the
user name, and only when it names a real account: people type their password into the user-name field, and
that text must not land in a permanent, append-only log.

Failures for names that are no account cost an anonymous client nothing, and each used to add a row to a log
that can never shrink. They are aggregated (issue 10, item 10): at most one event per
LOGIN_UNKNOWN_EVENT_EVERY_S, which carries how many such failures went unrecorded since the previous one. The
counter lives in Redis, shared by every web process; if Redis is unreachable the failure is recorded.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.http import HttpRequest

from docs_app.services.actor import Actor
from docs_app.services.audit import Action, audit_record
from docs_app.services.streams import redis_client
from docs_app.web import client_address, request_actor

log = logging.getLogger(__name__)
UNKNOWN_WINDOW_KEY = "docs:auth:unknown-failures:window"
UNKNOWN_UNRECORDED_KEY = "docs:auth:unknown-failures:unrecorded"


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
    unrecorded = 0
    if account is None:
        admitted = _unknown_failure_admit()
        if admitted is None:
            return
        unrecorded = admitted
    # axes' own receiver runs first (its app is installed before ours) and marks a request it refused.
    locked = bool(getattr(request, "axes_locked_out", False))
    audit_record(
        action=Action.LOGIN_FAILED,
        actor=Actor(address=client_address(request)),  # nobody signed in: the address alone
        actor_name=account.get_username() if account is not None else "",
        target_type="user",
        target_id=account.pk if account is not None else "",
        outcome="locked_out" if locked else "failed",
        details={} if account is not None else {"unknown_account": True,
                                                **({"unrecorded_before": unrecorded} if unrecorded else {})},
    )


def _unknown_failure_admit() -> int | None:
    """None: count this failure without recording it. Otherwise record it, with the number of failures counted
    and not recorded since the previous recorded one."""
    every_s = settings.LOGIN_UNKNOWN_EVENT_EVERY_S
    if every_s <= 0:
        return 0
    try:
        client = redis_client()
        if client.set(UNKNOWN_WINDOW_KEY, "1", nx=True, ex=every_s):
            return int(client.getdel(UNKNOWN_UNRECORDED_KEY) or 0)
        client.incr(UNKNOWN_UNRECORDED_KEY)
        return None
    except redis.exceptions.RedisError:
        log.warning("Redis unreachable: recording a failed login for an unknown name", exc_info=True)
        return 0
