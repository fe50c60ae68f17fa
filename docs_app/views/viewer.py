"""The document viewer: a server-rendered page image with the cited passage highlighted, the page's text,
and the original file for those whose role allows taking a copy."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.views.decorators.http import require_GET

from docs_app.models import Chunk, Document, DocumentStatus
from docs_app.selectors.viewer import chunk_of_document, document_review_pages, page_origin, page_text_segments
from docs_app.services.access import Ability, collection_ability, document_get
from docs_app.services.audit import Action, audit_record
from docs_app.services.pages import PageRenderError, page_render
from docs_app.storage import stored_file_open
from docs_app.web import int_or_none, request_actor

# Confidential pages: the browser may show them, no cache along the way may keep them.
_NO_STORE = "private, no-store"


def _int_param(request: HttpRequest, name: str) -> int | None:
    return int_or_none(request.GET.get(name))


def _cited_chunk(request: HttpRequest, document: Document) -> Chunk | None:
    return chunk_of_document(document=document, chunk_id=_int_param(request, "chunk"))


@login_required
@require_GET
def document_view(request: HttpRequest, pk: int) -> HttpResponse:
    document = document_get(request.user, pk, Ability.READ)
    role = collection_ability(request.user, document.collection) or Ability.READ
    context: dict[str, object] = {"document": document, "can_download": role >= Ability.UPLOAD}
    if document.status != DocumentStatus.READY or not document.page_count:
        return render(request, "viewer/document.html", context)
    chunk = _cited_chunk(request, document)
    requested = _int_param(request, "page")
    page = requested if requested is not None else (chunk.page if chunk is not None else 1)
    page = min(max(page, 1), document.page_count)
    audit_record(action=Action.PAGE_VIEW, actor=request_actor(request), target_type="document",
                 target_id=document.pk, collection_id=document.collection_id, document_id=document.pk,
                 details={"page": page, **({"chunk": chunk.pk} if chunk is not None else {})})
    cited_here = chunk is not None and chunk.page == page
    context.update({
        "page": page,
        "chunk": chunk,
        "cited_here": cited_here,
        "segments": page_text_segments(document=document, page=page, cited=chunk),
        "origin": page_origin(document=document, page=page),
        "review_pages": document_review_pages(document=document),
        "previous_page": page - 1 if page > 1 else None,
        "next_page": page + 1 if page < document.page_count else None,
    })
    return render(request, "viewer/document.html", context)


@login_required
@require_GET
def page_image(request: HttpRequest, pk: int, page: int) -> HttpResponseBase:
    # Not audited: the viewer page that shows this image already recorded the page view.
    document = document_get(request.user, pk, Ability.READ)
    if document.status != DocumentStatus.READY or not 1 <= page <= (document.page_count or 0):
        raise Http404("No such page")
    try:
        path = page_render(document=document, page=page, chunk=_cited_chunk(request, document))
    except PageRenderError as exc:
        return HttpResponse(f"This page could not be rendered: {exc.reason}", status=422,
                            content_type="text/plain; charset=utf-8")
    response = FileResponse(path.open("rb"), content_type="image/png")
    response["Cache-Control"] = _NO_STORE
    return response


@login_required
@require_GET
def download(request: HttpRequest, pk: int) -> HttpResponseBase:
    # Viewers read in the viewer; taking a copy of the file needs a contributor or manager role.
    document = document_get(request.user, pk, Ability.UPLOAD)
    # Streamed from the store in blocks (an object store's body as it arrives), never read whole into memory.
    source = stored_file_open(document.stored_name)
    if source is None:
        raise Http404("The stored file is missing")
    audit_record(action=Action.DOWNLOAD, actor=request_actor(request), target_type="document",
                 target_id=document.pk, collection_id=document.collection_id, document_id=document.pk)
    response = FileResponse(source, as_attachment=True, filename=document.original_name,
                            content_type="application/pdf")
    if not response.has_header("Content-Length"):  # a stream that cannot seek; the size was counted at upload
        response["Content-Length"] = str(document.size_bytes)
    response["Cache-Control"] = _NO_STORE
    return response
