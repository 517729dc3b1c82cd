#!/usr/bin/env python3
"""Exercises the chat-server WebSocket protocol (docs/protocol.md) against a running server.

    .tools/venv/bin/python scripts/ws/scenarios.py --url http://127.0.0.1:PORT
    .tools/venv/bin/python scripts/ws/scenarios.py --url http://127.0.0.1:PORT --expect-antispam

It registers its own users (unique names) and checks every op_type (1 send, 2 history, 3 unread,
4 mark read, 5 delete / recall, 6 group send, 7 resume, 8 typing), the pushed events (message,
read, deleted, typing, group), typed messages (an image and a file uploaded with POST /files and
sent as types 2 and 6, a location as type 5; the attachment in the reply, the recipient's event
and history; who may download it) and every reply code the protocol defines:

    200, 50004, 50005          normal answers
    40000                      bad frames: not JSON, not an object, unknown op_type, missing or
                               invalid fields, a binary frame
    40003, 40004, 40013        forbidden, not found, content too long
    50006                      anti-spam refusals: in the default run through the rules that fire
                               with the default configuration (unanswered, duplicate, local); with
                               --expect-antispam the sender `rate` rule and the mute that follows,
                               which needs a server started with a low limit, e.g.
                               CHAT__ANTISPAM__RATE_LIMIT=3 (scripts/clients/run.sh does that)

50000 (server-side failure, e.g. sends refused while Redis is unreachable: "fail closed") is not
provoked: it cannot be caused from a client without stopping one of the backing services, which
would disturb every other user of the shared test services.

Also checked: close codes 1009 (frame too big) and 1008 (session revoked by logout), and the
HTTP refusals of the upgrade (401 without a session, 403 for a foreign Origin).

The default run expects the anti-spam defaults (rate_limit 20 per 10 s, unanswered_limit 3,
duplicate_limit 5, local 10/s burst 20); sends are paced to stay under them except where a
refusal is the point. Prints one line per check and a final `N passed, M failed`; exits 1 when
anything failed (2 when the server cannot be reached at all).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import struct
import sys
import time
import traceback
import uuid
import zlib

sys.dont_write_bytecode = True  # no __pycache__ next to the scripts
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from chatclient import Conn, Http, HttpError, conversation_of  # noqa: E402
from websockets.exceptions import InvalidStatus  # noqa: E402

PASSWORD = "scenario-password-1"
MSG_ID = re.compile(r"^[0-9a-f]{24}$")
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
REPLY_KEYS = {"op_type", "code", "msg", "data", "client_msg_id"}
MESSAGE_KEYS = {"id", "conversation", "seq", "from", "to", "type", "content", "client_msg_id", "created_at",
                "attachment", "location"}
ATTACHMENT_KEYS = {"file_id", "mime", "size", "name", "width", "height", "duration_ms", "thumbnail"}

COLOR = sys.stdout.isatty() and os.environ.get("NO_COLOR") is None


def paint(text: str, code: str) -> str:
    return f"\033[{code}m{text}\033[0m" if COLOR else text


def make_png(width: int, height: int) -> bytes:
    """A valid PNG of width x height pixels (8-bit RGB, a gradient), made with zlib alone."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(
        b"\x00" + b"".join(bytes((x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1), 160))
                           for x in range(width))
        for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
            + chunk(b"IEND", b""))


def scrape_metrics(base: str) -> str:
    """GET /metrics with the bearer token of scripts/run.sh: $CHAT__METRICS__TOKEN, else the
    var/metrics_token it generated (none: /metrics is open)."""
    token = os.environ.get("CHAT__METRICS__TOKEN", "")
    if not token:
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "var", "metrics_token")
        try:
            with open(path, encoding="utf-8") as f:
                token = f.read().strip()
        except OSError:
            token = ""
    headers = {"Authorization": f"Bearer {token}"} if token else None
    return Http(base).request("GET", "/metrics", headers=headers).body or ""

class Results:
    def __init__(self, verbose: bool = True):
        self.passed = 0
        self.failed = 0
        self.failures: list[str] = []
        self.verbose = verbose
        self.section = ""

    def start(self, title: str) -> None:
        self.section = title
        if self.verbose:
            print(paint(f"== {title}", "1"))

    def check(self, name: str, ok: bool, detail: object = "") -> bool:
        if ok:
            self.passed += 1
            if self.verbose:
                print(f"  {paint('ok', '32')}    {name}")
        else:
            self.failed += 1
            text = f"{self.section}: {name}"
            if detail != "":
                text += f"  [{_short(detail)}]"
            self.failures.append(text)
            print(f"  {paint('FAIL', '31')}  {name}" + (f"  [{_short(detail)}]" if detail != "" else ""))
        return ok


def _short(value: object, limit: int = 400) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[:limit] + "..."


class User:
    """A registered, logged-in user with their HTTP client and a send budget tracker."""

    def __init__(self, base: str, name: str, nick: str):
        self.base = base
        self.name = name
        self.http = Http(base, user_agent=f"scenarios/{name}")
        self.http.register(name, PASSWORD, nick)
        self.user = self.http.login(name, PASSWORD)
        self.id: str = self.user["id"]
        self.sent: list[float] = []  # times of op 1 / op 6 frames, for the rate budget
        self.rate_budget = 18  # stays under antispam.rate_limit (20 per 10 s) by default

    async def connect(self, label: str | None = None) -> Conn:
        return await Conn.open(self.base, self.http.cookie, label or self.name)

    async def budget(self) -> None:
        """Waits until one more send stays within the sender rate limit (sliding 10.5 s)."""
        while True:
            now = time.monotonic()
            self.sent = [t for t in self.sent if now - t < 10.5]
            if len(self.sent) < self.rate_budget:
                self.sent.append(now)
                return
            await asyncio.sleep(10.5 - (now - self.sent[0]) + 0.05)


