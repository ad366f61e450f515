"""C2SP signed notes (https://c2sp.org/signed-note) with Ed25519 keys.

A port of golang.org/x/mod/sumdb/note's verifier-key parsing and ``Open``:
the same validity rules, the same key hash, the same signature lines. The
signature itself is checked by ``cryptography``'s Ed25519; nothing here is
a hand-written primitive.

A verifier key is ``name+hash+base64(0x01 || 32-byte public key)`` where
hash is the first 4 bytes (hex) of SHA-256(name || "\\n" || 0x01 || key).
A signed note is the text (ending in a newline), a blank line, then lines
``— name base64(keyhash[4] || signature[64])`` (an em dash and a space).
"""

import base64
import binascii
import hashlib
import unicodedata

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives import serialization

from .errors import NoteError

ALG_ED25519 = 1
SIG_PREFIX = "\u2014 "  # em dash, space
MAX_SIGNATURES = 100

# Go's unicode.IsSpace: the Latin-1 spaces plus the Unicode White_Space
# categories.
_GO_LATIN1_SPACE = set("\t\n\v\f\r \x85\xa0")


def _go_is_space(c):
    if ord(c) <= 0xFF:
        return c in _GO_LATIN1_SPACE
    return unicodedata.category(c) in ("Zs", "Zl", "Zp")


def valid_name(name):
    """A key name is non-empty UTF-8 without spaces or '+' (as note.isValidName)."""
    return bool(name) and "+" not in name and not any(_go_is_space(c) for c in name)


def _b64decode(s):
    """Standard padded base64, as Go's base64.StdEncoding.DecodeString."""
    try:
        # Go's decoder skips CR and LF; none can occur inside one line here.
        return base64.b64decode(s.replace("\r", "").replace("\n", ""), validate=True)
    except (binascii.Error, ValueError):
        return None


def key_hash(name, key):
    """The 4-byte key hash of a note key: SHA-256(name || "\\n" || key)[:4] as an int."""
    return int.from_bytes(hashlib.sha256(name.encode() + b"\n" + key).digest()[:4], "big")


class Verifier:
    """A parsed verifier key (golang.org/x/mod/sumdb/note.NewVerifier)."""

    def __init__(self, vkey):
        if not isinstance(vkey, str):
            raise NoteError("the pinned log key must be a string like name+hash+base64")
        try:
            vkey.encode("utf-8")
        except UnicodeError:
            raise NoteError("the pinned log key is not valid UTF-8") from None
        name, _, rest = vkey.strip().partition("+")
        hash16, _, key64 = rest.partition("+")
        key = _b64decode(key64)
        try:
            h = int(hash16, 16) if len(hash16) == 8 and all(c in "0123456789abcdefABCDEF" for c in hash16) else None
        except ValueError:
            h = None
        if h is None or key is None or not valid_name(name) or len(key) == 0:
            raise NoteError(f"the pinned log key {vkey!r} is malformed: it should look like "
                            "'host+1a2b3c4d+AU…' as printed by 'vault admin ledger-key'")
        if h != key_hash(name, key):
            raise NoteError(f"the pinned log key {vkey!r} is damaged: its hash does not match its key; "
                            "copy it again from 'vault admin ledger-key'")
        if key[0] != ALG_ED25519 or len(key) != 33:
            raise NoteError(f"the pinned log key {vkey!r} is not an Ed25519 note key")
        self.name = name
        self.hash = h
        self.key_string = vkey.strip()
        self.public_key = Ed25519PublicKey.from_public_bytes(key[1:])

    def verify(self, msg, sig):
        if len(sig) != 64:
            return False
        try:
            self.public_key.verify(sig, msg)
            return True
        except (InvalidSignature, ValueError):
            return False


def open_note(msg, verifier, error=NoteError, what="note"):
    """Open a signed note with one pinned verifier and return its text.

    As note.Open with a one-key list: the note must be well formed, every
    signature line by the pinned key (same name and key hash) must verify,
    and at least one must. Signatures by other keys are ignored. Raises
    ``error`` (a NoteError subclass) on any failure.
    """
    try:
        if isinstance(msg, str):
            msg = msg.encode("utf-8")  # a lone surrogate (from a JSON "\\ud800") cannot be
        if not isinstance(msg, (bytes, bytearray)):
            raise error(f"the {what} is not text")
        msg = bytes(msg)
        s = msg.decode("utf-8")
    except UnicodeError:
        raise error(f"the {what} is not valid UTF-8")
    if any(ord(c) < 0x20 and c != "\n" for c in s):
        raise error(f"the {what} is malformed (control characters)")
    split = msg.rfind(b"\n\n")
    if split < 0:
        raise error(f"the {what} is malformed: it carries no signature")
    text, sigs = msg[: split + 1], msg[split + 2:]
    if len(sigs) == 0 or not sigs.endswith(b"\n"):
        raise error(f"the {what} is malformed: it carries no signature")
    verified = 0
    seen = set()
    count = 0
    for line in sigs.decode("utf-8").split("\n")[:-1]:
        if not line.startswith(SIG_PREFIX):
            raise error(f"the {what} is malformed: a signature line does not start with '— '")
        line = line[len(SIG_PREFIX):]
        name, _, b64 = line.partition(" ")
        sig = _b64decode(b64)
        if sig is None or not valid_name(name) or b64 == "" or len(sig) < 5:
            raise error(f"the {what} is malformed: a signature line is not 'name base64'")
        h = int.from_bytes(sig[:4], "big")
        count += 1
        if count > MAX_SIGNATURES:
            raise error(f"the {what} is malformed: too many signatures")
        if (name, h) != (verifier.name, verifier.hash):
            continue  # another key's signature: not ours to check
        if (name, h) in seen:
            continue
        seen.add((name, h))
        if not verifier.verify(text, sig[4:]):
            raise error(f"the {what}'s signature by {name} does not verify: it was altered or forged")
        verified += 1
    if verified == 0:
        raise error(f"the {what} is not signed by the pinned log key {verifier.name}+{verifier.hash:08x}: "
                    "it did not come from the vault you pinned")
    return text.decode("utf-8")


def verifier_key(name, public_key):
    """The verifier key string for an Ed25519 public key (note.NewEd25519VerifierKey)."""
    if not valid_name(name):
        raise ValueError("invalid key name")
    if isinstance(public_key, Ed25519PublicKey):
        public_key = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    key = bytes([ALG_ED25519]) + public_key
    return f"{name}+{key_hash(name, key):08x}+{base64.b64encode(key).decode()}"


def sign_note(text, name, private_key, key_hash_override=None):
    """Sign text as a note with an Ed25519 private key (note.Sign with one signer).

    The vault signs; this exists so tests and tools can make notes, such as
    a forgery by a key other than the pinned one.
    """
    if not text.endswith("\n"):
        raise ValueError("note text must end with a newline")
    pub = private_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    h = key_hash_override if key_hash_override is not None else key_hash(name, bytes([ALG_ED25519]) + pub)
    sig = private_key.sign(text.encode("utf-8"))
    b64 = base64.b64encode(h.to_bytes(4, "big") + sig).decode()
    return f"{text}\n{SIG_PREFIX}{name} {b64}\n"
