"""The client against a live vault (cmd/vault's TestPythonClient starts one and sets the environment).

Environment: VAULT_URL, VAULT_TOKEN (clinician), VAULT_LOG_KEY, VAULT_IDENTITY,
VAULT_PATIENT, VAULT_BIN, VAULT_CREDENTIALS (the demo's credentials.json) and,
optionally, VAULT_PQ_IDENTITY (a post-quantum age identity file whose
'# public key:' comment names its age1pq1 recipient, not yet registered).
"""

import base64
import csv
import io
import json
import os
import shutil
import stat
import sys
import tempfile
import unittest
from unittest import mock

import pandas as pd
import requests

import helpers  # first: it puts jhvault on sys.path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import jhvault
from jhvault import note
from jhvault.decrypt import Decryptor, read_identity
from jhvault.frames import COLUMNS


ENV = ("VAULT_URL", "VAULT_TOKEN", "VAULT_LOG_KEY", "VAULT_IDENTITY", "VAULT_PATIENT", "VAULT_CREDENTIALS")
SCHEMAS = ["blood-glucose", "heart-rate", "step-count"]


def setUpModule():
    missing = [k for k in ENV if not os.environ.get(k)]
    if missing:
        msg = (f"\n*** SKIPPING the live vault tests: {', '.join(missing)} not set. They are meant to run from\n"
               "*** 'go test ./cmd/vault -run TestPythonClient', which starts a demo vault and sets them. ***\n")
        sys.stderr.write(msg)
        raise unittest.SkipTest(msg.strip())


