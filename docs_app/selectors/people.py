"""Reads for picking a person or a group on a collection's access page: who can be given a role (active accounts
and groups, not the Auditors, who read no document), and the account a typed name means."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Group
from django.db.models import Value
from django.db.models.functions import Concat, Lower

from docs_app.services.grants import AUDITORS_GROUP

PICKER_MAX = 1000


@dataclass(frozen=True)
class Pickable:
    value: str  # what the form sends: the user name or the group name
    label: str  # what a person recognises: "Pat Paralegal (user)"


def people_pickable() -> list[Pickable]:
    """Active accounts outside the Auditors group, then groups other than it, for the picker's list."""
    users = (get_user_model().objects.filter(is_active=True).exclude(groups__name=AUDITORS_GROUP)
             .order_by("first_name", "last_name", "username")
             .values_list("username", "first_name", "last_name")[:PICKER_MAX])
    groups = Group.objects.exclude(name=AUDITORS_GROUP).order_by("name").values_list("name", flat=True)
    picks = [Pickable(name, f"{f'{first} {last}'.strip() or name} (user)") for name, first, last in users]
    return picks + [Pickable(name, f"{name} (group)") for name in groups[:PICKER_MAX]]


def user_named(name: str) -> AbstractBaseUser | None:
    """The account a typed name means: its user name (exactly, then in any case), or the full name of exactly
    one active account ("Pat Paralegal"), or the picker's own label ("Pat Paralegal (user)")."""
    text = name.strip().removesuffix("(user)").strip()
    users = get_user_model().objects
    exact = users.filter(username=text).first()
    if exact is not None:
        return exact
    folded = list(users.filter(username__iexact=text)[:2])
    if len(folded) == 1:
        return folded[0]
    full = list(users.filter(is_active=True).annotate(full=Lower(Concat("first_name", Value(" "), "last_name")))
                .filter(full=" ".join(text.lower().split()))[:2])
    return full[0] if len(full) == 1 else None
