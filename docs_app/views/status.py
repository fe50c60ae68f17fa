"""The system status page for administrators."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from docs_app.selectors.system import system_status_get
from docs_app.services.model_status import STANDIN_NOTE


@login_required
@require_GET
def status_view(request: HttpRequest) -> HttpResponse:
    if not request.user.is_staff:
        raise PermissionDenied("Only administrators see the system status")
    return render(request, "status.html", {"status": system_status_get(), "standin_note": STANDIN_NOTE})
