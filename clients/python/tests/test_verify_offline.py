"""The export verifier on payloads a fake vault (a key the test holds) makes: every check, no server."""

import base64
import json
import os
import stat
import tempfile
import unittest


import helpers  # first: it puts jhvault on sys.path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import jhvault
from jhvault import note
from jhvault.checkpoint import open_checkpoint
from jhvault.state import State
from jhvault.verify import Expect, verify_bytes


PT, CL = "pt_fakepatient", "cl_fakeclinician"


def point(i, value=100.0, unit="mg/dL"):
    t = f"2026-06-01T{i // 12:02d}:{(i % 12) * 5:02d}:00-04:00"
    return (json.dumps({"header": {"uuid": f"00000000-0000-4000-8000-{i:012d}",
                                   "schema_id": {"namespace": "omh", "name": "blood-glucose", "version": "4.0"},
                                   "source_creation_date_time": t,
                                   "external_datasheets": [{"datasheet_type": "manufacturer", "datasheet_reference": "CGM"}]},
                        "body": {"blood_glucose": {"value": value + i, "unit": unit}, "effective_time_frame": {"date_time": t}}},
                       separators=(",", ":")) + "\n").encode()


class Base(unittest.TestCase):
    def setUp(self):
        self.fv = helpers.FakeVault()
        for _ in range(5):
            self.fv.append({"v": 1, "kind": "admin", "actor": "admin"})
        self.g = self.fv.grant(PT, CL)
        self.v = note.Verifier(self.fv.vkey)
        self.tmp = tempfile.TemporaryDirectory()
        self.state = State(os.path.join(self.tmp.name, "state"))

    def tearDown(self):
        self.tmp.cleanup()

    def verify(self, payload, state=None, **kw):
        return verify_bytes(payload, verifier=self.v, state=state if state is not None else self.state,
                            fetch_proof=self.fv.consistency, **kw)

    def good(self, n=30, **kw):
        return self.fv.export(PT, CL, [point(i) for i in range(n)], [self.g], **kw)


class TestHappy(Base):
    def test_verifies_and_frames(self):
        ve = self.verify(self.good(), expect=Expect(patient=PT, clinician=CL, format="omh", schemas=["omh:blood-glucose:4.0"]))
        df = ve.to_frame()
        self.assertEqual(len(df), 30)
        self.assertEqual(str(df["time"].dtype), "datetime64[ns, UTC]")
        self.assertEqual(str(df["value"].dtype), "float64")
        self.assertEqual(df["value"].iloc[3], 103.0)
        self.assertEqual(df["time"].iloc[0].isoformat(), "2026-06-01T04:00:00+00:00")
        self.assertEqual(df["source"].iloc[0], "manufacturer: CGM")
        self.assertEqual(df.attrs["grants"], [self.g])
        self.assertTrue(df.attrs["verified"])

    def test_empty_export(self):
        df = self.verify(self.good(0)).to_frame()
        self.assertEqual(len(df), 0)
        self.assertEqual(str(df["time"].dtype), "datetime64[ns, UTC]")

    def test_state_kept_and_extended(self):
        self.verify(self.good())
        p = self.state.path(self.v)
        self.assertEqual(stat.S_IMODE(os.stat(p).st_mode), 0o600)
        self.assertEqual(stat.S_IMODE(os.stat(self.state.dir).st_mode), 0o700)
        first = self.state.load(self.v).size
        for _ in range(7):
            self.fv.append({"v": 1, "kind": "admin", "actor": "admin"})
        self.verify(self.good())
        self.assertGreater(self.state.load(self.v).size, first)

    def test_csv(self):
        rows = [b"uuid,schema,time,end_time,value,unit,value2,unit2,source\n",
                b"u1,omh:blood-glucose:4.0,2026-06-01T04:00:00Z,,101,mg/dL,,,manufacturer: CGM\n"]
        df = self.verify(self.fv.export(PT, CL, rows, [self.g], fmt="csv")).to_frame()
        self.assertEqual(list(df["value"]), [101.0])
        bad = [b"uuid,time\n"] + rows[1:]
        with self.assertRaises(jhvault.ExportFormatError):
            self.verify(self.fv.export(PT, CL, bad, [self.g], fmt="csv")).to_frame()


