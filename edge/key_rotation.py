"""Rotating the keys that may sign commands, without ever locking the controller out.

``commands.public_keys`` is never changed by ``config.set``.  Instead:

1. ``keys.add {kid, public_key}`` (signed by a trusted key) adds a key as
   *pending*: it is written to the remote file at once (no restart) and
   commands signed with it are accepted;
2. the first command that verifies with a pending key confirms it
   (``audit.key_confirmed``) before it runs;
3. ``keys.remove {kid}`` takes a key away, but never the key that signed the
   removal.  The key that signed has just proven it can sign, so the
   controller always keeps at least one key somebody holds: an old key can go
   only in a command signed by another key (in a rotation: the new key's
   first command, which confirms it).

Pending kids are kept in storage; the keys themselves in the configuration.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
from collections.abc import Callable, Mapping
from typing import Any

from edge.clock import rfc3339
from edge.config_change import ConfigChanges, Replace
from edge.core import CommandError, CommandTable, Core
from edge.protocol import PublicKey, VerifyKey

log = logging.getLogger(__name__)

KID = re.compile(r"[A-Za-z0-9_-]{1,64}")

MIGRATIONS = [
    """
    CREATE TABLE keys_pending (
        kid TEXT PRIMARY KEY,
        added_by TEXT NOT NULL,
        command_id TEXT NOT NULL,
        added_at TEXT NOT NULL
    )
    """,
]


class KeyRotation:
    """The trusted keys of a running daemon and the commands that change them.

    ``keys`` is the table ``verify`` reads: it is changed in place, so a key added or removed
    counts from the next command on.  ``signer`` tells which kid signed the running command.
    """

    def __init__(
        self,
        core: Core,
        changes: ConfigChanges,
        configured: Mapping[str, str],
        keys: dict[str, VerifyKey],
        signer: Callable[[], str],
    ) -> None:
        self.core = core
        self.changes = changes
        self.configured = dict(configured)  # kid -> base64, as written in the configuration
        self.keys = keys
        self.signer = signer
        core.storage.migrate("keys", MIGRATIONS)
        with core.storage.transaction() as conn:  # a kid no longer configured is not pending
            for (kid,) in conn.execute("SELECT kid FROM keys_pending").fetchall():
                if kid not in self.configured:
                    conn.execute("DELETE FROM keys_pending WHERE kid = ?", (kid,))

    def commands(self) -> CommandTable:
        return {
            "keys.list": (self.cmd_list, ()),
            "keys.add": (self.cmd_add, ("kid", "public_key")),
            "keys.remove": (self.cmd_remove, ("kid",)),
        }

    def pending(self) -> set[str]:
        return {kid for (kid,) in self.core.storage.execute("SELECT kid FROM keys_pending").fetchall()}

    def confirm(self, kid: str, command_id: str) -> None:
        """A command verified with ``kid``: if the key was pending, it has now proven itself."""
        if kid not in self.pending():
            return
        with self.core.storage.transaction() as conn:
            conn.execute("DELETE FROM keys_pending WHERE kid = ?", (kid,))
            self.core.emit("audit.key_confirmed", {"kid": kid, "id": command_id})
        log.info("key %s confirmed by command %s", kid, command_id)

    # -- commands --------------------------------------------------------------

    def cmd_list(self, _args: dict[str, Any], _body: dict[str, Any]) -> dict[str, Any]:
        pending = self.pending()
        return {
            "keys": {kid: "pending" if kid in pending else "confirmed" for kid in sorted(self.configured)}
        }

    def cmd_add(self, args: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        kid, text = args.get("kid"), args.get("public_key")
        if not isinstance(kid, str) or not KID.fullmatch(kid):
            raise CommandError("bad_arguments", "kid must be 1-64 characters from A-Z a-z 0-9 _ -")
        if kid in self.configured:
            raise CommandError("bad_arguments", f"key {kid!r} is trusted already")
        key = _public_key(text)
        table = {**self.configured, kid: str(text)}  # _public_key accepted it: a base64 string
        self._write(table)
        with self.core.storage.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO keys_pending (kid, added_by, command_id, added_at)"
                " VALUES (?, ?, ?, ?)",
                (kid, self.signer(), str(body.get("id")), rfc3339(self.core.clock.now())),
            )
        self.configured, self.keys[kid] = table, key
        log.info("key %s added (pending until it signs a command)", kid)
        return {"kid": kid, "state": "pending", **self.cmd_list({}, body)}

    def cmd_remove(self, args: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        kid = args.get("kid")
        if not isinstance(kid, str) or kid not in self.configured:
            raise CommandError("bad_arguments", f"no trusted key {kid!r}")
        if kid == self.signer():
            raise CommandError(
                "bad_arguments",
                f"key {kid!r} signed this command and cannot remove itself: sign the removal with"
                " another key (in a rotation, the new key's first command)",
            )
        table = {k: v for k, v in self.configured.items() if k != kid}
        self._write(table)
        self.core.storage.execute("DELETE FROM keys_pending WHERE kid = ?", (kid,))
        self.configured = table
        self.keys.pop(kid, None)
        log.info("key %s removed", kid)
        return {"kid": kid, "state": "removed", **self.cmd_list({}, body)}

    def _write(self, table: dict[str, str]) -> None:
        # The whole table: in the remote file it replaces the installer's (edge/layers.py).
        self.changes.write_now({"commands": {"public_keys": Replace(table)}})


def _public_key(text: Any) -> VerifyKey:
    try:
        return PublicKey(base64.b64decode(text, validate=True))
    except (binascii.Error, ValueError, TypeError):
        raise CommandError(
            "bad_arguments", "public_key must be a base64 raw 32-byte Ed25519 public key"
        ) from None
