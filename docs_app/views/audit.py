"""Audit review for admins and auditors: filter, page, export, and see whether the chain holds.

Access is the `docs_app.review_audit` permission (the Auditors group holds it), not a collection grant:
an auditor reads who did what without reading any document. The log holds IDs and names, never content.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from typing import Any

from django import forms
from django.conf import settings
from django.contrib.auth.decorators import login_required, permission_required
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from docs_app.models import AuditEvent
from docs_app.selectors.audit import audit_csv_rows, audit_details_shown, audit_events_filter
from docs_app.services.audit import ALL_ACTIONS, Action, audit_record
from docs_app.services.audit_verification import audit_verify_incremental
from docs_app.web import request_actor

PAGE_SIZE = 50


class AuditFilterForm(forms.Form):
    user = forms.CharField(required=False, max_length=150, label="User name")
    action = forms.ChoiceField(required=False, choices=[("", "Any action"), *[(a, a) for a in ALL_ACTIONS]])
    collection = forms.IntegerField(required=False, min_value=1, label="Collection ID")
    document = forms.IntegerField(required=False, min_value=1, label="Document ID")
    since = forms.DateField(required=False, label="From (UTC)",
                            widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, label="To (UTC, inclusive)",
                            widget=forms.DateInput(attrs={"type": "date"}))

    def filters(self) -> dict[str, Any]:
        data = self.cleaned_data if self.is_valid() else {}
        since, until = data.get("since"), data.get("until")
        return {
            "actor_name": data.get("user") or "",
            "action": data.get("action") or "",
            "collection_id": data.get("collection"),
            "document_id": data.get("document"),
            "since": datetime.combine(since, time.min, tzinfo=UTC) if since else None,
            "until": datetime.combine(until + timedelta(days=1), time.min, tzinfo=UTC) if until else None,
        }


def _filtered(request: HttpRequest) -> tuple[AuditFilterForm, dict[str, Any], QuerySet[AuditEvent]]:
    form = AuditFilterForm(request.GET)
    filters = form.filters()
    return form, filters, audit_events_filter(**filters)


@require_GET
@login_required
@permission_required("docs_app.review_audit", raise_exception=True)
def audit_list(request: HttpRequest) -> HttpResponse:
    form, _, events = _filtered(request)
    page = Paginator(events, PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    # Verified incrementally within a time budget: the page answers at once at a million events.
    chain = audit_verify_incremental(budget_s=settings.AUDIT_PAGE_VERIFY_MS / 1000)
    return render(request, "audit/list.html", {
        "form": form, "page": page, "chain": chain, "query": query.urlencode(),
        "rows": [(event, audit_details_shown(event)) for event in page],
    })


class _Echo:
    def write(self, value: str) -> str:
        return value


@require_GET
@login_required
@permission_required("docs_app.review_audit", raise_exception=True)
def audit_export(request: HttpRequest) -> StreamingHttpResponse:
    _, filters, events = _filtered(request)
    serialisable = {k: v.isoformat() if isinstance(v, datetime) else v for k, v in filters.items() if v}
    export = audit_record(action=Action.AUDIT_EXPORT, actor=request_actor(request),
                          target_type="audit", details={"filters": serialisable, "rows": events.count()})
    # The export is a snapshot up to (not including) its own event: the row count recorded above holds.
    snapshot = events.filter(id__lt=export.pk)
    writer = csv.writer(_Echo())

    def lines() -> Iterator[str]:
        for row in audit_csv_rows(snapshot):
            yield writer.writerow(row)

    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    return StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="audit-{stamp}.csv"',
        "Cache-Control": "no-store",
    })