class TestRejections(Base):
    def test_data_flipped(self):
        m, data, t = helpers.split_payload(self.good())
        data[5] = data[5].replace(b'"value":105', b'"value":195')
        with self.assertRaisesRegex(jhvault.TrailerMismatchError, "SHA-256"):
            self.verify(helpers.join_payload(m, data, t))

    def test_line_dropped_or_added(self):
        m, data, t = helpers.split_payload(self.good())
        with self.assertRaisesRegex(jhvault.TrailerMismatchError, "records"):
            self.verify(helpers.join_payload(m, data[:-1], t))
        with self.assertRaisesRegex(jhvault.TrailerMismatchError, "records"):
            self.verify(helpers.join_payload(m, data + [point(99)], t))

    def test_truncated(self):
        p = self.good()
        for cut in (len(p) - 1, len(p) - 40, p.index(b"\n") + 1, p.index(b"\n"), 10, 0):
            with self.subTest(cut=cut):
                with self.assertRaises(jhvault.VerificationError):
                    self.verify(p[:cut])

    def test_manifest_altered(self):
        m, data, t = helpers.split_payload(self.good())
        m["windows"] = {"omh:blood-glucose:4.0": [{"from": "2020-01-01T00:00:00Z"}]}
        with self.assertRaisesRegex(jhvault.TrailerMismatchError, "manifest"):
            self.verify(helpers.join_payload(m, data, t))

    def test_forged_inclusion_proof(self):
        m, data, t = helpers.split_payload(self.good())
        p = m["proofs"][str(self.g["index"])]
        h = bytearray(base64.b64decode(p["proof"][0]))
        h[0] ^= 1
        p["proof"][0] = base64.b64encode(bytes(h)).decode()
        with self.assertRaisesRegex(jhvault.InclusionProofError, f"entry {self.g['index']}"):
            self.verify(helpers.join_payload(m, data, t))

    def test_entry_swapped(self):
        # The grant entry replaced by another one: its leaf hash no longer matches the proof.
        m, data, t = helpers.split_payload(self.good())
        e = json.loads(base64.b64decode(m["entries"][str(self.g["index"])]))
        e["grant"]["schemas"] = ["omh:blood-pressure"]
        m["entries"][str(self.g["index"])] = base64.b64encode(json.dumps(e).encode()).decode()
        with self.assertRaises(jhvault.InclusionProofError):
            self.verify(helpers.join_payload(m, data, t))

    def test_entries_missing(self):
        m, data, t = helpers.split_payload(self.good())
        del m["entries"]
        with self.assertRaisesRegex(jhvault.ManifestError, "no ledger entries"):
            self.verify(helpers.join_payload(m, data, t))

    def test_logged_entries_that_do_not_match(self):
        """Entries really in the log, but not what the manifest claims."""
        other = self.fv.grant(PT, "cl_someoneelse", gid="gr_other")
        wrong_schema = self.fv.grant(PT, CL, schemas=("omh:heart-rate",), gid="gr_hr")
        expired = self.fv.grant(PT, CL, gid="gr_expired", expires="2026-05-01T00:00:00Z")
        cases = {
            "grant to another clinician": ([other], "not from"),
            "grant without the schema": ([wrong_schema], "covers"),
            "grant expired before the access": ([expired], "had expired"),
        }
        for name, (grants, msg) in cases.items():
            with self.subTest(name):
                with self.assertRaisesRegex(jhvault.EntryMismatchError, msg):
                    self.verify(self.fv.export(PT, CL, [point(1)], grants), state=State(tempfile.mkdtemp(dir=self.tmp.name)))
        # The manifest names a grant id the entry does not carry.
        p = self.fv.export(PT, CL, [point(1)], [dict(self.g, id="gr_renamed")])
        with self.assertRaisesRegex(jhvault.EntryMismatchError, "is not grant gr_renamed"):
            self.verify(p)
        # The access-start names another recipient than the manifest.
        m, data, t = helpers.split_payload(self.good())
        m["recipient"] = "fp_other"
        with self.assertRaisesRegex(jhvault.EntryMismatchError, "recipient"):
            self.verify(helpers.join_payload(m, data, t))
        # The manifest calls a grant entry the access-start.
        m, data, t = helpers.split_payload(self.good())
        m["access_start"] = self.g["index"]
        m["proofs"] = {str(self.g["index"]): m["proofs"][str(self.g["index"])]}
        with self.assertRaisesRegex(jhvault.EntryMismatchError, "access-start"):
            self.verify(helpers.join_payload(m, data, t))

    def test_checkpoint_by_another_key(self):
        m, data, t = helpers.split_payload(self.good())
        intruder = Ed25519PrivateKey.generate()
        body = m["checkpoint"].split("\n\n")[0] + "\n"
        for forged in (note.sign_note(body, self.fv.origin, intruder),
                       note.sign_note(body, self.fv.origin, intruder, key_hash_override=self.v.hash)):
            m["checkpoint"] = forged
            with self.assertRaises(jhvault.CheckpointSignatureError):
                self.verify(helpers.join_payload(m, data, t))

    def test_pinned_to_another_key(self):
        other = note.Verifier(helpers.FakeVault(origin=self.fv.origin).vkey)
        with self.assertRaises(jhvault.CheckpointSignatureError):
            verify_bytes(self.good(), verifier=other, state=self.state, fetch_proof=self.fv.consistency)

    def test_trailer_forged_or_unsigned(self):
        m, data, t = helpers.split_payload(self.good())
        intruder = Ed25519PrivateKey.generate()
        data[0] = point(0, value=300)
        forged = helpers.resign_trailer(m, data, t, lambda text: note.sign_note(text, self.fv.origin, intruder))
        with self.assertRaisesRegex(jhvault.TrailerSignatureError, "not signed by the pinned"):
            self.verify(helpers.join_payload(m, data, forged))
        unsigned = helpers.resign_trailer(m, data, t, None)
        with self.assertRaisesRegex(jhvault.TrailerSignatureError, "unsigned"):
            self.verify(helpers.join_payload(m, data, unsigned))

    def test_trailer_fields_not_the_signed_ones(self):
        m, data, t = helpers.split_payload(self.good())
        t["records"] = t["records"] - 1
        with self.assertRaisesRegex(jhvault.TrailerMismatchError, "signed statement"):
            self.verify(helpers.join_payload(m, data, t))

    def test_trailer_from_another_export(self):
        p1 = self.good(5)
        p2 = self.good(5)
        m2, d2, _ = helpers.split_payload(p2)
        _, _, t1 = helpers.split_payload(p1)
        with self.assertRaisesRegex(jhvault.TrailerMismatchError, "another export"):
            self.verify(helpers.join_payload(m2, d2, t1))

    def test_expectations(self):
        p = self.good()
        for exp, msg in [(Expect(patient="pt_other"), "patient"), (Expect(format="csv"), "format"),
                         (Expect(schemas=["omh:heart-rate:2.0"]), "schemas"), (Expect(recipients={"fp_mine"}), "encrypted to"),
                         (Expect(clinician="cl_other"), "clinician"), (Expect(access_start=1), "access-start")]:
            with self.subTest(msg):
                with self.assertRaisesRegex(jhvault.ManifestError, msg):
                    self.verify(p, expect=exp)


