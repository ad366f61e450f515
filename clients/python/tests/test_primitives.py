"""Signed notes, checkpoints and RFC 6962 proofs against vectors made by Go's note and tlog."""

import base64
import hashlib
import unittest


import helpers  # first: it puts jhvault on sys.path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from jhvault import note, tlog
from jhvault.checkpoint import open_checkpoint, parse_body
from jhvault.errors import CheckpointFormatError, CheckpointSignatureError, NoteError


V = helpers.load_vectors()


def hashes(xs):
    return [base64.b64decode(x) for x in xs]


class TestTlogVectors(unittest.TestCase):
    def setUp(self):
        self.records = [base64.b64decode(r) for r in V["records"]]
        self.leaves = [tlog.record_hash(r) for r in self.records]
        self.roots = {t["size"]: base64.b64decode(t["root"]) for t in V["trees"]}

    def test_tree_hashes(self):
        for size, root in self.roots.items():
            self.assertEqual(tlog.tree_hash(self.leaves[:size]), root, size)

    def test_inclusion_proofs_from_go(self):
        for v in V["inclusion"]:
            i, n, p = v["index"], v["size"], hashes(v["proof"])
            tlog.check_record(p, n, self.roots[n], i, self.leaves[i])
            # The test prover makes the same proofs as Go.
            self.assertEqual(helpers.path(i, self.leaves[:n]), p)

    def test_consistency_proofs_from_go(self):
        for v in V["consistency"]:
            m, n, p = v["from"], v["size"], hashes(v["proof"])
            tlog.check_tree(p, n, self.roots[n], m, self.roots[m])
            self.assertEqual(helpers.consistency(m, self.leaves[:n]), p)

    def test_inclusion_negatives(self):
        for v in V["inclusion"]:
            i, n, p = v["index"], v["size"], hashes(v["proof"])
            root = self.roots[n]
            with self.assertRaises(tlog.ProofError):
                tlog.check_record(p, n, root, i, tlog.record_hash(self.records[i] + b" "))  # another entry
            if n > 1:
                with self.assertRaises(tlog.ProofError):
                    tlog.check_record(p, n, root, (i + 1) % n, self.leaves[i])  # another index
            for j in range(len(p)):
                bad = list(p)
                bad[j] = bytes([bad[j][0] ^ 1]) + bad[j][1:]
                with self.assertRaises(tlog.ProofError):
                    tlog.check_record(bad, n, root, i, self.leaves[i])
            with self.assertRaises(tlog.ProofError):
                tlog.check_record(p + [root], n, root, i, self.leaves[i])  # an extra hash
            if p:
                with self.assertRaises(tlog.ProofError):
                    tlog.check_record(p[:-1], n, root, i, self.leaves[i])  # one short
            with self.assertRaises(tlog.ProofError):
                tlog.check_record(p, n, root, n, self.leaves[i])  # index out of the tree

    def test_consistency_negatives(self):
        for v in V["consistency"]:
            m, n, p = v["from"], v["size"], hashes(v["proof"])
            if m < n:
                # Another old root (a fork) or another new root.
                with self.assertRaises(tlog.ProofError):
                    tlog.check_tree(p, n, self.roots[n], m, tlog.record_hash(b"fork"))
                with self.assertRaises(tlog.ProofError):
                    tlog.check_tree(p, n, tlog.record_hash(b"fork"), m, self.roots[m])
                for j in range(len(p)):
                    bad = list(p)
                    bad[j] = bytes([bad[j][0] ^ 0x80]) + bad[j][1:]
                    with self.assertRaises(tlog.ProofError):
                        tlog.check_tree(bad, n, self.roots[n], m, self.roots[m])
            with self.assertRaises(tlog.ProofError):
                tlog.check_tree(p, n, self.roots[n], m, tlog.record_hash(b"x"))
        with self.assertRaises(tlog.ProofError):
            tlog.check_tree([], 3, self.roots[3], 4, self.roots[4])  # old larger than new


