"""Test helpers: an RFC 6962 prover and a fake vault that makes well-formed exports.

The prover is checked against proofs made by Go's tlog (testdata/go_vectors.json),
so a fake export built with it is one the real vault could have made, signed
by a key the test controls.
"""

import base64
import hashlib
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
# The package is beside the tests: importable without PYTHONPATH or an install.
if os.path.dirname(HERE) not in sys.path:
    sys.path.insert(0, os.path.dirname(HERE))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from jhvault import note, times, tlog
from jhvault.schemas import covers
from jhvault.verify import trailer_text


def load_vectors():
    with open(os.path.join(HERE, "testdata", "go_vectors.json")) as f:
        return json.load(f)


def b64(b):
    return base64.b64encode(b).decode()


def mth(leaves):
    return tlog.tree_hash(leaves)


def _k(n):
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def path(m, leaves):
    """RFC 6962 2.1.1 PATH(m, D[n]) over leaf hashes."""
    n = len(leaves)
    if n == 1:
        return []
    k = _k(n)
    if m < k:
        return path(m, leaves[:k]) + [mth(leaves[k:])]
    return path(m - k, leaves[k:]) + [mth(leaves[:k])]


def subproof(m, leaves, b):
    n = len(leaves)
    if m == n:
        return [] if b else [mth(leaves)]
    k = _k(n)
    if m <= k:
        return subproof(m, leaves[:k], b) + [mth(leaves[k:])]
    return subproof(m - k, leaves[k:], False) + [mth(leaves[:k])]


def consistency(m, leaves):
    """RFC 6962 2.1.2 PROOF(m, D[n])."""
    return subproof(m, leaves, True)


class FakeVault:
    """A log and an export writer with a key the test holds (not the real vault)."""

    def __init__(self, origin="fake.example", key=None):
        self.origin = origin
        self.key = key or Ed25519PrivateKey.generate()
        self.vkey = note.verifier_key(origin, self.key.public_key())
        self.entries = []

    def leaves(self, size=None):
        return [tlog.record_hash(e) for e in self.entries[: size if size is not None else len(self.entries)]]

    def append(self, entry):
        self.entries.append(json.dumps(entry, separators=(",", ":")).encode())
        return len(self.entries) - 1

    def sign(self, text):
        return note.sign_note(text, self.origin, self.key)

    def checkpoint(self, size=None):
        size = len(self.entries) if size is None else size
        return self.sign(f"{self.origin}\n{size}\n{b64(mth(self.leaves(size)))}\n")

    def inclusion(self, idx, size=None):
        lv = self.leaves(size)
        return {"kind": "inclusion", "index": idx, "size": len(lv), "leaf_hash": b64(lv[idx]),
                "root_hash": b64(mth(lv)), "proof": [b64(h) for h in path(idx, lv)]}

    def consistency(self, m, n):
        lv = self.leaves(n)
        return {"kind": "consistency", "from": m, "size": n, "from_hash": b64(mth(lv[:m])),
                "root_hash": b64(mth(lv)), "proof": [b64(h) for h in consistency(m, lv)]}

    def grant(self, patient, clinician, schemas=("omh:blood-glucose",), gid="gr_fake1", expires="2099-01-01T00:00:00Z",
              data_from=None, data_to=None, recipients=None):
        body = {"id": gid, "schemas": list(schemas), "expires_at": expires, "purpose": "TREAT"}
        if data_from:
            body["data_from"] = data_from
        if data_to:
            body["data_to"] = data_to
        if recipients:
            body["recipients"] = list(recipients)
        idx = self.append({"v": 1, "kind": "grant", "salt": b64(os.urandom(16)), "time": "2026-01-01T00:00:00Z",
                           "actor": patient, "patient": patient, "clinician": clinician, "grant": body})
        return {"id": gid, "index": idx}

    def windows(self, grants, schemas, start=None, end=None):
        """The manifest's windows as the vault computes them (consent.ClipWindow): per schema, the request
        window clipped to each covering grant's data window, merged."""
        out = {}
        for s in schemas:
            spans = []
            for g in grants:
                body = json.loads(self.entries[g["index"]])["grant"]
                if not any(covers(gs, s) for gs in body["schemas"]):
                    continue
                lo = [t for t in (start, body.get("data_from")) if t]
                hi = [t for t in (end, body.get("data_to")) if t]
                lo = max(lo, key=times.instant) if lo else None
                hi = min(hi, key=times.instant) if hi else None
                if lo and hi and times.instant(lo) >= times.instant(hi):
                    continue
                spans.append((lo, hi))
            spans.sort(key=lambda w: -float("inf") if w[0] is None else times.instant(w[0]))
            merged = []
            for lo, hi in spans:
                if merged and (merged[-1][1] is None or lo is None or times.instant(lo) <= times.instant(merged[-1][1])):
                    plo, phi = merged[-1]
                    merged[-1] = (plo, None if phi is None or hi is None else max(phi, hi, key=times.instant))
                else:
                    merged.append((lo, hi))
            out[s] = [{k: v for k, v in (("from", lo), ("to", hi)) if v} for lo, hi in merged]
        return out

    def export(self, patient, clinician, data_lines, grants, schemas=("omh:blood-glucose:4.0",), fmt="omh",
               recipient="fp_fake", records=None, start=None, end=None, windows=None):
        access = {"grants": [g["id"] for g in grants], "schemas": list(schemas), "format": fmt, "recipient": recipient}
        filters = {"schemas": list(schemas)}
        for k, v in (("from", start), ("to", end)):
            if v:
                access[k] = filters[k] = v
        if windows is None:
            windows = self.windows(grants, schemas, start, end)
        at = self.append({"v": 1, "kind": "access-start", "salt": b64(os.urandom(16)), "time": "2026-06-01T00:00:00Z",
                          "actor": clinician, "patient": patient, "clinician": clinician, "access": access})
        idxs = [at] + [g["index"] for g in grants]
        m = {"manifest": 1, "patient": patient, "clinician": clinician, "format": fmt,
             "filters": filters, "windows": windows, "grants": grants, "access_start": at,
             "recipient": recipient, "checkpoint": self.checkpoint(),
             "proofs": {str(i): self.inclusion(i) for i in idxs},
             "entries": {str(i): b64(self.entries[i]) for i in idxs}}
        return self.finish(m, data_lines, records)

    def finish(self, m, data_lines, records=None, signer=None):
        mline = dumps(m)
        data = b"".join(data_lines)
        recs = len(data_lines) - (1 if m["format"] == "csv" else 0) if records is None else records
        msha, dsha = hashlib.sha256(mline).hexdigest(), hashlib.sha256(data).hexdigest()
        text = trailer_text(m["access_start"], msha, recs, dsha)
        t = {"trailer": 1, "records": recs, "manifest_sha256": msha, "sha256": dsha,
             "access_start": m["access_start"], "signature": (signer or self.sign)(text)}
        return mline + data + dumps(t)


