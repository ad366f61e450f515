"""Client.patients() against a loopback HTTP server answering canned grants: the data window several grants span."""

import http.server
import json
import tempfile
import threading
import unittest

import helpers  # first: it puts jhvault on sys.path

import pandas as pd

import jhvault
from jhvault.client import grants_span


def grant(gid, data_from=None, data_to=None, expires="2099-01-01T00:00:00Z", schemas=("omh:blood-glucose",)):
    g = {"id": gid, "schemas": list(schemas), "expires_at": expires, "purpose": "TREAT"}
    if data_from:
        g["data_from"] = data_from
    if data_to:
        g["data_to"] = data_to
    return g


# Each patient: her grants, and the (data_from, data_to) the row must show (None: open, NaT).
CASES = {
    "pt_open": ([grant("g1")], (None, None)),
    "pt_closed_and_open_end": ([grant("g2", "2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z"),
                                grant("g3", "2025-06-01T00:00:00Z")],
                               ("2025-06-01T00:00:00Z", None)),
    "pt_closed_and_open_start": ([grant("g4", "2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z"),
                                  grant("g5", None, "2025-12-01T00:00:00Z")],
                                 (None, "2026-02-01T00:00:00Z")),
    "pt_two_closed": ([grant("g6", "2026-03-01T00:00:00Z", "2026-04-01T00:00:00Z"),
                       grant("g7", "2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z")],
                      ("2026-01-01T00:00:00Z", "2026-04-01T00:00:00Z")),
    # As strings 03:00Z sorts after 00:00-05:00; as instants it is earlier.
    "pt_offsets": ([grant("g8", "2026-01-01T03:00:00Z", "2026-01-02T03:00:00Z"),
                    grant("g9", "2026-01-01T00:00:00-05:00", "2026-01-02T00:00:00-05:00")],
                   ("2026-01-01T03:00:00Z", "2026-01-02T05:00:00Z")),
}


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path != "/api/v1/clinician/patients" or self.headers.get("Authorization") != "Bearer vc_test":
            self.send_response(404)
            self.end_headers()
            return
        body = json.dumps([{"id": pid, "name": pid, "grants": gs} for pid, (gs, _) in CASES.items()]).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class PatientsWindow(unittest.TestCase):
    def setUp(self):
        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()
        self.addCleanup(self.srv.server_close)
        self.addCleanup(self.srv.shutdown)
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)

    def test_window_spans_every_grant(self):
        c = jhvault.Client(f"http://127.0.0.1:{self.srv.server_port}", "vc_test",
                           log_key=helpers.FakeVault().vkey, state_dir=self.tmp.name)
        df = c.patients().set_index("id")
        self.assertEqual(sorted(df.index), sorted(CASES))
        for pid, (_, (want_from, want_to)) in CASES.items():
            with self.subTest(patient=pid):
                for col, want in (("data_from", want_from), ("data_to", want_to)):
                    got = df.loc[pid, col]
                    if want is None:
                        self.assertTrue(pd.isna(got), f"{col} {got}, want open (NaT)")
                    else:
                        self.assertEqual(got, pd.Timestamp(want), col)

    def test_grants_span(self):
        self.assertEqual(grants_span([]), (None, None))
        self.assertEqual(grants_span([grant("a", "2026-01-01T00:00:00Z", "")]), ("2026-01-01T00:00:00Z", None))


if __name__ == "__main__":
    unittest.main()
