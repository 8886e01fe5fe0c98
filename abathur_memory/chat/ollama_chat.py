"""Ollama's chat API through the official client (``/api/chat``), asked for JSON, at
temperature 0, with a timeout per call."""

from __future__ import annotations

import httpx
import ollama

from abathur_memory.chat.base import failed, one_line
from abathur_memory.errors import Unavailable


class OllamaChat:
    def __init__(
        self, model: str, host: str, *, timeout: float = 60.0, api_key: str | None = None
    ) -> None:
        self.model = model
        self.host = host
        self.timeout = timeout
        headers = {"authorization": f"Bearer {api_key}"} if api_key else None
        self._client = ollama.AsyncClient(host=host, timeout=timeout, headers=headers)

    @property
    def model_id(self) -> str:
        return f"ollama:{self.model}"

    async def complete(self, system: str, user: str) -> str:
        try:
            response = await self._client.chat(
                model=self.model,
                messages=[{"role": "system", "content": system}, {"role": "user", "content": user}],
                format="json",
                options={"temperature": 0, "seed": 0},
            )
        except ollama.ResponseError as exc:
            if exc.status_code == 404 and "model" in str(exc.error).lower():
                what = f"the model is not installed: run `ollama pull {self.model}`"
            else:
                what = f"answered HTTP {exc.status_code}: {one_line(exc.error)}"
            raise self._failed(what) from None
        except httpx.TimeoutException:
            raise self._failed(f"no answer within {self.timeout:g} s (chat_timeout_s)") from None
        except (ConnectionError, httpx.TransportError):
            raise self._failed("cannot reach it: start it with `ollama serve`") from None
        except ValueError as exc:  # a body that is not a chat reply
            raise self._failed(f"answered something that is not a chat reply ({exc})") from None
        content = response.message.content if response.message else None
        if not isinstance(content, str) or not content.strip():
            raise self._failed("answered no text")
        return content

    async def close(self) -> None:
        await self._client._client.aclose()

    def _failed(self, what: str) -> Unavailable:
        return failed(self.model_id, self.host, what)
