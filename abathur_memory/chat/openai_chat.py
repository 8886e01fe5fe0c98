"""Any OpenAI-compatible endpoint (OpenAI, vLLM, llama.cpp's server, LM Studio, ...):
``POST {base_url}/chat/completions`` over httpx, at temperature 0, with an optional bearer
key read from the environment (never logged, never in a message)."""

from __future__ import annotations

from typing import Any

import httpx

from abathur_memory.chat.base import failed, one_line
from abathur_memory.errors import Unavailable


class OpenAIChat:
    def __init__(
        self, model: str, base_url: str, *, timeout: float = 60.0, api_key: str | None = None
    ) -> None:
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(timeout=timeout, headers=headers)

    @property
    def model_id(self) -> str:
        return f"openai:{self.model}"

    async def complete(self, system: str, user: str) -> str:
        body = {
            "model": self.model,
            "messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": user},
            ],
            "temperature": 0,
        }
        try:
            response = await self._client.post(f"{self.base_url}/chat/completions", json=body)
        except httpx.TimeoutException:
            raise self._failed(f"no answer within {self.timeout:g} s (chat_timeout_s)") from None
        except httpx.TransportError as exc:
            what = f"cannot reach it ({type(exc).__name__}): is it running, is chat_base_url right?"
            raise self._failed(what) from None
        if response.status_code >= 400:
            raise self._failed(f"answered HTTP {response.status_code}: {one_line(response.text)}")
        try:
            reply: Any = response.json()
            content = reply["choices"][0]["message"]["content"]
        except (ValueError, LookupError, TypeError):
            raise self._failed(
                f"answered something that is not a chat completion: {one_line(response.text)}"
            ) from None
        if not isinstance(content, str) or not content.strip():
            raise self._failed("answered no text")
        return content

    async def close(self) -> None:
        await self._client.aclose()

    def _failed(self, what: str) -> Unavailable:
        return failed(self.model_id, self.base_url, what)
