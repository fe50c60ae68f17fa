from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse_lazy
from django.views.decorators.http import require_POST

from docs_app.services.audit import Action, audit_record
from docs_app.web import request_actor


class PasswordChangeView(auth_views.PasswordChangeView):
    """People change their own password (Django's validators apply); the change is audited."""

    template_name = "password_change.html"
    success_url = reverse_lazy("library")

    def form_valid(self, form: Any) -> HttpResponse:
        response = super().form_valid(form)
        audit_record(action=Action.PASSWORD_CHANGE, actor=request_actor(self.request),
                     target_type="user", target_id=self.request.user.pk)
        messages.success(self.request, "Your password has been changed.")
        return response


class LoginView(auth_views.LoginView):
    template_name = "login.html"
    redirect_authenticated_user = True


@require_POST
def logout_view(request: HttpRequest) -> HttpResponse:
    logout(request)
    return redirect("login")
