"""Verifying a decrypted export against the pinned log key.

``verify_lines`` takes the plaintext lines of an export (manifest, data
lines, trailer) and checks, in order, raising a VerificationError subclass
on the first failure:

1. the manifest's checkpoint is signed by the pinned key and names its log;
2. it is consistent with the checkpoint this client kept (a consistency
   proof fetched from the vault); a smaller or forked one is a rollback.
   On success the new checkpoint is kept;
3. every inclusion proof (the covering grants and the access-start) leads
   from the leaf hash the client computes from the entry bytes the manifest
   carries to the checkpoint's root, and those entries say what the
   manifest says: the access-start names this patient, clinician, recipient,
   format, schemas, window and grants; each grant is a grant from this
   patient to this clinician, with the id the manifest names, logged before
   the access, unexpired at it, and together they cover every schema;
4. the trailer is signed by the pinned key, its signed text matches its
   fields, and those match the manifest's SHA-256, the access-start index,
   the number of data lines and the SHA-256 of the data lines received.

Nothing is returned before all four pass.
"""

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass, field
from typing import Callable, Optional

import pandas as pd

from . import frames
from .checkpoint import Checkpoint, open_checkpoint
from .errors import (EntryMismatchError, ExportFormatError, InclusionProofError, ManifestError, RollbackError,
                     TrailerMismatchError, TrailerSignatureError)
from .note import open_note
from .schemas import covers
from .tlog import ProofError, check_record, check_tree, decode_hash, record_hash

TRAILER_TITLE = "jupyterhealth-vault export trailer v1"

_DO_NOT_USE = "Do not use this export; tell the vault's operator."


def trailer_text(access_start, manifest_sha256, records, sha256):
    """The statement an export's trailer signs."""
    return (f"{TRAILER_TITLE}\naccess_start {access_start}\nmanifest {manifest_sha256}\n"
            f"records {records}\nsha256 {sha256}\n")


@dataclass
class Expect:
    """What the client asked for, checked against the manifest (None skips a check)."""
    patient: Optional[str] = None
    clinician: Optional[str] = None
    format: Optional[str] = None
    schemas: Optional[list] = None
    recipients: Optional[set] = None  # fingerprints this client's identity can open
    access_start: Optional[int] = None  # the X-Vault-Access-Start header


@dataclass
class VerifiedExport:
    manifest: dict
    trailer: dict
    checkpoint: Checkpoint
    rows: list = field(repr=False, default_factory=list)
    lines: Optional[list] = field(repr=False, default=None)
    parse_error: Optional[str] = None

    @property
    def records(self):
        return self.trailer["records"]

    def summary(self):
        """What the client verified, for a DataFrame's attrs."""
        m = self.manifest
        return {
            "patient": m["patient"], "clinician": m["clinician"], "format": m["format"],
            "filters": m.get("filters", {}), "windows": m.get("windows", {}),
            "grants": [dict(g) for g in m["grants"]], "access_start": m["access_start"],
            "recipient": m["recipient"], "records": self.trailer["records"], "sha256": self.trailer["sha256"],
            "checkpoint_origin": self.checkpoint.origin, "checkpoint_size": self.checkpoint.size,
            "checkpoint_root": base64.b64encode(self.checkpoint.root).decode(),
            "verified": True,
        }

    def to_frame(self):
        if self.parse_error:
            raise ExportFormatError(self.parse_error)
        df = frames.to_frame(self.rows)
        df.attrs.update(self.summary())
        return df


def _b64(s, what):
    try:
        return base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError, TypeError):
        raise ManifestError(f"the manifest's {what} is not base64. {_DO_NOT_USE}")


