"""What a chat model offers the services, and the one-line errors a failing one raises.

A chat model is asked for one JSON object per call (the services parse and check it); every
failure to get an answer (the endpoint down, a timeout, an HTTP error, a body that is no
chat reply) is ``Unavailable`` with a message of one line that never carries the API key.
"""

from __future__ import annotations

from typing import Protocol

from abathur_memory.errors import Unavailable

MAX_ERROR_BODY = 200  # characters of an error reply quoted in a message


class ChatModel(Protocol):
    @property
    def model_id(self) -> str:
        """``<backend>:<model>``, e.g. ``ollama:llama3.2``; recorded beside what it wrote."""
        ...

    async def complete(self, system: str, user: str) -> str:
        """The model's reply to ``user`` under the ``system`` instructions."""
        ...

    async def close(self) -> None: ...


def one_line(text: str, limit: int = MAX_ERROR_BODY) -> str:
    """``text`` on one line, cut to ``limit`` characters."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def failed(model_id: str, where: str, what: str) -> Unavailable:
    return Unavailable(f"chat model {model_id} at {where}: {one_line(what, 300)}")
