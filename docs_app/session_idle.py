"""Session idle timeout that counts only what a person does.

An open tab polls the collection status and holds the answer stream open by itself; if those requests kept the
session alive, a workstation left unlocked overnight would stay logged in. So the time of the last *real*
request is kept in the session, checked before every request (passive ones included), and refreshed only by
real ones. Refreshing also re-saves the session, which pushes its stored expiry (SESSION_COOKIE_AGE) forward.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import Resolver404, resolve, reverse
from django.utils.http import url_has_allowed_host_and_scheme

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


def _back_to(request: HttpRequest) -> str:
    """The page a form was sent from (same site only), else the library."""
    referer = request.headers.get("Referer", "")
    if referer and url_has_allowed_host_and_scheme(referer, allowed_hosts={request.get_host()},
                                                   require_https=request.is_secure()):
        parts = urlsplit(referer)
        return parts.path + (f"?{parts.query}" if parts.query else "")
    return reverse("library")


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
                if not _is_passive(request):
                    minutes = settings.SESSION_IDLE_TIMEOUT_S // 60
                    messages.info(request, f"You were signed out after {minutes} minutes without activity. "
                                           "Sign in again to carry on; a question you were typing is kept.")
                if request.method not in ("GET", "HEAD"):
                    # A form sent after the timeout: after signing in, go back to the page it was sent from,
                    # not to its POST-only address (which would answer 405).
                    return HttpResponseRedirect(f"{reverse('login')}?{urlencode({'next': _back_to(request)})}")
        passive = _is_passive(request)
        response = self.get_response(request)
        if request.user.is_authenticated and not passive:
            last = request.session.get(LAST_ACTIVITY_KEY)
            if not isinstance(last, int | float) or now - last >= _REFRESH_EVERY_S:
                request.session[LAST_ACTIVITY_KEY] = now
        return response