class TestNoteVectors(unittest.TestCase):
    def setUp(self):
        self.n = V["notes"]
        self.v = note.Verifier(self.n["verifier_key"])

    def test_open_go_note(self):
        self.assertEqual(note.open_note(self.n["signed"], self.v), self.n["text"])
        # Another key's signature beside ours is ignored.
        self.assertEqual(note.open_note(self.n["signed_by_both"], self.v), self.n["text"])
        other = note.Verifier(self.n["other_verifier_key"])
        self.assertEqual(note.open_note(self.n["signed_by_both"], other), self.n["text"])

    def test_signed_by_another_key(self):
        with self.assertRaisesRegex(NoteError, "not signed by the pinned log key"):
            note.open_note(self.n["signed_by_other"], self.v)

    def test_python_signer_matches_go(self):
        # gen_vectors.go drew the key's seed from a deterministic reader, and
        # Ed25519 is deterministic: the same key and text give Go's exact note.
        seed = bytes(hashlib.sha256(f"jhvault-vectors|{i}".encode()).digest()[0] for i in range(32))
        key = Ed25519PrivateKey.from_private_bytes(seed)
        self.assertEqual(note.verifier_key("vectors.example", key.public_key()), self.n["verifier_key"])
        self.assertEqual(note.sign_note(self.n["text"], "vectors.example", key), self.n["signed"])

    def test_tampered_notes(self):
        s = self.n["signed"]
        cases = {
            "text changed": s.replace("\n21\n", "\n22\n"),
            "signature flipped": s[:-10] + ("A" if s[-10] != "A" else "B") + s[-9:],
            "no blank line": s.replace("\n\n", "\n"),
            "no final newline": s[:-1],
            "hyphen not em dash": s.replace("\u2014", "-"),
            "control character": s.replace("vectors.example\n21", "vectors.example\x01\n21"),
            "bad base64": s.replace(" a3wq", " !3wq"),
            "empty signature": self.n["text"] + "\n\u2014 vectors.example \n",
        }
        for name, bad in cases.items():
            with self.subTest(name):
                with self.assertRaises(NoteError):
                    note.open_note(bad, self.v)

    def test_forged_with_pinned_key_hash(self):
        # A signature line that claims the pinned key's name and hash, made by another key.
        key = Ed25519PrivateKey.generate()
        forged = note.sign_note(self.n["text"], "vectors.example", key, key_hash_override=self.v.hash)
        with self.assertRaisesRegex(NoteError, "does not verify"):
            note.open_note(forged, self.v)

    def test_bad_verifier_keys(self):
        good = self.n["verifier_key"]
        name, h, k = good.split("+")
        for bad in ["", "nohash", f"{name}+{h}", f"{name}+zzzzzzzz+{k}", f"{name}+{int(h, 16) ^ 1:08x}+{k}",
                    f"other+{h}+{k}", f"{name}+{h}+{k[:-4]}", f"na me+{h}+{k}"]:
            with self.subTest(bad):
                with self.assertRaises(NoteError):
                    note.Verifier(bad)


class TestCheckpoint(unittest.TestCase):
    def test_go_checkpoint(self):
        v = note.Verifier(V["notes"]["verifier_key"])
        cp = open_checkpoint(V["notes"]["signed"], v)
        self.assertEqual((cp.origin, cp.size), ("vectors.example", 21))
        self.assertEqual(cp.root, base64.b64decode(V["trees"][-1]["root"]))

    def test_canonical_only(self):
        root = base64.b64encode(bytes(32)).decode()
        parse_body(f"o\n0\n{root}\n")
        for bad in [f"o\n01\n{root}\n", f"o\n-1\n{root}\n", f"o\n1\n{root}", f"o\n1\n{root}\next\n",
                    f"o o\n1\n{root}\n", f"\n1\n{root}\n", "o\n1\nAAAA\n", f"o\n1\n{root[:-1]}\n", f"o\n+1\n{root}\n"]:
            with self.subTest(bad):
                with self.assertRaises(CheckpointFormatError):
                    parse_body(bad)

    def test_origin_must_be_key_name(self):
        key = Ed25519PrivateKey.generate()
        root = base64.b64encode(bytes(32)).decode()
        signed = note.sign_note(f"elsewhere\n1\n{root}\n", "log.example", key)
        v = note.Verifier(note.verifier_key("log.example", key.public_key()))
        with self.assertRaisesRegex(CheckpointFormatError, "another vault"):
            open_checkpoint(signed, v)
        with self.assertRaises(CheckpointSignatureError):
            open_checkpoint(V["notes"]["signed"], v)


if __name__ == "__main__":
    unittest.main()
