"""RFC 6962 Merkle tree proofs, checked as golang.org/x/mod/sumdb/tlog does.

``check_record`` is tlog.CheckRecord (inclusion) and ``check_tree`` is
tlog.CheckTree (consistency), ported line for line; SHA-256 is hashlib's.
``tree_hash`` computes a root from leaf hashes, for tests.
"""

import base64
import binascii
import hashlib

HASH_SIZE = 32


class ProofError(Exception):
    """A proof does not verify."""


def record_hash(data):
    """The leaf hash of a record: SHA-256(0x00 || data)."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left, right):
    """An interior node: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _maxpow2(n):
    """The largest power of two strictly less than n (for n > 1), as tlog.maxpow2."""
    l = 0
    while (1 << (l + 1)) < n:
        l += 1
    return 1 << l


def decode_hash(s, what="hash"):
    """A standard base64 SHA-256 hash."""
    try:
        h = base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError, TypeError):
        raise ProofError(f"{what} is not base64")
    if len(h) != HASH_SIZE:
        raise ProofError(f"{what} is not 32 bytes")
    return h


def _run_record_proof(p, lo, hi, n, leaf):
    if not lo <= n < hi:
        raise ProofError("inclusion proof: bad index")
    if lo + 1 == hi:
        if len(p) != 0:
            raise ProofError("inclusion proof has unnecessary hashes")
        return leaf
    if len(p) == 0:
        raise ProofError("inclusion proof is too short")
    k = _maxpow2(hi - lo)
    if n < lo + k:
        th = _run_record_proof(p[:-1], lo, lo + k, n, leaf)
        return node_hash(th, p[-1])
    th = _run_record_proof(p[:-1], lo + k, hi, n, leaf)
    return node_hash(p[-1], th)


def check_record(proof, t, th, n, h):
    """Check that leaf hash h is record n of the tree of size t with root th (tlog.CheckRecord)."""
    if t < 0 or n < 0 or n >= t:
        raise ProofError("invalid inputs: need 0 <= index < size")
    if len(proof) > 64:
        raise ProofError("inclusion proof is too long")
    if th != _run_record_proof(list(proof), 0, t, n, h):
        raise ProofError("inclusion proof does not lead to the checkpoint's root")


def _run_tree_proof(p, lo, hi, n, old):
    if not lo < n <= hi:
        raise ProofError("consistency proof: bad sizes")
    if n == hi:
        if lo == 0:
            if len(p) != 0:
                raise ProofError("consistency proof has unnecessary hashes")
            return old, old
        if len(p) != 1:
            raise ProofError("consistency proof has the wrong length")
        return p[0], p[0]
    if len(p) == 0:
        raise ProofError("consistency proof is too short")
    k = _maxpow2(hi - lo)
    if n <= lo + k:
        oh, th = _run_tree_proof(p[:-1], lo, lo + k, n, old)
        return oh, node_hash(th, p[-1])
    oh, th = _run_tree_proof(p[:-1], lo + k, hi, n, old)
    return node_hash(p[-1], oh), node_hash(p[-1], th)


def check_tree(proof, t, th, n, h):
    """Check that the tree of size n with root h is a prefix of the tree of size t with root th (tlog.CheckTree)."""
    if t < 1 or n < 1 or n > t:
        raise ProofError("invalid inputs: need 1 <= old size <= new size")
    if len(proof) > 128:
        raise ProofError("consistency proof is too long")
    h2, th2 = _run_tree_proof(list(proof), 0, t, n, h)
    if th2 != th or h2 != h:
        raise ProofError("consistency proof does not connect the two roots")


def tree_hash(leaves):
    """The RFC 6962 root of a list of leaf hashes (for tests)."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = _maxpow2(len(leaves))
    return node_hash(tree_hash(leaves[:k]), tree_hash(leaves[k:]))
