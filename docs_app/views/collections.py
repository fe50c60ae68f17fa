"""Creating a collection and managing who may read it, in the app rather than Django admin (issue 4): a
collection's managers grant roles and put up ethical walls. The rules and the audit live in services.grants;
these views only resolve names to users and groups and look every grant up within the collection in the URL.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from docs_app.models import Collection, Grant, Role
from docs_app.selectors.people import people_pickable, user_named
from docs_app.services.access import Ability, collection_ability, collection_get
from docs_app.services.grants import (
    GRANTABLE_ROLES,
    collection_create,
    grant_revoke,
    grant_set,
    wall_remove,
    wall_set,
)
from docs_app.web import request_actor

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User


def collection_create_allowed(user: User | AnonymousUser) -> bool:
    # templates/library/library.html shows its "New collection" link on the same condition.
    return user.is_staff or user.has_perm("docs_app.add_collection")


class CollectionForm(forms.Form):
    name = forms.CharField(max_length=Collection._meta.get_field("name").max_length)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))

    def clean_name(self) -> str:
        name: str = self.cleaned_data["name"]
        # Case-insensitive although the DB constraint is not: "Smith v Jones" and "smith v jones" side by side
        # invite filing a document under the wrong matter.
        if Collection.objects.filter(name__iexact=name).exists():
            raise ValidationError(f"A collection named “{name}” already exists. Choose another name.")
        return name


class PrincipalForm(forms.Form):
    """One user or one group, named as people know them; resolved to the row in `clean`."""

    kind = forms.ChoiceField(label="User or group", choices=[("user", "User"), ("group", "Group")])
    name = forms.CharField(label="Name", max_length=150,
                           help_text="Start typing a name and pick from the list: a user name, a person's full "
                                     "name or a group name.",
                           widget=forms.TextInput(attrs={"list": "people", "autocomplete": "off"}))

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        kind, name = data.get("kind"), data.get("name")
        if not name:
            return data
        if kind == "user":
            data["user"] = user_named(name)
            if data["user"] is None:
                self.add_error("name", f"No user is called “{name}”. Pick one from the list, or type their user "
                                       "name or full name.")
        else:
            data["group"] = Group.objects.filter(name=name.strip().removesuffix("(group)").strip()).first()
            if data["group"] is None:
                self.add_error("name", f"No group is called “{name}”. Pick one from the list.")
        return data

    def principal(self) -> dict[str, Any]:
        return {"user": self.cleaned_data.get("user"), "group": self.cleaned_data.get("group")}


class GrantForm(PrincipalForm):
    role = forms.ChoiceField(choices=[(role.value, role.label) for role in GRANTABLE_ROLES])


class GrantIdForm(forms.Form):
    grant = forms.IntegerField(min_value=1)


@login_required
@require_http_methods(["GET", "POST"])
def collection_new(request: HttpRequest) -> HttpResponse:
    if not collection_create_allowed(request.user):
        raise PermissionDenied("Creating collections needs the permission to add collections")
    form = CollectionForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            collection = collection_create(name=form.cleaned_data["name"],
                                           description=form.cleaned_data["description"],
                                           actor=request_actor(request))
        except IntegrityError:  # the same name created between our check and the insert
            form.add_error("name", "A collection with this name was just created. Choose another name.")
        else:
            messages.success(request, f"“{collection.name}” is created and you manage it: "
                                      "upload documents, then give people access.")
            return redirect("collection", pk=collection.pk)
    return render(request, "library/collection_new.html", {"form": form})


def _principal_name(grant: Grant) -> str:
    return grant.user.get_username() if grant.user is not None else str(grant.group)


def _access_page(request: HttpRequest, collection: Collection, *, grant_form: GrantForm | None = None,
                 wall_form: PrincipalForm | None = None) -> HttpResponse:
    rows = [(grant, _principal_name(grant))
            for grant in collection.grants.select_related("user", "group").order_by("group__name", "user__username")]
    return render(request, "library/access.html", {
        "collection": collection,
        "grants": [(grant, name) for grant, name in rows if grant.role != Role.DENY],
        "walls": [(grant, name) for grant, name in rows if grant.role == Role.DENY],
        "grant_form": grant_form or GrantForm(prefix="grant"),
        "wall_form": wall_form or PrincipalForm(prefix="wall"),
        "people": people_pickable(),
    })


def _grant_in(collection: Collection, request: HttpRequest, *, wall: bool) -> Grant:
    """The posted grant, only if it is a grant (or wall) of this collection: an id from elsewhere is a 404."""
    form = GrantIdForm(request.POST)
    if not form.is_valid():
        raise Http404("No such grant")
    rows = collection.grants.select_related("user", "group", "collection")
    rows = rows.filter(role=Role.DENY) if wall else rows.exclude(role=Role.DENY)
    grant = rows.filter(pk=form.cleaned_data["grant"]).first()
    if grant is None:
        raise Http404("No such grant")
    return grant


def _after_change(request: HttpRequest, collection: Collection) -> HttpResponse:
    # A manager may have just demoted or walled themselves: send them where they may still go.
    held = collection_ability(request.user, collection)
    if held is not None and held >= Ability.MANAGE:
        return redirect("collection_access", pk=collection.pk)
    return redirect("collection", pk=collection.pk) if held is not None else redirect("library")


def _role_set(request: HttpRequest, collection: Collection) -> HttpResponse:
    form = GrantForm(request.POST, prefix="grant")
    if form.is_valid():
        role = Role(form.cleaned_data["role"])
        try:
            grant_set(collection=collection, role=role, actor=request_actor(request), **form.principal())
        except ValidationError as refused:  # a wall stands in the way, or the last manager would go
            form.add_error(None, refused)
        else:
            messages.success(request, f"{form.cleaned_data['name']} now holds the role {role.label}.")
            return _after_change(request, collection)
    return _access_page(request, collection, grant_form=form)


def _wall_set(request: HttpRequest, collection: Collection) -> HttpResponse:
    form = PrincipalForm(request.POST, prefix="wall")
    if form.is_valid():
        try:
            wall_set(collection=collection, actor=request_actor(request), **form.principal())
        except ValidationError as refused:  # the last manager would go
            form.add_error(None, refused)
        else:
            messages.success(request, f"An ethical wall now stands between {form.cleaned_data['name']} "
                                      "and this collection.")
            return _after_change(request, collection)
    return _access_page(request, collection, wall_form=form)


def _remove(request: HttpRequest, collection: Collection, *, wall: bool) -> HttpResponse:
    grant = _grant_in(collection, request, wall=wall)
    who = _principal_name(grant)
    try:
        (wall_remove if wall else grant_revoke)(grant=grant, actor=request_actor(request))
    except ValidationError as refused:  # revoking the last manager
        messages.error(request, " ".join(refused.messages))
        return redirect("collection_access", pk=collection.pk)
    messages.success(request, f"The wall around {who} is lifted; they hold no role until granted one." if wall
                     else f"{who} no longer holds a role here.")
    return _after_change(request, collection)


@login_required
@require_http_methods(["GET", "POST"])
def collection_access(request: HttpRequest, pk: int) -> HttpResponse:
    """GET lists grants and walls; each form POSTs here with an `action`: grant, wall, revoke or unwall."""
    collection = collection_get(request.user, pk, Ability.MANAGE)
    if request.method == "GET":
        return _access_page(request, collection)
    action = request.POST.get("action")
    if action == "grant":
        return _role_set(request, collection)
    if action == "wall":
        return _wall_set(request, collection)
    if action in ("revoke", "unwall"):
        return _remove(request, collection, wall=action == "unwall")
    return HttpResponseBadRequest("Unknown action")
