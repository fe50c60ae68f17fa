"""The library: collections, their documents with live status, bulk upload, retry and delete."""

from __future__ import annotations

from dataclasses import asdict

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from docs_app.models import DocumentStatus
from docs_app.selectors import library as selectors
from docs_app.services.access import (
    Ability,
    collection_ability,
    collection_get,
    collections_readable,
    document_get,
)
from docs_app.services.documents import document_delete, document_retry
from docs_app.services.uploads import uploads_accept
from docs_app.web import ints, request_actor, wants_json

DOCUMENTS_PER_PAGE = 50


@login_required
@require_GET
def library(request: HttpRequest) -> HttpResponse:
    collections = selectors.collections_overview(collections=collections_readable(request.user))
    return render(request, "library/library.html", {"collections": collections,
                                                    "statuses": DocumentStatus.choices})


@login_required
@require_GET
def collection_detail(request: HttpRequest, pk: int) -> HttpResponse:
    collection = collection_get(request.user, pk, Ability.READ)
    role = collection_ability(request.user, collection) or Ability.READ
    status = request.GET.get("status", "")
    query = request.GET.get("q", "").strip()[:200]
    documents = selectors.collection_documents(collection=collection, status=status, query=query)
    page = Paginator(documents, DOCUMENTS_PER_PAGE).get_page(request.GET.get("page"))
    counts = selectors.collection_status_counts(collection=collection)
    advice = {row["id"]: row for row in selectors.document_status_rows(documents=page.object_list)}
    return render(request, "library/collection.html", {
        "collection": collection,
        "page": page,
        "rows": [(document, advice[document.pk]) for document in page.object_list],
        "status_counts": [(value, label, counts[value]) for value, label in DocumentStatus.choices],
        "statuses": [*DocumentStatus.choices, (selectors.REVIEW, selectors.REVIEW_LABEL)],
        "status": status,
        "query": query,
        "can_upload": role >= Ability.UPLOAD,
        "can_manage": role >= Ability.MANAGE,
    })


@login_required
@require_POST
def upload(request: HttpRequest, pk: int) -> HttpResponse:
    collection = collection_get(request.user, pk, Ability.UPLOAD)
    # "folder" is the directory picker; both inputs may be used in one submission.
    files = request.FILES.getlist("files") + request.FILES.getlist("folder")
    if not files:
        if wants_json(request):
            return JsonResponse({"error": "no file was sent"}, status=400)
        messages.error(request, "Choose at least one file to upload.")
        return redirect("collection", pk=collection.pk)
    outcomes = uploads_accept(collection=collection, files=files, actor=request_actor(request))
    queue_waiting = any(outcome.note for outcome in outcomes)
    if wants_json(request):
        return JsonResponse({"outcomes": [asdict(outcome) for outcome in outcomes], "queue_waiting": queue_waiting})
    return render(request, "library/upload_result.html", {"collection": collection, "outcomes": outcomes,
                                                          "queue_waiting": queue_waiting})


@login_required
@require_GET
def collection_status(request: HttpRequest, pk: int) -> JsonResponse:
    collection = collection_get(request.user, pk, Ability.READ)
    documents = selectors.collection_documents(collection=collection)
    # The page asks only for the rows it is watching: a collection of thousands must not be sent every 1.5 s.
    wanted = ints(request.GET.get("ids", "").split(","))
    if wanted:
        documents = documents.filter(pk__in=wanted[:DOCUMENTS_PER_PAGE * 4])
    return JsonResponse({
        "documents": selectors.document_status_rows(documents=documents),
        "counts": selectors.collection_status_counts(collection=collection),
    })


@login_required
@require_POST
def retry(request: HttpRequest, pk: int) -> HttpResponse:
    # Contributors may retry: it re-runs the ingestion of a file they could have uploaded themselves.
    document = document_get(request.user, pk, Ability.UPLOAD)
    if document.status != DocumentStatus.FAILED:
        messages.info(request, f"“{document.title}” has not failed; nothing to retry.")
    elif not selectors.failure_advice(document.error).retryable:
        messages.error(request, f"Retrying “{document.title}” would fail the same way: "
                                f"{selectors.failure_advice(document.error).hint}")
    else:
        document_retry(document=document, actor=request_actor(request))
        messages.success(request, f"“{document.title}” is queued again.")
    return redirect("collection", pk=document.collection_id)


@login_required
@require_http_methods(["GET", "POST"])
def delete(request: HttpRequest, pk: int) -> HttpResponse:
    """GET asks for confirmation (works without JavaScript), POST erases."""
    document = document_get(request.user, pk, Ability.MANAGE)
    if request.method == "GET":
        return render(request, "library/delete_confirm.html", {"document": document})
    collection_id, title = document.collection_id, document.title
    document_delete(document=document, actor=request_actor(request))
    messages.success(request, f"“{title}” was deleted, with its pages, passages and index entries.")
    return redirect("collection", pk=collection_id)