def check_consistency(kept, new, fetch_proof):
    """Check that checkpoint ``new`` extends ``kept``; return True if ``new`` should be kept.

    fetch_proof(m, n) returns the vault's consistency proof JSON for sizes m <= n.
    """
    if kept is None:
        return True
    if new.size < kept.size:
        raise RollbackError(
            f"the vault's log is at size {new.size}, older than the size {kept.size} this client saw before "
            "(its kept checkpoint): the vault's database was rolled back, or this is an old export replayed. "
            "Entries the patient may rely on (a revoke, an earlier access) could be missing. " + _DO_NOT_USE)
    if new.size == kept.size:
        if new.root != kept.root:
            raise RollbackError(
                f"the vault's log has two different roots at size {new.size}: it was forked or rewritten. " + _DO_NOT_USE)
        return False
    if kept.size == 0:
        return True
    if fetch_proof is None:
        raise RollbackError("cannot check this checkpoint against the kept one: no way to fetch a consistency proof")
    p = fetch_proof(kept.size, new.size)
    try:
        if not isinstance(p, dict) or p.get("kind") != "consistency" or p.get("from") != kept.size or p.get("size") != new.size:
            raise ProofError("the vault answered a proof for other sizes")
        if decode_hash(p.get("from_hash"), "from_hash") != kept.root or decode_hash(p.get("root_hash"), "root_hash") != new.root:
            raise ProofError("the proof's roots are not the two checkpoints' roots")
        proof = [decode_hash(h, "proof hash") for h in p.get("proof") or []]
        check_tree(proof, new.size, new.root, kept.size, kept.root)
    except ProofError as e:
        raise RollbackError(
            f"the vault's log at size {new.size} does not extend the checkpoint this client kept at size "
            f"{kept.size} ({e}): the log was rewritten, forked or rolled back. " + _DO_NOT_USE) from e
    return True


def _check_inclusion(m, cp):
    """Step 3: inclusion proofs and the entries' contents. Returns the parsed entries by index."""
    proofs, entries = m.get("proofs"), m.get("entries")
    if not isinstance(proofs, dict):
        raise ManifestError(f"the manifest carries no inclusion proofs. {_DO_NOT_USE}")
    if not isinstance(entries, dict):
        raise ManifestError("the manifest carries no ledger entries, so the client cannot check what the proofs "
                            "prove; the vault is older than this client. Upgrade the vault, or tell its operator")
    grants = m.get("grants")
    start = m.get("access_start")
    if not isinstance(grants, list) or not grants or not isinstance(start, int) or isinstance(start, bool):
        raise ManifestError(f"the manifest names no grants or no access-start entry. {_DO_NOT_USE}")
    need = [start]
    for g in grants:
        if not isinstance(g, dict) or not isinstance(g.get("id"), str) or not isinstance(g.get("index"), int):
            raise ManifestError(f"the manifest's grant list is malformed. {_DO_NOT_USE}")
        need.append(g["index"])
    parsed = {}
    for idx in sorted(set(need) | {int(k) for k in proofs if str(k).isdigit()}):
        key = str(idx)
        if key not in proofs or key not in entries:
            raise InclusionProofError(f"the manifest has no inclusion proof or entry for ledger index {idx}. {_DO_NOT_USE}")
        p = proofs[key]
        entry = _b64(entries[key], f"entry {idx}")
        leaf = record_hash(entry)
        try:
            if not isinstance(p, dict) or p.get("kind") != "inclusion" or p.get("index") != idx:
                raise ProofError("it is not an inclusion proof for this index")
            if p.get("size") != cp.size or decode_hash(p.get("root_hash"), "root_hash") != cp.root:
                raise ProofError("it is for another tree than the checkpoint's")
            if p.get("leaf_hash") is not None and decode_hash(p["leaf_hash"], "leaf_hash") != leaf:
                raise ProofError("its leaf hash is not the hash of the entry the manifest carries")
            check_record([decode_hash(h, "proof hash") for h in p.get("proof") or []], cp.size, cp.root, idx, leaf)
        except ProofError as e:
            raise InclusionProofError(
                f"the inclusion proof for ledger entry {idx} does not verify against the signed checkpoint ({e}): "
                "the vault cannot show that this grant or access is in its log. " + _DO_NOT_USE) from e
        try:
            parsed[idx] = json.loads(entry)
            if not isinstance(parsed[idx], dict):
                raise ValueError
        except ValueError:
            raise EntryMismatchError(f"ledger entry {idx} in the manifest is not JSON. {_DO_NOT_USE}")
    return parsed


def _time(s):
    """An RFC 3339 time as a UTC Timestamp, or None."""
    if not isinstance(s, str) or not s:
        return None
    try:
        t = pd.Timestamp(s)
    except (ValueError, TypeError):
        return None
    if t is pd.NaT or t.tzinfo is None:
        return None
    return t.tz_convert("UTC")