def split_payload(payload):
    """(manifest dict, data lines, trailer dict) of a plaintext payload."""
    lines = payload.split(b"\n")
    assert lines[-1] == b""
    lines = [l + b"\n" for l in lines[:-1]]
    return json.loads(lines[0]), lines[1:-1], json.loads(lines[-1])


def dumps(obj):
    """JSON as Go's encoding/json writes the vault's manifest and trailer (no spaces, UTF-8 kept)."""
    try:
        return (json.dumps(obj, separators=(",", ":"), ensure_ascii=False) + "\n").encode()
    except UnicodeEncodeError:  # a lone surrogate, as a crafted payload may hold: escaped
        return (json.dumps(obj, separators=(",", ":")) + "\n").encode()


def join_payload(manifest, data_lines, trailer):
    return dumps(manifest) + b"".join(data_lines) + dumps(trailer)


def resign_trailer(manifest, data_lines, trailer, signer):
    """Recompute a trailer's fields for (manifest, data) and sign it with signer(text) (a forgery)."""
    mline = dumps(manifest)
    t = dict(trailer)
    t["manifest_sha256"] = hashlib.sha256(mline).hexdigest()
    t["sha256"] = hashlib.sha256(b"".join(data_lines)).hexdigest()
    t["records"] = len(data_lines) - (1 if manifest["format"] == "csv" else 0)
    t["signature"] = signer(trailer_text(t["access_start"], t["manifest_sha256"], t["records"], t["sha256"])) if signer else ""
    return t


def age_encrypt(plaintext, recipient, out_path):
    """Encrypt to an age recipient with Debian's age CLI (the plaintext goes through a pipe, never a file)."""
    r = subprocess.run(["age", "-r", recipient, "-o", out_path], input=plaintext, capture_output=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f"age -r failed: {r.stderr.decode()}")


def age_decrypt(identity, path):
    r = subprocess.run(["age", "-d", "-i", identity, path], capture_output=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f"age -d failed: {r.stderr.decode()}")
    return r.stdout
