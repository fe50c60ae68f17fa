"""Pages an office notices: styled 404s, help, changing one's own password (audited), and an ask form whose
every collection was unticked is refused rather than searching everything."""

from __future__ import annotations

import pytest
from django.urls import reverse

from docs_app.models import AuditEvent, Collection, Grant, Question, Role
from docs_app.services.audit import Action
from tests.harness import PASSWORD, logged_in, make_user

pytestmark = pytest.mark.django_db


def test_not_found_is_a_page_of_the_app_and_help_is_there() -> None:
    client = logged_in(make_user("nina"))
    missing = client.get("/documents/999999/")
    assert missing.status_code == 404
    body = missing.content.decode()
    assert "<h1>Not found</h1>" in body and 'href="/help/"' in body and "Log out" in body
    assert "Search" in client.get(reverse("help")).content.decode()


def test_a_person_changes_their_own_password_and_it_is_audited() -> None:
    user = make_user("pat")
    client = logged_in(user)
    response = client.post(reverse("password_change"), {"old_password": PASSWORD,
                                                        "new_password1": "a new long passphrase 42",
                                                        "new_password2": "a new long passphrase 42"})
    assert response.status_code == 302
    user.refresh_from_db()
    assert user.check_password("a new long passphrase 42")
    assert AuditEvent.objects.filter(action=Action.PASSWORD_CHANGE, actor=user).count() == 1
    wrong = client.post(reverse("password_change"), {"old_password": "nope", "new_password1": "x" * 20,
                                                     "new_password2": "x" * 20})
    assert wrong.status_code == 200 and "form-error" in wrong.content.decode()


def test_unticking_every_collection_is_refused_not_widened() -> None:
    user = make_user("una")
    Grant.objects.create(collection=Collection.objects.create(name="Matter one"), user=user, role=Role.VIEWER)
    response = logged_in(user).post(reverse("ask"), {"question": "Who pays?", "collections_shown": "1"})
    assert response.status_code == 400
    assert "Choose at least one collection" in response.content.decode()
    assert not Question.objects.exists()
