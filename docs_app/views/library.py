"""The library: collections, their documents with live status, bulk upload, retry and delete."""

from __future__ import annotations

from dataclasses import asdict

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from docs_app.models import DocumentStatus
from docs_app.selectors import library as selectors
from docs_app.selectors import uploads
from docs_app.services.access import (
    Ability,
    collection_ability,
    collection_get,
    collections_readable,
    document_get,
    user_reviews_audit_only,
)
from docs_app.services.documents import document_delete, document_retry
from docs_app.services.uploads import upload_batch_create, uploads_accept
from docs_app.storage import StoreError
from docs_app.web import int_or_none, ints, request_actor, wants_json

DOCUMENTS_PER_PAGE = 50


@login_required
@require_GET
def library(request: HttpRequest) -> HttpResponse:
    if user_reviews_audit_only(request.user):
        # Where an auditor lands after login: the log is all they may read.
        return redirect("audit")
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
        "batches": uploads.upload_batches_recent(collection=collection),
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
    # The browser sends a batch's files one request each, naming the batch it opened; only its own.
    batch = uploads.upload_batch_of(collection=collection, batch_id=int_or_none(request.POST.get("batch")) or 0)
    if batch is not None and batch.created_by_id != request.user.pk:
        batch = None
    batch, outcomes = uploads_accept(collection=collection, files=files, actor=request_actor(request), batch=batch)
    queue_waiting = any(outcome.note for outcome in outcomes)
    batch_url = reverse("upload_batch", args=[collection.pk, batch.pk])
    if wants_json(request):
        return JsonResponse({"outcomes": [asdict(outcome) for outcome in outcomes], "queue_waiting": queue_waiting,
                             "batch": {"id": batch.pk, "url": batch_url}})
    return render(request, "library/upload_result.html", {"collection": collection, "outcomes": outcomes,
                                                          "queue_waiting": queue_waiting, "batch_url": batch_url})


@login_required
@require_POST
def upload_batch_new(request: HttpRequest, pk: int) -> JsonResponse:
    """Opens an upload report before the browser sends the files (JSON); the names it refused to send by their
    extension are its first lines."""
    collection = collection_get(request.user, pk, Ability.UPLOAD)
    batch = upload_batch_create(collection=collection, actor=request_actor(request),
                                not_sent=request.POST.getlist("not_sent")[:settings.UPLOAD_MAX_FILES])
    return JsonResponse({"id": batch.pk, "url": reverse("upload_batch", args=[collection.pk, batch.pk])},
                        status=201)


@login_required
@require_GET
def upload_batch(request: HttpRequest, pk: int, batch_id: int) -> HttpResponse:
    """An upload's report, reopened: every file, problems first, queued files with their status now."""
    collection = collection_get(request.user, pk, Ability.READ)
    batch = uploads.upload_batch_of(collection=collection, batch_id=batch_id)
    if batch is None:
        raise Http404
    lines = uploads.upload_batch_lines(batch=batch)
    return render(request, "library/upload_batch.html", {
        "collection": collection, "batch": batch, "lines": lines,
        "problems": sum(1 for line in lines if line.problem),
    })


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
    try:
        document_delete(document=document, actor=request_actor(request))
    except StoreError as exc:
        messages.error(request, f"“{title}” was not deleted: {exc.reason}. Nothing was removed; try again.")
        return redirect("collection", pk=collection_id)
    messages.success(request, f"“{title}” was deleted, with its pages, passages and index entries.")
    return redirect("collection", pk=collection_id)
