"""A deterministic embedder for tests: hashed word and character-trigram features.

Texts that share words get similar vectors, so semantic search behaves plausibly, and the
same text always gets the same vector. It needs no model and runs in microseconds.
"""

from __future__ import annotations

import hashlib
import math
import re

import numpy as np
import numpy.typing as npt

from abathur_memory.embedders.base import (
    EmbedderBase,
    EmbeddingIdentity,
    Matrix,
    normalise,
    refuse_oversized,
)

_WORD = re.compile(r"\w+", re.UNICODE)


class FakeEmbedder(EmbedderBase):
    def __init__(self, dim: int = 64, max_tokens: int = 512, model: str = "hash-v1") -> None:
        self.identity = EmbeddingIdentity("fake", model, dim, max_tokens)
        self.calls = 0
        self.embedded_texts = 0

    def count_tokens(self, text: str) -> int:
        return math.ceil(len(text.split()) * 1.3) + 2

    async def embed_documents(self, texts: list[str]) -> Matrix:
        refuse_oversized(self, texts)
        self.calls += 1
        self.embedded_texts += len(texts)
        return self.vectors(texts)

    async def embed_query(self, text: str) -> npt.NDArray[np.float32]:
        return self.vectors([text])[0]

    def vectors(self, texts: list[str]) -> Matrix:
        matrix = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                for feature, weight in (
                    (word, 1.0),
                    *((f"#{word[i : i + 3]}", 0.3) for i in range(max(1, len(word) - 2))),
                ):
                    digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
                    bucket = int.from_bytes(digest[:4], "little") % self.dim
                    sign = 1.0 if digest[4] & 1 else -1.0
                    matrix[row, bucket] += sign * weight
        return normalise(matrix)
