#!/usr/bin/env python3
"""Interactive chat-server client for the terminal.

    .tools/venv/bin/python scripts/ws/chat.py --url http://127.0.0.1:8081 --user alice --password ...

Logs in over HTTP (keeping the session cookie), opens the WebSocket with that cookie, prints every
pushed event and reads commands, one per line:

    /to <user_id> <text>               send to a user (op 1)
    /group <group_id|lobby> <text>     send to a group; `lobby` (or "" / 0) is the lobby (op 6)
    /image <path> <to> [caption]       upload an image (POST /files), send it as type 2
    /file <path> <to> [caption]        upload any file, send it as type 6
    /location <lat> <lon> <to> [address]
                                       send a place (type 5)
                                       <to>: a user id, g:<group_id> or lobby; a path or
                                       caption with spaces in "quotes"
    /download <file_id> [<path>]       save an attachment (default: its name, here)
    /history <conversation|user_id> [<skip>-<limit>]
                                       history, newest page (op 2); e.g. /history u:1:2 0-50
    /unread [<conversation|user_id>]   unread overview, or one conversation's unread (op 3)
    /read <message_id>                 mark read up to a message (op 4)
    /delete <message_id> [all]         delete for me, or recall for everyone with `all` (op 5)
    /edit <message_id|last> <text>     edit a message of mine (op 9); `last`: my last one sent here
    /reply <message_id> <text>         answer a message seen here, in its conversation (reply_to)
    /forward <message_id> <to>         send a copy of a message (forward_of); <to> as for /image
    /react <message_id> <emoji> [remove]
                                       react to a message, or take the reaction back (op 10)
    /pin <message_id>, /unpin <message_id>
                                       pin or unpin a message seen here (HTTP)
    /pins <conversation|user_id>       the pinned messages of a conversation (HTTP)
    /search [<conversation>] <words>   search my conversations, or one (GET /search/messages)
    /typing <user_id|conversation>     typing notification (op 8)
    /resume                            everything missed since the last seen seqs, and what
                                       changed in the messages seen (op 7 with changed_since)
    /raw <json>                        send any frame as is
    /help, /quit

Without --password the password comes from CHAT_PASSWORD or a prompt. --register creates the
account first (with --nick). After a drop (server restart 1012, slow reader 1013, timeout 1001,
network) it reconnects and resumes with op 7 on its own; a revoked session (1008) ends it.
Commands can be piped in (`printf '/to 2 hi\\n/quit\\n' | ... chat.py ...`): each command waits for
its reply before the next line is read. /reply, /pin and /unpin need the message's conversation:
they know the messages printed here (sent, received, or listed by /history, /unread, /resume).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import shlex
import sys
import threading
import time
import urllib.parse

sys.dont_write_bytecode = True  # no __pycache__ next to the scripts
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from chatclient import Conn, Http, HttpError, conversation_of  # noqa: E402
from websockets.exceptions import ConnectionClosed, InvalidStatus  # noqa: E402

RECONNECT_CODES = {1001, 1006, 1011, 1012, 1013}
MESSAGE_TYPES = {1: "text", 2: "image", 3: "voice", 4: "video", 5: "location", 6: "file", 10: "system"}
IMAGE, FILE, LOCATION = 2, 6, 5


def human_size(n: int) -> str:
    value = float(n)
    for unit in ("bytes", "KB", "MB"):
        if value < 1024:
            break
        value /= 1024
    else:
        unit = "GB"
    return f"{int(value)} bytes" if unit == "bytes" else f"{value:.1f} {unit}"


def send_target(value: str) -> tuple[int, str]:
    """The op and `to` of a send to <to>: a user id (op 1), g:<group_id> or lobby (op 6)."""
    if value in ("lobby", "g:0", "g:"):
        return 6, ""
    if value.startswith("g:"):
        return 6, value[2:]
    return 1, value


def now() -> str:
    return time.strftime("%H:%M:%S")


class Client:
    def __init__(self, args):
        self.args = args
        self.http = Http(args.url, user_agent="chat.py")
        self.conn: Conn | None = None
        self.me: dict = {}
        self.names: dict[str, str] = {}
        self.since: dict[str, int] = {}  # conversation -> last seq seen, for op 7
        self.known: dict[str, str] = {}  # message id -> its conversation, for /reply and /pin
        self.last_sent: str | None = None  # id of my last message sent from here, for /edit last
        # op 7's changed_since: the changed_until of the last resume, else the start (Unix ms)
        self.changed_until: str | int = int(time.time() * 1000)
        self.quitting = False
        self.n = 0

    # -- output --------------------------------------------------------------------------------

    def out(self, text: str) -> None:
        print(text, flush=True)

    def name(self, user_id: str | None) -> str:
        if user_id is None:
            return "?"
        user_id = str(user_id)
        if user_id not in self.names:
            resp = self.http.request("GET", f"/users/{user_id}")
            if resp.status == 200 and isinstance(resp.body, dict):
                self.names[user_id] = resp.body.get("user_name") or user_id
            else:
                self.names[user_id] = user_id
        return f"{self.names[user_id]}({user_id})"

    def seen(self, m: dict) -> None:
        """A message received in order (a push, a send, history, unread, resume): op 7 goes on
        after it."""
        conv, seq = m.get("conversation"), m.get("seq")
        if isinstance(conv, str) and isinstance(seq, int):
            self.since[conv] = max(seq, self.since.get(conv, 0))
        self.note(m)

    def note(self, m: dict) -> None:
        """A message printed out of order (edited, a pin, a search hit): known for /reply and
        /pin, but it says nothing about what was missed before it."""
        if isinstance(m.get("conversation"), str) and isinstance(m.get("id"), str):
            self.known[m["id"]] = m["conversation"]

    def fmt_message(self, m: dict) -> str:
        kind = MESSAGE_TYPES.get(m.get("type"), str(m.get("type")))
        nick = f" \"{m['nickname']}\"" if m.get("nickname") else ""
        body = m.get("content", "")
        if kind != "text":
            body = f"<{self.fmt_payload(kind, m)}> {body}".rstrip()
        marks = self.fmt_marks(m)
        return (f"{m.get('conversation')} #{m.get('seq')} {self.name(m.get('from'))}{nick}: {marks}{body}"
                f"{self.fmt_reactions(m.get('reactions'))}   [id {m.get('id')}]")

    def fmt_marks(self, m: dict) -> str:
        """What a message says about itself before its text: a forward, the message it answers,
        an edit, a mention of me."""
        marks = []
        if m.get("forwarded"):
            origin = (m.get("forwarded_from") or {}).get("user_id")
            marks.append(f"(forwarded from {self.name(origin)})" if origin else "(forwarded)")
        quoted = m.get("reply_to")
        if isinstance(quoted, dict):
            excerpt = "[recalled]" if quoted.get("recalled") else json.dumps(quoted.get("excerpt"), ensure_ascii=False)
            marks.append(f"(re {self.name(quoted.get('from'))} {excerpt})")
        if m.get("edited_at"):
            marks.append("(edited)")
        mentions = m.get("mentions") or []
        if m.get("from") != self.me.get("id") and (m.get("mentioned") or "all" in mentions or self.me.get("id") in mentions):
            marks.append("(mentions you)")
        return "".join(f"{mark} " for mark in marks)

    @staticmethod
    def fmt_reactions(reactions: object) -> str:
        """`  [👍 2*, ❤️ 1]`: each emoji's count, `*` where I am among them."""
        if not isinstance(reactions, list) or not reactions:
            return ""
        parts = [f"{r.get('emoji')} {r.get('count')}{'*' if r.get('me') else ''}" for r in reactions if isinstance(r, dict)]
        return f"  [{', '.join(parts)}]"

    def fmt_payload(self, kind: str, m: dict) -> str:
        """What a typed message carries, on one line, e.g.
        `image "a.png" image/png 480x360 12.0 KB, /download <id>`."""
        a, place = m.get("attachment"), m.get("location")
        if isinstance(a, dict):
            size = f" {a['width']}x{a['height']}" if a.get("width") and a.get("height") else ""
            length = f" {a['duration_ms'] / 1000:.1f} s" if a.get("duration_ms") else ""
            return (f"{kind} {json.dumps(a.get('name'), ensure_ascii=False)} {a.get('mime')}{size}{length}"
                    f" {human_size(a.get('size') or 0)}, /download {a.get('file_id')}")
        if isinstance(place, dict):
            address = f" {json.dumps(place['address'], ensure_ascii=False)}" if place.get("address") else ""
            return (f"location {place.get('lat')}, {place.get('lon')}{address}"
                    f" https://www.openstreetmap.org/?mlat={place.get('lat')}&mlon={place.get('lon')}")
        return kind

    def on_event(self, ev: dict) -> None:
        kind, d = ev.get("event"), ev.get("data") or {}
        if kind == "message":
            self.seen(d)
            self.out(f"[{now()}] {self.fmt_message(d)}")
        elif kind == "read":
            self.out(f"[{now()}] read: {self.name(d.get('user_id'))} read {d.get('conversation')} up to #{d.get('seq')}")
        elif kind == "deleted":
            what = "recalled" if d.get("scope") == "all" else "deleted (for me)"
            self.out(f"[{now()}] {what}: {d.get('id')} in {d.get('conversation')}")
        elif kind == "typing":
            if not self.args.no_typing:
                self.out(f"[{now()}] {self.name(d.get('user_id'))} is typing in {d.get('conversation')}...")
        elif kind == "edited":
            self.note(d)
            self.out(f"[{now()}] edited: {self.fmt_message(d)}")
        elif kind == "reaction":
            verb = "reacted" if d.get("action") == "add" else "took back"
            self.out(f"[{now()}] reaction: {self.name(d.get('user_id'))} {verb} {d.get('emoji')} on"
                     f" {d.get('message_id')} in {d.get('conversation')}")
        elif kind in ("pinned", "unpinned"):
            self.out(f"[{now()}] {kind}: {d.get('message_id')} in {d.get('conversation')} by {self.name(d.get('by'))}")
        else:
            self.out(f"[{now()}] event {kind}: {json.dumps(d, ensure_ascii=False)}")

    def show_reply(self, rep: dict) -> None:
        op, code, msg, data = rep.get("op_type"), rep.get("code"), rep.get("msg"), rep.get("data")
        ok = code in (200, 50004, 50005)
        head = f"  -> op {op}: {code} {msg}"
        if not ok:
            extra = f" {json.dumps(data, ensure_ascii=False)}" if data else ""
            self.out(head + extra)
            return
        data = data or {}
        if op in (1, 6):
            self.seen(data)
            if data.get("from") == self.me.get("id"):
                self.last_sent = data.get("id")
            self.out(f"{head}  {data.get('conversation')} #{data.get('seq')} id {data.get('id')}")
        elif op == 9:
            self.note(data)
            self.out(f"{head}  {self.fmt_message(data)}")
        elif op == 10:
            self.out(f"{head}  {data.get('action')} {data.get('emoji')} on {data.get('message_id')}:"
                     f"{self.fmt_reactions(data.get('reactions')) or '  no reactions'}")
        elif op in (2, 7):
            msgs = data.get("messages") or []
            for m in msgs:
                self.seen(m)
                self.out("     " + self.fmt_message(m))
            for m in data.get("changed") or []:
                self.note(m)
                self.out("     changed: " + self.fmt_message(m))
            for m in data.get("recalled") or []:
                self.out(f"     recalled: {m.get('conversation')} #{m.get('seq')} [id {m.get('id')}]")
            if data.get("changed_until"):
                self.changed_until = data["changed_until"]
            more = "  (more: /history with a bigger skip)" if op == 2 and data.get("has_more") else ""
            if op == 7 and (data.get("has_more") or data.get("changed_more")):
                more = "  (more: /resume again)"
            self.out(f"{head}  {len(msgs)} message(s){more}")
        elif op == 3 and "conversations" in data:
            convs = data["conversations"]
            for c in convs:
                mentions = f", {c['mentions_unread']} mentioning you" if c.get("mentions_unread") else ""
                self.out(f"     {c.get('conversation')}: {c.get('unread')} unread{mentions} (last #{c.get('last_seq')})")
            self.out(f"{head}  {len(convs)} conversation(s) with unread messages")
        elif op == 3:
            for m in data.get("messages") or []:
                self.seen(m)
                self.out("     " + self.fmt_message(m))
            self.out(f"{head}  {data.get('unread')} unread in {data.get('conversation')}")
        else:
            self.out(f"{head}  {json.dumps(data, ensure_ascii=False)}")

    # -- connection ----------------------------------------------------------------------------

    async def connect(self) -> None:
        delay = 1.0
        while True:
            try:
                self.conn = await Conn.open(self.args.url, self.http.cookie, "chat")
                self.conn.on_event = self.on_event
                self.out(f"[{now()}] connected to {self.args.url}/ws")
                return
            except InvalidStatus as err:
                status = err.response.status_code
                if status in (401, 403):
                    raise SystemExit(f"the server refused the WebSocket: HTTP {status} {err.response.body!r}")
                self.out(f"[{now()}] upgrade refused (HTTP {status}), retrying in {delay:.0f}s")
            except OSError as err:
                self.out(f"[{now()}] cannot connect ({err}), retrying in {delay:.0f}s")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10)

    async def watch(self) -> None:
        """Reconnects (and resumes) when the socket drops for a reason worth retrying."""
        while not self.quitting:
            conn = self.conn
            await conn.closed.wait()
            if self.quitting:
                return
            code = conn.close_code
            reason = f" {conn.close_reason}" if conn.close_reason else ""
            if code not in RECONNECT_CODES:
                self.out(f"[{now()}] connection closed by the server: {code}{reason}")
                if code == 1008:
                    self.out("the session was revoked (logout, password change or device removed)")
                self.quitting = True
                return
            self.out(f"[{now()}] connection lost ({code}{reason}), reconnecting...")
            await asyncio.sleep(0.5)
            await self.connect()
            await self.resume()

    async def resume(self) -> None:
        """op 7: the messages missed, and what changed in those seen (edits, reactions, recalls)."""
        await self.request({"op_type": 7, "since": dict(self.since), "changed_since": self.changed_until})

    async def request(self, frame: dict) -> None:
        self.n += 1
        frame.setdefault("client_msg_id", f"cli-{os.getpid()}-{int(time.time())}-{self.n}")
        try:
            rep = await self.conn.request(frame, timeout=15)
        except (asyncio.TimeoutError, TimeoutError):
            self.out("  -> no reply within 15 s")
            return
        except ConnectionClosed:
            self.out("  -> the connection closed before the reply")
            return
        self.show_reply(rep)

    # -- commands ------------------------------------------------------------------------------

    async def send_file(self, path: str, to: str, caption: str, kind: int) -> None:
        """Uploads `path` over HTTP with this session, then sends it to `to` as `kind`."""
        try:
            resp = self.http.upload_path(path)
        except OSError as err:
            self.out(f"  cannot read {path}: {err}")
            return
        if resp.status != 201:
            body = resp.body if isinstance(resp.body, dict) else {}
            retry = f" (retry in {body['retry_after']} s)" if body.get("retry_after") else ""
            self.out(f"  upload failed: HTTP {resp.status} {body.get('code', '')}: {body.get('message', resp.body)}{retry}")
            return
        f = resp.body["file"]
        self.out(f"  uploaded {f['name']}: {f['mime']}, {human_size(f['size'])}, id {f['id']}")
        if kind == IMAGE and not f["mime"].startswith("image/"):
            self.out(f"  not an image (the server reads {f['mime']}): send it with /file; the upload is removed")
            self.http.request("DELETE", f"/files/{f['id']}")
            return
        op, target = send_target(to)
        frame = {"op_type": op, "to": target, "type": kind, "attachment": {"file_id": f["id"]}}
        if caption:
            frame["content"] = caption
        await self.request(frame)

    def download(self, file_id: str, path: str | None) -> None:
        resp = self.http.request("GET", f"/files/{urllib.parse.quote(file_id, safe='')}")
        if resp.status != 200:
            body = resp.body if isinstance(resp.body, dict) else {}
            self.out(f"  download failed: HTTP {resp.status} {body.get('message', '')}")
            return
        if path is None:
            # The name from Content-Disposition (filename*=UTF-8''...), reduced to a base name.
            cd = resp.headers.get("content-disposition", "")
            name = cd.split("filename*=UTF-8''", 1)[1] if "filename*=UTF-8''" in cd else file_id
            path = os.path.basename(urllib.parse.unquote(name.split(";", 1)[0])) or file_id
            if os.path.exists(path):
                self.out(f"  {path} exists already: give the path to save to, /download {file_id} <path>")
                return
        with open(path, "wb") as f:
            f.write(resp.raw)
        self.out(f"  saved {human_size(len(resp.raw))} ({resp.headers.get('content-type')}) to {path}")

    def conversation_of(self, message_id: str) -> str | None:
        conversation = self.known.get(message_id)
        if conversation is None:
            self.out(f"  message {message_id} was not seen here: /history its conversation first")
        return conversation

    def send_to_conversation(self, conversation: str) -> tuple[int, str]:
        """The op and `to` of a send into a conversation id: g:<id> (op 6), u:<a>:<b> (op 1)."""
        if conversation.startswith("g:"):
            gid = conversation[2:]
            return 6, "" if gid == "0" else gid
        a, _, b = conversation[2:].partition(":")
        return 1, b if a == self.me.get("id") else a

    def http_failed(self, resp) -> bool:
        """Prints an HTTP error answer; true when there was one."""
        if resp.status < 400:
            return False
        body = resp.body if isinstance(resp.body, dict) else {}
        extra = f" (field {body['field']})" if body.get("field") else ""
        extra += f" (rule {body['rule']}, retry in {body.get('retry_after')} s)" if body.get("rule") else ""
        self.out(f"  -> HTTP {resp.status} {body.get('code', '')}: {body.get('message', resp.body)}{extra}")
        return True

    def pin(self, message_id: str, pinned: bool) -> None:
        conversation = self.conversation_of(message_id)
        if conversation is None:
            return
        path = f"/conversations/{urllib.parse.quote(conversation)}/pins"
        if pinned:
            resp = self.http.request("POST", path, {"message_id": message_id})
        else:
            resp = self.http.request("DELETE", f"{path}/{urllib.parse.quote(message_id, safe='')}")
        if not self.http_failed(resp):
            what = "already pinned" if resp.status == 200 and pinned else "pinned" if pinned else "unpinned"
            self.out(f"  -> HTTP {resp.status}: {what} {message_id} in {conversation}")

    def pins(self, conversation: str) -> None:
        resp = self.http.request("GET", f"/conversations/{urllib.parse.quote(conversation)}/pins")
        if self.http_failed(resp):
            return
        pins = resp.body.get("pins") or []
        for p in pins:
            self.note(p.get("message") or {})
            self.out(f"     pinned by {self.name(p.get('pinned_by'))} at {p.get('pinned_at')}: {self.fmt_message(p.get('message') or {})}")
        self.out(f"  -> {len(pins)} pinned message(s) in {conversation}")

    def search(self, words: str) -> None:
        first, _, rest = words.partition(" ")
        query = {"q": words}
        if first.startswith(("u:", "g:")) and rest:
            query = {"q": rest, "conversation": first}
        resp = self.http.request("GET", "/search/messages?" + urllib.parse.urlencode(query))
        if self.http_failed(resp):
            return
        results = resp.body.get("results") or []
        for hit in results:
            self.note(hit.get("message") or {})
            self.out("     " + self.fmt_message(hit.get("message") or {}))
        more = f"  (more: older than {resp.body.get('next_before')})" if resp.body.get("has_more") else ""
        self.out(f"  -> {len(results)} hit(s){more}")

    @staticmethod
    def target(value: str) -> dict:
        """A user id or a conversation id, as the frame field it belongs in."""
        return {"conversation": value} if value.startswith(("u:", "g:")) else {"to": value}

    async def command(self, line: str) -> None:
        line = line.strip()
        if not line:
            return
        if not line.startswith("/"):
            self.out("  commands start with /, see /help")
            return
        cmd, _, rest = line.partition(" ")
        rest = rest.strip()
        try:
            if cmd in ("/quit", "/exit", "/q"):
                self.quitting = True
            elif cmd in ("/help", "/?"):
                self.out(__doc__.split("\n\n")[3])
            elif cmd == "/to":
                to, _, text = rest.partition(" ")
                if not to or not text:
                    raise ValueError("usage: /to <user_id> <text>")
                await self.request({"op_type": 1, "to": to, "type": 1, "content": text})
            elif cmd == "/group":
                gid, _, text = rest.partition(" ")
                if not gid or not text:
                    raise ValueError("usage: /group <group_id|lobby> <text>")
                gid = "" if gid in ("lobby", '""', "0") else gid
                await self.request({"op_type": 6, "to": gid, "type": 1, "content": text})
            elif cmd in ("/image", "/file"):
                parts = shlex.split(rest)
                if len(parts) < 2:
                    raise ValueError(f"usage: {cmd} <path> <to> [caption]")
                await self.send_file(parts[0], parts[1], " ".join(parts[2:]), IMAGE if cmd == "/image" else FILE)
            elif cmd == "/location":
                parts = shlex.split(rest)
                if len(parts) < 3:
                    raise ValueError("usage: /location <lat> <lon> <to> [address]")
                place: dict = {"lat": float(parts[0]), "lon": float(parts[1])}
                if len(parts) > 3:
                    place["address"] = " ".join(parts[3:])
                op, target = send_target(parts[2])
                await self.request({"op_type": op, "to": target, "type": LOCATION, "location": place})
            elif cmd == "/download":
                parts = shlex.split(rest)
                if not parts or len(parts) > 2:
                    raise ValueError("usage: /download <file_id> [<path>]")
                self.download(parts[0], parts[1] if len(parts) == 2 else None)
            elif cmd == "/history":
                parts = shlex.split(rest)
                if not parts:
                    raise ValueError("usage: /history <conversation|user_id> [<skip>-<limit>]")
                frame = {"op_type": 2, **self.target(parts[0])}
                if len(parts) > 1:
                    frame["content"] = parts[1]
                await self.request(frame)
            elif cmd == "/unread":
                frame = {"op_type": 3}
                if rest:
                    frame.update(self.target(rest))
                await self.request(frame)
            elif cmd == "/read":
                if not rest:
                    raise ValueError("usage: /read <message_id>")
                await self.request({"op_type": 4, "content": rest})
            elif cmd == "/delete":
                parts = rest.split()
                if not parts or len(parts) > 2 or (len(parts) == 2 and parts[1] != "all"):
                    raise ValueError("usage: /delete <message_id> [all]")
                frame = {"op_type": 5, "content": parts[0]}
                if len(parts) == 2:
                    frame["scope"] = "all"
                await self.request(frame)
            elif cmd == "/edit":
                mid, _, text = rest.partition(" ")
                if not mid or not text:
                    raise ValueError("usage: /edit <message_id|last> <text>")
                if mid == "last":
                    if self.last_sent is None:
                        raise ValueError("no message sent from here yet: /edit <message_id> <text>")
                    mid = self.last_sent
                await self.request({"op_type": 9, "message_id": mid, "content": text})
            elif cmd == "/reply":
                mid, _, text = rest.partition(" ")
                if not mid or not text:
                    raise ValueError("usage: /reply <message_id> <text>")
                conversation = self.conversation_of(mid)
                if conversation is not None:
                    op, to = self.send_to_conversation(conversation)
                    await self.request({"op_type": op, "to": to, "type": 1, "content": text, "reply_to": mid})
            elif cmd == "/forward":
                parts = rest.split()
                if len(parts) != 2:
                    raise ValueError("usage: /forward <message_id> <to>")
                op, to = send_target(parts[1])
                await self.request({"op_type": op, "to": to, "forward_of": parts[0]})
            elif cmd == "/react":
                parts = rest.split()
                if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] != "remove"):
                    raise ValueError("usage: /react <message_id> <emoji> [remove]")
                action = "remove" if len(parts) == 3 else "add"
                await self.request({"op_type": 10, "message_id": parts[0], "emoji": parts[1], "action": action})
            elif cmd in ("/pin", "/unpin"):
                if not rest or " " in rest:
                    raise ValueError(f"usage: {cmd} <message_id>")
                self.pin(rest, cmd == "/pin")
            elif cmd == "/pins":
                if not rest:
                    raise ValueError("usage: /pins <conversation|user_id>")
                conversation = rest
                if not rest.startswith(("u:", "g:")):
                    conversation = conversation_of(self.me["id"], rest)
                self.pins(conversation)
            elif cmd == "/search":
                if not rest:
                    raise ValueError("usage: /search [<conversation>] <words>")
                self.search(rest)
            elif cmd == "/typing":
                if not rest:
                    raise ValueError("usage: /typing <user_id|conversation>")
                await self.request({"op_type": 8, **self.target(rest)})
            elif cmd == "/resume":
                await self.resume()
            elif cmd == "/raw":
                frame = json.loads(rest)
                if not isinstance(frame, dict):
                    raise ValueError("/raw needs a JSON object")
                await self.request(frame)
            else:
                self.out(f"  unknown command {cmd}, see /help")
        except (ValueError, json.JSONDecodeError) as err:
            self.out(f"  {err}")

    async def run(self) -> int:
        a = self.args
        password = a.password or os.environ.get("CHAT_PASSWORD") or getpass.getpass(f"password for {a.user}: ")
        try:
            if a.register:
                self.http.register(a.user, password, a.nick or a.user, a.email, wait=0)
                self.out(f"registered {a.user}")
            self.me = self.http.login(a.user, password, wait=0)
        except HttpError as err:
            body = err.body if isinstance(err.body, dict) else {}
            self.out(f"login failed: HTTP {err.status} {body.get('code', '')} {body.get('message', err.body)}")
            return 1
        except OSError as err:
            self.out(f"cannot reach {a.url}: {err}")
            return 1
        self.names[self.me["id"]] = self.me["user_name"]
        self.out(f"logged in as {self.me['user_name']} (id {self.me['id']}); /help lists the commands")
        await self.connect()
        watcher = asyncio.create_task(self.watch())
        lines = stdin_lines()
        while not self.quitting:
            reader = asyncio.ensure_future(lines.get())
            done, _ = await asyncio.wait({reader, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if reader not in done:  # the watcher ended: the session is gone
                reader.cancel()
                break
            line = reader.result()
            if line == "":  # end of input
                await asyncio.sleep(a.linger)
                break
            await self.command(line)
        self.quitting = True
        watcher.cancel()
        if self.conn:
            await self.conn.close()
        return 0


def stdin_lines() -> asyncio.Queue:
    """Lines of stdin ("" at the end), read by a daemon thread so a pending read never keeps the
    process alive once the client decides to stop."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()

    # os.read on the descriptor, not sys.stdin: a thread blocked inside sys.stdin.readline()
    # holds the stream's lock and would stall the interpreter's shutdown until the next line.
    def read() -> None:
        pending = b""
        while True:
            try:
                chunk = os.read(sys.stdin.fileno(), 65536)
            except OSError:
                chunk = b""
            if not chunk:
                if pending:
                    loop.call_soon_threadsafe(queue.put_nowait, pending.decode("utf-8", "replace"))
                loop.call_soon_threadsafe(queue.put_nowait, "")
                return
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                loop.call_soon_threadsafe(queue.put_nowait, line.decode("utf-8", "replace") + "\n")

    threading.Thread(target=read, name="stdin", daemon=True).start()
    return queue


def main() -> int:
    ap = argparse.ArgumentParser(
        description="Interactive chat-server client.",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog="\n\n".join(__doc__.split("\n\n")[2:]))
    ap.add_argument("--url", required=True, help="base URL, e.g. http://127.0.0.1:8081")
    ap.add_argument("--user", required=True, help="user name")
    ap.add_argument("--password", help="password (default: $CHAT_PASSWORD, else a prompt)")
    ap.add_argument("--register", action="store_true", help="register the user first")
    ap.add_argument("--nick", help="nick name for --register (default: the user name)")
    ap.add_argument("--email", help="email for --register (optional)")
    ap.add_argument("--no-typing", action="store_true", help="do not print typing events")
    ap.add_argument("--linger", type=float, default=1.0,
                    help="seconds to keep printing events after the input ends (default 1)")
    args = ap.parse_args()
    try:
        return asyncio.run(Client(args).run())
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
