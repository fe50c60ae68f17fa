"""Swappable backends, chosen in settings by dotted path and built on first use (one per process).

Only worker processes call these: the web process never loads a model or opens the vector store.
"""

from __future__ import annotations

import functools
import threading
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.utils.module_loading import import_string

if TYPE_CHECKING:
    from docs_app.adapters.embeddings import Embedder
    from docs_app.adapters.llm import LanguageModel
    from docs_app.adapters.vectorstore import VectorStore


def _build(dotted_path: str, **kwargs: Any) -> Any:
    factory = import_string(dotted_path)
    if hasattr(factory, "from_settings"):
        return factory.from_settings(settings, **kwargs)
    return factory(**kwargs)


_embedder_lock = threading.Lock()


def embedder() -> Embedder:
    # Locked: a worker preloads it in a thread while the first task may already ask for it; loading it twice
    # would cost a second model and a second precision probe.
    with _embedder_lock:
        return _embedder()


@functools.cache
def _embedder() -> Embedder:
    return _build(settings.EMBEDDER)  # type: ignore[no-any-return]


_vector_store_lock = threading.Lock()


def vector_store() -> VectorStore:
    # Locked like the embedder: a worker builds it in a thread at start while a task may already ask for it.
    with _vector_store_lock:
        return _vector_store()


@functools.cache
def _vector_store() -> VectorStore:
    return _build(settings.VECTOR_STORE)  # type: ignore[no-any-return]


@functools.cache
def language_model() -> LanguageModel:
    return _build(settings.LLM)  # type: ignore[no-any-return]
