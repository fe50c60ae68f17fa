"""Refuse oversized request bodies before anything reads them (issue 10, item 7).

Django reads a form body the first time something touches `request.POST`: CsrfViewMiddleware does, before the
view runs, so a 400 MB multipart POST to /login/ with a made-up CSRF cookie used to be spooled to /tmp in full
before the 403. These checks look only at the declared Content-Length (a chunked body without one is read as
empty by Django) and answer 413 without reading a byte of the body.

- `RequestBodyLimitMiddleware` runs first: the upload route may carry up to UPLOAD_REQUEST_MAX_BYTES, every
  other route up to REQUEST_MAX_BODY_BYTES.
- `AnonymousBodyLimitMiddleware` runs right after authentication and still before CSRF: an anonymous client
  gets no more than the small limit on any route, the upload route included.

The TLS proxy in front should refuse the same sizes first (README, "Deploying behind the TLS proxy").
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, resolve

UPLOAD_URL_NAME = "upload"


def _declared_length(request: HttpRequest) -> int | None:
    raw = str(request.META.get("CONTENT_LENGTH") or "0").strip()
    return int(raw) if raw.isascii() and raw.isdigit() else None


def _is_upload(request: HttpRequest) -> bool:
    try:
        return resolve(request.path_info).url_name == UPLOAD_URL_NAME
    except Resolver404:
        return False


def _too_large(limit: int) -> HttpResponse:
    return HttpResponse(f"Request body too large (limit {limit} bytes).", status=413,
                        content_type="text/plain; charset=utf-8")


class RequestBodyLimitMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        length = _declared_length(request)
        if length is None:
            return HttpResponse("Invalid Content-Length.", status=400, content_type="text/plain; charset=utf-8")
        if length > settings.REQUEST_MAX_BODY_BYTES:
            limit = settings.UPLOAD_REQUEST_MAX_BYTES if _is_upload(request) else settings.REQUEST_MAX_BODY_BYTES
            if length > limit:
                return _too_large(limit)
        return self.get_response(request)


class AnonymousBodyLimitMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        length = _declared_length(request) or 0
        if length > settings.REQUEST_MAX_BODY_BYTES and not request.user.is_authenticated:
            return _too_large(settings.REQUEST_MAX_BODY_BYTES)
        return self.get_response(request)
