"""Offline checks of the client's hardening: the entries' recipients and windows, the data rows' windows,
crafted payloads, the state directory, the csv formula guard, the decryptor's last line, and an identity
handed over in VAULT_IDENTITY_KEY."""

import base64
import contextlib
import hashlib
import io
import json
import os
import random
import stat
import subprocess
import tempfile
import unittest
import warnings
from unittest import mock

import helpers  # first: it puts jhvault on sys.path

import jhvault
from jhvault import client as client_mod, frames, note, state as state_mod, times
from jhvault.decrypt import Decryptor
from jhvault.state import State
from jhvault.verify import verify_bytes

from test_verify_offline import CL, PT, Base, point

BG = "omh:blood-glucose:4.0"
HR = "omh:heart-rate:2.0"


def hr_point(i, t):
    return (json.dumps({"header": {"uuid": f"00000000-0000-4000-9000-{i:012d}",
                                   "schema_id": {"namespace": "omh", "name": "heart-rate", "version": "2.0"}},
                        "body": {"heart_rate": {"value": 60 + i, "unit": "beats/min"},
                                 "effective_time_frame": {"date_time": t}}}, separators=(",", ":")) + "\n").encode()


class TestEntryChecks(Base):
    """Cheap checks on what the logged entries say, beyond the ids (item: recipients, windows)."""

    def test_grant_pinned_to_other_recipients(self):
        g = self.fv.grant(PT, CL, gid="gr_pinned", recipients=["fp_elsewhere", "fp_other"])
        with self.assertRaisesRegex(jhvault.EntryMismatchError, "covers only exports to fp_elsewhere, fp_other"):
            self.verify(self.fv.export(PT, CL, [point(1)], [g], recipient="fp_fake"))
        ok = self.fv.grant(PT, CL, gid="gr_pinned_here", recipients=["fp_other", "fp_fake"])
        self.verify(self.fv.export(PT, CL, [point(1)], [ok], recipient="fp_fake"))

    def test_windows_covered_by_the_grants(self):
        g = self.fv.grant(PT, CL, gid="gr_may", data_from="2026-05-01T00:00:00Z", data_to="2026-06-01T00:00:00Z")
        cases = {
            "starts before the grant's window": [{"from": "2026-04-01T00:00:00Z", "to": "2026-06-01T00:00:00Z"}],
            "open start": [{"to": "2026-05-15T00:00:00Z"}],
            "ends after it": [{"from": "2026-05-01T00:00:00Z", "to": "2026-06-01T00:00:00.000000001Z"}],
            "open end": [{"from": "2026-05-10T00:00:00Z"}],
            "second window outside": [{"from": "2026-05-01T00:00:00Z", "to": "2026-05-02T00:00:00Z"},
                                      {"from": "2026-07-01T00:00:00Z", "to": "2026-07-02T00:00:00Z"}],
        }
        for name, ws in cases.items():
            with self.subTest(name):
                with self.assertRaisesRegex(jhvault.EntryMismatchError, "not covered by the data windows"):
                    self.verify(self.fv.export(PT, CL, [], [g], windows={BG: ws}))
        # Inside: verifies, and the vault's own clipping is accepted.
        self.verify(self.fv.export(PT, CL, [], [g], windows={BG: [{"from": "2026-05-01T00:00:00Z",
                                                                  "to": "2026-05-31T23:00:00+01:00"}]}))
        self.verify(self.fv.export(PT, CL, [], [g]))
        # Two grants whose windows touch cover the union; a gap between them does not.
        june = self.fv.grant(PT, CL, gid="gr_june", data_from="2026-06-01T00:00:00Z", data_to="2026-07-01T00:00:00Z")
        both = {BG: [{"from": "2026-05-01T00:00:00Z", "to": "2026-07-01T00:00:00Z"}]}
        self.verify(self.fv.export(PT, CL, [], [g, june], windows=both))
        july = self.fv.grant(PT, CL, gid="gr_july", data_from="2026-07-02T00:00:00Z")
        with self.assertRaisesRegex(jhvault.EntryMismatchError, "not covered"):
            self.verify(self.fv.export(PT, CL, [], [g, june, july],
                                       windows={BG: [{"from": "2026-05-01T00:00:00Z", "to": "2026-08-01T00:00:00Z"}]}))
        # A grant that does not cover the schema does not cover its windows either.
        hr_open = self.fv.grant(PT, CL, schemas=("omh:heart-rate",), gid="gr_hr_open")
        with self.assertRaisesRegex(jhvault.EntryMismatchError, "not covered"):
            self.verify(self.fv.export(PT, CL, [], [g, hr_open], schemas=(BG, HR),
                                       windows={BG: [{}], HR: [{}]}))

    def test_windows_inside_the_logged_request(self):
        with self.assertRaisesRegex(jhvault.EntryMismatchError, "outside the window the access-start logs"):
            self.verify(self.fv.export(PT, CL, [], [self.g], start="2026-05-10T00:00:00Z", end="2026-05-20T00:00:00Z",
                                       windows={BG: [{"from": "2026-05-01T00:00:00Z", "to": "2026-05-20T00:00:00Z"}]}))
        with self.assertRaisesRegex(jhvault.EntryMismatchError, "outside the window the access-start logs"):
            self.verify(self.fv.export(PT, CL, [], [self.g], start="2026-05-10T00:00:00Z", windows={BG: [{}]}))
        self.verify(self.fv.export(PT, CL, [], [self.g], start="2026-05-10T00:00:00Z", end="2026-05-20T00:00:00Z"))

    def test_windows_name_exactly_the_schemas(self):
        with self.assertRaisesRegex(jhvault.EntryMismatchError, "which the access did not ask for"):
            self.verify(self.fv.export(PT, CL, [], [self.g], windows={BG: [{}], HR: [{}]}))
        with self.assertRaisesRegex(jhvault.EntryMismatchError, "no window for"):
            self.verify(self.fv.export(PT, CL, [], [self.g], windows={}))
        for bad in ({BG: []}, {BG: [{"from": "yesterday"}]}, {BG: [{"from": "2026-05-02T00:00:00Z", "to": "2026-05-01T00:00:00Z"}]},
                    {BG: "all"}, [], "all"):
            with self.subTest(windows=bad):
                with self.assertRaises(jhvault.ManifestError):
                    self.verify(self.fv.export(PT, CL, [], [self.g], windows=bad))

    def test_rows_inside_the_windows(self):
        # point(i) is at 04:00Z + 5 min * i; the grant shares [04:00, 05:00): points 0 to 11.
        g = self.fv.grant(PT, CL, gid="gr_hour", data_from="2026-06-01T04:00:00Z", data_to="2026-06-01T05:00:00Z")
        df = self.verify(self.fv.export(PT, CL, [point(i) for i in range(12)], [g])).to_frame()
        self.assertEqual(len(df), 12)
        # 05:00 itself is outside: the windows are half-open.
        with self.assertRaisesRegex(jhvault.DataWindowError, r"data line 13 .*outside the export's windows"):
            self.verify(self.fv.export(PT, CL, [point(i) for i in range(13)], [g]))
        # A reading of a schema the export does not cover.
        with self.assertRaisesRegex(jhvault.DataWindowError, "schema 'omh:heart-rate:2.0' is not one the export covers"):
            self.verify(self.fv.export(PT, CL, [point(0), hr_point(1, "2026-06-01T04:10:00Z")], [g]))
        # csv and fhir rows too.
        hdr = b"uuid,schema,time,end_time,value,unit,value2,unit2,source\n"
        inside = b"u1,omh:blood-glucose:4.0,2026-06-01T04:59:59.999999999Z,,101,mg/dL,,,\n"
        outside = b"u2,omh:blood-glucose:4.0,2026-06-01T03:59:59Z,,101,mg/dL,,,\n"
        self.verify(self.fv.export(PT, CL, [hdr, inside], [g], fmt="csv"))
        with self.assertRaisesRegex(jhvault.DataWindowError, "data line 3 "):  # the header row is line 1
            self.verify(self.fv.export(PT, CL, [hdr, inside, outside], [g], fmt="csv"))
        obs = {"resourceType": "Observation", "status": "final",
               "code": {"coding": [{"system": "http://loinc.org", "code": "99504-3"}]},
               "effectiveDateTime": "2026-06-01T00:30:00-04:00", "valueQuantity": {"value": 100, "unit": "mg/dl"}}
        line = (json.dumps(obs) + "\n").encode()
        self.verify(self.fv.export(PT, CL, [line], [g], fmt="fhir"))
        obs["effectiveDateTime"] = "2026-06-01T01:00:00-05:00"  # 06:00Z
        with self.assertRaises(jhvault.DataWindowError):
            self.verify(self.fv.export(PT, CL, [(json.dumps(obs) + "\n").encode()], [g], fmt="fhir"))
        # A line this client cannot place (no schema it knows, no time it reads) verifies, but gives no
        # frame: the client cannot read it, which is not the vault's fault.
        for change in ({"code": {"coding": [{"code": "0000-0"}]}}, {"effectiveDateTime": "2026-06-01"}):
            o = {**obs, "effectiveDateTime": "2026-06-01T00:30:00-04:00", **change}
            ve = self.verify(self.fv.export(PT, CL, [(json.dumps(o) + "\n").encode()], [g], fmt="fhir"))
            with self.assertRaisesRegex(jhvault.ExportFormatError, "data line 1 .*cannot be read"):
                ve.to_frame()

    def test_row_window_checked_after_the_trailer(self):
        """Altered data is a trailer mismatch, whatever the altered line says."""
        m, data, t = helpers.split_payload(self.good(3))
        data[1] = hr_point(1, "1999-01-01T00:00:00Z")
        with self.assertRaises(jhvault.TrailerMismatchError):
            self.verify(helpers.join_payload(m, data, t))


