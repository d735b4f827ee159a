"""ejabberd's external authentication program for bench/fleet.py: one password per controller.

ejabberd (``auth_method: external``) starts this and speaks its extauth protocol on
stdin/stdout: a 2-byte big-endian length, then ``auth:User:Server:Password`` (or
``isuser:User:Server``, ...); the answer is the length 2 and 1 (yes) or 0 (no).
The passwords are a JSON object ``{"user": "password"}`` in the file named by argv[1].

    python bench/ejabberd_extauth.py users.json
"""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path


def answer(users: dict[str, str], request: str) -> bool:
    parts = request.split(":", 3)
    if parts[0] == "auth" and len(parts) == 4:
        return users.get(parts[1]) == parts[3]
    if parts[0] == "isuser" and len(parts) >= 2:
        return parts[1] in users
    return False  # setpass, tryregister, removeuser: not here


def main() -> None:
    users = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    intake, out = sys.stdin.buffer, sys.stdout.buffer
    while True:
        head = intake.read(2)
        if len(head) < 2:
            return  # ejabberd closed the port
        (length,) = struct.unpack(">H", head)
        ok = answer(users, intake.read(length).decode("utf-8", errors="replace"))
        out.write(struct.pack(">HH", 2, 1 if ok else 0))
        out.flush()


if __name__ == "__main__":
    main()