class Scenarios:
    def __init__(self, base: str, results: Results):
        self.base = base.rstrip("/")
        self.r = results
        self.run = uuid.uuid4().hex[:8]
        self.cmid_n = 0

    # -- helpers -------------------------------------------------------------------------------

    def cmid(self, prefix: str = "c") -> str:
        self.cmid_n += 1
        return f"{prefix}-{self.run}-{self.cmid_n}"

    def user(self, who: str, nick: str) -> User:
        return User(self.base, f"{who}_{self.run}", nick)

    def reply_ok(self, name: str, reply: dict, op: int, code: int | tuple[int, ...], cmid: str | None = None) -> bool:
        codes = (code,) if isinstance(code, int) else code
        problems = []
        if not isinstance(reply, dict) or set(reply) != REPLY_KEYS:
            problems.append(f"keys {sorted(reply) if isinstance(reply, dict) else type(reply).__name__}")
        else:
            if reply["op_type"] != op:
                problems.append(f"op_type {reply['op_type']} != {op}")
            if reply["code"] not in codes:
                problems.append(f"code {reply['code']} not in {codes}")
            if reply["client_msg_id"] != cmid:
                problems.append(f"client_msg_id {reply['client_msg_id']!r} != {cmid!r}")
            if not isinstance(reply["msg"], str):
                problems.append("msg is not a string")
            if reply["data"] is not None and not isinstance(reply["data"], dict):
                problems.append("data is neither an object nor null")
        return self.r.check(name, not problems, "; ".join(problems) + f" | reply {_short(reply)}" if problems else "")

    def message_ok(self, name: str, m: object, **expect: object) -> bool:
        problems = []
        if not isinstance(m, dict):
            return self.r.check(name, False, f"not a message: {_short(m)}")
        missing = MESSAGE_KEYS - set(m)
        if missing:
            problems.append(f"missing {sorted(missing)}")
        if not MSG_ID.match(str(m.get("id", ""))):
            problems.append(f"id {m.get('id')!r} is not 24 hex")
        if not isinstance(m.get("seq"), int) or m.get("seq", 0) < 1:
            problems.append(f"seq {m.get('seq')!r}")
        if not TIME.match(str(m.get("created_at", ""))):
            problems.append(f"created_at {m.get('created_at')!r}")
        for key, value in expect.items():
            if m.get(key) != value:
                problems.append(f"{key} {m.get(key)!r} != {value!r}")
        return self.r.check(name, not problems, "; ".join(problems) + f" | {_short(m)}" if problems else "")

    async def send(self, conn: Conn, u: User, to: str | int, content: str, *, op: int = 1, cmid: str | None = None,
                   mtype: int = 1, budget: bool = True) -> dict:
        if budget:
            await u.budget()
        frame = {"op_type": op, "to": to, "type": mtype, "content": content}
        if cmid:
            frame["client_msg_id"] = cmid
        return await conn.request(frame)

    async def expect_close(self, name: str, conn: Conn, code: int, timeout: float = 5.0) -> None:
        try:
            got = await conn.wait_closed(timeout)
        except (asyncio.TimeoutError, TimeoutError):
            got = "still open"
        self.r.check(name, got == code, f"close code {got}")

    # -- the default run -----------------------------------------------------------------------

    async def run_default(self) -> None:
        r = self.r
        r.start("setup: users and connections")
        self.alice = alice = self.user("al", "Alice")
        self.bob = bob = self.user("bo", "Bob")
        self.carol = carol = self.user("ca", "Carol")
        self.dave = dave = self.user("da", "Dave")
        r.check("registered and logged in 4 users", all(u.http.cookie for u in (alice, bob, carol, dave)))
        a1 = await alice.connect("alice#1")
        a2 = await alice.connect("alice#2")
        b1 = await bob.connect("bob#1")
        r.check("opened 3 sockets (alice twice, bob once)", not any(c.closed.is_set() for c in (a1, a2, b1)))
        self.ab = conversation_of(alice.id, bob.id)
        self.ac = conversation_of(alice.id, carol.id)

        await self.op1_send(a1, a2, b1)
        c1 = await carol.connect("carol#1")
        await self.op2_history(a1, b1, c1)
        await self.op3_unread(c1, b1)
        await self.op4_read(a1, a2, b1, c1)
        await self.op5_delete(a1, a2, b1, c1)
        await self.op6_group(a1, a2, b1, c1)
        await self.op8_typing(a1, b1, c1)
        b1 = await self.op7_resume(a1, a2, b1)
        await self.typed_messages(a1, a2, b1, c1)
        await self.upload_limit()
        await self.bad_frames(c1)
        await self.antispam_default(a1, c1)
        await self.closes_and_upgrade()
        for c in (a1, a2, b1, c1):
            await c.close()

    async def op1_send(self, a1: Conn, a2: Conn, b1: Conn) -> None:
        r, alice, bob, carol = self.r, self.alice, self.bob, self.carol
        r.start("op 1: send to a user")
        # Bob writes first, so alice's messages to bob are never "unanswered".
        cm = self.cmid("b")
        rep = await self.send(b1, bob, alice.id, "hello alice", cmid=cm)
        self.reply_ok("bob -> alice (online): 50004", rep, 1, 50004, cm)
        self.message_ok("reply data is the stored message", rep.get("data"), conversation=self.ab, **{
            "from": bob.id, "to": alice.id, "type": 1, "content": "hello alice", "client_msg_id": cm})
        for conn in (a1, a2):
            ev = await conn.wait_event("message", lambda d: d.get("client_msg_id") == cm)
            r.check(f"{conn.name} gets event message", ev["data"].get("id") == rep["data"]["id"], ev)
        bob_seq = (rep.get("data") or {}).get("seq", 0)
        r.check("the sending socket gets no event for its own send",
                await b1.no_event("message", lambda d: d.get("client_msg_id") == cm, 0.3))

        cm = self.cmid("a")
        rep = await self.send(a1, alice, bob.id, "hi bob", cmid=cm)
        self.reply_ok("alice -> bob: 50004", rep, 1, 50004, cm)
        first = rep["data"] or {}
        self.message_ok("stored message", first, conversation=self.ab, to=bob.id, **{"from": alice.id})
        ev = await b1.wait_event("message", lambda d: d.get("client_msg_id") == cm)
        r.check("bob gets event message", ev["data"].get("id") == first.get("id"), ev)
        ev = await a2.wait_event("message", lambda d: d.get("client_msg_id") == cm)
        r.check("alice's other socket gets event message", ev["data"].get("id") == first.get("id"), ev)
        r.check("seq increases in the conversation", first.get("seq", 0) > bob_seq, (bob_seq, first.get("seq")))

        rep2 = await self.send(a1, alice, bob.id, "hi bob", cmid=cm)
        self.reply_ok("retry with the same client_msg_id: 50004", rep2, 1, 50004, cm)
        r.check("the retry returns the stored message (same id and seq)",
                (rep2.get("data") or {}).get("id") == first.get("id")
                and (rep2.get("data") or {}).get("seq") == first.get("seq"), rep2)
        r.check("the retry pushes nothing new", await b1.no_event("message", lambda d: d.get("client_msg_id") == cm, 0.5))

        cm = self.cmid("a")
        rep = await self.send(a1, alice, carol.id, "hi carol, you are offline", cmid=cm)
        self.reply_ok("alice -> carol (offline): 50005", rep, 1, 50005, cm)
        self.carol_first = rep.get("data") or {}

        cm = self.cmid("a")
        rep = await self.send(a1, alice, alice.id, "note to self", cmid=cm)
        self.reply_ok("note to self: 50004", rep, 1, 50004, cm)
        self.message_ok("note to self conversation u:<me>:<me>", rep.get("data"),
                        conversation=f"u:{alice.id}:{alice.id}")
        ev = await a2.wait_event("message", lambda d: d.get("client_msg_id") == cm)
        r.check("the note syncs to alice's other socket", bool(ev))

        cm = self.cmid("a")
        rep = await self.send(a1, alice, int(bob.id), "to as a JSON number", cmid=cm)
        self.reply_ok("`to` as a JSON number: 50004", rep, 1, 50004, cm)
        await b1.wait_event("message", lambda d: d.get("client_msg_id") == cm)

        cm = self.cmid("a")
        rep = await self.send(a1, alice, "987654321", "nobody", cmid=cm)
        self.reply_ok("unknown recipient: 40004", rep, 1, 40004, cm)
        for label, frame in [
            ("type outside 1-5: 40000", {"to": bob.id, "type": 9, "content": "x"}),
            ("missing type: 40000", {"to": bob.id, "content": "x"}),
            ("empty content: 40000", {"to": bob.id, "type": 1, "content": ""}),
            ("missing to: 40000", {"type": 1, "content": "x"}),
            ("negative JSON number in to: 40000", {"to": -3, "type": 1, "content": "x"}),
        ]:
            cm = self.cmid("a")
            rep = await a1.request({"op_type": 1, "client_msg_id": cm, **frame})
            self.reply_ok(label, rep, 1, 40000, cm)
        cm = self.cmid("a")
        rep = await a1.request({"op_type": 1, "to": bob.id, "type": 1, "content": "x" * 4001, "client_msg_id": cm})
        self.reply_ok("content over 4000 characters: 40013", rep, 1, 40013, cm)
        cm = self.cmid("a")
        rep = await self.send(a1, alice, bob.id, "é" * 4000, cmid=cm)
        self.reply_ok("exactly 4000 characters (multi-byte) is fine: 50004", rep, 1, 50004, cm)
        self.ab_last = (rep.get("data") or {}).get("seq")
        a1.drop_events(), a2.drop_events(), b1.drop_events()

    async def op2_history(self, a1: Conn, b1: Conn, c1: Conn) -> None:
        r, bob = self.r, self.bob
        r.start("op 2: history")
        rep = await a1.request({"op_type": 2, "to": bob.id})
        self.reply_ok("history with `to`: 200", rep, 2, 200)
        data = rep.get("data") or {}
        msgs = data.get("messages") or []
        seqs = [m.get("seq") for m in msgs]
        r.check("messages ascending by seq", seqs == sorted(seqs) and len(seqs) >= 4, seqs)
        r.check("has_more is false for a short conversation", data.get("has_more") is False, data.get("has_more"))
        r.check("each message has the documented fields", all(MESSAGE_KEYS <= set(m) for m in msgs))
        r.check("a retried send is stored once", len([m for m in msgs if m.get("content") == "hi bob"]) == 1)

        rep = await a1.request({"op_type": 2, "conversation": self.ab, "content": "0-1"})
        self.reply_ok("history with conversation and content \"0-1\": 200", rep, 2, 200)
        data = rep.get("data") or {}
        r.check("\"0-1\" returns the newest message, has_more true",
                len(data.get("messages") or []) == 1 and data.get("has_more") is True
                and data["messages"][0].get("seq") == seqs[-1], data)

        rep = await a1.request({"op_type": 2, "to": bob.id, "content": "1-2"})
        data = rep.get("data") or {}
        r.check("\"1-2\" skips the newest and returns the next two",
                [m.get("seq") for m in data.get("messages") or []] == seqs[-3:-1], data)

        rep = await a1.request({"op_type": 2, "to": bob.id, "before_seq": seqs[-1], "limit": 2})
        self.reply_ok("before_seq / limit: 200", rep, 2, 200)
        got = [m.get("seq") for m in (rep.get("data") or {}).get("messages") or []]
        r.check("before_seq N, limit 2: the two newest below N", got == seqs[-3:-1], got)

        rep = await b1.request({"op_type": 2, "to": self.alice.id, "limit": 200})
        self.reply_ok("limit above the maximum is capped: 200", rep, 2, 200)

        for label, frame in [
            ("limit 0: 40000", {"to": bob.id, "limit": 0}),
            ("negative limit: 40000", {"to": bob.id, "limit": -1}),
            ("malformed content: 40000", {"to": bob.id, "content": "abc"}),
        ]:
            rep = await a1.request({"op_type": 2, **frame})
            self.reply_ok(label, rep, 2, 40000)
        rep = await c1.request({"op_type": 2, "conversation": self.ab, "client_msg_id": "h-1"})
        self.reply_ok("someone else's conversation: 40003", rep, 2, 40003, "h-1")
        rep = await a1.request({"op_type": 2, "conversation": "g:987654321"})
        self.reply_ok("unknown group: 40004", rep, 2, 40004)
        rep = await a1.request({"op_type": 2, "conversation": "u:1"})
        self.reply_ok("malformed conversation id: 40000", rep, 2, 40000)

    async def op3_unread(self, c1: Conn, b1: Conn) -> None:
        r, alice = self.r, self.alice
        r.start("op 3: unread")
        rep = await c1.request({"op_type": 3})
        self.reply_ok("unread overview: 200", rep, 3, 200)
        convs = (rep.get("data") or {}).get("conversations")
        entry = next((c for c in convs or [] if c.get("conversation") == self.ac), None)
        r.check("carol's overview lists u:alice:carol with 1 unread and last_seq",
                entry is not None and entry.get("unread") == 1 and entry.get("last_seq") == self.carol_first.get("seq"),
                convs)
        rep = await c1.request({"op_type": 3, "to": alice.id})
        self.reply_ok("unread of one conversation (to): 200", rep, 3, 200)
        data = rep.get("data") or {}
        r.check("data {conversation, messages, unread, has_more}",
                data.get("conversation") == self.ac and data.get("unread") == 1 and data.get("has_more") is False
                and [m.get("id") for m in data.get("messages") or []] == [self.carol_first.get("id")], data)
        rep = await b1.request({"op_type": 3, "conversation": self.ab})
        data = rep.get("data") or {}
        msgs = data.get("messages") or []
        r.check("bob's unread: alice's 3 messages (a retry counted once, his own not at all)",
                rep.get("code") == 200 and data.get("unread") == 3 and len(msgs) == 3
                and all(m.get("from") == alice.id for m in msgs), data)
        rep = await c1.request({"op_type": 3, "conversation": self.ab})
        self.reply_ok("unread of someone else's conversation: 40003", rep, 3, 40003)

    async def op4_read(self, a1: Conn, a2: Conn, b1: Conn, c1: Conn) -> None:
        r, alice, carol = self.r, self.alice, self.carol
        r.start("op 4: mark read")
        rep = await c1.request({"op_type": 4, "content": self.carol_first.get("id"), "client_msg_id": "r-1"})
        self.reply_ok("mark read by message id: 200", rep, 4, 200, "r-1")
        r.check("data {conversation, seq}",
                rep.get("data") == {"conversation": self.ac, "seq": self.carol_first.get("seq")}, rep.get("data"))
        for conn in (a1, a2):
            ev = await conn.wait_event("read", lambda d: d.get("conversation") == self.ac)
            r.check(f"{conn.name} gets the read receipt",
                    ev["data"] == {"conversation": self.ac, "user_id": carol.id, "seq": self.carol_first.get("seq")},
                    ev)
        rep = await c1.request({"op_type": 3})
        convs = (rep.get("data") or {}).get("conversations") or []
        r.check("carol has nothing unread any more", not any(c.get("conversation") == self.ac for c in convs), convs)

        rep = await b1.request({"op_type": 4, "conversation": self.ab, "seq": 10_000})
        self.reply_ok("mark read by conversation and a seq past the end: 200", rep, 4, 200)
        r.check("a seq past the end counts as the last message",
                (rep.get("data") or {}).get("seq") == self.ab_last, rep.get("data"))
        ev = await a1.wait_event("read", lambda d: d.get("conversation") == self.ab)
        r.check("alice gets bob's receipt", ev["data"].get("user_id") == self.bob.id, ev)
        rep = await b1.request({"op_type": 4, "conversation": self.ab, "seq": 1})
        r.check("an older position is a no-op (the position in force is returned)",
                rep.get("code") == 200 and (rep.get("data") or {}).get("seq") == self.ab_last, rep)
        rep = await b1.request({"op_type": 3, "conversation": self.ab})
        r.check("bob's unread is 0 after reading", (rep.get("data") or {}).get("unread") == 0, rep.get("data"))

        rep = await c1.request({"op_type": 4, "content": "0" * 24})
        self.reply_ok("unknown message id: 40004", rep, 4, 40004)
        last_ab = await a1.request({"op_type": 2, "to": self.bob.id, "content": "0-1"})
        ab_msg = ((last_ab.get("data") or {}).get("messages") or [{}])[0]
        self.ab_msg_id = ab_msg.get("id")
        rep = await c1.request({"op_type": 4, "content": self.ab_msg_id})
        self.reply_ok("a message of someone else's conversation: 40004", rep, 4, 40004)
        rep = await c1.request({"op_type": 4, "conversation": self.ab, "seq": 1})
        self.reply_ok("someone else's conversation by seq: 40003", rep, 4, 40003)
        rep = await c1.request({"op_type": 4})
        self.reply_ok("neither message id nor conversation: 40000", rep, 4, 40000)
        a1.drop_events(), a2.drop_events()

    async def op5_delete(self, a1: Conn, a2: Conn, b1: Conn, c1: Conn) -> None:
        r, alice, bob = self.r, self.alice, self.bob
        r.start("op 5: delete for me, recall for everyone")
        cm = self.cmid("a")
        mx = (await self.send(a1, alice, bob.id, "delete me (for me)", cmid=cm)).get("data") or {}
        await b1.wait_event("message", lambda d: d.get("id") == mx.get("id"))
        await a2.wait_event("message", lambda d: d.get("id") == mx.get("id"))
        rep = await a1.request({"op_type": 5, "content": mx.get("id"), "client_msg_id": "d-1"})
        self.reply_ok("delete for me (default scope): 200", rep, 5, 200, "d-1")
        r.check("data {conversation, id, scope: me}",
                rep.get("data") == {"conversation": self.ab, "id": mx.get("id"), "scope": "me"}, rep.get("data"))
        ev = await a2.wait_event("deleted", lambda d: d.get("id") == mx.get("id"))
        r.check("alice's other socket gets event deleted (scope me)", ev["data"].get("scope") == "me", ev)
        r.check("bob gets no event for a delete-for-me",
                await b1.no_event("deleted", lambda d: d.get("id") == mx.get("id"), 0.4))
        hist = await a1.request({"op_type": 2, "to": bob.id, "limit": 100})
        r.check("gone from alice's history",
                mx.get("id") not in [m.get("id") for m in (hist.get("data") or {}).get("messages") or []])
        hist = await b1.request({"op_type": 2, "to": alice.id, "limit": 100})
        r.check("still in bob's history",
                mx.get("id") in [m.get("id") for m in (hist.get("data") or {}).get("messages") or []])

        cm = self.cmid("a")
        my = (await self.send(a1, alice, bob.id, "recall me", cmid=cm)).get("data") or {}
        await b1.wait_event("message", lambda d: d.get("id") == my.get("id"))
        rep = await b1.request({"op_type": 5, "content": my.get("id"), "scope": "all"})
        self.reply_ok("recalling somebody else's message: 40003", rep, 5, 40003)
        rep = await a1.request({"op_type": 5, "content": my.get("id"), "scope": "all"})
        self.reply_ok("recall (scope all) within the window: 200", rep, 5, 200)
        r.check("data scope all", (rep.get("data") or {}).get("scope") == "all", rep.get("data"))
        for conn in (b1, a2):
            ev = await conn.wait_event("deleted", lambda d: d.get("id") == my.get("id"))
            r.check(f"{conn.name} gets event deleted (scope all)",
                    ev["data"] == {"conversation": self.ab, "id": my.get("id"), "scope": "all"}, ev)
        hist = await b1.request({"op_type": 2, "to": alice.id, "limit": 100})
        r.check("a recalled message is gone from bob's history",
                my.get("id") not in [m.get("id") for m in (hist.get("data") or {}).get("messages") or []])
        unread = await b1.request({"op_type": 3, "conversation": self.ab})
        r.check("and not unread",
                my.get("id") not in [m.get("id") for m in (unread.get("data") or {}).get("messages") or []])

        rep = await a1.request({"op_type": 5, "content": "0" * 24})
        self.reply_ok("unknown message id: 40004", rep, 5, 40004)
        rep = await c1.request({"op_type": 5, "content": mx.get("id")})
        self.reply_ok("a message of someone else's conversation: 40004", rep, 5, 40004)
        rep = await a1.request({"op_type": 5, "content": mx.get("id"), "scope": "everyone"})
        self.reply_ok("unknown scope: 40000", rep, 5, 40000)
        rep = await a1.request({"op_type": 5, "content": "not-an-id"})
        self.reply_ok("malformed message id: 40000 or 40004", rep, 5, (40000, 40004))
        for c in (a1, a2, b1):
            c.drop_events()

    async def op6_group(self, a1: Conn, a2: Conn, b1: Conn, c1: Conn) -> None:
        r, alice, bob, carol = self.r, self.alice, self.bob, self.carol
        r.start("op 6: group send (lobby and a group)")
        cm = self.cmid("a")
        rep = await self.send(a1, alice, "", f"hello lobby {self.run}", op=6, cmid=cm)
        self.reply_ok("lobby (to \"\"): 200", rep, 6, 200, cm)
        self.message_ok("lobby message in conversation g:0", rep.get("data"), conversation="g:0", to="0")
        for conn in (b1, c1, a2):
            ev = await conn.wait_event("message", lambda d: d.get("client_msg_id") == cm)
            r.check(f"{conn.name} gets the lobby message", bool(ev))
        cm = self.cmid("a")
        rep = await self.send(a1, alice, "0", f"lobby again {self.run}", op=6, cmid=cm)
        self.reply_ok("lobby (to \"0\"): 200", rep, 6, 200, cm)

        group = alice.http.call("POST", "/groups", {"name": f"Scenario {self.run}"}, expect=201)["group"]
        gid = self.gid = group["id"]
        bob.http.call("POST", f"/groups/{gid}/join", {}, expect=200)
        ev = await a1.wait_event("group", lambda d: d.get("group_id") == gid and d.get("action") == "join")
        r.check("alice gets event group (join) when bob joins", bool(ev), ev)
        cm = self.cmid("a")
        rep = await self.send(a1, alice, gid, "hello team", op=6, cmid=cm)
        self.reply_ok("group send: 200", rep, 6, 200, cm)
        gm = rep.get("data") or {}
        self.message_ok("group message", gm, conversation=f"g:{gid}", to=gid, **{"from": alice.id})
        ev = await b1.wait_event("message", lambda d: d.get("client_msg_id") == cm)
        r.check("bob (member) gets it", ev["data"].get("id") == gm.get("id"), ev)
        ev = await a2.wait_event("message", lambda d: d.get("client_msg_id") == cm)
        r.check("alice's other socket gets it", bool(ev))
        r.check("carol (no member) does not", await c1.no_event("message", lambda d: d.get("client_msg_id") == cm, 0.4))
        rep = await self.send(a1, alice, gid, "hello team", op=6, cmid=cm)
        r.check("group retry with the same client_msg_id returns the stored message",
                rep.get("code") == 200 and (rep.get("data") or {}).get("id") == gm.get("id"), rep)
        r.check("and pushes nothing new", await b1.no_event("message", lambda d: d.get("client_msg_id") == cm, 0.4))

        cm = self.cmid("c")
        rep = await self.send(c1, carol, gid, "let me talk", op=6, cmid=cm)
        self.reply_ok("non-member: 40003", rep, 6, 40003, cm)
        cm = self.cmid("a")
        rep = await self.send(a1, alice, "987654321", "nobody here", op=6, cmid=cm)
        self.reply_ok("unknown group: 40004", rep, 6, 40004, cm)
        rep = await a1.request({"op_type": 6, "to": gid, "type": 1, "content": "y" * 4001})
        self.reply_ok("group content over the limit: 40013", rep, 6, 40013)

        bob.http.call("PATCH", f"/groups/{gid}/me", {"nickname": "Bobby"})
        cm = self.cmid("b")
        rep = await self.send(b1, bob, gid, "with a nickname", op=6, cmid=cm)
        r.check("a group nickname travels on the message",
                rep.get("code") == 200 and (rep.get("data") or {}).get("nickname") == "Bobby", rep)

        alice.http.call("PATCH", f"/groups/{gid}", {"muted": True})
        cm = self.cmid("b")
        rep = await self.send(b1, bob, gid, "muted?", op=6, cmid=cm)
        self.reply_ok("whole group muted, a member sends: 40003", rep, 6, 40003, cm)
        cm = self.cmid("a")
        rep = await self.send(a1, alice, gid, "the owner may still talk", op=6, cmid=cm)
        self.reply_ok("whole group muted, the owner sends: 200", rep, 6, 200, cm)
        alice.http.call("PATCH", f"/groups/{gid}", {"muted": False})
        alice.http.call("POST", f"/groups/{gid}/mutes", {"user_id": bob.id, "duration_secs": 60})
        cm = self.cmid("b")
        rep = await self.send(b1, bob, gid, "am I muted?", op=6, cmid=cm)
        self.reply_ok("member muted: 40003", rep, 6, 40003, cm)
        alice.http.call("DELETE", f"/groups/{gid}/mutes/{bob.id}")

        rep = await b1.request({"op_type": 2, "conversation": f"g:{gid}"})
        self.reply_ok("group history by conversation: 200", rep, 2, 200)
        msgs = (rep.get("data") or {}).get("messages") or []
        r.check("group history has system messages (type 10) and the sends",
                any(m.get("type") == 10 for m in msgs) and any(m.get("id") == gm.get("id") for m in msgs),
                [(m.get("type"), m.get("content")) for m in msgs])
        sysm = next((m for m in msgs if m.get("type") == 10), None)
        try:
            ok = isinstance(json.loads(sysm["content"]).get("action"), str)
        except Exception:
            ok = False
        r.check("a system message's content is a JSON description with an action", ok, sysm)
        rep = await c1.request({"op_type": 2, "conversation": f"g:{gid}"})
        self.reply_ok("group history, non-member: 40003", rep, 2, 40003)
        for c in (a1, a2, b1, c1):
            c.drop_events()

    async def op8_typing(self, a1: Conn, b1: Conn, c1: Conn) -> None:
        r, alice, bob = self.r, self.alice, self.bob
        r.start("op 8: typing")
        rep = await a1.request({"op_type": 8, "to": bob.id, "client_msg_id": "t-1"})
        self.reply_ok("typing to a user: 200", rep, 8, 200, "t-1")
        ev = await b1.wait_event("typing", lambda d: d.get("conversation") == self.ab)
        r.check("bob gets event typing {conversation, user_id}",
                ev["data"] == {"conversation": self.ab, "user_id": alice.id}, ev)
        rep = await b1.request({"op_type": 8, "conversation": f"g:{self.gid}"})
        self.reply_ok("typing in a group: 200", rep, 8, 200)
        ev = await a1.wait_event("typing", lambda d: d.get("conversation") == f"g:{self.gid}")
        r.check("alice gets the group typing event", ev["data"].get("user_id") == bob.id, ev)
        rep = await a1.request({"op_type": 8, "conversation": "g:0"})
        self.reply_ok("typing in the lobby: 200", rep, 8, 200)
        r.check("nothing is pushed for the lobby", await b1.no_event("typing", lambda d: d.get("conversation") == "g:0", 0.4))
        rep = await c1.request({"op_type": 8, "conversation": self.ab})
        self.reply_ok("typing in someone else's conversation: 40003", rep, 8, 40003)

        # Dissolving: op 6 to the group then answers 40004.
        alice.http.call("DELETE", f"/groups/{self.gid}")
        rep = await self.send(a1, alice, self.gid, "anyone?", op=6)
        self.reply_ok("group send to a dissolved group: 40004", rep, 6, 40004)
        for c in (a1, b1, c1):
            c.drop_events()

    async def op7_resume(self, a1: Conn, a2: Conn, b1: Conn) -> Conn:
        r, alice, bob = self.r, self.alice, self.bob
        r.start("op 7: resume after a reconnect")
        hist = await b1.request({"op_type": 2, "to": alice.id, "content": "0-1"})
        seen = ((hist.get("data") or {}).get("messages") or [{}])[0].get("seq", 0)
        await b1.close()
        await asyncio.sleep(0.3)
        missed = []
        for i in range(3):
            cm = self.cmid("a")
            rep = await self.send(a1 if i < 2 else a2, alice, bob.id, f"while you were away {i}", cmid=cm)
            self.reply_ok(f"send #{i + 1} while bob is offline: 50005", rep, 1, 50005, cm)
            missed.append(rep.get("data") or {})
        b2 = await bob.connect("bob#2")
        rep = await b2.request({"op_type": 7, "since": {self.ab: seen}, "client_msg_id": "res-1"})
        self.reply_ok("resume: 200", rep, 7, 200, "res-1")
        data = rep.get("data") or {}
        got = [m.get("id") for m in data.get("messages") or [] if m.get("conversation") == self.ab]
        r.check("exactly the missed messages of the conversation, in order", got == [m.get("id") for m in missed],
                {"got": got, "want": [m.get("id") for m in missed]})
        r.check("has_more false", data.get("has_more") is False, data.get("has_more"))
        r.check("since[conversation] is the last seq returned",
                (data.get("since") or {}).get(self.ab) == missed[-1].get("seq"), data.get("since"))
        rep = await b2.request({"op_type": 7, "since": data.get("since") or {}})
        again = [m for m in (rep.get("data") or {}).get("messages") or [] if m.get("conversation") == self.ab]
        r.check("resuming with the returned since: no duplicates", rep.get("code") == 200 and again == [], again)

        # Own messages sent from another connection are included.
        rep = await a1.request({"op_type": 7, "since": {self.ab: missed[0].get("seq")}})
        own = [m.get("id") for m in (rep.get("data") or {}).get("messages") or [] if m.get("conversation") == self.ab]
        r.check("alice's resume includes her own messages from other sockets", missed[2].get("id") in own, own)

        rep = await b2.request({"op_type": 7, "since": {}})
        self.reply_ok("resume with an empty since: 200", rep, 7, 200)
        r.check("it returns messages above the read position (the 3 missed)",
                {m.get("id") for m in missed} <= {m.get("id") for m in (rep.get("data") or {}).get("messages") or []},
                rep.get("data"))
        rep = await b2.request({"op_type": 7, "since": {"nonsense": 1}})
        self.reply_ok("malformed conversation id: 40000", rep, 7, 40000)
        rep = await b2.request({"op_type": 7, "since": {self.ab: "x"}})
        self.reply_ok("malformed seq: 40000", rep, 7, 40000)
        cd = conversation_of(self.carol.id, self.dave.id)
        rep = await b2.request({"op_type": 7, "since": {cd: 0}})
        self.reply_ok("a conversation the caller is not part of: 40003", rep, 7, 40003)
        for c in (a1, a2):
            c.drop_events()
        return b2

    async def typed_messages(self, a1: Conn, a2: Conn, b1: Conn, c1: Conn) -> None:
        r, alice, bob, carol = self.r, self.alice, self.bob, self.carol
        r.start("typed messages: uploads (POST /files) sent as images and files, locations")
        png = make_png(40, 30)
        up = alice.http.upload(png, f"dot {self.run}.png", "image/png")
        r.check("alice uploads a PNG: 201", up.status == 201, up.body)
        f = (up.body.get("file") if isinstance(up.body, dict) else None) or {}
        fid = f.get("id", "")
        r.check("the file: sniffed image/png, its size, name, 40x30, a thumbnail URL",
                MSG_ID.match(fid) is not None and f.get("mime") == "image/png" and f.get("size") == len(png)
                and f.get("name") == f"dot {self.run}.png" and (f.get("width"), f.get("height")) == (40, 30)
                and f.get("thumbnail") == f"/files/{fid}/thumbnail", f)
        r.check("bob cannot download it before a message carries it: 404",
                bob.http.request("GET", f"/files/{fid}").status == 404)

        # An image (type 2) with a caption, op 1.
        cm = self.cmid("a")
        await alice.budget()
        rep = await a1.request({"op_type": 1, "to": bob.id, "type": 2, "content": "a dot for you",
                                "attachment": {"file_id": fid}, "client_msg_id": cm})
        self.reply_ok("image message (type 2) to bob: 50004", rep, 1, 50004, cm)
        m = rep.get("data") or {}
        self.message_ok("the stored image message", m, type=2, content="a dot for you", location=None)
        att = m.get("attachment") or {}
        want = {"file_id": fid, "mime": "image/png", "size": len(png), "name": f"dot {self.run}.png",
                "width": 40, "height": 30, "duration_ms": None, "thumbnail": f"/files/{fid}/thumbnail"}
        r.check("its attachment {file_id, mime, size, name, width, height, duration_ms, thumbnail}", att == want, att)
        ev = await b1.wait_event("message", lambda d: d.get("client_msg_id") == cm)
        r.check("bob's event message carries the attachment", ev["data"].get("attachment") == want, ev)
        ev = await a2.wait_event("message", lambda d: d.get("client_msg_id") == cm)
        r.check("so does alice's other socket's", ev["data"].get("attachment") == want, ev)
        hist = await b1.request({"op_type": 2, "to": alice.id, "content": "0-1"})
        newest = ((hist.get("data") or {}).get("messages") or [{}])[-1]
        r.check("history (op 2) has it with the attachment",
                newest.get("id") == m.get("id") and newest.get("attachment") == want, newest)

        dl = bob.http.request("GET", f"/files/{fid}")
        r.check("bob, who can read the conversation, downloads the same bytes",
                dl.status == 200 and dl.raw == png and dl.headers.get("content-type") == "image/png",
                {"status": dl.status, "bytes": len(dl.raw), "type": dl.headers.get("content-type")})
        th = bob.http.request("GET", want["thumbnail"])
        r.check("and its thumbnail: a JPEG", th.status == 200 and th.headers.get("content-type") == "image/jpeg"
                and th.raw[:3] == b"\xff\xd8\xff", {"status": th.status, "type": th.headers.get("content-type")})
        r.check("carol (not in the conversation) gets 404", carol.http.request("GET", f"/files/{fid}").status == 404)
        gone = alice.http.request("DELETE", f"/files/{fid}")
        r.check("alice cannot delete an upload a message carries: 409 conflict",
                gone.status == 409 and (gone.body or {}).get("code") == "conflict", gone.body)

        # The refusals of a typed send.
        cm = self.cmid("c")
        rep = await c1.request({"op_type": 1, "to": alice.id, "type": 2, "attachment": {"file_id": fid},
                                "client_msg_id": cm})
        self.reply_ok("carol sends alice's upload: 40004", rep, 1, 40004, cm)
        for label, frame, field in [
            ("the PNG as a voice message (type 3): 40000 field attachment",
             {"type": 3, "attachment": {"file_id": fid}}, "attachment"),
            ("type 2 without an attachment: 40000 field attachment", {"type": 2, "content": "x"}, "attachment"),
            ("a duration on an image: 40000 field attachment.duration_ms",
             {"type": 2, "attachment": {"file_id": fid, "duration_ms": 1000}}, "attachment.duration_ms"),
            ("an attachment on a text: 40000 field attachment",
             {"type": 1, "content": "x", "attachment": {"file_id": fid}}, "attachment"),
            ("latitude 91: 40000 field location.lat", {"type": 5, "location": {"lat": 91, "lon": 0}}, "location.lat"),
        ]:
            cm = self.cmid("a")
            await alice.budget()
            rep = await a1.request({"op_type": 1, "to": bob.id, "client_msg_id": cm, **frame})
            self.reply_ok(label, rep, 1, 40000, cm)
            r.check(f"  data.field {field}", (rep.get("data") or {}).get("field") == field, rep.get("data"))

        # A file (type 6) without a caption, op 6 to a group.
        group = alice.http.call("POST", "/groups", {"name": f"Files {self.run}"}, expect=201)["group"]
        gid = group["id"]
        bob.http.call("POST", f"/groups/{gid}/join", {}, expect=200)
        notes = f"meeting notes {self.run}\n".encode() * 50
        up = bob.http.upload(notes, "notes.txt", "text/plain")
        nf = (up.body.get("file") if isinstance(up.body, dict) else None) or {}
        r.check("bob uploads a text file: 201, no size or thumbnail",
                up.status == 201 and MSG_ID.match(nf.get("id", "")) is not None
                and nf.get("width") is None and nf.get("thumbnail") is None, up.body)
        cm = self.cmid("b")
        await bob.budget()
        rep = await b1.request({"op_type": 6, "to": gid, "type": 6, "attachment": {"file_id": nf.get("id")},
                                "client_msg_id": cm})
        self.reply_ok("file message (type 6) to a group, no caption: 200", rep, 6, 200, cm)
        gm = rep.get("data") or {}
        r.check("stored with an empty content and the attachment",
                gm.get("content") == "" and (gm.get("attachment") or {}).get("file_id") == nf.get("id")
                and (gm.get("attachment") or {}).get("name") == "notes.txt", gm)
        ev = await a1.wait_event("message", lambda d: d.get("client_msg_id") == cm)
        ea = ev["data"].get("attachment") or {}
        r.check("alice (member) gets it with every attachment field",
                set(ea) == ATTACHMENT_KEYS and ea.get("size") == len(notes) and ea.get("mime") == nf.get("mime"), ea)
        dl = alice.http.request("GET", f"/files/{nf.get('id')}")
        r.check("a group member downloads it (as an attachment)",
                dl.status == 200 and dl.raw == notes
                and dl.headers.get("content-disposition", "").startswith("attachment"),
                {"status": dl.status, "disposition": dl.headers.get("content-disposition")})
        r.check("carol (no member) gets 404", carol.http.request("GET", f"/files/{nf.get('id')}").status == 404)

        # A location (type 5) without a caption.
        cm = self.cmid("a")
        place = {"lat": 52.52192, "lon": 13.41324, "address": "Alexanderplatz, Berlin"}
        await alice.budget()
        rep = await a1.request({"op_type": 1, "to": bob.id, "type": 5, "location": place, "client_msg_id": cm})
        self.reply_ok("location message (type 5): 50004", rep, 1, 50004, cm)
        lm = rep.get("data") or {}
        r.check("stored with the place and no attachment",
                lm.get("location") == place and lm.get("attachment") is None and lm.get("content") == "", lm)
        ev = await b1.wait_event("message", lambda d: d.get("client_msg_id") == cm)
        r.check("bob's event has the place", ev["data"].get("location") == place, ev)
        convs = bob.http.call("GET", "/conversations?limit=100")["conversations"]
        preview = {c.get("conversation"): c.get("preview") for c in convs}
        r.check("GET /conversations previews: [location] for u:alice:bob, [file] for the group",
                preview.get(self.ab) == "[location]" and preview.get(f"g:{gid}") == "[file]", preview)
        alice.http.call("DELETE", f"/groups/{gid}")
        for c in (a1, a2, b1, c1):
            c.drop_events()

    async def upload_limit(self) -> None:
        r, dave = self.r, self.dave
        r.start("uploads: the anti-spam rule `uploads` (30 per minute by default)")
        png = make_png(2, 2)
        statuses = []
        refused = None
        for _ in range(40):
            up = dave.http.upload(png, "tiny.png")
            statuses.append(up.status)
            if up.status != 201:
                refused = up
                break
        r.check("uploads pass until the limit, then 429", refused is not None and refused.status == 429
                and all(s == 201 for s in statuses[:-1]) and len(statuses) > 1, statuses)
        body = (refused.body if refused else None) or {}
        r.check("429 {code: rate_limited, rule: uploads, retry_after} and a Retry-After header",
                body.get("code") == "rate_limited" and body.get("rule") == "uploads"
                and isinstance(body.get("retry_after"), int) and body["retry_after"] >= 1
                and (refused.headers.get("retry-after") or "").isdigit(), {"body": body, "headers": refused and refused.headers})

    async def bad_frames(self, c1: Conn) -> None:
        r = self.r
        r.start("bad frames: 40000, the connection stays open")
        rep = await c1.request("this is not json")
        self.reply_ok("not JSON: 40000 with op_type 0", rep, 0, 40000)
        rep = await c1.request("[1, 2, 3]")
        self.reply_ok("not an object: 40000", rep, 0, 40000)
        rep = await c1.request({"op_type": 99, "client_msg_id": "bad-1"})
        self.reply_ok("unknown op_type: 40000, client_msg_id echoed", rep, 99, 40000, "bad-1")
        rep = await c1.request({"to": self.alice.id, "content": "no op"})
        self.reply_ok("no op_type: 40000", rep, 0, 40000)
        rep = await c1.request({"op_type": "1"})
        self.reply_ok("op_type of the wrong type: 40000", rep, 0, 40000)
        long_id = "x" * 65
        rep = await c1.request({"op_type": 1, "to": self.alice.id, "type": 1, "content": "x", "client_msg_id": long_id})
        r.check("client_msg_id over 64 characters: 40000",
                isinstance(rep, dict) and rep.get("code") == 40000 and rep.get("op_type") == 1, rep)
        rep = await c1.request(b"\x00\x01binary")
        self.reply_ok("binary frame: 40000", rep, 0, 40000)
        rep = await c1.request({"op_type": 3})
        self.reply_ok("the connection still works: 200", rep, 3, 200)

    async def antispam_default(self, a1: Conn, c1: Conn) -> None:
        r, alice, carol, dave = self.r, self.alice, self.carol, self.dave
        r.start("anti-spam with the default rules: 50006")
        # unanswered: alice has sent carol 1 message that carol never answered; 2 more pass,
        # the 4th is refused.
        for i in range(2):
            rep = await self.send(a1, alice, carol.id, f"carol? ({i})", cmid=self.cmid("a"))
            r.check(f"unanswered message #{i + 2} passes", rep.get("code") in (50004, 50005), rep)
        before = await c1.request({"op_type": 2, "to": alice.id, "limit": 100})
        cm = self.cmid("a")
        rep = await self.send(a1, alice, carol.id, "carol?? (refused)", cmid=cm)
        self.reply_ok("4th unanswered message: 50006", rep, 1, 50006, cm)
        data = rep.get("data") or {}
        r.check("data {rule: unanswered, retry_after >= 1}",
                data.get("rule") == "unanswered" and isinstance(data.get("retry_after"), int) and data["retry_after"] >= 1,
                data)
        r.check("the refused message is not delivered", await c1.no_event("message", lambda d: d.get("client_msg_id") == cm, 0.4))
        after = await c1.request({"op_type": 2, "to": alice.id, "limit": 100})
        r.check("nor stored",
                len((after.get("data") or {}).get("messages") or []) == len((before.get("data") or {}).get("messages") or []))
        limits = alice.http.call("GET", "/user/me/limits")["limits"]
        entry = next((u for u in limits.get("unanswered") or [] if u.get("user_id") == carol.id), None)
        r.check("GET /user/me/limits shows the unanswered block",
                entry is not None and (entry.get("blocked_for_secs") or 0) > 0, limits)
        rep = await self.send(c1, carol, alice.id, "hi alice, sorry", cmid=self.cmid("c"))
        r.check("carol answers", rep.get("code") == 50004, rep)
        rep = await self.send(a1, alice, carol.id, "finally", cmid=self.cmid("a"))
        r.check("one reply lifts the block", rep.get("code") in (50004, 50005), rep)

        # duplicate: the same content more than 5 times per minute (notes to self are exempt from
        # `unanswered`, not from `duplicate`).
        d1 = await dave.connect("dave#1")
        text = f"Buy   now {self.run}"
        for i in range(5):
            variant = text.upper() if i % 2 else f"  {text} "
            rep = await self.send(d1, dave, dave.id, variant, cmid=self.cmid("d"))
            r.check(f"same content #{i + 1} (case and spaces varied) passes", rep.get("code") == 50004, rep)
        cm = self.cmid("d")
        rep = await self.send(d1, dave, dave.id, text.lower(), cmid=cm)
        self.reply_ok("6th copy: 50006", rep, 1, 50006, cm)
        r.check("rule duplicate", (rep.get("data") or {}).get("rule") == "duplicate", rep.get("data"))
        limits = dave.http.call("GET", "/user/me/limits")["limits"]
        r.check("limits: strike_active after a duplicate refusal", limits.get("strike_active") is True, limits)

        # local: a burst of frames over the per-connection budget (20) on one socket.
        n = 45
        for _ in range(n):
            await d1.send_raw(json.dumps({"op_type": 3}), pace=False)
        codes = []
        for _ in range(n):
            rep = await d1.reply()
            codes.append((rep.get("code"), (rep.get("data") or {}).get("rule")))
        r.check("a burst of 45 frames: every frame answered with 200 or 50006",
                all(c in (200, 50006) for c, _ in codes), codes)
        r.check("the frames over the budget get 50006 rule local", (50006, "local") in codes, codes)
        await asyncio.sleep(2.5)  # let the bucket refill
        rep = await d1.request({"op_type": 3})
        self.reply_ok("after a pause the connection is served again: 200", rep, 3, 200)
        await d1.close()

        metrics = scrape_metrics(self.base)
        for rule in ("unanswered", "duplicate", "local"):
            m = re.search(r'chat_messages_refused_total\{rule="%s"\} (\d+)' % rule, metrics)
            r.check(f"/metrics counts refusals of rule {rule}", bool(m) and int(m.group(1)) >= 1,
                    m.group(0) if m else "series missing")
        m = re.search(r"^chat_ws_connections (\d+)", metrics, re.M)
        r.check("/metrics shows live connections", bool(m) and int(m.group(1)) >= 3, m.group(0) if m else "missing")

    async def closes_and_upgrade(self) -> None:
        r, carol, bob = self.r, self.carol, self.bob
        r.start("closing codes and refused upgrades")
        c2 = await carol.connect("carol#2")
        try:
            await c2.send_raw(json.dumps({"op_type": 1, "to": carol.id, "type": 1,
                                          "content": os.urandom(40_000).hex()}))
        except Exception:
            pass
        await self.expect_close("a frame over 64 KiB closes the socket with 1009", c2, 1009)

        second = Http(self.base, user_agent="scenarios/second-login")
        second.login(bob.name, PASSWORD)
        b3 = await Conn.open(self.base, second.cookie, "bob#second-login")
        second.call("POST", "/user/logout", expect=200)
        await self.expect_close("logout closes that session's socket with 1008", b3, 1008)

        for label, cookie, origin, want in [
            ("upgrade without a session: HTTP 401", None, None, 401),
            ("upgrade from a foreign Origin: HTTP 403", carol.http.cookie, "http://evil.example", 403),
        ]:
            status = None
            try:
                conn = await Conn.open(self.base, cookie, "refused", origin=origin)
                await conn.close()
                status = 101
            except InvalidStatus as err:
                status = err.response.status_code
            r.check(label, status == want, f"status {status}")
        conn = await Conn.open(self.base, carol.http.cookie, "same-origin", origin=self.base)
        r.check("upgrade with the server's own Origin is allowed", not conn.closed.is_set())
        await conn.close()

    # -- the --expect-antispam run -------------------------------------------------------------

    async def run_antispam(self) -> None:
        r = self.r
        r.start("anti-spam: sender rate (server started with a low CHAT__ANTISPAM__RATE_LIMIT)")
        erin = self.user("er", "Erin")
        limits = erin.http.call("GET", "/user/me/limits")["limits"]
        limit = (limits.get("rate") or {}).get("limit")
        window = (limits.get("rate") or {}).get("window_secs")
        if not r.check("the server's rate limit is low (<= 10)", isinstance(limit, int) and limit <= 10,
                       f"rate.limit = {limit}: start the server with e.g. CHAT__ANTISPAM__RATE_LIMIT=3"):
            return
        e1 = await erin.connect("erin#1")
        passed = []
        for i in range(limit):
            cm = self.cmid("e")
            rep = await self.send(e1, erin, erin.id, f"note {i} {self.run}", cmid=cm, budget=False)
            self.reply_ok(f"message {i + 1} of {limit}: 50004", rep, 1, 50004, cm)
            passed.append(rep.get("data") or {})
        cm = self.cmid("e")
        rep = await self.send(e1, erin, erin.id, f"one too many {self.run}", cmid=cm, budget=False)
        self.reply_ok(f"message {limit + 1}: 50006", rep, 1, 50006, cm)
        data = rep.get("data") or {}
        r.check("rule rate, retry_after within the window",
                data.get("rule") == "rate" and isinstance(data.get("retry_after"), int)
                and 1 <= data["retry_after"] <= (window or 10), data)
        hist = await e1.request({"op_type": 2, "to": erin.id, "limit": 100})
        r.check("the refused message is not stored",
                len((hist.get("data") or {}).get("messages") or []) == limit, hist.get("data"))
        rep = await self.send(e1, erin, erin.id, f"note 0 {self.run}", cmid=passed[0].get("client_msg_id"), budget=False)
        r.check("a retry of a send that passed still returns the stored message (not counted again)",
                rep.get("code") == 50004 and (rep.get("data") or {}).get("id") == passed[0].get("id"), rep)
        limits = erin.http.call("GET", "/user/me/limits")["limits"]
        r.check("limits: rate.sent at the limit, strike active",
                (limits.get("rate") or {}).get("sent") == limit and limits.get("strike_active") is True, limits)

        cm = self.cmid("e")
        rep = await self.send(e1, erin, erin.id, f"again {self.run}", cmid=cm, budget=False)
        self.reply_ok("refused again within the strike window: 50006", rep, 1, 50006, cm)
        cm = self.cmid("e")
        rep = await self.send(e1, erin, "", f"lobby while muted {self.run}", op=6, cmid=cm, budget=False)
        self.reply_ok("now muted, group sends too: 50006", rep, 6, 50006, cm)
        data = rep.get("data") or {}
        r.check("rule muted, retry_after about the first mute step (60 s)",
                data.get("rule") == "muted" and isinstance(data.get("retry_after"), int)
                and 1 <= data["retry_after"] <= 60, data)
        limits = erin.http.call("GET", "/user/me/limits")["limits"]
        r.check("limits: muted_until set, mutes_so_far >= 1",
                limits.get("muted_until") is not None and (limits.get("mutes_so_far") or 0) >= 1, limits)
        rep = await e1.request({"op_type": 3})
        self.reply_ok("reads still work while muted: 200", rep, 3, 200)
        metrics = scrape_metrics(self.base)
        for rule in ("rate", "muted"):
            m = re.search(r'chat_messages_refused_total\{rule="%s"\} (\d+)' % rule, metrics)
            r.check(f"/metrics counts refusals of rule {rule}", bool(m) and int(m.group(1)) >= 1,
                    m.group(0) if m else "series missing")
        await e1.close()


