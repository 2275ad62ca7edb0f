"""A local OpenAI-compatible server for tests and offline demos (stdlib only, bound to 127.0.0.1).

Serves `POST /v1/chat/completions`, `POST /v1/responses` and `GET /v1/models`. Answers come from a script (a
queue of strings), a function of the request, or our offline code model (mode "offline", so a whole LLM-path
search runs without a network). Faults can be queued: "429", "500", "hang", "garbage", "empty", "drop".
Every request is recorded in `server.requests`.

    with FakeLLMServer(answers=["```c\\nvoid solution() {}\\n```"]) as srv:
        config = LLMConfig(model="fake", base_url=srv.base_url)

Command line: `python -m autocomp_env.llm.server --port 8000 --mode offline`.
"""

from __future__ import annotations

import argparse
import collections
import functools
import hashlib
import json
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

from autocomp_env.codemodel import OfflineCodeModel
from autocomp_env.core import Feedback, Plan
from autocomp_env.kernels import get_kernel

FAULTS = ("429", "500", "hang", "garbage", "empty", "drop")

Handler = Callable[[dict[str, Any]], str]


class HTTPFailure(Exception):
    """Raise from a handler to answer with an HTTP error (e.g. 400 for a parameter a model does not support)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)


def _user_text(request: dict[str, Any]) -> str:
    msgs = request.get("messages") or request.get("input") or []
    if isinstance(msgs, str):
        return msgs
    return "\n".join(m.get("content", "") for m in msgs if isinstance(m, dict) and isinstance(m.get("content"), str))


class FakeLLMServer:
    """An OpenAI-compatible HTTP server on 127.0.0.1 (a free port unless `port` is given).

    answers: strings served in order (then `handler`, then an error 500 "script exhausted").
    handler: a function request-json -> answer text.
    mode: "script" (default), "offline" (answers from `offline_handler`, with `fault_rate`) or "echo" (repeats
    the messages).
    """

    def __init__(
        self,
        answers: Iterable[str] = (),
        handler: Handler | None = None,
        *,
        mode: str = "script",
        port: int = 0,
        model: str = "fake-model",
        hang_seconds: float = 30.0,
        usage: bool = True,
        fault_rate: float = 0.0,
    ):
        if mode not in ("script", "offline", "echo"):
            raise ValueError(f"unknown mode {mode!r}; use script, offline or echo")
        if mode == "offline" and handler is None:
            handler = functools.partial(offline_handler, fault_rate=fault_rate)
        if mode == "echo" and handler is None:
            handler = lambda req: _user_text(req)  # noqa: E731
        self.answers: collections.deque[str] = collections.deque(answers)
        self.handler = handler
        self.faults: collections.deque[str] = collections.deque()
        self.requests: list[dict[str, Any]] = []
        self.model = model
        self.hang_seconds = hang_seconds
        self.usage = usage
        self.retry_after: float | None = None  # seconds sent as Retry-After with injected 429s
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), self._make_handler())
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    # --- control -------------------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def fail_next(self, kind: str, times: int = 1) -> FakeLLMServer:
        """Queue `times` faults of `kind` (one of FAULTS) for the next requests."""
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}; known: {FAULTS}")
        with self._lock:
            self.faults.extend([kind] * times)
        return self

    def add_answers(self, *answers: str) -> None:
        with self._lock:
            self.answers.extend(answers)

    def start(self) -> FakeLLMServer:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def serve_until_interrupted(self) -> None:
        """Serve in the foreground (the command-line servers) until Ctrl-C, then stop."""
        self.start()
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def __enter__(self) -> FakeLLMServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def completion_requests(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["path"].endswith(("/chat/completions", "/responses"))]

    # --- serving -------------------------------------------------------------------------------------------
    def _next(self, body: dict[str, Any]) -> tuple[str, str | None]:
        """(kind, text): kind is a fault name or "ok"."""
        with self._lock:
            if self.faults:
                return self.faults.popleft(), None
            if self.answers:
                return "ok", self.answers.popleft()
        if self.handler is not None:
            try:
                return "ok", self.handler(body)
            except HTTPFailure as e:
                return f"http{e.status}", e.message
            except Exception as e:  # a broken handler is a server error, not a dead test thread
                return "error", f"handler failed: {type(e).__name__}: {e}"
        return "error", "script exhausted: no answer queued"

    def _make_handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class _H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def _send(self, code: int, payload: Any, raw: bytes | None = None, headers: dict | None = None) -> None:
                data = raw if raw is not None else json.dumps(payload).encode()
                self.send_response(code)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                server.requests.append(
                    {"path": self.path, "method": "GET", "headers": dict(self.headers), "body": None}
                )
                if self.path.rstrip("/").endswith("/models"):
                    self._send(
                        200,
                        {
                            "object": "list",
                            "data": [{"id": server.model, "object": "model", "owned_by": "autocomp-env"}],
                        },
                    )
                else:
                    self._send(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw or b"{}")
                except json.JSONDecodeError:
                    body = {"_unparsed": raw.decode("utf-8", "replace")}
                server.requests.append(
                    {"path": self.path, "method": "POST", "headers": dict(self.headers), "body": body}
                )
                path = self.path.rstrip("/")
                if path not in ("/v1/chat/completions", "/v1/responses"):
                    self._send(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
                    return
                kind, text = server._next(body)
                if kind == "429":
                    extra = {"Retry-After": str(server.retry_after)} if server.retry_after is not None else None
                    self._send(
                        429,
                        {"error": {"message": "rate limited (injected)", "type": "rate_limit_error"}},
                        headers=extra,
                    )
                elif kind.startswith("http"):
                    self._send(int(kind[4:]), {"error": {"message": text, "type": "invalid_request_error"}})
                elif kind == "500" or kind == "error":
                    self._send(500, {"error": {"message": text or "internal error (injected)", "type": "server_error"}})
                elif kind == "hang":
                    server._stop.wait(server.hang_seconds)
                    self.close_connection = True
                elif kind == "drop":
                    self.close_connection = True
                    try:
                        self.connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                elif kind == "garbage":
                    self._send(200, None, raw=b"<html>502 bad gateway, not json{")
                else:
                    content = "" if kind == "empty" else text or ""
                    self._send(200, server._payload(path, body, content))

        return _H

    def _payload(self, path: str, body: dict[str, Any], content: str) -> dict[str, Any]:
        model = body.get("model", self.model)
        p_tok, c_tok = _tokens(_user_text(body)), (_tokens(content) if content else 0)
        rid = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:24]
        if path.endswith("/responses"):
            out: dict[str, Any] = {
                "id": f"resp_{rid}",
                "object": "response",
                "created_at": int(time.time()),
                "model": model,
                "status": "completed",
                "output": [
                    {
                        "id": f"msg_{rid}",
                        "type": "message",
                        "role": "assistant",
                        "status": "completed",
                        "content": [{"type": "output_text", "text": content, "annotations": []}],
                    }
                ],
                "parallel_tool_calls": False,
                "tool_choice": "auto",
                "tools": [],
            }
            if self.usage:
                out["usage"] = {
                    "input_tokens": p_tok,
                    "output_tokens": c_tok,
                    "total_tokens": p_tok + c_tok,
                    "input_tokens_details": {"cached_tokens": 0},
                    "output_tokens_details": {"reasoning_tokens": 0},
                }
            return out
        out = {
            "id": f"chatcmpl-{rid}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        }
        if self.usage:
            out["usage"] = {"prompt_tokens": p_tok, "completion_tokens": c_tok, "total_tokens": p_tok + c_tok}
        return out


# --- offline mode: our offline code model behind the chat API -------------------------------------------------

_KERNEL = re.compile(r"^Kernel: (\S+)\s*$", re.M)
_OPTIONS = re.compile(r"<optimizations>\n(.*?)</optimizations>", re.S)
_PLAN = re.compile(r"<plan>\n(.*?)\n</plan>", re.S)
_ITEM = re.compile(r"^(\d+)\. (.*)$", re.M)


def _section_code(text: str, heading: str) -> str | None:
    i = text.find(heading)
    if i < 0:
        return None
    m = re.search(r"```[\w+]*\n(.*?)\n```", text[i:], re.S)
    return m.group(1) + "\n" if m else None


def offline_handler(request: dict[str, Any], fault_rate: float = 0.0) -> str:
    """Answer our own prompts (autocomp_env.llm.prompts) with the offline code model.

    Planning prompts get "Option N: <item>" for an item of the shown menu, chosen by a hash of the request
    (so it is deterministic and depends on the sample seed). Implementation prompts get the offline model's
    code for the plan in a fence (with `fault_rate`, sometimes with an injected bug). Repair prompts get the
    failed code back: the offline model cannot repair.
    """
    text = _user_text(request)
    digest = hashlib.sha256(json.dumps(request.get("messages") or request.get("input"), sort_keys=True).encode())
    seed = int(digest.hexdigest()[:8], 16) ^ int(request.get("seed") or 0)
    lang = "python" if "```python" in text else "c"
    menu = _OPTIONS.search(text)
    if menu:
        items = _ITEM.findall(menu.group(1))
        if not items:
            return "Option new: simplify the code."
        num, item = items[seed % len(items)]
        return f"Option {num}: {item}. Apply it to the current code."
    if "# Failed code" in text:
        code = _section_code(text, "# Failed code")
        return f"The offline model cannot repair code; unchanged:\n```{lang}\n{code or ''}```"
    m_kernel = _KERNEL.search(text)
    code = _section_code(text, "# Current code")
    plan_m = _PLAN.search(text)
    if not (m_kernel and code and plan_m):
        return "I cannot tell what to do with this request."
    plan_text = plan_m.group(1)
    opt = re.match(r"\W*option\s*(\d+)", plan_text, re.I)
    plan = Plan(text=plan_text, menu_index=int(opt.group(1)) - 1 if opt else None)
    model = OfflineCodeModel(fault_rate=fault_rate)
    gen = model.implement(get_kernel(m_kernel.group(1)), code, plan, Feedback(), np.random.default_rng(seed))
    if gen.code is None:
        return f"I could not implement this plan ({gen.error or gen.note})."
    if "JSON object only" in text:
        return json.dumps({"plan": plan_text[:200], "edits": [{"old_str": code, "new_str": gen.code}]})
    return f"Here is the optimized code.\n```{lang}\n{gen.code.rstrip()}\n```"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m autocomp_env.llm.server", description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--mode", choices=("offline", "echo"), default="offline")
    ap.add_argument("--model", default="autocomp-offline")
    ap.add_argument("--fault-rate", type=float, default=0.0, help="offline mode: share of answers with a bug")
    args = ap.parse_args(argv)
    srv = FakeLLMServer(mode=args.mode, port=args.port, model=args.model, fault_rate=args.fault_rate).start()
    print(f"serving {args.mode} answers at {srv.base_url} (model {args.model}); Ctrl-C to stop", flush=True)
    srv.serve_until_interrupted()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
