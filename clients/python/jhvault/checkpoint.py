"""Signed tlog checkpoints (https://c2sp.org/tlog-checkpoint) as the vault writes them.

The body is exactly three lines: the origin, the tree size in decimal, and
the root hash in standard base64. Only that canonical form is accepted (as
consent.ParseCheckpoint), and the origin must be the pinned key's name (as
consent.OpenCheckpoint).
"""

import base64
import binascii
import re
from dataclasses import dataclass

from .errors import CheckpointFormatError, CheckpointSignatureError
from .note import open_note

_SIZE_RE = re.compile(r"^(0|[1-9][0-9]{0,18})$")


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    signed: str  # the whole signed note, as received

    def body(self):
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"


def parse_body(text):
    lines = text.split("\n")
    if len(lines) != 4 or lines[3] != "":
        raise CheckpointFormatError("the checkpoint is not three lines (origin, size, root hash)")
    origin, size, root = lines[0], lines[1], lines[2]
    if origin == "" or any(ord(c) < 0x21 or ord(c) == 0x7F for c in origin):
        raise CheckpointFormatError("the checkpoint's origin is empty or has spaces or control characters")
    if not _SIZE_RE.match(size) or int(size) >= 1 << 63:
        raise CheckpointFormatError("the checkpoint's size is not a canonical decimal")
    try:
        h = base64.b64decode(root, validate=True)
    except (binascii.Error, ValueError):
        h = b""
    if len(h) != 32 or base64.b64encode(h).decode() != root:
        raise CheckpointFormatError("the checkpoint's root hash is not 32 bytes of canonical base64")
    return origin, int(size), h


def open_checkpoint(signed, verifier):
    """Verify a signed checkpoint with the pinned verifier and parse it."""
    if isinstance(signed, bytes):
        signed = signed.decode("utf-8", "replace")
    text = open_note(signed, verifier, error=CheckpointSignatureError, what="checkpoint")
    origin, size, root = parse_body(text)
    if origin != verifier.name:
        raise CheckpointFormatError(
            f"the checkpoint is for log {origin!r}, but the pinned key is for {verifier.name!r}: "
            "this export comes from another vault than the one you pinned")
    return Checkpoint(origin=origin, size=size, root=root, signed=signed)