async def main_async(args) -> int:
    results = Results(verbose=not args.quiet)
    sc = Scenarios(args.url, results)
    try:
        Http(args.url).call("GET", "/ping", expect=200)
    except (OSError, HttpError) as err:
        print(f"cannot reach {args.url}: {err}", file=sys.stderr)
        return 2
    run = sc.run_antispam if args.expect_antispam else sc.run_default
    try:
        await asyncio.wait_for(run(), args.timeout)
    except Exception as err:  # a scenario blew up: count it and show where
        results.check(f"scenario aborted: {type(err).__name__}: {err}", False,
                      "".join(traceback.format_exception(err)[-3:]).strip())
    print()
    if results.failures:
        print(paint("failures:", "31"))
        for f in results.failures:
            print(f"  - {f}")
    line = f"{results.passed} passed, {results.failed} failed"
    print(paint(line, "32" if results.failed == 0 else "31"))
    return 0 if results.failed == 0 else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", required=True, help="base URL of the server, e.g. http://127.0.0.1:8081")
    ap.add_argument("--expect-antispam", action="store_true",
                    help="run only the sender-rate scenario (the server needs a low CHAT__ANTISPAM__RATE_LIMIT)")
    ap.add_argument("--quiet", "-q", action="store_true", help="print only failures and the summary")
    ap.add_argument("--timeout", type=float, default=300, help="overall time limit in seconds (default 300)")
    args = ap.parse_args()
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
