#!/usr/bin/env python3
"""Exercises the chat-server WebSocket protocol (docs/protocol.md) against a running server.

    .tools/venv/bin/python scripts/ws/scenarios.py --url http://127.0.0.1:PORT
    .tools/venv/bin/python scripts/ws/scenarios.py --url http://127.0.0.1:PORT --expect-antispam

It registers its own users (unique names) and checks every op_type (1 send, 2 history, 3 unread,
4 mark read, 5 delete / recall, 6 group send, 7 resume, 8 typing, 9 edit, 10 react), the pushed
events (message, read, deleted, typing, group, edited, reaction, pinned, unpinned), typed messages
(an image and a file uploaded with POST /files and sent as types 2 and 6, a location as type 5;
the attachment in the reply, the recipient's event and history; who may download it), the
message actions (replies and forwards on ops 1 and 6, mentions on op 6 with mentions_unread, pins
and message search over HTTP, what op 7 with changed_since reports of them) and every reply code
the protocol defines:

    200, 50004, 50005          normal answers
    40000                      bad frames: not JSON, not an object, unknown op_type, missing or
                               invalid fields, a binary frame
    40003, 40004, 40013        forbidden, not found, content too long
    50006                      anti-spam refusals: in the default run through the rules that fire
                               with the default configuration (unanswered, duplicate, local, and
                               the rules of message actions: edits, reactions; search as HTTP
                               429); with --expect-antispam the sender `rate` rule and the mute
                               that follows, which needs a server started with a low limit, e.g.
                               CHAT__ANTISPAM__RATE_LIMIT=3 (scripts/clients/run.sh does that)

50000 (server-side failure, e.g. sends refused while Redis is unreachable: "fail closed") is not
provoked: it cannot be caused from a client without stopping one of the backing services, which
would disturb every other user of the shared test services.

Also checked: close codes 1009 (frame too big) and 1008 (session revoked by logout), and the
HTTP refusals of the upgrade (401 without a session, 403 for a foreign Origin).

The default run expects the anti-spam defaults (rate_limit 20 per 10 s, unanswered_limit 3,
duplicate_limit 5, local 10/s burst 20, edits 30 and reactions 60 a minute, search_per_minute 30)
and message limits (max_reactions_per_user 3); sends are paced to stay under them except where a
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
import urllib.parse
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
                "attachment", "location", "edited_at", "reply_to", "forwarded", "mentions", "reactions"}
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
        await self.op9_edit(a1, a2, b1, c1)
        await self.replies_and_forwards(a1, a2, b1, c1)
        await self.op10_react(a1, a2, b1, c1)
        await self.mentions(a1, a2, b1, c1)
        await self.pins(a1, a2, b1, c1)
        await self.search(a1, b1)
        await self.resume_changes(a1, b1)
        await self.upload_limit()
        await self.bad_frames(c1)
        await self.antispam_default(a1, c1)
        await self.antispam_actions(b1)
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

    # -- message actions -----------------------------------------------------------------------

    async def refusals(self, op: int, cases: list) -> None:
        """Each (label, conn, fields, code, field): the frame of `op` with `fields` gets `code`
        and, when `field` is given, `data.field` naming it."""
        for label, conn, fields, code, field in cases:
            cm = self.cmid("x")
            rep = await conn.request({"op_type": op, "client_msg_id": cm, **fields})
            self.reply_ok(label, rep, op, code, cm)
            if field:
                self.r.check(f"  data.field {field}", (rep.get("data") or {}).get("field") == field, rep.get("data"))

    def search_for(self, u: User, q: str | None, **params: object):
        """GET /search/messages as `u`."""
        query = {} if q is None else {"q": q}
        query.update({k: str(v) for k, v in params.items()})
        return u.http.request("GET", "/search/messages?" + urllib.parse.urlencode(query))

    async def op9_edit(self, a1: Conn, a2: Conn, b1: Conn, c1: Conn) -> None:
        r, alice, bob = self.r, self.alice, self.bob
        r.start("op 9: edit")
        cm = self.cmid("a")
        orig = (await self.send(a1, alice, bob.id, f"helo {self.run}", cmid=cm)).get("data") or {}
        self.message_ok("a new message: edited_at and reply_to null, not forwarded, no mentions or reactions", orig,
                        edited_at=None, reply_to=None, forwarded=False, mentions=[], reactions=[])
        oid = self.action_msg = orig.get("id")
        for conn in (b1, a2):
            await conn.wait_event("message", lambda d: d.get("id") == oid)
        text = f"hello {self.run}"
        rep = await a1.request({"op_type": 9, "message_id": oid, "content": text, "client_msg_id": "e-1"})
        self.reply_ok("alice edits her message: 200, client_msg_id echoed", rep, 9, 200, "e-1")
        m = rep.get("data") or {}
        self.message_ok("the reply is the message with the new text (same id, seq, created_at)", m, id=oid,
                        seq=orig.get("seq"), created_at=orig.get("created_at"), content=text)
        r.check("edited_at is set (RFC 3339 with ms)", TIME.match(str(m.get("edited_at"))) is not None, m.get("edited_at"))
        r.check("no edit history on the wire", "edits" not in m, sorted(m))
        for conn in (b1, a2):
            ev = await conn.wait_event("edited", lambda d: d.get("id") == oid)
            r.check(f"{conn.name} gets event edited with the whole message",
                    ev["data"].get("content") == text and ev["data"].get("edited_at") == m.get("edited_at")
                    and MESSAGE_KEYS <= set(ev["data"]), ev)
        r.check("the editing socket gets no event edited", await a1.no_event("edited", lambda d: d.get("id") == oid, 0.3))
        rep = await a1.request({"op_type": 9, "message_id": oid, "content": text})
        r.check("the same text again: 200, edited_at unchanged",
                rep.get("code") == 200 and (rep.get("data") or {}).get("edited_at") == m.get("edited_at"), rep)
        r.check("  and nothing pushed", await b1.no_event("edited", lambda d: d.get("id") == oid, 0.4))
        hist = await b1.request({"op_type": 2, "to": alice.id, "content": "0-1"})
        newest = ((hist.get("data") or {}).get("messages") or [{}])[-1]
        r.check("bob's history shows the new text, marked edited",
                newest.get("id") == oid and newest.get("content") == text and newest.get("edited_at") == m.get("edited_at"),
                newest)
        await self.refusals(9, [
            ("somebody else's message: 40003", b1, {"message_id": oid, "content": "mine now"}, 40003, None),
            ("blank content: 40000", a1, {"message_id": oid, "content": "   "}, 40000, "content"),
            ("no content: 40000", a1, {"message_id": oid}, 40000, "content"),
            ("content over 4000 characters: 40013", a1, {"message_id": oid, "content": "x" * 4001}, 40013, None),
            ("no message_id: 40000", a1, {"content": "x"}, 40000, "message_id"),
            ("malformed message_id: 40000", a1, {"message_id": "nope", "content": "x"}, 40000, "message_id"),
            ("unknown message: 40004", a1, {"message_id": "0" * 24, "content": "x"}, 40004, None),
            ("a message of someone else's conversation: 40004", c1, {"message_id": oid, "content": "x"}, 40004, None),
        ])
        for c in (a1, a2, b1):
            c.drop_events()

    async def replies_and_forwards(self, a1: Conn, a2: Conn, b1: Conn, c1: Conn) -> None:
        r, alice, bob, carol = self.r, self.alice, self.bob, self.carol
        r.start("replies and forwards (reply_to, forward_of on ops 1 and 6)")
        oid = self.action_msg
        cm = self.cmid("b")
        await bob.budget()
        rep = await b1.request({"op_type": 1, "to": alice.id, "type": 1, "content": f"hi back {self.run}",
                                "reply_to": oid, "client_msg_id": cm})
        self.reply_ok("bob answers alice's message (reply_to): 50004", rep, 1, 50004, cm)
        reply = rep.get("data") or {}
        quote = {"id": oid, "from": alice.id, "type": 1, "excerpt": f"hello {self.run}", "recalled": False}
        r.check("the reply quotes it: reply_to {id, from, type, excerpt, recalled}", reply.get("reply_to") == quote,
                reply.get("reply_to"))
        ev = await a1.wait_event("message", lambda d: d.get("client_msg_id") == cm)
        r.check("alice's event message carries the quote", ev["data"].get("reply_to") == quote, ev)
        rep = await a1.request({"op_type": 9, "message_id": oid, "content": f"hello again {self.run}"})
        r.check("alice edits the message answered: 200", rep.get("code") == 200, rep)
        hist = await b1.request({"op_type": 2, "to": alice.id, "content": "0-5"})
        quoted = next((m.get("reply_to") for m in (hist.get("data") or {}).get("messages") or []
                       if m.get("id") == reply.get("id")), None)
        r.check("the quote follows the edit (history)", (quoted or {}).get("excerpt") == f"hello again {self.run}", quoted)
        for label, fields, code, field in [
            ("reply_to a message of a conversation bob is not in: 40004",
             {"reply_to": self.carol_first.get("id")}, 40004, None),
            ("reply_to a malformed id: 40000", {"reply_to": "nope"}, 40000, "reply_to"),
        ]:
            cm = self.cmid("b")
            await bob.budget()
            rep = await b1.request({"op_type": 1, "to": alice.id, "type": 1, "content": f"re {cm}",
                                    "client_msg_id": cm, **fields})
            self.reply_ok(label, rep, 1, code, cm)
            if field:
                r.check(f"  data.field {field}", (rep.get("data") or {}).get("field") == field, rep.get("data"))

        # Forwards: a copy, naming the original's author only where its readers may read it.
        cm = self.cmid("b")
        await bob.budget()
        rep = await b1.request({"op_type": 1, "to": alice.id, "forward_of": oid, "client_msg_id": cm})
        self.reply_ok("bob forwards alice's message back into their 1:1: 50004", rep, 1, 50004, cm)
        fw = rep.get("data") or {}
        self.message_ok("a copy: its own id, the original's type and text, forwarded from alice", fw,
                        conversation=self.ab, type=1, content=f"hello again {self.run}", forwarded=True,
                        forwarded_from={"user_id": alice.id}, **{"from": bob.id})
        r.check("  a new message (its own id)", fw.get("id") != oid, fw.get("id"))
        group = alice.http.call("POST", "/groups", {"name": f"Actions {self.run}"}, expect=201)["group"]
        gid = self.action_gid = group["id"]
        bob.http.call("POST", f"/groups/{gid}/join", {}, expect=200)
        await a1.wait_event("group", lambda d: d.get("group_id") == gid and d.get("action") == "join")
        cm = self.cmid("b")
        await bob.budget()
        rep = await b1.request({"op_type": 6, "to": gid, "forward_of": oid, "type": 3, "client_msg_id": cm})
        self.reply_ok("bob forwards it into a group (op 6; `type` is ignored): 200", rep, 6, 200, cm)
        gfw = rep.get("data") or {}
        self.message_ok("forwarded, without forwarded_from (a 1:1 is not the group's to read)", gfw,
                        conversation=f"g:{gid}", type=1, content=f"hello again {self.run}", forwarded=True)
        r.check("  no forwarded_from", "forwarded_from" not in gfw, gfw)
        ev = await a1.wait_event("message", lambda d: d.get("client_msg_id") == cm)
        r.check("alice (member) gets the copy", ev["data"].get("forwarded") is True, ev)
        hist = await b1.request({"op_type": 2, "conversation": f"g:{gid}"})
        self.action_system = next((m for m in (hist.get("data") or {}).get("messages") or [] if m.get("type") == 10), {})
        r.check("the group has a system message (bob's join)", self.action_system.get("type") == 10, hist.get("data"))
        for label, conn, fields, code, field in [
            ("forward_of with a content: 40000", b1, {"forward_of": oid, "content": "x"}, 40000, "content"),
            ("forward_of with a reply_to: 40000", b1, {"forward_of": oid, "reply_to": oid}, 40000, "reply_to"),
            ("forward of a system message: 40004", b1, {"forward_of": self.action_system.get("id")}, 40004, None),
            ("carol forwards a message she cannot read: 40004", c1, {"forward_of": oid}, 40004, None),
        ]:
            cm = self.cmid("f")
            rep = await conn.request({"op_type": 1, "to": alice.id if conn is b1 else carol.id, "client_msg_id": cm,
                                      **fields})
            self.reply_ok(label, rep, 1, code, cm)
            if field:
                r.check(f"  data.field {field}", (rep.get("data") or {}).get("field") == field, rep.get("data"))

        # A recall takes the excerpt out of every quote.
        cm = self.cmid("a")
        gone = (await self.send(a1, alice, bob.id, f"soon recalled {self.run}", cmid=cm)).get("data") or {}
        cm = self.cmid("b")
        await bob.budget()
        rep = await b1.request({"op_type": 1, "to": alice.id, "type": 1, "content": f"what? {self.run}",
                                "reply_to": gone.get("id"), "client_msg_id": cm})
        answer = rep.get("data") or {}
        r.check("bob answers it: the quote has its excerpt",
                (answer.get("reply_to") or {}).get("excerpt") == f"soon recalled {self.run}", answer)
        rep = await a1.request({"op_type": 5, "message_id": gone.get("id"), "scope": "all"})
        self.reply_ok("alice recalls it (op 5 with message_id): 200", rep, 5, 200)
        hist = await a1.request({"op_type": 2, "to": bob.id, "content": "0-5"})
        quoted = next((m.get("reply_to") for m in (hist.get("data") or {}).get("messages") or []
                       if m.get("id") == answer.get("id")), None)
        r.check("the reply now shows excerpt null, recalled true",
                quoted == {"id": gone.get("id"), "from": alice.id, "type": 1, "excerpt": None, "recalled": True}, quoted)
        for c in (a1, a2, b1, c1):
            c.drop_events()

    async def op10_react(self, a1: Conn, a2: Conn, b1: Conn, c1: Conn) -> None:
        r, alice, bob = self.r, self.alice, self.bob
        r.start("op 10: reactions")
        oid = self.action_msg

        def react(emoji: str, action: str = "add", mid: str = oid) -> dict:
            return {"op_type": 10, "message_id": mid, "emoji": emoji, "action": action}

        def about(d: dict) -> bool:
            return d.get("message_id") == oid

        rep = await b1.request({**react("👍"), "client_msg_id": "re-1"})
        self.reply_ok("bob reacts 👍: 200", rep, 10, 200, "re-1")
        pushed = {"conversation": self.ab, "message_id": oid, "user_id": bob.id, "emoji": "👍", "action": "add"}
        r.check("data: the reaction and the message's reactions as bob sees them",
                rep.get("data") == {**pushed, "reactions": [{"emoji": "👍", "count": 1, "me": True}]}, rep.get("data"))
        for conn in (a1, a2):
            ev = await conn.wait_event("reaction", about)
            r.check(f"{conn.name} gets event reaction {{conversation, message_id, user_id, emoji, action}}",
                    ev["data"] == pushed, ev)
        r.check("the reacting socket gets no event", await b1.no_event("reaction", about, 0.3))
        rep = await b1.request(react("👍"))
        r.check("the same reaction again: 200, still counted once",
                rep.get("code") == 200 and (rep.get("data") or {}).get("reactions") == [{"emoji": "👍", "count": 1, "me": True}],
                rep)
        r.check("  and nothing pushed", await a1.no_event("reaction", about, 0.4))
        rep = await a1.request(react("\u2764"))
        r.check("alice reacts with an unqualified ❤: kept as the fully qualified ❤️",
                rep.get("code") == 200 and (rep.get("data") or {}).get("emoji") == "\u2764\ufe0f", rep)
        ev = await b1.wait_event("reaction", about)
        r.check("bob gets alice's reaction", ev["data"].get("user_id") == alice.id and ev["data"].get("emoji") == "\u2764\ufe0f", ev)
        for conn, who, mine in ((b1, alice.id, "👍"), (a1, bob.id, "\u2764\ufe0f")):
            hist = await conn.request({"op_type": 2, "to": who, "limit": 20})
            m = next((m for m in (hist.get("data") or {}).get("messages") or [] if m.get("id") == oid), {})
            want = [{"emoji": e, "count": 1, "me": e == mine} for e in ("👍", "\u2764\ufe0f")]
            r.check(f"{conn.name}'s history: counts in the order given, me where {conn.name.split('#')[0]} reacted",
                    m.get("reactions") == want, m.get("reactions"))
        for emoji in ("🎉", "😀"):
            rep = await b1.request(react(emoji))
            r.check(f"bob's reaction {emoji}: 200", rep.get("code") == 200, rep)
        rep = await b1.request(react("🚀"))
        self.reply_ok("a 4th different emoji of one user on one message: 40000", rep, 10, 40000)
        r.check("  data.code limit_reached, msg names the limit", (rep.get("data") or {}).get("code") == "limit_reached" and "3" in str(rep.get("msg")), rep)
        rep = await b1.request(react("👍", "remove"))
        r.check("bob takes 👍 back: 200, his 👍 is gone",
                rep.get("code") == 200 and "👍" not in [x.get("emoji") for x in (rep.get("data") or {}).get("reactions") or []],
                rep)
        ev = await a1.wait_event("reaction", lambda d: about(d) and d.get("action") == "remove")
        r.check("alice gets event reaction with action remove", ev["data"].get("emoji") == "👍", ev)
        await self.refusals(10, [
            ("not an emoji: 40000", b1, react("a"), 40000, "emoji"),
            ("two emoji: 40000", b1, react("👍👍"), 40000, "emoji"),
            ("an emoji and a space: 40000", b1, react("👍 "), 40000, "emoji"),
            ("action other than add or remove: 40000", b1, react("👍", "toggle"), 40000, "action"),
            ("no message_id: 40000", b1, {"emoji": "👍", "action": "add"}, 40000, "message_id"),
            ("unknown message: 40004", b1, react("👍", mid="0" * 24), 40004, None),
            ("carol, outside the conversation: 40004", c1, react("👍"), 40004, None),
        ])
        for c in (a1, a2, b1):
            c.drop_events()

    async def mentions(self, a1: Conn, a2: Conn, b1: Conn, c1: Conn) -> None:
        r, alice, bob, carol = self.r, self.alice, self.bob, self.carol
        r.start("mentions (op 6), mentions_unread, system messages")
        gid = self.action_gid
        bob.http.call("PATCH", f"/groups/{gid}/me", {"dnd": True})
        cm = self.cmid("a")
        await alice.budget()
        rep = await a1.request({"op_type": 6, "to": gid, "type": 1, "content": f"@bob look {self.run}",
                                "mentions": [bob.id, int(bob.id), carol.id, alice.id], "client_msg_id": cm})
        self.reply_ok("alice mentions bob (and a non-member, and herself): 200", rep, 6, 200, cm)
        mm = self.mention_msg = rep.get("data") or {}
        r.check("mentions: bob only (deduplicated; non-members and the sender dropped)", mm.get("mentions") == [bob.id], mm)
        ev = await b1.wait_event("message", lambda d: d.get("client_msg_id") == cm)
        r.check("bob (do-not-disturb) is pushed the message, with mentioned: true", ev["data"].get("mentioned") is True, ev)
        ev = await a2.wait_event("message", lambda d: d.get("client_msg_id") == cm)
        r.check("alice's other socket gets it without mentioned", "mentioned" not in ev["data"], ev)
        cm = self.cmid("a")
        await alice.budget()
        rep = await a1.request({"op_type": 6, "to": gid, "type": 1, "content": f"no mention {self.run}", "client_msg_id": cm})
        self.reply_ok("a group message without mentions: 200", rep, 6, 200, cm)
        r.check("bob (do-not-disturb) is not pushed that one",
                await b1.no_event("message", lambda d: d.get("client_msg_id") == cm, 0.5))
        rep = await b1.request({"op_type": 3})
        entry = next((c for c in (rep.get("data") or {}).get("conversations") or [] if c.get("conversation") == f"g:{gid}"), {})
        r.check("op 3 summary: g:<group> with unread 2, mentions_unread 1",
                entry.get("unread") == 2 and entry.get("mentions_unread") == 1, entry)
        rep = await b1.request({"op_type": 3, "conversation": f"g:{gid}"})
        r.check("op 3 of the group: mentions_unread 1", (rep.get("data") or {}).get("mentions_unread") == 1, rep.get("data"))
        convs = bob.http.call("GET", "/conversations?limit=100")["conversations"]
        item = next((c for c in convs if c.get("conversation") == f"g:{gid}"), {})
        r.check("GET /conversations: mentions_unread 1 for the group", item.get("mentions_unread") == 1, item)
        cm = self.cmid("b")
        await bob.budget()
        rep = await b1.request({"op_type": 6, "to": gid, "type": 1, "content": f"hey all {self.run}",
                                "mentions": ["all"], "client_msg_id": cm})
        self.reply_ok("a member mentions all: 40003", rep, 6, 40003, cm)
        cm = self.cmid("a")
        await alice.budget()
        rep = await a1.request({"op_type": 6, "to": gid, "type": 1, "content": f"everyone {self.run}",
                                "mentions": ["all"], "client_msg_id": cm})
        self.reply_ok("the owner mentions all: 200", rep, 6, 200, cm)
        r.check("  mentions [\"all\"]", (rep.get("data") or {}).get("mentions") == ["all"], rep.get("data"))
        ev = await b1.wait_event("message", lambda d: d.get("client_msg_id") == cm)
        r.check("bob is pushed it, mentioned", ev["data"].get("mentioned") is True, ev)
        rep = await b1.request({"op_type": 3, "conversation": f"g:{gid}"})
        r.check("bob's mentions_unread is 2", (rep.get("data") or {}).get("mentions_unread") == 2, rep.get("data"))
        rep = await b1.request({"op_type": 4, "conversation": f"g:{gid}", "seq": 1_000_000})
        rep = await b1.request({"op_type": 3})
        r.check("read up to the end: the group is no longer unread",
                not any(c.get("conversation") == f"g:{gid}" for c in (rep.get("data") or {}).get("conversations") or []),
                rep.get("data"))
        bob.http.call("PATCH", f"/groups/{gid}/me", {"dnd": False})
        await self.refusals(6, [
            ("mentions not an array: 40000", a1, {"to": gid, "type": 1, "content": "x", "mentions": bob.id}, 40000, "mentions"),
            ("a mention that is no user id: 40000", a1, {"to": gid, "type": 1, "content": "x", "mentions": ["bob"]},
             40000, "mentions"),
        ])
        await self.refusals(1, [
            ("mentions on op 1: 40000", a1, {"to": bob.id, "type": 1, "content": "x", "mentions": [bob.id]}, 40000,
             "mentions"),
        ])
        sysid = self.action_system.get("id")
        await self.refusals(9, [("edit a system message: 40003", b1, {"message_id": sysid, "content": "x"}, 40003, None)])
        await self.refusals(10, [("react to a system message: 40003", a1,
                                  {"message_id": sysid, "emoji": "👍", "action": "add"}, 40003, None)])
        for c in (a1, a2, b1, c1):
            c.drop_events()

    async def pins(self, a1: Conn, a2: Conn, b1: Conn, c1: Conn) -> None:
        r, alice, bob, carol = self.r, self.alice, self.bob, self.carol
        r.start("pinned messages (HTTP): events pinned / unpinned and their system messages")
        oid, gid = self.action_msg, self.action_gid
        path = f"/conversations/{self.ab}/pins"
        resp = bob.http.request("POST", path, {"message_id": oid})
        pin = (resp.body or {}).get("pin") or {} if isinstance(resp.body, dict) else {}
        r.check("bob pins alice's message in their 1:1: 201 {pin}", resp.status == 201, resp.body)
        r.check("  pin {conversation, message, pinned_by, pinned_at}",
                set(pin) == {"conversation", "message", "pinned_by", "pinned_at"} and pin.get("conversation") == self.ab
                and (pin.get("message") or {}).get("id") == oid and pin.get("pinned_by") == bob.id
                and TIME.match(str(pin.get("pinned_at"))) is not None, pin)
        for conn in (a1, a2, b1):
            ev = await conn.wait_event("pinned", lambda d: d.get("message_id") == oid)
            r.check(f"{conn.name} gets event pinned {{conversation, message_id, by, at, message}}",
                    set(ev["data"]) == {"conversation", "message_id", "by", "at", "message"} and ev["data"].get("by") == bob.id
                    and ev["data"].get("conversation") == self.ab
                    and (ev["data"].get("message") or {}).get("id") == oid, ev)
        ev = await a1.wait_event("message", lambda d: d.get("type") == 10 and d.get("conversation") == self.ab)
        try:
            notice = json.loads(ev["data"]["content"])
        except (KeyError, TypeError, ValueError):
            notice = None
        r.check("and a system message (type 10) {kind: pinned, message_id, by}",
                notice == {"action": "pinned", "message_id": oid, "by": bob.id}, ev)
        resp = bob.http.request("POST", path, {"message_id": oid})
        r.check("pin it again: 200", resp.status == 200 and ((resp.body or {}).get("pin") or {}).get("pinned_by") == bob.id,
                resp.body)
        r.check("  nothing pushed", await a1.no_event("pinned", lambda d: d.get("message_id") == oid, 0.4))
        listed = alice.http.call("GET", path).get("pins") or []
        r.check("alice lists the pins: the message, pinned by bob",
                [(p.get("message") or {}).get("id") for p in listed] == [oid] and listed[0].get("pinned_by") == bob.id, listed)
        for label, u, method, where, body, status in [
            ("carol lists pins of a 1:1 she is not in: 403", carol, "GET", path, None, 403),
            ("carol pins there: 403", carol, "POST", path, {"message_id": oid}, 403),
            ("bob (a member, not a manager) pins in the group: 403", bob, "POST", f"/conversations/g:{gid}/pins",
             {"message_id": self.mention_msg.get("id")}, 403),
            ("the owner pins a system message: 400", alice, "POST", f"/conversations/g:{gid}/pins",
             {"message_id": self.action_system.get("id")}, 400),
            ("the owner pins a message of another conversation into the group: 404", alice, "POST",
             f"/conversations/g:{gid}/pins", {"message_id": oid}, 404),
            ("a malformed message_id: 400", alice, "POST", path, {"message_id": "nope"}, 400),
            ("a malformed conversation: 400", alice, "GET", "/conversations/nope/pins", None, 400),
        ]:
            resp = u.http.request(method, where, body)
            r.check(label, resp.status == status, {"status": resp.status, "body": resp.body})
        resp = alice.http.request("POST", f"/conversations/g:{gid}/pins", {"message_id": self.mention_msg.get("id")})
        r.check("the owner pins a group message: 201", resp.status == 201, resp.body)
        ev = await b1.wait_event("pinned", lambda d: d.get("conversation") == f"g:{gid}")
        r.check("bob (member) gets event pinned", ev["data"].get("by") == alice.id, ev)
        listed = bob.http.call("GET", f"/conversations/g:{gid}/pins").get("pins") or []
        r.check("a member lists the group's pins", [(p.get("message") or {}).get("id") for p in listed]
                == [self.mention_msg.get("id")], listed)

        resp = alice.http.request("DELETE", f"{path}/{oid}")
        unpinned = (resp.body or {}).get("unpinned") if isinstance(resp.body, dict) else None
        r.check("alice unpins: 200 {unpinned: {conversation, message_id, by, at}}",
                resp.status == 200 and isinstance(unpinned, dict) and unpinned.get("message_id") == oid
                and unpinned.get("by") == alice.id, resp.body)
        ev = await b1.wait_event("unpinned", lambda d: d.get("message_id") == oid)
        r.check("bob gets event unpinned", ev["data"].get("by") == alice.id, ev)
        r.check("the list is empty", alice.http.call("GET", path).get("pins") == [])
        resp = alice.http.request("DELETE", f"{path}/{oid}")
        r.check("unpin again: 404", resp.status == 404 and (resp.body or {}).get("code") == "not_found", resp.body)

        cm = self.cmid("a")
        doomed = (await self.send(a1, alice, bob.id, f"pinned, then recalled {self.run}", cmid=cm)).get("data") or {}
        resp = bob.http.request("POST", path, {"message_id": doomed.get("id")})
        r.check("bob pins another message: 201", resp.status == 201, resp.body)
        rep = await a1.request({"op_type": 5, "message_id": doomed.get("id"), "scope": "all"})
        self.reply_ok("alice recalls it: 200", rep, 5, 200)
        ev = await b1.wait_event("unpinned", lambda d: d.get("message_id") == doomed.get("id"))
        r.check("the recall unpins it: bob gets event unpinned by alice", ev["data"].get("by") == alice.id, ev)
        r.check("  and it leaves the list", bob.http.call("GET", path).get("pins") == [])
        for c in (a1, a2, b1, c1):
            c.drop_events()

    async def search(self, a1: Conn, b1: Conn) -> None:
        r, alice, bob, carol = self.r, self.alice, self.bob, self.carol
        r.start("message search (GET /search/messages)")
        run = self.run
        sent = {}
        for key, text in [("cafe", f"Rendez-vous au Café Crème {run}"), ("tokyo", f"明天在東京都开会 {run}")] + [
                (f"page{i}", f"page {run} number {i}") for i in range(3)]:
            cm = self.cmid("a")
            sent[key] = (await self.send(a1, alice, bob.id, text, cmid=cm)).get("data") or {}

        def hits(resp) -> list:
            body = resp.body if isinstance(resp.body, dict) else {}
            return [(h.get("conversation"), (h.get("message") or {}).get("id")) for h in body.get("results") or []]

        resp = self.search_for(bob, f"cafe creme {run}")
        r.check("bob finds 'Café Crème' by 'cafe creme' (case and accents ignored): 200",
                resp.status == 200 and hits(resp) == [(self.ab, sent["cafe"].get("id"))], resp.body)
        body = resp.body if isinstance(resp.body, dict) else {}
        r.check("  {results: [{conversation, message}], has_more, next_before}",
                set(body) == {"results", "has_more", "next_before"} and body.get("has_more") is False
                and body.get("next_before") is None and MESSAGE_KEYS <= set((body.get("results") or [{}])[0].get("message") or {}),
                body)
        resp = self.search_for(bob, f"東京 {run}")
        r.check("a CJK word inside a run of characters: 東京 finds 東京都",
                hits(resp) == [(self.ab, sent["tokyo"].get("id"))], resp.body)
        resp = self.search_for(carol, f"cafe {run}")
        r.check("carol (not in the conversation) finds nothing", resp.status == 200 and hits(resp) == [], resp.body)
        resp = self.search_for(bob, f"cafe {run}", conversation=f"g:{self.action_gid}")
        r.check("conversation= narrows the search: nothing in the group", resp.status == 200 and hits(resp) == [], resp.body)
        resp = self.search_for(carol, f"cafe {run}", conversation=self.ab)
        r.check("conversation= of someone else's conversation: 403", resp.status == 403, resp.body)

        pages = [sent[f"page{i}"].get("id") for i in (2, 1, 0)]
        resp = self.search_for(bob, f"page {run}", limit=2)
        body = resp.body if isinstance(resp.body, dict) else {}
        r.check("limit 2: the two newest hits, has_more, next_before the last of them",
                [i for _, i in hits(resp)] == pages[:2] and body.get("has_more") is True
                and body.get("next_before") == pages[1], body)
        resp = self.search_for(bob, f"page {run}", limit=2, before=body.get("next_before"))
        body = resp.body if isinstance(resp.body, dict) else {}
        r.check("before=next_before: the older hit, no more",
                [i for _, i in hits(resp)] == pages[2:] and body.get("has_more") is False and body.get("next_before") is None,
                body)

        rep = await a1.request({"op_type": 9, "message_id": pages[2], "content": f"zebra {run}"})
        r.check("alice edits one of them: 200", rep.get("code") == 200, rep)
        r.check("the edited message is found by its new word",
                [i for _, i in hits(self.search_for(bob, f"zebra {run}"))] == [pages[2]])
        r.check("and no longer by its old ones", [i for _, i in hits(self.search_for(bob, f"page {run}"))] == pages[:2])
        rep = await a1.request({"op_type": 5, "message_id": pages[2], "scope": "all"})
        r.check("alice recalls it: 200", rep.get("code") == 200, rep)
        r.check("a recalled message is never a hit", hits(self.search_for(bob, f"zebra {run}")) == [])

        for label, q, params, field in [
            ("q of 1 character: 400", "c", {}, "q"),
            ("no q: 400", None, {}, "q"),
            ("q without a word: 400", "!!", {}, "q"),
            ("limit 51: 400", f"page {run}", {"limit": 51}, "limit"),
            ("a made-up before: 400", f"page {run}", {"before": "nope"}, "before"),
            ("a malformed conversation: 400", f"page {run}", {"conversation": "nope"}, "conversation"),
        ]:
            resp = self.search_for(bob, q, **params)
            body = resp.body if isinstance(resp.body, dict) else {}
            r.check(f"{label} validation_failed field {field}",
                    resp.status == 400 and body.get("code") == "validation_failed" and body.get("field") == field, body)
        for c in (a1, b1):
            c.drop_events()

    async def resume_changes(self, a1: Conn, b1: Conn) -> None:
        r, alice, bob = self.r, self.alice, self.bob
        r.start("op 7 with changed_since: edits, reactions and recalls of messages already held")
        held = []
        for i in range(2):
            cm = self.cmid("a")
            held.append((await self.send(a1, alice, bob.id, f"held {i} {self.run}", cmid=cm)).get("data") or {})
        since = {self.ab: held[-1].get("seq")}
        rep = await b1.request({"op_type": 7, "since": since, "changed_since": int(time.time() * 1000)})
        self.reply_ok("resume with changed_since (Unix ms): 200", rep, 7, 200)
        data = rep.get("data") or {}
        r.check("data adds changed, recalled, changed_until (a cursor), changed_more",
                {"messages", "has_more", "since", "changed", "recalled", "changed_until", "changed_more"} <= set(data)
                and re.fullmatch(r"[0-9]+(\.[0-9a-f]{24})?", str(data.get("changed_until"))) is not None
                and data.get("changed_more") is False, data)
        until = data.get("changed_until")
        rep = await a1.request({"op_type": 9, "message_id": held[0].get("id"), "content": f"held, edited {self.run}"})
        r.check("alice edits a message bob holds: 200", rep.get("code") == 200, rep)
        rep = await a1.request({"op_type": 10, "message_id": held[0].get("id"), "emoji": "👍", "action": "add"})
        r.check("  and reacts to it: 200", rep.get("code") == 200, rep)
        rep = await a1.request({"op_type": 5, "message_id": held[1].get("id"), "scope": "all"})
        r.check("  and recalls the other: 200", rep.get("code") == 200, rep)
        cm = self.cmid("a")
        new = (await self.send(a1, alice, bob.id, f"new {self.run}", cmid=cm)).get("data") or {}
        rep = await b1.request({"op_type": 7, "since": since, "changed_since": until})
        self.reply_ok("resume with the changed_until of the last one: 200", rep, 7, 200)
        data = rep.get("data") or {}
        r.check("messages: only the new one of the conversation",
                [m.get("id") for m in data.get("messages") or [] if m.get("conversation") == self.ab] == [new.get("id")], data)
        changed = next((m for m in data.get("changed") or [] if m.get("id") == held[0].get("id")), {})
        r.check("changed: the edited message as it is now (text, edited_at, reactions for bob)",
                changed.get("content") == f"held, edited {self.run}" and changed.get("edited_at") is not None
                and changed.get("reactions") == [{"emoji": "👍", "count": 1, "me": False}], data.get("changed"))
        r.check("recalled: {conversation, id, seq} of the recalled one",
                {"conversation": self.ab, "id": held[1].get("id"), "seq": held[1].get("seq")} in (data.get("recalled") or []),
                data.get("recalled"))
        r.check("not a recalled message among changed",
                held[1].get("id") not in [m.get("id") for m in data.get("changed") or []], data.get("changed"))
        r.check("changed_more false, changed_until a cursor", data.get("changed_more") is False
                and re.fullmatch(r"[0-9]+(\.[0-9a-f]{24})?", str(data.get("changed_until"))) is not None, data)
        rep = await b1.request({"op_type": 7, "since": since, "changed_since": "yesterday"})
        self.reply_ok("changed_since that is no time: 40000", rep, 7, 40000)
        r.check("  data.field changed_since", (rep.get("data") or {}).get("field") == "changed_since", rep.get("data"))
        rep = await b1.request({"op_type": 7, "since": since})
        r.check("without changed_since the reply has none of those fields",
                rep.get("code") == 200 and "changed" not in (rep.get("data") or {}), rep.get("data"))
        for c in (a1, b1):
            c.drop_events()

    async def antispam_actions(self, b1: Conn) -> None:
        r, alice, bob = self.r, self.alice, self.bob
        r.start("limits of message actions: max_edits; anti-spam: edits, reactions (50006), search (429)")
        mine = []
        for i in range(2):
            cm = self.cmid("b")
            mine.append((await self.send(b1, bob, alice.id, f"edit me often {i} {self.run}", cmid=cm)).get("data") or {})

        async def edit_until_refused(message: dict, tries: int) -> tuple[list, dict | None]:
            codes = []
            for i in range(tries):
                rep = await b1.request({"op_type": 9, "message_id": message.get("id"),
                                        "content": f"edit {i} of {message.get('seq')} {self.run}"})
                codes.append(rep.get("code"))
                if rep.get("code") != 200:
                    return codes, rep
            return codes, None

        codes, refused = await edit_until_refused(mine[0], 25)
        r.check("a message takes 20 edits (messages.max_edits), the 21st: 40003",
                codes == [200] * 20 + [40003], {"codes": codes, "refused": refused})
        more, refused = await edit_until_refused(mine[1], 40)
        data = (refused or {}).get("data") or {}
        r.check("edits pass until the limit (30 a minute), then 50006 rule edits",
                refused is not None and refused.get("code") == 50006 and data.get("rule") == "edits"
                and isinstance(data.get("retry_after"), int) and data["retry_after"] >= 1
                and all(c == 200 for c in more[:-1]) and codes.count(200) + more.count(200) == 30,
                {"codes": more, "refused": refused})
        hist = await b1.request({"op_type": 2, "to": alice.id, "content": "0-1"})
        newest = ((hist.get("data") or {}).get("messages") or [{}])[-1]
        r.check("the refused edit changed nothing",
                newest.get("content") == f"edit {len(more) - 2} of {mine[1].get('seq')} {self.run}", newest)

        codes, refused = [], None
        for i in range(70):
            action = "add" if i % 2 == 0 else "remove"
            rep = await b1.request({"op_type": 10, "message_id": mine[0].get("id"), "emoji": "👍", "action": action})
            codes.append(rep.get("code"))
            if rep.get("code") != 200:
                refused = rep
                break
        data = (refused or {}).get("data") or {}
        r.check("reactions pass until the limit (60 a minute), then 50006 rule reactions",
                refused is not None and refused.get("code") == 50006 and data.get("rule") == "reactions"
                and all(c == 200 for c in codes[:-1]) and len(codes) > 1, {"codes": codes, "refused": refused})

        statuses, refused = [], None
        for _ in range(40):
            resp = self.search_for(bob, f"often {self.run}")
            statuses.append(resp.status)
            if resp.status != 200:
                refused = resp
                break
        body = (refused.body if refused else None) or {}
        r.check("searches pass until the limit (30 a minute), then 429 rate_limited rule search with Retry-After",
                refused is not None and refused.status == 429 and body.get("code") == "rate_limited"
                and body.get("rule") == "search" and (refused.headers.get("retry-after") or "").isdigit()
                and all(s == 200 for s in statuses[:-1]), {"statuses": statuses, "body": body})

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
