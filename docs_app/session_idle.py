"""Session idle timeout that counts only what a person does.

An open tab polls the collection status and holds the answer stream open by itself; if those requests kept the
session alive, a workstation left unlocked overnight would stay logged in. So the time of the last *real*
request is kept in the session, checked before every request (passive ones included), and refreshed only by
real ones. Refreshing also re-saves the session, which pushes its stored expiry (SESSION_COOKIE_AGE) forward.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, resolve

LAST_ACTIVITY_KEY = "docs_last_activity"
# Writing the session on every page-image request would cost a DB write each; a few seconds of slack in a
# 30-minute timeout is invisible.
_REFRESH_EVERY_S = 10
IDLE_LOGOUT_REASON = "idle"


def _is_passive(request: HttpRequest) -> bool:
    try:
        match = resolve(request.path_info)
    except Resolver404:
        return False
    return match.url_name in settings.SESSION_IDLE_PASSIVE_URL_NAMES


class SessionIdleTimeoutMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        now = time.time()
        if request.user.is_authenticated:
            last = request.session.get(LAST_ACTIVITY_KEY)
            if isinstance(last, int | float) and now - last > settings.SESSION_IDLE_TIMEOUT_S:
                # Read by docs_app.auth_events so the audit log tells an idle logout from a chosen one.
                request.docs_logout_reason = IDLE_LOGOUT_REASON  # type: ignore[attr-defined]
                logout(request)
        passive = _is_passive(request)
        response = self.get_response(request)
        if request.user.is_authenticated and not passive:
            last = request.session.get(LAST_ACTIVITY_KEY)
            if not isinstance(last, int | float) or now - last >= _REFRESH_EVERY_S:
                request.session[LAST_ACTIVITY_KEY] = now
        return response
