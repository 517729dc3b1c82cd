#!/usr/bin/env python3
"""Seeds a running chat-server with a 1:1 conversation that has messages, for clients that can
only speak HTTP (the Postman collection has no WebSocket step): registers two users, sends one
message over the WebSocket (op 1) and prints what the collection needs as KEY=VALUE lines.

    .tools/venv/bin/python scripts/ws/seed.py --url http://127.0.0.1:8080

Printed: seedUserName, seedPassword (the first user's, who pins and searches), seedMessageId,
seedConversation and seedWord (a word only that message holds). scripts/clients/run.sh passes
them to newman with --env-var; in the Postman app, set them in the environment by hand.
"""

import argparse
import asyncio
import secrets
import sys

from chatclient import Conn, Http, conversation_of


async def seed(url: str) -> dict[str, str]:
    tag = secrets.token_hex(4)
    password = f"Seed-{secrets.token_hex(8)}"
    first, second = Http(url), Http(url)
    names = (f"seed_a_{tag}", f"seed_b_{tag}")
    for http, name in zip((first, second), names):
        http.register(name, password, name)
        http.login(name, password)
    word = f"seedword{tag}"
    conn = await Conn.open(url, first.cookie, name=names[0])
    try:
        reply = await conn.request({
            "op_type": 1,
            "to": str(second.user["id"]),
            "type": 1,
            "content": f"Postman pins and finds this: {word}",
            "client_msg_id": f"seed-{tag}",
        })
    finally:
        await conn.close()
    if reply.get("code") not in (50004, 50005):
        raise SystemExit(f"seed message refused: {reply}")
    return {
        "seedUserName": names[0],
        "seedPassword": password,
        "seedMessageId": reply["data"]["id"],
        "seedConversation": conversation_of(str(first.user["id"]), str(second.user["id"])),
        "seedWord": word,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the server's base URL")
    args = parser.parse_args()
    for key, value in asyncio.run(seed(args.url)).items():
        print(f"{key}={value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
