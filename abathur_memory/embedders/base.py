"""The embedder protocol and the identity of what an embedder produces.

The identity itself (EmbeddingIdentity) lives in core.spaces, beside the spaces it names.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import numpy.typing as npt

from abathur_memory.core.spaces import EmbeddingIdentity
from abathur_memory.errors import InvalidInput

Matrix = npt.NDArray[np.float32]


class Embedder(Protocol):
    """What the indexer needs from an embedding model."""

    identity: EmbeddingIdentity

    @property
    def model_id(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def count_tokens(self, text: str) -> int:
        """Tokens ``text`` takes as a document input (prefix and special tokens included)."""
        ...

    async def embed_documents(self, texts: list[str]) -> Matrix:
        """One L2-normalised float32 row per text; refuses inputs over max_tokens."""
        ...

    async def embed_query(self, text: str) -> npt.NDArray[np.float32]: ...

    async def check(self) -> None:
        """Raise Unavailable with what to do when the model cannot be used."""
        ...

    @property
    def loaded(self) -> bool:
        """Whether embedding now costs no loading (a model in memory, or none to load)."""
        ...

    def unload_if_idle(self) -> bool:
        """Free the model if it has been idle long enough; True if it was freed."""
        ...

    async def close(self) -> None: ...


class EmbedderBase:
    """What every embedder shares: its identity and the names derived from it."""

    identity: EmbeddingIdentity

    @property
    def model_id(self) -> str:
        return self.identity.model_id

    @property
    def dim(self) -> int:
        return self.identity.dim

    async def check(self) -> None:
        return None

    @property
    def loaded(self) -> bool:
        return True  # nothing held in this process (a fake, a model server)

    def unload_if_idle(self) -> bool:
        return False

    async def close(self) -> None:
        return None


def normalise(matrix: npt.NDArray[np.floating]) -> Matrix:
    matrix = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return matrix / norms


def refuse_oversized(embedder: Embedder, texts: list[str]) -> None:
    """Nothing is silently truncated: an input over the model's limit is an error."""
    limit = embedder.identity.max_tokens
    for text in texts:
        tokens = embedder.count_tokens(text)
        if tokens > limit:
            raise InvalidInput(
                f"an input of {tokens} tokens exceeds the {limit}-token limit of "
                f"{embedder.model_id}; it would be truncated"
            )
