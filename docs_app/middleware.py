"""Headers Django 5.2 does not set by itself; the request's actor for code Django calls without one; Unreadable as
404."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse

from docs_app.services.access import Unreadable
from docs_app.services.actor import acting_as
from docs_app.web import request_actor


class SecurityHeadersMiddleware:
    """Adds the self-only Content-Security-Policy and turns off browser features the app never uses."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", settings.CONTENT_SECURITY_POLICY)
        response.headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
        return response


class UnreadableMiddleware:
    """services.access raises Unreadable for what is absent or not the user's to read; the web answers it with
    the same 404 as a page that does not exist. Services stay free of HTTP."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, Unreadable):
            raise Http404(str(exception)) from exception
        return None


class ActingMiddleware:
    """Placed after AuthenticationMiddleware: the request's actor for the duration of the request
    (services.actor.actor_current), so membership changes the stock admin forms make are audited with who made
    them (docs_app.membership_audit)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        with acting_as(request_actor(request)):
            return self.get_response(request)
