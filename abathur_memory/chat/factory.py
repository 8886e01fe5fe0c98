"""Choosing the chat model from the settings: none unless ``chat_model`` names one."""

from __future__ import annotations

import os

from abathur_memory.chat.base import ChatModel
from abathur_memory.config import Settings


def make_chat_model(settings: Settings) -> ChatModel | None:
    if not settings.chat_model:
        return None
    backend, _, model = settings.chat_model.partition(":")
    api_key = os.environ.get(settings.chat_api_key_env) or None
    if backend == "ollama":
        from abathur_memory.chat.ollama_chat import OllamaChat

        host = settings.chat_base_url or settings.ollama_host
        return OllamaChat(model, host, timeout=settings.chat_timeout_s, api_key=api_key)
    from abathur_memory.chat.openai_chat import OpenAIChat

    return OpenAIChat(
        model, settings.chat_base_url, timeout=settings.chat_timeout_s, api_key=api_key
    )
