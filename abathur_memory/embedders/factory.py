"""Choosing the embedder from the settings."""

from __future__ import annotations

from abathur_memory.config import Settings
from abathur_memory.embedders.base import Embedder


def make_embedder(settings: Settings) -> Embedder:
    if settings.embedder == "ollama":
        from abathur_memory.embedders.ollama_embedder import OllamaEmbedder

        return OllamaEmbedder(settings.ollama_model, settings.ollama_host)
    if settings.embedder == "fake":
        from abathur_memory.embedders.fake import FakeEmbedder

        return FakeEmbedder()
    from abathur_memory.embedders.embedded import EmbeddedEmbedder

    return EmbeddedEmbedder(idle_unload_s=settings.embedder_idle_unload_s)