class TestRollback(Base):
    def test_older_checkpoint_rejected(self):
        """Live (the default): an older checkpoint is a rollback even when it is a prefix of the kept one."""
        old = self.good()
        self.verify(self.good())  # keeps a later checkpoint
        kept = self.state.load(self.v)
        with self.assertRaisesRegex(jhvault.RollbackError, "older") as cm:
            self.verify(old)
        self.assertNotIsInstance(cm.exception, jhvault.ForkError)
        self.assertEqual(self.state.load(self.v), kept)
        # A rolled-back vault cannot prove the entries it lost: still a rollback.
        def unprovable(m, n):
            raise jhvault.VaultError(400, "bad_size", "size is beyond the log")
        with self.assertRaisesRegex(jhvault.RollbackError, "older"):
            verify_bytes(old, verifier=self.v, state=self.state, fetch_proof=unprovable)

    def test_old_export_verified_later_is_stale(self):
        old = self.good(5)
        old_size = open_checkpoint(helpers.split_payload(old)[0]["checkpoint"], self.v).size
        self.verify(self.good())  # keeps a later checkpoint
        kept = self.state.load(self.v)
        self.assertGreater(kept.size, old_size)
        asked = []

        def proof(m, n):
            asked.append((m, n))
            return self.fv.consistency(m, n)

        with self.assertWarns(jhvault.StaleExportWarning):
            ve = verify_bytes(old, verifier=self.v, state=self.state, fetch_proof=proof, allow_stale=True)
        self.assertEqual(asked, [(old_size, kept.size)])  # GET /api/v1/ledger/proof?from=OLD&size=KEPT
        self.assertTrue(ve.stale)
        self.assertEqual(ve.kept_size, kept.size)
        df = ve.to_frame()
        self.assertEqual(len(df), 5)
        self.assertTrue(df.attrs["stale"])
        self.assertEqual(self.state.load(self.v), kept)  # the older checkpoint is not kept
        # A current export is not stale.
        ve = self.verify(self.good(), allow_stale=True)
        self.assertFalse(ve.stale)
        self.assertFalse(ve.to_frame().attrs["stale"])
        # Verifying later needs the vault's proof: without it, the vault's error.
        def down(m, n):
            raise jhvault.VaultError(0, "unreachable", "down")
        with self.assertRaises(jhvault.VaultError):
            verify_bytes(old, verifier=self.v, state=self.state, fetch_proof=down, allow_stale=True)

    def test_older_and_inconsistent_is_a_fork_in_both_paths(self):
        self.verify(self.good())
        kept = self.state.load(self.v)
        # A fork of the log, shorter than the kept checkpoint, signed by the same key.
        fork = helpers.FakeVault(origin=self.fv.origin, key=self.fv.key)
        fork.entries = [b'{"v":1,"kind":"admin","actor":"someone else"}', self.fv.entries[self.g["index"]]]
        g = {"id": self.g["id"], "index": 1}
        p = fork.export(PT, CL, [point(1)], [g])
        self.assertLess(len(fork.entries), kept.size)
        for allow_stale in (False, True):
            for name, fetch in (("the honest vault's proof", self.fv.consistency), ("the fork's own", fork.consistency)):
                with self.subTest(allow_stale=allow_stale, proof=name):
                    with self.assertRaises(jhvault.ForkError) as cm:
                        verify_bytes(p, verifier=self.v, state=self.state, fetch_proof=fetch, allow_stale=allow_stale)
                    self.assertIsInstance(cm.exception, jhvault.RollbackError)
        # An old export of the honest log, with a tampered proof: a fork too.
        old = self.good(3)
        self.verify(self.good())

        def tampered(m, n):
            pr = self.fv.consistency(m, n)
            h = bytearray(base64.b64decode(pr["proof"][0]))
            h[3] ^= 1
            pr["proof"][0] = base64.b64encode(bytes(h)).decode()
            return pr

        for allow_stale in (False, True):
            with self.subTest(tampered=True, allow_stale=allow_stale):
                with self.assertRaises(jhvault.ForkError):
                    verify_bytes(old, verifier=self.v, state=self.state, fetch_proof=tampered, allow_stale=allow_stale)
        self.assertGreater(self.state.load(self.v).size, kept.size)

    def test_fork_rejected(self):
        self.verify(self.good())
        kept = self.state.load(self.v)
        # The vault forks: the same size, another history.
        fork = helpers.FakeVault(origin=self.fv.origin, key=self.fv.key)
        fork.entries = list(self.fv.entries[:-1])
        g = {"id": self.g["id"], "index": self.g["index"]}
        p = fork.export(PT, CL, [point(1)], [g])
        self.assertEqual(len(fork.entries), kept.size)
        with self.assertRaisesRegex(jhvault.RollbackError, "two different roots"):
            verify_bytes(p, verifier=self.v, state=self.state, fetch_proof=fork.consistency)
        # And a longer fork: its consistency proof cannot reach the kept root.
        for _ in range(3):
            fork.append({"v": 1, "kind": "admin", "actor": "admin"})
        p = fork.export(PT, CL, [point(1)], [g])
        with self.assertRaisesRegex(jhvault.RollbackError, "does not extend"):
            verify_bytes(p, verifier=self.v, state=self.state, fetch_proof=fork.consistency)

    def test_bad_consistency_proof(self):
        self.verify(self.good())
        p = self.good()

        def tampered(m, n):
            pr = self.fv.consistency(m, n)
            h = bytearray(base64.b64decode(pr["proof"][-1]))
            h[5] ^= 4
            pr["proof"][-1] = base64.b64encode(bytes(h)).decode()
            return pr

        with self.assertRaises(jhvault.RollbackError):
            verify_bytes(p, verifier=self.v, state=self.state, fetch_proof=tampered)
        with self.assertRaises(jhvault.RollbackError):
            verify_bytes(p, verifier=self.v, state=self.state, fetch_proof=lambda m, n: self.fv.consistency(m - 1, n))

    def test_state_file_tampered(self):
        self.verify(self.good())
        path = self.state.path(self.v)
        with open(path) as f:
            s = f.read()
        with open(path, "w") as f:
            f.write(s.replace("\n", "\n\n", 1))
        with self.assertRaises(jhvault.StateError):
            self.verify(self.good())

    def test_kept_per_log_key(self):
        self.verify(self.good())
        other = helpers.FakeVault(origin="other.example")
        g = other.grant(PT, CL)
        verify_bytes(other.export(PT, CL, [point(1)], [g]), verifier=note.Verifier(other.vkey), state=self.state,
                     fetch_proof=other.consistency)
        self.assertNotEqual(self.state.path(self.v), self.state.path(note.Verifier(other.vkey)))
        with open(self.state.path(self.v)) as f:
            self.assertEqual(open_checkpoint(f.read(), self.v).origin, self.fv.origin)


