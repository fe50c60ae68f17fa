from __future__ import annotations

import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser


class Command(BaseCommand):
    help = "Create the first admin account with a random password, printed once. Does nothing if an admin exists."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", default="admin")

    def handle(self, *args: Any, **options: Any) -> None:
        users = get_user_model()
        if users.objects.filter(is_superuser=True).exists():
            self.stdout.write("An admin account exists already; log in with it (or `manage.py changepassword`).")
            return
        password = secrets.token_urlsafe(12)
        users.objects.create_superuser(username=options["username"], email="", password=password)
        self.stdout.write(
            f"Created admin account: user {options['username']!r}, password {password}\n"
            "This password is shown only once: change it after the first login."
        )
