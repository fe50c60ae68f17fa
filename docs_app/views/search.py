"""Search the contents of every collection a person may read."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from docs_app.selectors.search import passages_search
from docs_app.services.access import collections_readable
from docs_app.services.audit import Action, audit_record
from docs_app.web import request_actor

QUERY_MAX_CHARS = 300


@login_required
@require_GET
def search(request: HttpRequest) -> HttpResponse:
    text = request.GET.get("q", "").strip()[:QUERY_MAX_CHARS]
    collections = collections_readable(request.user).order_by("name")
    chosen = request.GET.get("collection", "")
    collection_ids = [int(chosen)] if chosen.isascii() and chosen.isdigit() else None
    hits = passages_search(user=request.user, text=text, collection_ids=collection_ids) if text else []
    if text:
        # What a person looked for in the documents is part of the trail, like what they asked.
        audit_record(action=Action.SEARCH, actor=request_actor(request), target_type="search", target_id="",
                     details={"query": text, "collection_id": collection_ids[0] if collection_ids else None,
                              "hits": len(hits), "chunks": [hit.chunk_id for hit in hits[:20]]})
    return render(request, "search.html", {"query": text, "hits": hits, "collections": collections,
                                           "chosen": collection_ids[0] if collection_ids else None})
