"""Shared client code for scripts/ws/chat.py and scripts/ws/scenarios.py.

* `Http`: the JSON HTTP API over the standard library (urllib), keeping the session cookie of
  one login, waiting out 429 answers of the per-IP limits when asked to; `upload()` posts a
  file to POST /files as multipart/form-data (encoded here: urllib has no encoder).
* `Conn`: one WebSocket (the `websockets` package), with replies and pushed events kept apart:
  every request frame gets exactly one reply, events arrive whenever.

Needs the `websockets` package pinned in scripts/ws/requirements.txt (installed into
.tools/venv by scripts/clients/run.sh).
"""

from __future__ import annotations

import asyncio
import json
import mimetypes
import os
import time
import uuid
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Callable

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

# Fixed headers: proxies from the environment are never used for the local server.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class HttpError(Exception):
    def __init__(self, method: str, path: str, status: int, body: Any):
        super().__init__(f"{method} {path} -> {status} {body}")
        self.status = status
        self.body = body


@dataclass
class Response:
    status: int
    body: Any  # the parsed JSON, else the text
    headers: dict[str, str]
    raw: bytes = b""  # the body as received (a download's bytes)


def multipart(parts: list[tuple[str, str | None, bytes, str | None]]) -> tuple[bytes, str]:
    """A multipart/form-data body of (name, filename, content, content type) parts, and its
    Content-Type. A filename travels as UTF-8 with quotes and line breaks escaped, as browsers do."""
    boundary = f"----chatclient{uuid.uuid4().hex}"
    out = []
    for name, filename, content, ctype in parts:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            safe = filename.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")
            disposition += f'; filename="{safe}"'
        head = f"--{boundary}\r\nContent-Disposition: {disposition}\r\n"
        if ctype:
            head += f"Content-Type: {ctype}\r\n"
        out.append(head.encode() + b"\r\n" + content + b"\r\n")
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out), f"multipart/form-data; boundary={boundary}"


def ws_url(base_url: str) -> str:
    """http://host:port -> ws://host:port/ws (https -> wss)."""
    parts = urllib.parse.urlsplit(base_url.rstrip("/"))
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    return urllib.parse.urlunsplit((scheme, parts.netloc, parts.path + "/ws", "", ""))