def _check_entries(m, parsed):
    patient, clinician, start = m.get("patient"), m.get("clinician"), m["access_start"]
    filters = m.get("filters") or {}

    def bad(msg):
        raise EntryMismatchError(msg + " The manifest does not match the vault's own log. " + _DO_NOT_USE)

    a = parsed[start]
    acc = a.get("access") or {}
    if a.get("kind") != "access-start":
        bad(f"ledger entry {start}, which the manifest calls the access-start, is a {a.get('kind')!r} entry.")
    if a.get("patient") != patient or a.get("clinician") != clinician:
        bad(f"the access-start entry {start} names patient {a.get('patient')} and clinician {a.get('clinician')}, "
            f"not {patient} and {clinician}.")
    if acc.get("recipient") != m.get("recipient"):
        bad(f"the access-start entry {start} logs recipient {acc.get('recipient')}, not {m.get('recipient')}.")
    if acc.get("format") != m.get("format"):
        bad(f"the access-start entry {start} logs format {acc.get('format')!r}, not {m.get('format')!r}.")
    if sorted(acc.get("schemas") or []) != sorted(filters.get("schemas") or []):
        bad(f"the access-start entry {start} logs schemas {acc.get('schemas')}, not {filters.get('schemas')}.")
    if (acc.get("from") or "") != (filters.get("from") or "") or (acc.get("to") or "") != (filters.get("to") or ""):
        bad(f"the access-start entry {start} logs another window than the manifest's filters.")
    ids = [g["id"] for g in m["grants"]]
    if sorted(acc.get("grants") or []) != sorted(ids):
        bad(f"the access-start entry {start} lists grants {acc.get('grants')}, not {ids}.")
    at = _time(a.get("time"))
    if at is None:
        bad(f"the access-start entry {start} has no valid time.")
    grant_schemas = []
    for g in m["grants"]:
        e = parsed[g["index"]]
        body = e.get("grant") or {}
        if e.get("kind") != "grant" or body.get("id") != g["id"]:
            bad(f"ledger entry {g['index']} is not grant {g['id']}.")
        if e.get("patient") != patient or e.get("clinician") != clinician:
            bad(f"grant {g['id']} (entry {g['index']}) is from {e.get('patient')} to {e.get('clinician')}, "
                f"not from {patient} to {clinician}.")
        if g["index"] >= start:
            bad(f"grant {g['id']} (entry {g['index']}) was logged after the access-start ({start}).")
        expires = _time(body.get("expires_at"))
        if expires is None:
            bad(f"grant {g['id']} has no valid expiry.")
        if not at < expires:
            bad(f"grant {g['id']} had expired ({body.get('expires_at')}) when the access began ({a.get('time')}).")
        grant_schemas += body.get("schemas") or []
    for s in filters.get("schemas") or []:
        if not any(covers(gs, s) for gs in grant_schemas):
            bad(f"no listed grant covers {s}.")


def _check_expect(m, expect):
    if expect is None:
        return
    for name in ("patient", "clinician", "format"):
        want = getattr(expect, name)
        if want is not None and m.get(name) != want:
            raise ManifestError(f"the export is for {name} {m.get(name)!r}, not the {want!r} you asked for. {_DO_NOT_USE}")
    if expect.schemas is not None and sorted(set(expect.schemas)) != sorted(set((m.get("filters") or {}).get("schemas") or [])):
        raise ManifestError(f"the export covers schemas {(m.get('filters') or {}).get('schemas')}, not the "
                            f"{expect.schemas} you asked for. {_DO_NOT_USE}")
    if expect.recipients and m.get("recipient") not in expect.recipients:
        raise ManifestError(f"the export says it was encrypted to {m.get('recipient')}, not to this hub's key. {_DO_NOT_USE}")
    if expect.access_start is not None and m.get("access_start") != expect.access_start:
        raise ManifestError(f"the export's access-start index {m.get('access_start')} is not the "
                            f"{expect.access_start} the vault announced. {_DO_NOT_USE}")


