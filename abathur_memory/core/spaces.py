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

    def differences(self, other: EmbeddingIdentity) -> list[str]:
        """What differs from ``other``, as "field: mine -> other's" (empty: the same)."""
        mine, theirs = asdict(self), asdict(other)
        return [
            f"{name.replace('_', ' ')} {mine[name]!r} -> {theirs[name]!r}"
            for name in mine
            if mine[name] != theirs[name]
        ]

    def same_vectors(self, other: EmbeddingIdentity) -> bool:
        """Whether vectors of ``other`` can be compared with vectors of this identity: the
        same model, dimension and prefixes. The chunker version and the token limit decide
        how documents are cut, not what a vector means: a change of those re-chunks the
        documents but keeps every vector of an unchanged text, and queries keep working."""
        return all(getattr(self, name) == getattr(other, name) for name in VECTOR_FIELDS)


# What a vector depends on (EmbeddingIdentity.same_vectors).
VECTOR_FIELDS = ("provider", "model", "dim", "document_prefix", "query_prefix")


def same_vectors(key: str | None, identity: EmbeddingIdentity) -> bool:
    """``same_vectors`` for an identity given by its key (as search queries carry it)."""
    return key is not None and (
        key == identity.key() or EmbeddingIdentity.from_key(key).same_vectors(identity)
    )


def memory_space_of(spaces: list[Space], identity: EmbeddingIdentity) -> Space | None:
    """Of the live spaces, the one whose memory vectors serve ``identity``: its own, else
    the active space when its vectors are the same (an upgrade that only re-chunks
    documents keeps the memory vectors)."""
    live = [space for space in spaces if space.status != "retired"]
    for space in live:
        if space.identity.key() == identity.key():
            return space
    for space in live:
        if space.status == "active" and space.identity.same_vectors(identity):
            return space
    return None


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