class Live(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.url = os.environ["VAULT_URL"].rstrip("/")
        cls.patient = os.environ["VAULT_PATIENT"]
        cls.identity = os.environ["VAULT_IDENTITY"]
        cls.log_key = os.environ["VAULT_LOG_KEY"]
        with open(os.environ["VAULT_CREDENTIALS"]) as f:
            cls.creds = json.load(f)
        cls.recipient = cls.creds["clinician_recipient"]
        cls.tmp = tempfile.mkdtemp(prefix="jhvault-test-")
        os.chmod(cls.tmp, 0o700)
        cls.start = pd.Timestamp.now(tz="UTC") - pd.Timedelta(days=14)
        cls.end = pd.Timestamp.now(tz="UTC") + pd.Timedelta(hours=1)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def client(self, **kw):
        kw.setdefault("state_dir", tempfile.mkdtemp(dir=self.tmp))
        return jhvault.Client(**kw)

    def download(self, client=None, schemas=("blood-glucose",), fmt="omh"):
        c = client or self.client()
        path = os.path.join(tempfile.mkdtemp(dir=self.tmp), "export.age")
        c.download(self.patient, list(schemas), path, start=self.start, end=self.end, format=fmt)
        return path

    def plaintext(self, path):
        """Decrypt with Debian's age CLI into memory (the tests' tampering works on this)."""
        return helpers.age_decrypt(self.identity, path)

    def reencrypt(self, payload):
        path = os.path.join(tempfile.mkdtemp(dir=self.tmp), "forged.age")
        helpers.age_encrypt(payload, self.recipient, path)
        return path


class TestHappyPaths(Live):
    def test_patients(self):
        df = self.client().patients()
        row = df[df["id"] == self.patient]
        self.assertEqual(len(row), 1, df)
        self.assertEqual(row["name"].iloc[0], self.creds["patient_name"])
        self.assertIn("omh:blood-glucose", row["schemas"].iloc[0])
        self.assertIn(self.creds["grant_id"], row["grants"].iloc[0])
        self.assertEqual(str(df["expires_at"].dtype), "datetime64[ns, UTC]")

    def test_export_equals_the_patients_own_readings(self):
        c = self.client()
        ve = c.fetch(self.patient, SCHEMAS, start=self.start, end=self.end, keep_lines=True)
        got = sorted(ve.lines)
        want = []
        for s in SCHEMAS:
            r = requests.get(f"{self.url}/api/v1/readings",
                             params={"schema": jhvault.canonical(s), "from": ve.manifest["filters"]["from"],
                                     "to": ve.manifest["filters"]["to"]},
                             headers={"Authorization": f"Bearer {self.creds['patient_token']}"}, timeout=60)
            self.assertEqual(r.status_code, 200, r.text)
            want += [l + b"\n" for l in r.content.split(b"\n") if l]
        self.assertGreater(len(want), 500)  # two days of 5-minute CGM and heart rate, and hourly steps
        self.assertEqual(got, sorted(want))

        df = ve.to_frame()
        self.assertEqual(list(df.columns), COLUMNS)
        self.assertEqual(str(df["time"].dtype), "datetime64[ns, UTC]")
        self.assertEqual(str(df["end_time"].dtype), "datetime64[ns, UTC]")
        for col in ("value", "value2"):
            self.assertEqual(str(df[col].dtype), "float64")
        for col in ("unit", "schema", "source", "uuid", "unit2"):
            self.assertEqual(str(df[col].dtype), "string")
        self.assertEqual(set(df["schema"]), {jhvault.canonical(s) for s in SCHEMAS})
        self.assertFalse(df["time"].isna().any())
        self.assertFalse(df["value"].isna().any())
        steps = df[df["schema"] == "omh:step-count:3.0"]
        self.assertTrue((steps["end_time"] > steps["time"]).all())
        a = df.attrs
        self.assertEqual(a["patient"], self.patient)
        self.assertEqual(a["clinician"], self.creds["clinician_id"])
        self.assertEqual(a["records"], len(df))
        # The demo's grant is made with a token, so the manifest says unsigned.
        self.assertIn({"id": self.creds["grant_id"], "index": a["grants"][0]["index"], "signed": False}, a["grants"])
        self.assertGreater(a["checkpoint_size"], a["access_start"])
        self.assertEqual(a["recipient"], jhvault.fingerprint(self.recipient))
        tir = jhvault.time_in_range(df)
        self.assertEqual(tir["readings"], (df["schema"] == "omh:blood-glucose:4.0").sum())
        self.assertAlmostEqual(tir["below"] + tir["in_range"] + tir["above"], 1.0)

    def test_formats_agree(self):
        c = self.client()
        frames = {}
        for fmt in ("omh", "csv", "fhir"):
            frames[fmt] = c.export(self.patient, SCHEMAS, start=self.start, end=self.end, format=fmt)
        key = ["schema", "uuid"]
        omh = frames["omh"].sort_values(key).reset_index(drop=True)
        for fmt in ("csv", "fhir"):
            with self.subTest(fmt):
                other = frames[fmt].sort_values(key).reset_index(drop=True)
                self.assertEqual(frames[fmt].attrs["format"], fmt)
                for col in ("time", "end_time", "schema", "value", "value2", "uuid", "source"):
                    pd.testing.assert_series_equal(omh[col], other[col], check_names=False, obj=f"{fmt} {col}")
                if fmt == "csv":
                    pd.testing.assert_series_equal(omh["unit"], other["unit"])

    def test_every_schema_in_every_format(self):
        """Ada uploads one reading of each other schema and grants them; omh, csv and fhir frames agree."""
        now = pd.Timestamp.now(tz="UTC").floor("s")
        run = os.urandom(4).hex()

        def t(hours):
            return (now - pd.Timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ")

        def pt(i, name, version, body, sheets=({"datasheet_type": "manufacturer", "datasheet_reference": "Test device"},)):
            return {"header": {"uuid": f"5c4e0000-{run[:4]}-4000-8000-{run}{i:04d}",
                               "schema_id": {"namespace": "omh", "name": name, "version": version},
                               "source_creation_date_time": t(1),
                               "external_datasheets": list(sheets)},
                    "body": body}

        # Sources the csv export guards against formula injection ('=…' is written "'=…").
        formula = '=HYPERLINK("http://example.org","x")'

        at = {"date_time": t(3)}
        points = [
            pt(1, "blood-pressure", "4.0", {"systolic_blood_pressure": {"value": 121, "unit": "mmHg"},
                                            "diastolic_blood_pressure": {"value": 79, "unit": "mmHg"}, "effective_time_frame": at}),
            pt(2, "body-weight", "3.0", {"body_weight": {"value": 70.5, "unit": "kg"}, "effective_time_frame": at},
               [{"datasheet_reference": formula}]),
            pt(3, "oxygen-saturation", "2.0", {"oxygen_saturation": {"value": 97, "unit": "%"}, "effective_time_frame": at},
               [{"datasheet_type": "source_name", "datasheet_reference": "-5 dB @home"}]),
            pt(4, "body-temperature", "4.0", {"body_temperature": {"value": 36.8, "unit": "C"}, "effective_time_frame": at}),
            pt(5, "respiratory-rate", "2.0", {"respiratory_rate": {"value": 14, "unit": "breaths/min"}, "effective_time_frame": at}),
            pt(6, "sleep-episode", "1.1", {"effective_time_frame": {"time_interval": {"start_date_time": t(10), "end_date_time": t(2)}},
                                           "total_sleep_time": {"value": 420, "unit": "min"}}),
            pt(7, "physical-activity", "1.2", {"activity_name": "walking", "distance": {"value": 2.1, "unit": "km"},
                                               "kcal_burned": {"value": 120, "unit": "kcal"},
                                               "effective_time_frame": {"time_interval": {"start_date_time": t(5),
                                                                                          "duration": {"value": 30, "unit": "min"}}}}),
        ]
        r = requests.post(f"{self.url}/api/v1/readings", data="\n".join(json.dumps(p) for p in points),
                          headers={"Authorization": f"Bearer {self.creds['device_token']}",
                                   "Content-Type": "application/x-ndjson"}, timeout=30)
        self.assertEqual(r.status_code, 201, r.text)
        schemas = ["blood-pressure", "body-weight", "oxygen-saturation", "body-temperature", "respiratory-rate",
                   "sleep-episode", "physical-activity"]
        r = requests.post(f"{self.url}/api/v1/grants", json={
            "clinician": self.creds["clinician_id"], "schemas": [jhvault.canonical(s).rsplit(":", 1)[0] for s in schemas],
            "expires_at": (now + pd.Timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ"), "purpose": "TREAT"},
            headers={"Authorization": f"Bearer {self.creds['patient_token']}"}, timeout=30)
        self.assertEqual(r.status_code, 201, r.text)
        grant = r.json()["id"]
        try:
            c = self.client()
            mine = lambda df: df[df["uuid"].str.contains(run)].sort_values("uuid").reset_index(drop=True)
            win = dict(start=now - pd.Timedelta(days=1), end=now + pd.Timedelta(hours=1))
            omh = mine(c.export(self.patient, schemas, format="omh", **win))
            csv = mine(c.export(self.patient, schemas, format="csv", **win))
            with self.assertRaises(jhvault.VaultError) as cm:
                c.export(self.patient, schemas, format="fhir", **win)
            self.assertEqual(cm.exception.code, "format_unsupported")  # physical-activity has no FHIR form
            fhir = mine(c.export(self.patient, schemas[:-1], format="fhir", **win))
        finally:
            r = requests.post(f"{self.url}/api/v1/grants/{grant}/revoke",
                              headers={"Authorization": f"Bearer {self.creds['patient_token']}"}, timeout=30)
            self.assertEqual(r.status_code, 200, r.text)
        # Revoked: refused at once.
        with self.assertRaises(jhvault.VaultError) as cm:
            c.export(self.patient, ["blood-pressure"], **win)
        self.assertEqual((cm.exception.status, cm.exception.code), (403, "no_consent"))
        self.assertEqual(len(omh), 7)
        by = {s: row for s, row in zip(omh["schema"], omh.itertuples())}
        bp = by["omh:blood-pressure:4.0"]
        self.assertEqual((bp.value, bp.unit, bp.value2, bp.unit2), (121.0, "mmHg", 79.0, "mmHg"))
        sleep = by["omh:sleep-episode:1.1"]
        self.assertEqual((sleep.value, sleep.unit, sleep.value2, sleep.unit2), (480.0, "min", 420.0, "min"))
        walk = by["omh:physical-activity:1.2"]
        self.assertEqual(walk.end_time - walk.time, pd.Timedelta(minutes=30))
        self.assertEqual((walk.value, walk.unit, walk.value2, walk.unit2), (2.1, "km", 120.0, "kcal"))
        self.assertEqual(by["omh:body-temperature:4.0"].value, 36.8)
        self.assertEqual(set(omh["source"]), {"manufacturer: Test device", formula, "-5 dB @home"})
        self.assertEqual(by["omh:body-weight:3.0"].source, formula)
        pd.testing.assert_frame_equal(omh, csv)  # the csv's formula guard is stripped
        omh6 = omh[omh["schema"] != "omh:physical-activity:1.2"].reset_index(drop=True)
        for col in ("time", "end_time", "schema", "value", "value2", "uuid", "source"):
            pd.testing.assert_series_equal(omh6[col], fhir[col], obj=f"fhir {col}")

    def test_state_is_kept_private_and_extended(self):
        c = self.client()
        c.export(self.patient, ["heart-rate"], start=self.start)
        kept = c.kept_checkpoint()
        self.assertIsNotNone(kept)
        self.assertEqual(stat.S_IMODE(os.stat(c.state.dir).st_mode), 0o700)
        self.assertEqual(stat.S_IMODE(os.stat(c.state.path(c.verifier)).st_mode), 0o600)
        c.export(self.patient, ["heart-rate"], start=self.start)  # consistency-checked against the kept one
        self.assertGreater(c.kept_checkpoint().size, kept.size)
        cp = c.checkpoint(fresh=True)
        self.assertEqual(cp.size, c.kept_checkpoint().size)

    def test_identity_from_the_environment(self):
        """A hub that hands over the identity itself (VAULT_IDENTITY_KEY): the client writes it once, 0600."""
        ids, _ = read_identity(self.identity)
        env = {k: v for k, v in os.environ.items() if k != "VAULT_IDENTITY"}
        env["VAULT_IDENTITY_KEY"] = ids[0]
        with mock.patch.dict(os.environ, env, clear=True):
            c = self.client(decryptor="age")
            self.assertEqual(os.path.dirname(c.identity), c.state.dir)
            self.assertEqual(stat.S_IMODE(os.stat(c.identity).st_mode), 0o600)
            df = c.export(self.patient, ["blood-glucose"], start=self.start, end=self.end)
            self.assertGreater(len(df), 0)
            self.assertEqual(df.attrs["recipient"], jhvault.fingerprint(self.recipient))

    def test_default_state_dir_is_home(self):
        c = jhvault.Client()
        self.assertEqual(c.state.dir, os.path.join(os.path.expanduser("~"), ".jhvault"))

    def test_decryptor_backends_agree(self):
        results = {}
        for backend in ("age", "vault"):
            if backend == "vault" and not os.environ.get("VAULT_BIN"):
                continue
            c = self.client(decryptor=backend)
            self.assertEqual(c.decryptor.name, backend)
            results[backend] = c.export(self.patient, ["blood-glucose"], start=self.start, end=self.end)
        self.assertIn("vault", results, "VAULT_BIN is not set: the vault decrypt backend went untested")
        pd.testing.assert_frame_equal(results["age"], results["vault"])

    def test_no_consent_is_a_vault_error(self):
        with self.assertRaises(jhvault.VaultError) as cm:
            self.client().export(self.patient, ["blood-pressure"], start=self.start)
        self.assertEqual((cm.exception.status, cm.exception.code), (403, "no_consent"))
        with self.assertRaises(jhvault.VaultError) as cm:
            self.client(token="vc_not_a_token").patients()
        self.assertEqual(cm.exception.status, 401)


class TestPostQuantum(Live):
    def test_pq_export_through_vault_decrypt(self):
        pq = os.environ.get("VAULT_PQ_IDENTITY")
        if not pq:
            self.skipTest("VAULT_PQ_IDENTITY not set: no post-quantum identity to register")
        _, pubs = read_identity(pq)
        self.assertTrue(pubs and pubs[0].startswith("age1pq1"), pubs)
        with self.assertRaisesRegex(jhvault.ConfigError, "post-quantum"):
            Decryptor(pq, "age")
        c = self.client(identity=pq)
        self.assertEqual(c.decryptor.name, "vault")
        key = c.add_key("pq test hub")  # its own recipient, from the identity file
        fp = key["fingerprint"]
        self.assertEqual(key["status"], "active", "the demo's key activation delay is 0")
        try:
            self.assertEqual(fp, jhvault.fingerprint(pubs[0]))
            df = c.export(self.patient, ["blood-glucose"], start=self.start, end=self.end)  # picks the pq key itself
            self.assertEqual(df.attrs["recipient"], fp)
            # With two active keys, the X25519 client picks its own.
            df2 = self.client().export(self.patient, ["blood-glucose"], start=self.start, end=self.end)
            self.assertEqual(df2.attrs["recipient"], jhvault.fingerprint(self.recipient))
            self.assertEqual(list(df["uuid"]), list(df2["uuid"]))
            # The age CLI cannot open it.
            path = os.path.join(tempfile.mkdtemp(dir=self.tmp), "pq.age")
            c.download(self.patient, ["blood-glucose"], path, start=self.start)
            with self.assertRaises(RuntimeError):
                helpers.age_decrypt(pq, path)
            self.assertEqual(c.verify_file(path, patient=self.patient).manifest["recipient"], fp)
        finally:
            c.remove_key(fp)
        self.assertEqual([k["status"] for k in c.keys() if k["fingerprint"] == fp], ["removed"])


class TestSaveData(Live):
    """save_data writes the verified data lines only: a plain CSV file (one export: the demo's per-grant export budget is shared)."""

    def test_plain_csv_and_nothing_when_refused(self):
        path = self.download(fmt="csv")
        m, data, t = helpers.split_payload(self.plaintext(path))
        d = tempfile.mkdtemp(dir=self.tmp)
        out = os.path.join(d, "export.csv")
        v = self.client().save_data(path, out, patient=self.patient)
        with open(out, "rb") as f:
            got = f.read()
        self.assertEqual(got, b"".join(data))
        self.assertEqual(stat.S_IMODE(os.stat(out).st_mode), 0o600)
        rows = list(csv.reader(io.StringIO(got.decode())))
        self.assertEqual(len(rows), v.records + 1)
        self.assertFalse(rows[0][0].startswith("{"))
        with self.assertRaises(FileExistsError):
            self.client().save_data(path, out)
        # A data line dropped: refused, and nothing left behind.
        bad = self.reencrypt(helpers.join_payload(m, data[:-1], t))
        d2 = tempfile.mkdtemp(dir=self.tmp)
        with self.assertRaises(jhvault.TrailerMismatchError):
            self.client().save_data(bad, os.path.join(d2, "export.csv"))
        self.assertEqual(os.listdir(d2), [])


class TestRejections(Live):
    """Every way an export can be wrong is refused, and no data comes back."""

    def test_flipped_byte_in_ciphertext(self):
        path = self.download()
        size = os.path.getsize(path)
        for where in (size // 2, size - 20, 40):
            with self.subTest(offset=where):
                with open(path, "rb") as f:
                    b = bytearray(f.read())
                b[where] ^= 0x01
                bad = os.path.join(tempfile.mkdtemp(dir=self.tmp), "flipped.age")
                with open(bad, "wb") as f:
                    f.write(b)
                for backend in ("age", "vault"):
                    with self.assertRaises(jhvault.DecryptionError):
                        self.client(decryptor=backend).verify_file(bad)

    def test_flipped_byte_in_reencrypted_plaintext(self):
        pt = self.plaintext(self.download())
        m, data, t = helpers.split_payload(pt)
        self.assertEqual(helpers.join_payload(m, data, t), pt, "the tests re-serialise payloads as Go does")
        line = data[len(data) // 2]
        i = line.index(b'"value":') + len(b'"value":')
        data[len(data) // 2] = line[:i] + bytes([line[i] ^ 0x01]) + line[i + 1:]
        with self.assertRaisesRegex(jhvault.TrailerMismatchError, "SHA-256"):
            self.client().verify_file(self.reencrypt(helpers.join_payload(m, data, t)))
        # The untouched payload, re-encrypted the same way, verifies: only the flip failed.
        self.client().verify_file(self.reencrypt(pt), patient=self.patient)

    def test_forged_inclusion_proof(self):
        m, data, t = helpers.split_payload(self.plaintext(self.download()))
        for idx in [str(m["access_start"])] + [str(g["index"]) for g in m["grants"]]:
            with self.subTest(index=idx):
                mm = json.loads(json.dumps(m))
                p = mm["proofs"][idx]
                self.assertTrue(p["proof"], "a proof in a log of several entries has hashes")
                h = bytearray(base64.b64decode(p["proof"][0]))
                h[7] ^= 0x10
                p["proof"][0] = base64.b64encode(bytes(h)).decode()
                with self.assertRaisesRegex(jhvault.InclusionProofError, f"entry {idx}"):
                    self.client().verify_file(self.reencrypt(helpers.join_payload(mm, data, t)))

    def test_entry_altered(self):
        m, data, t = helpers.split_payload(self.plaintext(self.download()))
        g = str(m["grants"][0]["index"])
        e = json.loads(base64.b64decode(m["entries"][g]))
        e["grant"]["expires_at"] = "2999-01-01T00:00:00Z"
        m["entries"][g] = base64.b64encode(json.dumps(e, separators=(",", ":")).encode()).decode()
        with self.assertRaises(jhvault.InclusionProofError):
            self.client().verify_file(self.reencrypt(helpers.join_payload(m, data, t)))

    def test_checkpoint_signed_by_another_key(self):
        m, data, t = helpers.split_payload(self.plaintext(self.download()))
        body = m["checkpoint"].split("\n\n")[0] + "\n"
        origin = body.split("\n")[0]
        intruder = Ed25519PrivateKey.generate()
        pinned = note.Verifier(self.log_key)
        for forged in (note.sign_note(body, origin, intruder),
                       note.sign_note(body, origin, intruder, key_hash_override=pinned.hash)):
            m["checkpoint"] = forged
            with self.assertRaises(jhvault.CheckpointSignatureError):
                self.client().verify_file(self.reencrypt(helpers.join_payload(m, data, t)))

    def test_client_pinned_to_another_key(self):
        origin = note.Verifier(self.log_key).name
        for name in (origin, "elsewhere.example"):
            other = note.verifier_key(name, Ed25519PrivateKey.generate().public_key())
            c = self.client(log_key=other)
            with self.assertRaises(jhvault.CheckpointSignatureError):
                c.export(self.patient, ["blood-glucose"], start=self.start)
            with self.assertRaises(jhvault.CheckpointSignatureError):
                c.checkpoint()

    def test_export_made_by_someone_else(self):
        """Anyone can encrypt to the hub's key; only the vault's log key signs a trailer."""
        m, data, t = helpers.split_payload(self.plaintext(self.download()))
        data = data[:10]
        intruder = Ed25519PrivateKey.generate()
        origin = note.Verifier(self.log_key).name
        forged = helpers.resign_trailer(m, data, t, lambda text: note.sign_note(text, origin, intruder))
        with self.assertRaisesRegex(jhvault.TrailerSignatureError, "did not come from the vault"):
            self.client().verify_file(self.reencrypt(helpers.join_payload(m, data, forged)))
        unsigned = helpers.resign_trailer(m, data, t, None)
        with self.assertRaisesRegex(jhvault.TrailerSignatureError, "unsigned"):
            self.client().verify_file(self.reencrypt(helpers.join_payload(m, data, unsigned)))

    def test_trailer_from_another_export(self):
        m1, d1, t1 = helpers.split_payload(self.plaintext(self.download()))
        _, _, t2 = helpers.split_payload(self.plaintext(self.download()))
        with self.assertRaisesRegex(jhvault.TrailerMismatchError, "another export"):
            self.client().verify_file(self.reencrypt(helpers.join_payload(m1, d1, t2)))

    def serve(self, client, path):
        """Make client's next export requests answer the ciphertext at path (a vault restored from a backup
        that still serves what it had then), with its access-start header."""
        m = json.loads(self.plaintext(path).split(b"\n")[0])

        def download_to(dst, patient, params):
            shutil.copyfile(path, dst)
            return m["access_start"]

        client._download_to = download_to

    def test_rolled_back_checkpoint(self):
        old = self.download()
        c = self.client()
        self.client().export(self.patient, ["heart-rate"], start=self.start)  # more ledger entries
        later = c.checkpoint(fresh=True)
        old_manifest = json.loads(self.plaintext(old).split(b"\n")[0])
        old_size = jhvault.open_checkpoint(old_manifest["checkpoint"], c.verifier).size
        self.assertGreater(later.size, old_size)
        # A live export presenting an older checkpoint is a rollback, even though the vault proves it a prefix.
        self.serve(c, old)
        with self.assertRaisesRegex(jhvault.RollbackError, "older than") as cm:
            c.export(self.patient, ["blood-glucose"], start=self.start, end=self.end)
        self.assertNotIsInstance(cm.exception, jhvault.ForkError)
        self.assertEqual(c.kept_checkpoint(), later)
        # The same file verified later, as a downloaded export: accepted, marked stale, and not kept.
        asked = []
        real = c.consistency_proof
        c.consistency_proof = lambda m, n: asked.append((m, n)) or real(m, n)
        with self.assertWarns(jhvault.StaleExportWarning):
            ve = c.verify_file(old, patient=self.patient)
        self.assertEqual(asked, [(old_size, later.size)])
        self.assertTrue(ve.stale)
        self.assertEqual(ve.kept_size, later.size)
        self.assertTrue(ve.to_frame().attrs["stale"])
        self.assertEqual(c.kept_checkpoint(), later)
        with self.assertRaisesRegex(jhvault.RollbackError, "older than"):
            c.verify_file(old, allow_stale=False)
        # A fresh client (nothing kept) accepts the same old export, and it is not stale.
        self.assertFalse(self.client().verify_file(old, patient=self.patient).stale)

    def test_older_inconsistent_checkpoint_is_a_fork(self):
        """An older checkpoint that is not a prefix of the kept one is a fork, live or verified later."""
        old = self.download()
        c = self.client()
        self.client().export(self.patient, ["heart-rate"], start=self.start)
        later = c.checkpoint(fresh=True)
        real = c.consistency_proof

        def forked(m, n):
            p = real(m, n)
            h = bytearray(base64.b64decode(p["proof"][0]))
            h[0] ^= 0x01
            p["proof"][0] = base64.b64encode(bytes(h)).decode()
            return p

        c.consistency_proof = forked
        with self.assertRaisesRegex(jhvault.ForkError, "not a prefix"):
            c.verify_file(old)
        self.serve(c, old)
        with self.assertRaisesRegex(jhvault.ForkError, "not a prefix"):
            c.export(self.patient, ["blood-glucose"], start=self.start, end=self.end)
        self.assertEqual(c.kept_checkpoint(), later)

    def test_inconsistent_proof_from_the_vault(self):
        c = self.client()
        c.checkpoint(fresh=True)
        self.client().export(self.patient, ["heart-rate"], start=self.start)
        real = c.consistency_proof

        def forked(m, n):
            p = real(m, n)
            h = bytearray(base64.b64decode(p["proof"][-1]))
            h[0] ^= 0x01
            p["proof"][-1] = base64.b64encode(bytes(h)).decode()
            return p

        c.consistency_proof = forked
        with self.assertRaisesRegex(jhvault.RollbackError, "does not extend"):
            c.export(self.patient, ["heart-rate"], start=self.start)
        kept = c.kept_checkpoint()
        c.consistency_proof = real
        c.export(self.patient, ["heart-rate"], start=self.start)
        self.assertGreater(c.kept_checkpoint().size, kept.size)


if __name__ == "__main__":
    unittest.main()