class TestClientConfig(unittest.TestCase):
    def test_refuses_without_pinned_key(self):
        env = {k: os.environ.pop(k) for k in ("VAULT_LOG_KEY",) if k in os.environ}
        try:
            with self.assertRaisesRegex(jhvault.ConfigError, "pinned log key"):
                jhvault.Client("http://127.0.0.1:1", "vc_x", "/nonexistent", state_dir=tempfile.mkdtemp())
        finally:
            os.environ.update(env)

    def test_refuses_malformed_key(self):
        with self.assertRaisesRegex(jhvault.ConfigError, "VAULT_LOG_KEY"):
            jhvault.Client("http://127.0.0.1:1", "vc_x", "/nonexistent", log_key="example+00000000+AAAA", state_dir=tempfile.mkdtemp())

    def test_schema_names(self):
        self.assertEqual(jhvault.canonical("blood-glucose"), "omh:blood-glucose:4.0")
        self.assertEqual(jhvault.canonical("omh:heart-rate"), "omh:heart-rate:2.0")
        self.assertEqual(jhvault.canonical("steps"), "omh:step-count:3.0")
        self.assertEqual(jhvault.canonical("omh:blood-glucose:3.0"), "omh:blood-glucose:3.0")
        with self.assertRaises(ValueError):
            jhvault.canonical("cholesterol")

    def test_fingerprint(self):
        # consent.Fingerprint: fp_ and the first 16 bytes of SHA-256 in hex.
        self.assertEqual(jhvault.fingerprint("age1x"), "fp_" + __import__("hashlib").sha256(b"age1x").hexdigest()[:32])


if __name__ == "__main__":
    unittest.main()