class MemState:
    """A kept checkpoint in memory (jhvault.state.State without the files), for many quick runs."""

    def __init__(self):
        self.cp = None

    def lock(self):
        return contextlib.nullcontext()

    def load(self, verifier):
        return self.cp

    def store(self, verifier, cp):
        self.cp = cp


class TestCraftedPayloads(Base):
    """Only VerificationError (or VaultError, ConfigError) leaves the verifier, and then no rows."""

    ALLOWED = (jhvault.VerificationError, jhvault.VaultError, jhvault.ConfigError)

    def resign(self, m, data):
        """A payload as the key holder would sign it (the trailer made anew)."""
        return self.fv.finish(m, data)

    def test_lone_surrogate_in_the_checkpoint(self):
        m, data, t = helpers.split_payload(self.good(2))
        m["checkpoint"] = "\ud800" + m["checkpoint"]
        payload = json.dumps(m, separators=(",", ":")).encode() + b"\n" + b"".join(data) + helpers.dumps(t)
        with self.assertRaisesRegex(jhvault.CheckpointSignatureError, "UTF-8"):
            self.verify(payload)
        with self.assertRaises(note.NoteError):
            note.open_note("x\ud800\n\n\u2014 a b\n", self.v)

    def test_non_ascii_digit_proof_key(self):
        m, data, _ = helpers.split_payload(self.good(2))
        m["proofs"]["\u00b2"] = m["proofs"][str(self.g["index"])]
        ve = self.verify(self.resign(m, data))  # ignored, as any key that is not an index
        self.assertEqual(len(ve.rows), 2)

    def test_unexpected_failure_is_a_malformed_export(self):
        """Whatever a check trips over is reported as a VerificationError, never raw."""
        from jhvault import verify as verify_mod
        for exc in (KeyError("grants"), TypeError("unhashable"), UnicodeEncodeError("utf-8", "\ud800", 0, 1, "x"),
                    RecursionError("deep")):
            with self.subTest(exc=type(exc).__name__):
                with mock.patch.object(verify_mod, "_check_entries", side_effect=exc):
                    with self.assertRaisesRegex(jhvault.MalformedExportError, "malformed export") as cm:
                        self.verify(self.good(1))
                self.assertIsInstance(cm.exception, jhvault.VerificationError)
                self.assertIs(cm.exception.__cause__, exc)
        # Deeply nested JSON (json's RecursionError) in an entry.
        m, data, _ = helpers.split_payload(self.good(1))
        with self.assertRaises(jhvault.VerificationError):
            self.verify(helpers.dumps(m)[:-2] + b',"x":' + b"[" * 100000 + b"]" * 100000 + b"}\n" + b"".join(data))

    def test_wrong_types(self):
        m0, data, _ = helpers.split_payload(self.good(2))
        for path, value in [(("checkpoint",), 7), (("checkpoint",), None), (("grants",), {"id": 1}),
                            (("grants", 0, "index"), True), (("grants", 0, "index"), -1), (("access_start",), "7"),
                            (("proofs", str(self.g["index"]), "proof"), 5), (("proofs",), [1]), (("entries",), "x"),
                            (("filters",), "x"), (("filters", "schemas"), "omh:blood-glucose:4.0"),
                            (("windows",), {BG: [[1, 2]]}), (("recipient",), {"a": 1}), (("patient",), ["pt"])]:
            with self.subTest(path=path, value=value):
                m = json.loads(json.dumps(m0))
                obj = m
                for k in path[:-1]:
                    obj = obj[k]
                obj[path[-1]] = value
                with self.assertRaises(jhvault.VerificationError):
                    self.verify(self.resign(m, data))

    def test_fuzz(self):
        """Random byte flips, truncations, line and JSON field swaps of a valid payload (fixed seed)."""
        rnd = random.Random(20260601)
        good = self.good(6)
        m0, data0, t0 = helpers.split_payload(good)
        nasty = ["\ud800", "\u00b2", "", "0", "-1", -1, 0, 2 ** 70, 1.5, True, None, [], {}, [None], {"": ""},
                 "x" * 300, "2026-06-01T00:00:00Z", "AAAA", "\u2014 x y\n"]

        def leaves(obj, path=()):
            if isinstance(obj, dict):
                for k, v in obj.items():
                    yield from leaves(v, path + (k,))
            elif isinstance(obj, list):
                for i, v in enumerate(obj):
                    yield from leaves(v, path + (i,))
            yield path

        def setat(obj, path, value):
            for k in path[:-1]:
                obj = obj[k]
            obj[path[-1]] = value

        def getat(obj, path):
            for k in path:
                obj = obj[k]
            return obj

        def mutate():
            kind = rnd.randrange(6)
            if kind == 0:  # byte flips
                b = bytearray(good)
                for _ in range(rnd.randint(1, 3)):
                    b[rnd.randrange(len(b))] ^= rnd.randint(1, 255)
                return bytes(b), False
            if kind == 1:  # truncation
                return good[:rnd.randrange(len(good))], False
            if kind == 2:  # lines swapped, dropped or repeated
                lines = helpers.split_payload(good)
                ls = [helpers.dumps(lines[0])] + list(lines[1]) + [helpers.dumps(lines[2])]
                i, j = rnd.randrange(len(ls)), rnd.randrange(len(ls))
                op = rnd.randrange(3)
                if op == 0:
                    ls[i], ls[j] = ls[j], ls[i]
                elif op == 1:
                    del ls[i]
                else:
                    ls.insert(i, ls[j])
                return b"".join(ls), False
            # JSON field swaps and nasty values in the manifest (kinds 3, 4) or the trailer (5); the
            # manifest is signed anew by the key holder half the time.
            m, t = json.loads(json.dumps(m0)), json.loads(json.dumps(t0))
            target = t if kind == 5 else m
            paths = [p for p in leaves(target) if p]
            a, b = rnd.choice(paths), rnd.choice(paths)
            if kind == 3 and a != b and not (a[:len(b)] == b or b[:len(a)] == a):
                va, vb = getat(target, a), getat(target, b)
                setat(target, a, vb)
                setat(target, b, va)
            else:
                setat(target, a, rnd.choice(nasty))
            if kind != 5 and rnd.random() < 0.5:
                return self.fv.finish(m, data0), True
            mline = json.dumps(m, separators=(",", ":")).encode() + b"\n"  # ASCII escapes: a lone surrogate survives
            return mline + b"".join(data0) + json.dumps(t, separators=(",", ":")).encode() + b"\n", False

        raised = resigned_ok = 0
        for i in range(400):
            payload, resigned = mutate()
            if payload == good:
                continue
            st = MemState()
            if i % 2:
                verify_bytes(good, verifier=self.v, state=st, fetch_proof=self.fv.consistency)  # something kept
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", jhvault.StaleExportWarning)
                    ve = verify_bytes(payload, verifier=self.v, state=st, fetch_proof=self.fv.consistency,
                                      allow_stale=bool(i % 3))
            except self.ALLOWED:
                raised += 1
                continue
            except Exception as e:  # noqa: BLE001 - the point of the test
                self.fail(f"iteration {i}: {type(e).__name__} escaped the verifier: {e}")
            # Only a payload the key holder signed anew can verify; unsigned changes never do.
            self.assertTrue(resigned, f"iteration {i}: an altered payload verified")
            resigned_ok += 1
            with contextlib.suppress(jhvault.ExportFormatError):
                ve.to_frame()
        self.assertGreater(raised, 300)