class Http:
    """The HTTP API as one client: `cookie` is the session of the last successful login."""

    def __init__(self, base_url: str, cookie: str | None = None, user_agent: str = "chat-ws-client"):
        self.base = base_url.rstrip("/")
        self.cookie = cookie
        self.user_agent = user_agent
        self.user: dict | None = None

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        wait_rate_limit: float = 0.0,
        send_cookie: bool = True,
        headers: dict[str, str] | None = None,
        raw_body: tuple[bytes, str] | None = None,
    ) -> Response:
        """Sends one request; never raises for an HTTP status. `body` goes as JSON, `raw_body`
        (bytes, Content-Type) as is. A 429 is retried after its `retry_after` while the total
        wait stays under `wait_rate_limit` seconds."""
        waited = 0.0
        while True:
            data = raw_body[0] if raw_body else None if body is None else json.dumps(body).encode()
            req = urllib.request.Request(self.base + path, data=data, method=method)
            req.add_header("User-Agent", self.user_agent)
            req.add_header("Accept", "application/json")
            if raw_body:
                req.add_header("Content-Type", raw_body[1])
            elif data is not None:
                req.add_header("Content-Type", "application/json")
            if send_cookie and self.cookie:
                req.add_header("Cookie", self.cookie)
            for name, value in (headers or {}).items():
                req.add_header(name, value)
            try:
                with _OPENER.open(req, timeout=30) as resp:
                    status, raw, headers = resp.status, resp.read(), resp.headers
            except urllib.error.HTTPError as err:
                status, raw, headers = err.code, err.read(), err.headers
            text = raw.decode("utf-8", "replace")
            try:
                parsed: Any = json.loads(text) if text else None
            except ValueError:
                parsed = text
            hdrs = {k.lower(): v for k, v in headers.items()}
            set_cookie = headers.get_all("Set-Cookie") or []
            if set_cookie:
                # Every cookie of the answer (a login sets the session and the device cookie),
                # as one `Cookie` header value: `name=value; name2=value2`.
                hdrs["set-cookie"] = "; ".join(c.split(";", 1)[0].strip() for c in set_cookie)
            if status == 429 and waited < wait_rate_limit:
                retry = 1.0
                if isinstance(parsed, dict) and isinstance(parsed.get("retry_after"), (int, float)):
                    retry = float(parsed["retry_after"])
                retry = min(retry + 0.2, max(0.5, wait_rate_limit - waited))
                time.sleep(retry)
                waited += retry
                continue
            return Response(status, parsed, hdrs, raw)

    def call(self, method: str, path: str, body: Any = None, expect: int | tuple[int, ...] = (200, 201, 202), **kw) -> Any:
        """Like request() but raises HttpError unless the status is expected; returns the body."""
        resp = self.request(method, path, body, **kw)
        ok = (expect,) if isinstance(expect, int) else expect
        if resp.status not in ok:
            raise HttpError(method, path, resp.status, resp.body)
        return resp.body

    def upload(self, content: bytes, filename: str, content_type: str | None = None, *,
               name: str | None = None) -> Response:
        """POST /files: `content` as the part `file` (and `name` as the part `name` when given).
        201 {"file": {...}} on success; the server sniffs the type from the bytes, so
        `content_type` (default: guessed from the filename) is only what the part claims."""
        ctype = content_type or mimetypes.guess_type(filename)[0] or "application/octet-stream"
        parts = [("file", filename, content, ctype)]
        if name is not None:
            parts.append(("name", None, name.encode(), None))
        return self.request("POST", "/files", raw_body=multipart(parts))

    def upload_path(self, path: str) -> Response:
        """Uploads the file at `path` under its base name."""
        with open(path, "rb") as f:
            content = f.read()
        return self.upload(content, os.path.basename(path))

    def register(self, user_name: str, password: str, nick_name: str, email: str | None = None, wait: float = 70.0) -> dict:
        body = {"user_name": user_name, "password": password, "nick_name": nick_name}
        if email:
            body["email"] = email
        return self.call("POST", "/user/register", body, expect=201, wait_rate_limit=wait, send_cookie=False)["user"]

    def login(self, user_name: str, password: str, wait: float = 70.0) -> dict:
        resp = self.request(
            "POST", "/user/login", {"user_name": user_name, "password": password},
            wait_rate_limit=wait, send_cookie=False,
        )
        if resp.status != 200:
            raise HttpError("POST", "/user/login", resp.status, resp.body)
        set_cookie = resp.headers.get("set-cookie")
        if not set_cookie:
            raise HttpError("POST", "/user/login", resp.status, "no Set-Cookie in the answer")
        self.cookie = set_cookie
        self.user = resp.body["user"]
        return self.user


def conversation_of(a: str, b: str) -> str:
    """The 1:1 conversation id of two user ids: u:<smaller>:<larger> by numeric order."""
    x, y = sorted((int(a), int(b)))
    return f"u:{x}:{y}"


