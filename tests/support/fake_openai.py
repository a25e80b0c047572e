"""A chat-completions server on 127.0.0.1 for the HTTP agent's tests (stdlib http.server in a
thread). Each API key gets a behaviour: ok, rate_limited, revoked, slow, error, error_once."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from bench.provider_sim import send_json

LLD_ANSWER = """# LLD: Served over HTTP

## 1. Context & goal
Written by the fake model.

## 2. Proposed changes
| File | Change |
|---|---|
| `src/served.py` | everything |

## 3. Requirements
- R1: It works.

## 4. Test scenarios
| ID | Requirement | Scenario | Expected |
|---|---|---|---|
| T1 | R1 | run it | it works |

## 5. Security & safety
Nothing to say.

## 6. Definition of done
- [ ] done
"""


class FakeOpenAI:
    def __init__(
        self, behaviours: dict[str, str], retry_after: str = "1", slow_seconds: float = 5.0
    ) -> None:
        self.behaviours = behaviours
        self.retry_after = retry_after
        self.slow_seconds = slow_seconds
        self.calls: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._errors_sent: set[str] = set()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                fake.handle(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> FakeOpenAI:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def calls_for(self, key: str) -> list[dict[str, Any]]:
        return [c for c in self.calls if c["key"] == key]

    # -- one request
    def handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length", 0))
        body = json.loads(h.rfile.read(length) or b"{}")
        key = h.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        behaviour = self.behaviours.get(key, "revoked")
        with self._lock:
            if behaviour == "error_once" and key in self._errors_sent:
                behaviour = "ok"
            self._errors_sent.add(key)
            self.calls.append(
                {
                    "key": key,
                    "time": time.time(),
                    "behaviour": behaviour,
                    "path": h.path,
                    "model": body.get("model"),
                }
            )
        if behaviour == "rate_limited":
            self._json(
                h,
                429,
                {"error": {"message": "Rate limit reached. Please try again in 7s."}},
                {"Retry-After": self.retry_after},
            )
        elif behaviour == "revoked":
            self._json(h, 401, {"error": {"message": f"Incorrect API key provided: {key}"}})
        elif behaviour in ("error", "error_once"):
            self._json(h, 500, {"error": {"message": "The server had an error"}})
        else:
            if behaviour == "slow":
                time.sleep(self.slow_seconds)
            system = body["messages"][0]["content"]
            answer = (
                "APPROVED\n\nEvery requirement has a scenario.\n"
                if "review" in system
                else LLD_ANSWER
            )
            if body.get("stream"):
                self._stream(h, answer)
            else:
                self._json(
                    h, 200, {"choices": [{"message": {"role": "assistant", "content": answer}}]}
                )

    _json = staticmethod(send_json)

    @staticmethod
    def _stream(h: BaseHTTPRequestHandler, answer: str) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream")
        h.end_headers()
        for start in range(0, len(answer), 7):  # tokens of 7 characters, lines split across them
            chunk = {"choices": [{"delta": {"content": answer[start : start + 7]}}]}
            h.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            h.wfile.flush()
        h.wfile.write(b"data: [DONE]\n\n")
        h.wfile.flush()
