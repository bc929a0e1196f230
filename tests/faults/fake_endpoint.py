"""A tiny OpenAI-compatible HTTP server on 127.0.0.1 that misbehaves on purpose."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

REQUIRED_KEY = "sekrit-key"


@dataclass
class FaultyEndpoint:
    """How the server answers chat calls (`ok`, `500`, `hang`, `malformed`), and what it saw."""

    mode: str = "ok"
    hang_s: float = 5.0
    chat_calls: int = 0
    authorizations: list[str] = field(default_factory=list)
    base_url: str = ""


def _completion(text: str) -> dict[str, object]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": "fake",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }


def _handler(state: FaultyEndpoint) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            return

        def _send(self, status: int, body: bytes, kind: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("retry-after-ms", "10")  # keeps the client's retries quick
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            auth = self.headers.get("Authorization", "")
            state.authorizations.append(auth)
            if auth != f"Bearer {REQUIRED_KEY}":
                self._send(401, b'{"error": {"message": "missing key"}}')
                return
            self._send(200, json.dumps({"object": "list", "data": [{"id": "fake"}]}).encode())

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            state.chat_calls += 1
            if state.mode == "500":
                body = {"error": {"message": "the GPU caught fire", "type": "server_error"}}
                self._send(500, json.dumps(body).encode())
            elif state.mode == "hang":
                time.sleep(state.hang_s)
                with contextlib.suppress(OSError):  # the client gave up and closed
                    self._send(200, json.dumps(_completion("late")).encode())
            elif state.mode == "malformed":
                self._send(200, b'{"choices": [ {"message": ')
            else:
                self._send(200, json.dumps(_completion("FINAL ANSWER: 4")).encode())

    return Handler


@contextmanager
def faulty_endpoint(mode: str = "ok", hang_s: float = 5.0) -> Iterator[FaultyEndpoint]:
    """Serve on a free port of 127.0.0.1 until the block ends."""
    state = FaultyEndpoint(mode=mode, hang_s=hang_s)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    state.base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
