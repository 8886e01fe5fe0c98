"""A local HTTP server that speaks Ollama's /api/embed and /api/tags, for tests.

Backed by the fake embedder (or any function of texts), it lets the real `ollama` client
and our OllamaEmbedder run end to end without Ollama itself.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from abathur_memory.embedders.fake import FakeEmbedder


class OllamaStub:
    def __init__(
        self,
        models: tuple[str, ...] = ("nomic-embed-text:latest",),
        dim: int = 768,
        context: int = 2048,
    ) -> None:
        self.models = models
        self.context = context
        self.fake = FakeEmbedder(dim=dim, max_tokens=10**6)
        self.requests: list[dict[str, Any]] = []
        self.fail_next: int = 0
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output clean
                return

            def _send(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path == "/api/tags":
                    self._send(200, {"models": [{"name": m, "model": m} for m in stub.models]})
                else:
                    self._send(404, {"error": "not found"})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                stub.requests.append(body)
                if self.path != "/api/embed":
                    self._send(404, {"error": "not found"})
                    return
                if stub.fail_next > 0:
                    stub.fail_next -= 1
                    self._send(500, {"error": "temporary failure"})
                    return
                model = body.get("model", "")
                if model not in stub.models and f"{model}:latest" not in stub.models:
                    self._send(404, {"error": f'model "{model}" not found, try pulling it first'})
                    return
                inputs = body.get("input", [])
                inputs = [inputs] if isinstance(inputs, str) else inputs
                for text in inputs:
                    if len(text.split()) > stub.context and body.get("truncate") is False:
                        self._send(400, {"error": "input length exceeds the context length"})
                        return
                vectors = stub.fake.vectors(inputs).tolist()
                self._send(200, {"model": model, "embeddings": vectors, "total_duration": 1})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def host(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> OllamaStub:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def unused_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