@dataclass
class Conn:
    """One WebSocket connection. A reader task sorts incoming frames into replies and events."""

    name: str
    ws: ClientConnection
    replies: asyncio.Queue = field(default_factory=asyncio.Queue)
    events: list = field(default_factory=list)
    close_code: int | None = None
    close_reason: str = ""
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    _reader: asyncio.Task | None = None
    on_event: Callable[[dict], None] | None = None
    # Client-side pacing that stays under the server's per-connection limiter
    # (antispam.local_per_sec / local_burst, defaults 10/s and 20).
    pace_per_sec: float = 8.0
    pace_burst: float = 15.0
    _tokens: float = 15.0
    _last: float = field(default_factory=time.monotonic)

    @classmethod
    async def open(cls, base_url: str, cookie: str | None, name: str = "ws", *, origin: str | None = None, **kw) -> "Conn":
        headers = {"Cookie": cookie} if cookie else {}
        ws = await connect(
            ws_url(base_url),
            additional_headers=headers,
            origin=origin,
            proxy=None,
            compression=None,
            max_size=None,
            open_timeout=10,
            close_timeout=3,
            **kw,
        )
        conn = cls(name=name, ws=ws)
        conn._reader = asyncio.create_task(conn._read())
        return conn

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                try:
                    frame = json.loads(raw)
                except ValueError:
                    frame = {"event": "_unparsable", "data": raw}
                if isinstance(frame, dict) and "event" in frame:
                    async with self._changed:
                        self.events.append(frame)
                        self._changed.notify_all()
                    if self.on_event:
                        self.on_event(frame)
                else:
                    await self.replies.put(frame)
        except ConnectionClosed:
            pass
        finally:
            rcvd = self.ws.protocol.close_rcvd
            self.close_code = rcvd.code if rcvd else (self.ws.close_code or 1006)
            self.close_reason = rcvd.reason if rcvd else (self.ws.close_reason or "")
            self.closed.set()
            async with self._changed:
                self._changed.notify_all()

    async def _pace(self) -> None:
        now = time.monotonic()
        self._tokens = min(self.pace_burst, self._tokens + (now - self._last) * self.pace_per_sec)
        self._last = now
        if self._tokens < 1.0:
            wait = (1.0 - self._tokens) / self.pace_per_sec
            await asyncio.sleep(wait)
            self._tokens = 1.0
            self._last = time.monotonic()
        self._tokens -= 1.0

    async def send_raw(self, data: str | bytes, pace: bool = True) -> None:
        if pace:
            await self._pace()
        await self.ws.send(data)

    async def reply(self, timeout: float = 10.0) -> dict:
        """The next reply (raises TimeoutError when none comes)."""
        return await asyncio.wait_for(self.replies.get(), timeout)

    async def request(self, frame: dict | str | bytes, timeout: float = 10.0, pace: bool = True) -> dict:
        """Sends one frame and returns its reply."""
        data = frame if isinstance(frame, (str, bytes)) else json.dumps(frame)
        await self.send_raw(data, pace=pace)
        return await self.reply(timeout)

    async def wait_event(self, kind: str, pred: Callable[[dict], bool] | None = None, timeout: float = 5.0) -> dict:
        """Removes and returns the first pushed event of `kind` whose data matches `pred`."""

        def find():
            for i, ev in enumerate(self.events):
                if ev.get("event") == kind and (pred is None or pred(ev.get("data") or {})):
                    return self.events.pop(i)
            return None

        async def wait():
            async with self._changed:
                while True:
                    ev = find()
                    if ev is not None:
                        return ev
                    if self.closed.is_set():
                        raise ConnectionError(f"{self.name}: closed ({self.close_code}) while waiting for {kind}")
                    await self._changed.wait()

        return await asyncio.wait_for(wait(), timeout)

    async def no_event(self, kind: str, pred: Callable[[dict], bool] | None = None, wait: float = 0.5) -> bool:
        """True when no event of `kind` matching `pred` arrives within `wait` seconds."""
        try:
            await self.wait_event(kind, pred, timeout=wait)
        except (asyncio.TimeoutError, TimeoutError):
            return True
        return False

    def drop_events(self) -> None:
        self.events.clear()

    async def wait_closed(self, timeout: float = 5.0) -> int | None:
        await asyncio.wait_for(self.closed.wait(), timeout)
        return self.close_code

    async def close(self) -> None:
        try:
            await self.ws.close()
        except Exception:
            pass
        if self._reader:
            try:
                await asyncio.wait_for(self._reader, 3)
            except Exception:
                pass
