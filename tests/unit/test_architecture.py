"""The shape of the code, enforced: the import contracts in pyproject.toml (no module circle, views above services
above adapters and pipeline, no Django in pipeline and adapters), services free of HTTP, and task names that
match registered tasks."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from tests.data import REPO


def test_import_contracts_hold() -> None:
    lint_imports = Path(sys.executable).parent / "lint-imports"
    done = subprocess.run([str(lint_imports), "--no-cache"], cwd=REPO, capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_no_service_imports_django_http() -> None:
    offenders = []
    for path in sorted((REPO / "docs_app" / "services").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{path.name}: {name}" for name in names if name.startswith("django.http")]
    assert offenders == []


def test_every_queued_task_name_is_a_registered_task() -> None:
    import workers.tasks  # noqa: F401  (registers the tasks)
    from docs_app.services.enqueue import TASK_NAMES
    from workers.celery import app

    assert set(TASK_NAMES) <= set(app.tasks)