class TestStateDir(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        self.fv = helpers.FakeVault()
        self.fv.append({"v": 1})
        self.v = note.Verifier(self.fv.vkey)
        self.cp = jhvault.open_checkpoint(self.fv.checkpoint(), self.v)

    def test_refuses_a_dir_others_can_write(self):
        d = os.path.join(self.tmp.name, "shared")
        os.mkdir(d)
        for mode in (0o770, 0o702, 0o777):
            os.chmod(d, mode)
            with self.subTest(mode=oct(mode)):
                with self.assertRaisesRegex(jhvault.ConfigError, f"writable by others.*chmod 700 {d}"):
                    State(d)
        os.chmod(d, 0o755)  # readable only: made private
        State(d)
        self.assertEqual(stat.S_IMODE(os.stat(d).st_mode), 0o700)

    def test_refuses_a_dir_of_another_user(self):
        d = os.path.join(self.tmp.name, "theirs")
        os.mkdir(d, 0o700)
        with mock.patch.object(state_mod, "_euid", return_value=os.geteuid() + 1):
            with self.assertRaisesRegex(jhvault.ConfigError, "belongs to user id .*chmod 700"):
                State(d)

    def test_atomic_store(self):
        st = State(os.path.join(self.tmp.name, "s"))
        synced = []
        real = os.fsync

        def fsync(fd):
            synced.append(stat.S_ISDIR(os.fstat(fd).st_mode))
            real(fd)

        with mock.patch.object(os, "fsync", fsync):
            st.store(self.v, self.cp)
            st.store(self.v, self.cp)
        self.assertEqual(synced, [False, True, False, True])  # the file, then the directory, each time
        self.assertEqual(sorted(os.listdir(st.dir)), [os.path.basename(st.path(self.v))])  # no temporary left
        self.assertEqual(stat.S_IMODE(os.stat(st.path(self.v)).st_mode), 0o600)
        self.assertEqual(st.load(self.v), self.cp)
        # A failed write leaves the kept checkpoint and no temporary.
        with mock.patch.object(os, "replace", side_effect=OSError(28, "No space left on device")):
            with self.assertRaisesRegex(jhvault.StateError, "No space"):
                st.store(self.v, self.cp)
        self.assertEqual(sorted(os.listdir(st.dir)), [os.path.basename(st.path(self.v))])

    def test_symlinks_not_followed(self):
        st = State(os.path.join(self.tmp.name, "s"))
        elsewhere = os.path.join(self.tmp.name, "elsewhere")
        with open(elsewhere, "w") as f:
            f.write(self.cp.signed)
        os.symlink(elsewhere, st.path(self.v))
        with self.assertRaisesRegex(jhvault.StateError, "symbolic link"):
            st.load(self.v)
        os.symlink(elsewhere, os.path.join(st.dir, ".lock"))
        with self.assertRaisesRegex(jhvault.StateError, "symbolic link"):
            with st.lock():
                pass
        # Storing replaces the link itself, never writes through it.
        os.unlink(os.path.join(st.dir, ".lock"))
        st.store(self.v, self.cp)
        self.assertFalse(os.path.islink(st.path(self.v)))
        with open(elsewhere) as f:
            self.assertEqual(f.read(), self.cp.signed)


class TestCSVGuard(unittest.TestCase):
    def row(self, source):
        line = "u,omh:heart-rate:2.0,2026-01-01T00:00:00Z,,60,beats/min,,," + source
        return frames.csv_row(line)[8]

    def test_guard_stripped(self):
        # What export/csv.go sourceCell writes, and the text the other formats carry.
        for cell, text in [("'=HYPERLINK(\"\"http://x\"\")", '=HYPERLINK("http://x")'), ("'+1", "+1"), ("'-5 dB", "-5 dB"),
                           ("'@SUM(A1)", "@SUM(A1)"), ("'  =x", "  =x"), ("' tab", " tab"), ("' ", " "),
                           ("'plain", "'plain"), ("O'Brien", "O'Brien"), ("'", "'"), ("''=x", "''=x"),
                           ("Dexcom G7", "Dexcom G7"), ("", None)]:
            with self.subTest(cell=cell):
                if cell.startswith("'=H"):
                    cell = '"' + cell + '"'
                self.assertEqual(self.row(cell), text)

    def test_frames_agree(self):
        """The same reading in omh and csv gives the same frame, source included."""
        src = "=HYPERLINK(\"http://evil\")"
        omh = json.dumps({"header": {"uuid": "u1", "schema_id": {"namespace": "omh", "name": "heart-rate", "version": "2.0"},
                                     "external_datasheets": [{"datasheet_reference": src}]},
                          "body": {"heart_rate": {"value": 61, "unit": "beats/min"},
                                   "effective_time_frame": {"date_time": "2026-01-01T01:00:00+01:00"}}})
        csv_line = 'u1,omh:heart-rate:2.0,2026-01-01T00:00:00Z,,61,beats/min,,,"\'=HYPERLINK(""http://evil"")"'
        a = frames.to_frame([frames.omh_row(omh)])
        b = frames.to_frame([frames.csv_row(csv_line)])
        self.assertEqual(a["source"].iloc[0], src)
        import pandas as pd
        pd.testing.assert_frame_equal(a, b)


class TestUntypedSchemaRows(unittest.TestCase):
    """A reading of a schema without a typed model (export.md): the same frame, with no value, in every format."""

    def test_frames_agree(self):
        body = {"effective_time_frame": {"date_time": "2026-01-01T00:00:00Z"}, "food_amount": {"unit": "mL", "value": 300}, "food_name": "soup"}
        point = {"header": {"uuid": "u2", "schema_id": {"namespace": "ieee", "name": "food-entry", "version": "0.1"}}, "body": body}
        omh = json.dumps(point)
        cell = json.dumps(body, separators=(",", ":"), sort_keys=True).replace('"', '""')
        csv_line = 'u2,ieee:food-entry:0.1,2026-01-01T00:00:00Z,,,,,,,"' + cell + '"'
        fhir = json.dumps({"resourceType": "Observation", "id": "u2",
                           "identifier": [{"system": "urn:ietf:rfc:3986", "value": "urn:uuid:u2"}],
                           "extension": [{"url": "http://hl7.org/fhir/5.0/StructureDefinition/extension-Observation.value",
                                          "valueAttachment": {"contentType": "application/json", "data": "e30="}}],
                           "status": "final",
                           "code": {"coding": [{"system": "https://w3id.org/openmhealth", "code": "ieee:food-entry:0.1"}], "text": "ieee:food-entry:0.1"},
                           "effectiveDateTime": "2026-01-01T00:00:00Z"})
        frames.check_csv_header(frames.CSV_HEADER)
        frames.check_csv_header(frames.CSV_HEADER_NO_BODY)
        a = frames.to_frame([frames.omh_row(omh)])
        b = frames.to_frame([frames.csv_row(csv_line)])
        c = frames.to_frame([frames.fhir_row(fhir)])
        self.assertEqual(a["schema"].iloc[0], "ieee:food-entry:0.1")
        self.assertTrue(a["value"].isna().all())
        import pandas as pd
        pd.testing.assert_frame_equal(a, b)
        pd.testing.assert_frame_equal(a, c)


class TestOMHTimes(unittest.TestCase):
    """The frame's time is the time the vault files the reading by (omh.TimeFrame.Start)."""

    def frame(self, tf, name="step-count", version="3.0"):
        line = json.dumps({"header": {"uuid": "u", "schema_id": {"namespace": "omh", "name": name, "version": version}},
                           "body": {"step_count": {"value": 10, "unit": "steps"}, "effective_time_frame": tf}})
        return frames.to_frame([frames.omh_row(line)]).iloc[0]

    def test_end_and_duration(self):
        r = self.frame({"time_interval": {"end_date_time": "2026-01-01T01:00:00Z", "duration": {"value": 30, "unit": "min"}}})
        self.assertEqual(r["time"].isoformat(), "2026-01-01T00:30:00+00:00")
        self.assertEqual(r["end_time"].isoformat(), "2026-01-01T01:00:00+00:00")
        # Whole months are calendar months in the end's own offset (time.AddDate): 31 March - 1 month = 3 March.
        r = self.frame({"time_interval": {"end_date_time": "2026-03-31T23:00:00-05:00", "duration": {"value": 1, "unit": "Mo"}}})
        self.assertEqual(r["time"].isoformat(), "2026-03-04T04:00:00+00:00")

    def test_invalid_member_beside_a_valid_one(self):
        r = self.frame({"time_interval": {"start_date_time": "2026-01-01T00:00:00Z", "end_date_time": "2026-01-01T00:10:00Z"},
                        "date_time": "not a time"})
        self.assertEqual(r["time"].isoformat(), "2026-01-01T00:00:00+00:00")
        r = self.frame({"time_interval": {"end_date_time": "2026-01-01T00:10:00Z", "duration": {"value": 10, "unit": "min"},
                                          "start_date_time": "yesterday"}})
        self.assertEqual(r["time"].isoformat(), "2026-01-01T00:00:00+00:00")

    def test_leap_second_and_nanoseconds(self):
        r = self.frame({"date_time": "2016-12-31T23:59:60Z"}, "heart-rate", "2.0")
        self.assertEqual(r["time"].isoformat(), "2017-01-01T00:00:00+00:00")
        r = self.frame({"date_time": "2026-01-01T00:00:00.123456789Z"}, "heart-rate", "2.0")
        self.assertEqual(r["time"].value % 10 ** 9, 123456789)

    def test_times_module(self):
        self.assertEqual(times.instant("2026-06-01T00:05:00-04:00"), 1780286700 * 10 ** 9)
        self.assertEqual(times.instant("9999-12-31T23:59:59Z"), 253402300799 * 10 ** 9)  # beyond pandas
        for bad in ("2026-02-29T00:00:00Z", "2026-01-01 00:00:00Z", "2026-01-01T00:00:00", "2016-12-31T23:58:60Z",
                    "2026-01-01T00:00:00.Z", "２０２６-01-01T00:00:00Z", None, 5):
            self.assertIsNone(times.instant(bad), bad)


class TestDecryptorLastLine(unittest.TestCase):
    def test_trailer_held_back_until_exit(self):
        with tempfile.TemporaryDirectory() as d:
            ident = os.path.join(d, "id.agekey")
            with open(ident, "w") as f:
                f.write("AGE-SECRET-KEY-1QQQQ\n")
            script = os.path.join(d, "fake-vault")
            with open(script, "w") as f:
                f.write("#!/bin/sh\nprintf 'manifest\\ndata\\ntrailer\\n'\necho 'age: error: chunk tampered' >&2\nexit 3\n")
            os.chmod(script, 0o700)
            dec = Decryptor(ident, "vault", vault_bin=script)
            got = []
            with self.assertRaisesRegex(jhvault.DecryptionError, "chunk tampered"):
                with dec.lines(os.path.join(d, "export.age")) as lines:
                    for line in lines:
                        got.append(line)
            self.assertEqual(got, [b"manifest\n", b"data\n"])  # never the last line
            with open(script, "w") as f:
                f.write("#!/bin/sh\nprintf 'manifest\\ndata\\ntrailer\\n'\n")
            with dec.lines(os.path.join(d, "export.age")) as lines:
                self.assertEqual(list(lines), [b"manifest\n", b"data\n", b"trailer\n"])


class TestIdentityFromEnvironment(unittest.TestCase):
    KEY = "AGE-SECRET-KEY-1QYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSZXYZ"

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        self.dir = os.path.join(self.tmp.name, "state")
        fv = helpers.FakeVault()
        self.log_key = fv.vkey
        env = {k: v for k, v in os.environ.items() if k != "VAULT_IDENTITY"}
        env["VAULT_IDENTITY_KEY"] = self.KEY
        p = mock.patch.dict(os.environ, env, clear=True)
        p.start()
        self.addCleanup(p.stop)

    def client(self, **kw):
        return jhvault.Client("http://127.0.0.1:1", "vc_x", log_key=self.log_key, state_dir=self.dir, **kw)

    def path(self):
        return os.path.join(self.dir, f"identity-{hashlib.sha256(self.KEY.encode()).hexdigest()[:8]}.agekey")

    def test_written_once_and_reused(self):
        c = self.client()
        self.assertEqual(c.identity, self.path())
        st = os.lstat(c.identity)
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
        self.assertEqual(st.st_uid, os.geteuid())
        with open(c.identity) as f:
            self.assertEqual(f.read(), self.KEY + "\n")
        c2 = self.client()
        self.assertEqual(c2.identity, c.identity)
        self.assertEqual(os.lstat(c.identity).st_ino, st.st_ino)  # reused, not rewritten
        # An identity path given explicitly, or in VAULT_IDENTITY, wins.
        self.assertEqual(self.client(identity="/given").identity, "/given")
        with mock.patch.dict(os.environ, {"VAULT_IDENTITY": "/from-env"}):
            self.assertEqual(self.client().identity, "/from-env")

    def test_refuses_a_symlink(self):
        os.makedirs(self.dir, mode=0o700)
        target = os.path.join(self.tmp.name, "passwd")
        with open(target, "w") as f:
            f.write("root:x:0:0\n")
        os.symlink(target, self.path())
        with self.assertRaisesRegex(jhvault.ConfigError, "symbolic link"):
            self.client()
        with open(target) as f:
            self.assertEqual(f.read(), "root:x:0:0\n")
        os.unlink(self.path())
        os.symlink(os.path.join(self.tmp.name, "dangling"), self.path())
        with self.assertRaisesRegex(jhvault.ConfigError, "symbolic link"):
            self.client()
        self.assertFalse(os.path.exists(os.path.join(self.tmp.name, "dangling")))

    def test_refuses_another_users_or_another_key(self):
        self.client()
        with mock.patch.object(client_mod, "_euid", return_value=os.geteuid() + 1):
            with self.assertRaisesRegex(jhvault.ConfigError, "belongs to user id"):
                self.client()
        with open(self.path(), "w") as f:
            f.write("AGE-SECRET-KEY-1SOMETHINGELSE\n")
        with self.assertRaisesRegex(jhvault.ConfigError, "holds another identity"):
            self.client()
        os.chmod(self.path(), 0o644)
        os.unlink(self.path())
        c = self.client()  # written again
        self.assertEqual(stat.S_IMODE(os.stat(c.identity).st_mode), 0o600)

    def test_not_an_identity(self):
        with mock.patch.dict(os.environ, {"VAULT_IDENTITY_KEY": "age1notasecret"}):
            with self.assertRaisesRegex(jhvault.ConfigError, "VAULT_IDENTITY_KEY"):
                self.client()

    def test_decrypts_with_the_written_file(self):
        """The age CLI opens exports with the identity written from the environment."""
        out = subprocess.run(["age-keygen"], capture_output=True, text=True, check=True).stdout
        secret = next(l for l in out.splitlines() if l.startswith("AGE-SECRET-KEY-"))
        public = next(l for l in out.splitlines() if l.startswith("# public key: ")).split(": ", 1)[1]
        with mock.patch.dict(os.environ, {"VAULT_IDENTITY_KEY": secret}):
            c = self.client(decryptor="age")
        self.assertEqual(c.recipients(), {jhvault.fingerprint(public)})
        ct = os.path.join(self.tmp.name, "x.age")
        helpers.age_encrypt(b"one\ntwo\n", public, ct)
        with c.decryptor.lines(ct) as lines:
            self.assertEqual(list(lines), [b"one\n", b"two\n"])


if __name__ == "__main__":
    unittest.main()