def verify_lines(lines, *, verifier, state=None, fetch_proof: Optional[Callable] = None, expect: Optional[Expect] = None,
                 keep_lines=False, parse=True):
    """Verify an export's plaintext lines (bytes, each with its newline); return a VerifiedExport.

    state is a jhvault.state.State (or None to skip the kept-checkpoint
    check, which only tests should do); fetch_proof(m, n) fetches a
    consistency proof from the vault.
    """
    it = iter(lines)
    try:
        first = next(it)
    except StopIteration:
        raise ManifestError(f"the export is empty. {_DO_NOT_USE}")
    if not first.endswith(b"\n"):
        raise ManifestError(f"the export holds one line only: no data and no trailer. It was cut short. {_DO_NOT_USE}")
    try:
        m = json.loads(first)
    except ValueError:
        raise ManifestError(f"the export's first line is not a JSON manifest. {_DO_NOT_USE}")
    if not isinstance(m, dict) or m.get("manifest") != 1:
        raise ManifestError("the export's first line is not a version 1 manifest; this client may be too old")
    _check_expect(m, expect)
    fmt = m.get("format")
    if fmt not in ("omh", "fhir", "csv"):
        raise ManifestError(f"the export's format {fmt!r} is not one this client reads; upgrade it")

    # 1. The checkpoint, with the pinned key.
    cp = open_checkpoint(m.get("checkpoint") or "", verifier)
    # 2. Consistency with the kept checkpoint.
    if state is not None:
        with state.lock():
            if check_consistency(state.load(verifier), cp, fetch_proof):
                state.store(verifier, cp)
    # 3. Inclusion proofs and the entries.
    parsed = _check_inclusion(m, cp)
    _check_entries(m, parsed)

    # 4. The data lines and the trailer (the last line).
    manifest_sha = hashlib.sha256(first).hexdigest()
    h = hashlib.sha256()
    n = 0
    rows, kept, parse_error = [], ([] if keep_lines else None), None
    row = {"omh": frames.omh_row, "fhir": frames.fhir_row, "csv": frames.csv_row}[fmt]
    prev = next(it, None)
    if prev is None:
        raise TrailerMismatchError(f"the export ends after its manifest: no trailer. It was cut short. {_DO_NOT_USE}")
    for line in it:
        # prev is a data line: something follows it.
        h.update(prev)
        if keep_lines:
            kept.append(prev)
        if parse and parse_error is None:
            try:
                s = prev.decode("utf-8")
                if fmt == "csv" and n == 0:
                    frames.check_csv_header(s)
                else:
                    rows.append(row(s))
            except Exception as e:  # reported only once the trailer verifies
                parse_error = f"data line {n + 1} of the export cannot be read: {e}"
        n += 1
        prev = line
    trailer_line = prev
    if not trailer_line.endswith(b"\n"):
        raise TrailerMismatchError(f"the export's last line is incomplete: it was cut short. {_DO_NOT_USE}")
    try:
        t = json.loads(trailer_line)
        if not isinstance(t, dict) or t.get("trailer") != 1:
            raise ValueError
    except ValueError:
        raise TrailerMismatchError(f"the export's last line is not its trailer: it was cut short or altered. {_DO_NOT_USE}")
    sig = t.get("signature")
    if not isinstance(sig, str) or not sig:
        raise TrailerSignatureError("the export's trailer is unsigned: anyone can encrypt to the hub's key, and this "
                                    "export was not made by the vault you pinned. " + _DO_NOT_USE)
    text = open_note(sig, verifier, error=TrailerSignatureError, what="export's trailer")
    fields = (t.get("access_start"), t.get("manifest_sha256"), t.get("records"), t.get("sha256"))
    if text != trailer_text(*fields):
        raise TrailerMismatchError(f"the trailer's signed statement does not match its fields. {_DO_NOT_USE}")
    if t.get("access_start") != m["access_start"]:
        raise TrailerMismatchError(f"the trailer was signed for access {t.get('access_start')}, not this export's "
                                   f"{m['access_start']}: it was taken from another export. {_DO_NOT_USE}")
    if t.get("manifest_sha256") != manifest_sha:
        raise TrailerMismatchError(f"the manifest is not the one the vault signed: it was altered. {_DO_NOT_USE}")
    data_records = n - 1 if fmt == "csv" else n
    if fmt == "csv" and n == 0:
        raise TrailerMismatchError(f"the csv export has no header row. {_DO_NOT_USE}")
    if t.get("records") != data_records:
        raise TrailerMismatchError(f"the export holds {data_records} records, but the vault signed for "
                                   f"{t.get('records')}: records were dropped or added. {_DO_NOT_USE}")
    if t.get("sha256") != h.hexdigest():
        raise TrailerMismatchError(f"the data's SHA-256 is not the one the vault signed: the data was altered. {_DO_NOT_USE}")
    return VerifiedExport(manifest=m, trailer=t, checkpoint=cp, rows=rows, lines=kept, parse_error=parse_error)


def verify_bytes(payload, **kw):
    """verify_lines over a whole plaintext payload held in memory."""
    return verify_lines(split_lines(payload), **kw)


def split_lines(payload):
    """Split bytes after each newline (only b"\\n": a CR is data)."""
    out, start = [], 0
    while start < len(payload):
        end = payload.find(b"\n", start)
        end = len(payload) if end < 0 else end + 1
        out.append(payload[start:end])
        start = end
    return out
