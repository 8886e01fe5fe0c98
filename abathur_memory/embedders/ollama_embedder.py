"""Ollama through the official client: nomic-embed-text with its task prefixes, batched,
with timeouts and retries, and errors that say what to do."""

from __future__ import annotations

import asyncio
import logging

import httpx
import numpy as np
import numpy.typing as npt
import ollama

from abathur_memory.embedders.base import (
    EmbedderBase,
    EmbeddingIdentity,
    Matrix,
    normalise,
    refuse_oversized,
)
from abathur_memory.embedders.tokens import BertTokenCounter
from abathur_memory.errors import InvalidInput, Unavailable

log = logging.getLogger(__name__)

DEFAULT_HOST = "http://127.0.0.1:11434"
DEFAULT_MODEL = "nomic-embed-text"
# Known models: dimension, context length used, task prefixes.
KNOWN_MODELS = {
    "nomic-embed-text": (768, 2048, "search_document: ", "search_query: "),
}
BATCH = 32
RETRIES = 3


class OllamaEmbedder(EmbedderBase):
    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        host: str = DEFAULT_HOST,
        *,
        timeout: float = 60.0,
        dim: int | None = None,
        max_tokens: int | None = None,
    ) -> None:
        known = KNOWN_MODELS.get(model.split(":")[0])
        if known is not None:
            known_dim, known_ctx, doc_prefix, query_prefix = known
        elif dim is not None and max_tokens is not None:
            known_dim, known_ctx, doc_prefix, query_prefix = dim, max_tokens, "", ""
        else:
            raise InvalidInput(
                f"unknown Ollama embedding model {model!r}: give its dimension and context "
                f"length (ollama_dim, ollama_max_tokens); known: {', '.join(KNOWN_MODELS)}"
            )
        self.identity = EmbeddingIdentity(
            "ollama", model, dim or known_dim, max_tokens or known_ctx, doc_prefix, query_prefix
        )
        self.host = host
        self._client = ollama.AsyncClient(host=host, timeout=timeout)
        self._tokens = BertTokenCounter()

    def count_tokens(self, text: str) -> int:
        return self._tokens.count(self.identity.document_prefix + text)

    async def embed_documents(self, texts: list[str]) -> Matrix:
        refuse_oversized(self, texts)
        prefix = self.identity.document_prefix
        rows: list[list[float]] = []
        for start in range(0, len(texts), BATCH):
            batch = [prefix + text for text in texts[start : start + BATCH]]
            rows.extend(await self._embed(batch))
        return self._matrix(rows, len(texts))

    async def embed_query(self, text: str) -> npt.NDArray[np.float32]:
        rows = await self._embed([self.identity.query_prefix + text])
        return self._matrix(rows, 1)[0]

    async def check(self) -> None:
        await self._embed(["ping"])

    async def close(self) -> None:
        await self._client._client.aclose()

    def _matrix(self, rows: list[list[float]], expected: int) -> Matrix:
        matrix = np.asarray(rows, dtype=np.float32)
        if matrix.shape != (expected, self.dim):
            raise Unavailable(
                f"Ollama returned vectors of shape {matrix.shape} for {expected} inputs; "
                f"{self.identity.model} should give {self.dim} dimensions"
            )
        return normalise(matrix)

    async def _embed(self, inputs: list[str]) -> list[list[float]]:
        delay = 0.5
        for attempt in range(RETRIES + 1):
            try:
                # truncate=False: an over-long input is an error, never silently cut.
                response = await self._client.embed(
                    model=self.identity.model,
                    input=inputs,
                    truncate=False,
                    options={"num_ctx": self.identity.max_tokens},
                )
                return [list(vector) for vector in response.embeddings]
            except ollama.ResponseError as exc:
                if exc.status_code == 404 or "not found" in str(exc).lower():
                    raise Unavailable(
                        f"the Ollama model {self.identity.model} is not installed: run "
                        f"`ollama pull {self.identity.model}`"
                    ) from None
                if exc.status_code == 400:
                    raise InvalidInput(f"Ollama refused the input: {exc}") from None
                error: Exception = exc
            except (ConnectionError, httpx.TransportError) as exc:
                error = exc
            if attempt < RETRIES:
                log.info("Ollama at %s failed (%s); retrying in %.1fs", self.host, error, delay)
                await asyncio.sleep(delay)
                delay *= 2
        if isinstance(error, ConnectionError | httpx.ConnectError):
            raise Unavailable(
                f"cannot reach Ollama at {self.host}: start it with `ollama serve` "
                "(or set ollama_host), or use the embedded model"
            )
        raise Unavailable(f"Ollama at {self.host} failed {RETRIES + 1} times: {error}")
