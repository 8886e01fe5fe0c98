"""A local HTTP server that speaks Ollama's chat API (``/api/chat``) and the OpenAI chat
completions API (``/v1/chat/completions``), for tests of the optional chat model.

``answer(system, user)`` writes each reply's text; ``mode`` makes it fail: ``error`` (HTTP
500), ``slow`` (no answer for ``delay`` seconds, then none), ``broken`` (a body that is no chat
reply). Every request is recorded with its path, body and headers.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def no_answer(system: str, user: str) -> str:
    return "I cannot decide."


class ChatStub:
    def __init__(self, answer: Callable[[str, str], str] = no_answer) -> None:
        self.answer = answer
        self.mode = "ok"
        self.delay = 5.0
        self.missing: set[str] = set()  # models answered 404 "not found", as Ollama does
        self.requests: list[dict[str, Any]] = []
        self._released = threading.Event()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return

            def _send(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                stub.requests.append(
                    {"path": self.path, "body": body, "headers": dict(self.headers.items())}
                )
                if self.path not in ("/api/chat", "/v1/chat/completions"):
                    self._send(404, b'{"error": "not found"}')
                    return
                if body.get("model") in stub.missing:
                    missing = f'model "{body["model"]}" not found, try pulling it first'
                    self._send(404, json.dumps({"error": missing}).encode())
                    return
                if stub.mode == "error":
                    self._send(500, b'{"error": "the model crashed"}')
                    return
                if stub.mode == "broken":
                    self._send(200, b"<html>a proxy's login page</html>")
                    return
                if stub.mode == "slow":
                    stub._released.wait(stub.delay)
                    return  # no answer (the client gave up long ago)
                messages = {m["role"]: m["content"] for m in body.get("messages", [])}
                text = stub.answer(messages.get("system", ""), messages.get("user", ""))
                model = body.get("model", "")
                message = {"role": "assistant", "content": text}
                if self.path == "/api/chat":
                    reply: dict[str, Any] = {
                        "model": model,
                        "created_at": "2026-01-01T00:00:00Z",
                        "message": message,
                        "done": True,
                        "done_reason": "stop",
                    }
                else:
                    reply = {
                        "id": "chatcmpl-1",
                        "object": "chat.completion",
                        "created": 0,
                        "model": model,
                        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                    }
                self._send(200, json.dumps(reply).encode())

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def host(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def settings(self, api: str, model: str = "judge-1") -> dict[str, str]:
        """The settings that point ``api`` (ollama or openai) at this stub."""
        base = self.host if api == "ollama" else f"{self.host}/v1"
        return {"chat_model": f"{api}:{model}", "chat_base_url": base}

    @property
    def chats(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["path"] in ("/api/chat", "/v1/chat/completions")]

    def __enter__(self) -> ChatStub:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._released.set()
        self.server.shutdown()
        self.server.server_close()
