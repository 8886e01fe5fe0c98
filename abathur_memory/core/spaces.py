"""Embedding identities and the spaces their vectors live in.

Vectors of two identities never mix: the identity (provider, model, dimension, prefix
scheme, token limit, chunker version) names the embedding space a vector belongs to, and a
change of identity builds a new space beside the old one. The active space answers
searches; a *building* one is filled beside it and replaces it only once complete, so a
search never sees an empty or mixed index.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

# Bump when documents/markdown.py cuts chunks differently: every space is rebuilt.
CHUNKER_VERSION = 2  # 2: a heading never makes a chunk of its own


@dataclass(frozen=True)
class EmbeddingIdentity:
    provider: str  # embedded | ollama | fake
    model: str
    dim: int
    max_tokens: int  # longest input the model takes, special tokens included
    document_prefix: str = ""
    query_prefix: str = ""
    chunker_version: int = CHUNKER_VERSION

    @property
    def model_id(self) -> str:
        return f"{self.provider}:{self.model}"

    def key(self) -> str:
        """Stable text naming this identity (stored with the space)."""
        return json.dumps(asdict(self), sort_keys=True)

    def digest(self) -> str:
        return hashlib.sha256(self.key().encode()).hexdigest()[:16]

    @classmethod
    def from_key(cls, key: str) -> EmbeddingIdentity:
        return cls(**json.loads(key))


@dataclass(frozen=True)
class Space:
    """One embedding space. Both backends name its tables the same way."""

    id: int
    identity: EmbeddingIdentity
    status: str  # building | active
    generation: int  # bumped whenever its vectors change (readers refresh their caches)

    @property
    def chunks(self) -> str:
        return f"chunks_s{self.id}"

    @property
    def fts(self) -> str:
        return f"chunks_fts_s{self.id}"

    @property
    def vectors(self) -> str:
        return f"chunk_vectors_s{self.id}"

    @property
    def memory_vectors(self) -> str:
        return f"memory_vectors_s{self.id}"

    @property
    def dim(self) -> int:
        return self.identity.dim
