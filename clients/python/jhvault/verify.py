"""Verifying a decrypted export against the pinned log key.

``verify_lines`` takes the plaintext lines of an export (manifest, data
lines, trailer) and checks, in order, raising a VerificationError subclass
on the first failure:

1. the manifest's checkpoint is signed by the pinned key and names its log;
2. it is consistent with the checkpoint this client kept (a consistency
   proof fetched from the vault). For a live export it must be at least as
   new as the kept one: a smaller one is a rollback (a vault restored from
   an old backup), and a forked one a fork. On success the new checkpoint is
   kept. An export verified later (``allow_stale``) may carry an older
   checkpoint, if the vault proves it a prefix of the kept one: it is then
   accepted as stale and not kept;
3. every inclusion proof (the covering grants and the access-start) leads
   from the leaf hash the client computes from the entry bytes the manifest
   carries to the checkpoint's root, and those entries say what the
   manifest says: the access-start names this patient, clinician, recipient,
   format, schemas, window and grants; each grant is a grant from this
   patient to this clinician, with the id the manifest names, logged before
   the access, unexpired at it, pinned to no recipients or to this one, and
   together they cover every schema, and the manifest's windows, which lie
   inside the window the access-start logs;
4. the trailer is signed by the pinned key, its signed text matches its
   fields, and those match the manifest's SHA-256, the access-start index,
   the number of data lines and the SHA-256 of the data lines received;
   then every data line's schema and time fall inside the manifest's
   windows for that schema.

Nothing is returned before all four pass. Any other failure while reading
the untrusted payload (a value of a type no vault writes, say) is a
MalformedExportError: only VerificationError subclasses, VaultError and
ConfigError leave ``verify_lines``.
"""

import base64
import binascii
import hashlib
import json
import warnings
from dataclasses import dataclass, field
from typing import Callable, Optional

from . import frames, times
from .checkpoint import Checkpoint, open_checkpoint
from .errors import (ConfigError, DataWindowError, EntryMismatchError, ExportFormatError, ForkError, InclusionProofError,
                     MalformedExportError, ManifestError, RollbackError, StaleExportWarning, TrailerMismatchError,
                     TrailerSignatureError, VaultError, VerificationError)
from .note import open_note
from .schemas import covers
from .tlog import ProofError, check_record, check_tree, decode_hash, record_hash

TRAILER_TITLE = "jupyterhealth-vault export trailer v1"

_DO_NOT_USE = "Do not use this export; tell the vault's operator."

# check_consistency's answers.
NEWER, SAME, OLDER = "newer", "same", "older"


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
    # True when the export's checkpoint is older than the one this client
    # kept (an export verified some time after it was made): it was proved
    # a prefix of the kept one, so the export was in the vault's log, but
    # grants may have been revoked since. kept_size is the kept checkpoint's size.
    stale: bool = False
    kept_size: Optional[int] = None

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
            "verified": True, "stale": self.stale,
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


def _is_index(x):
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


def _check_proof(fetch_proof, old, new):
    """Check the vault's consistency proof that checkpoint old is a prefix of checkpoint new (ProofError if not)."""
    p = fetch_proof(old.size, new.size)
    if not isinstance(p, dict) or p.get("kind") != "consistency" or p.get("from") != old.size or p.get("size") != new.size:
        raise ProofError("the vault answered a proof for other sizes")
    if decode_hash(p.get("from_hash"), "from_hash") != old.root or decode_hash(p.get("root_hash"), "root_hash") != new.root:
        raise ProofError("the proof's roots are not the two checkpoints' roots")
    hashes = p.get("proof") or []
    if not isinstance(hashes, list):
        raise ProofError("the proof's hashes are not a list")
    check_tree([decode_hash(h, "proof hash") for h in hashes], new.size, new.root, old.size, old.root)


def check_consistency(kept, new, fetch_proof, allow_older=False):
    """Check checkpoint ``new`` against the ``kept`` one; return NEWER (keep it), SAME or OLDER.

    fetch_proof(m, n) returns the vault's consistency proof JSON for sizes
    m <= n. A smaller ``new`` raises RollbackError unless ``allow_older``,
    and then only if the vault proves it a prefix of ``kept`` (OLDER: verify
    the export, but do not keep its checkpoint). Two roots at one size, or a
    proof that does not connect the two, raise ForkError (a RollbackError).
    """
    if kept is None:
        return NEWER
    if new.size == kept.size:
        if new.root != kept.root:
            raise ForkError(
                f"the vault's log has two different roots at size {new.size}: it was forked or rewritten. " + _DO_NOT_USE)
        return SAME
    if new.size > kept.size:
        if kept.size == 0:
            return NEWER  # the empty tree is a prefix of every tree
        if fetch_proof is None:
            raise RollbackError("cannot check this checkpoint against the kept one: no way to fetch a consistency proof")
        try:
            _check_proof(fetch_proof, kept, new)
        except ProofError as e:
            raise ForkError(
                f"the vault's log at size {new.size} does not extend the checkpoint this client kept at size "
                f"{kept.size} ({e}): the log was rewritten, forked or rolled back. " + _DO_NOT_USE) from e
        return NEWER
    # new is older than kept.
    if not allow_older:
        rolled_back = RollbackError(
            f"the vault's log is at size {new.size}, older than the size {kept.size} this client saw before "
            "(its kept checkpoint): the vault's database was rolled back (restored from an old backup, say), or an "
            "old export is being replayed as a new one. Entries the patient may rely on (a revoke, an earlier "
            "access) could be missing. " + _DO_NOT_USE)
        if fetch_proof is None or new.size == 0:
            raise rolled_back
        # Refused either way; the proof only tells a rollback from a fork.
        try:
            _check_proof(fetch_proof, new, kept)
        except ProofError as e:
            raise ForkError(
                f"the vault's log at size {new.size} is older than the checkpoint this client kept at size "
                f"{kept.size}, and not a prefix of it ({e}): the log was forked or rewritten, and rolled back. "
                + _DO_NOT_USE) from e
        except VaultError:
            pass  # a rolled-back vault cannot prove entries it lost
        raise rolled_back
    if new.size == 0:
        return OLDER
    if fetch_proof is None:
        raise RollbackError("cannot check this older checkpoint against the kept one: no way to fetch a consistency proof")
    try:
        _check_proof(fetch_proof, new, kept)
    except ProofError as e:
        raise ForkError(
            f"this export's checkpoint at size {new.size} is older than the one this client kept at size "
            f"{kept.size}, and not a prefix of it ({e}): the vault's log was forked or rewritten after this "
            "export was made, or the export comes from a fork. " + _DO_NOT_USE) from e
    return OLDER


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
    if not isinstance(grants, list) or not grants or not _is_index(start):
        raise ManifestError(f"the manifest names no grants or no access-start entry. {_DO_NOT_USE}")
    need = [start]
    for g in grants:
        if not isinstance(g, dict) or not isinstance(g.get("id"), str) or not _is_index(g.get("index")):
            raise ManifestError(f"the manifest's grant list is malformed. {_DO_NOT_USE}")
        need.append(g["index"])
    parsed = {}
    for idx in sorted(set(need) | {int(k) for k in proofs if isinstance(k, str) and k.isascii() and k.isdigit()}):
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
            hashes = p.get("proof") or []
            if not isinstance(hashes, list):
                raise ProofError("its hashes are not a list")
            check_record([decode_hash(h, "proof hash") for h in hashes], cp.size, cp.root, idx, leaf)
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
    """An RFC 3339 time as integer nanoseconds since the epoch, or None."""
    return times.instant(s)


def _covered(lo, hi, spans):
    """Whether [lo, hi) lies inside the union of the half-open spans (None is open)."""
    ninf, inf = float("-inf"), float("inf")
    cur = ninf if lo is None else lo
    end = inf if hi is None else hi
    for a, b in sorted(((ninf if a is None else a), (inf if b is None else b)) for a, b in spans):
        if cur >= end:
            break
        if a > cur:
            return False
        cur = max(cur, b)
    return cur >= end


def _check_entries(m, parsed):
    """Step 3, the entries' contents. Returns the manifest's windows: {schema: [(from_ns, to_ns)]}, None open."""
    patient, clinician, start = m.get("patient"), m.get("clinician"), m["access_start"]
    recipient = m.get("recipient")
    filters = m.get("filters") or {}
    if not isinstance(filters, dict):
        raise ManifestError(f"the manifest's filters are malformed. {_DO_NOT_USE}")
    schemas = filters.get("schemas") or []
    if not isinstance(schemas, list) or not all(isinstance(s, str) for s in schemas):
        raise ManifestError(f"the manifest's schemas are malformed. {_DO_NOT_USE}")

    def bad(msg):
        raise EntryMismatchError(msg + " The manifest does not match the vault's own log. " + _DO_NOT_USE)

    def as_dict(x):
        return x if isinstance(x, dict) else {}

    a = parsed[start]
    acc = as_dict(a.get("access"))
    if a.get("kind") != "access-start":
        bad(f"ledger entry {start}, which the manifest calls the access-start, is a {a.get('kind')!r} entry.")
    if a.get("patient") != patient or a.get("clinician") != clinician:
        bad(f"the access-start entry {start} names patient {a.get('patient')} and clinician {a.get('clinician')}, "
            f"not {patient} and {clinician}.")
    if acc.get("recipient") != recipient:
        bad(f"the access-start entry {start} logs recipient {acc.get('recipient')}, not {recipient}.")
    if acc.get("format") != m.get("format"):
        bad(f"the access-start entry {start} logs format {acc.get('format')!r}, not {m.get('format')!r}.")
    logged = acc.get("schemas") or []
    if not isinstance(logged, list) or not all(isinstance(s, str) for s in logged) or sorted(logged) != sorted(schemas):
        bad(f"the access-start entry {start} logs schemas {acc.get('schemas')}, not {schemas}.")
    if (acc.get("from") or "") != (filters.get("from") or "") or (acc.get("to") or "") != (filters.get("to") or ""):
        bad(f"the access-start entry {start} logs another window than the manifest's filters.")
    req_lo, req_hi = _time(acc.get("from")), _time(acc.get("to"))
    if (acc.get("from") and req_lo is None) or (acc.get("to") and req_hi is None):
        bad(f"the access-start entry {start} logs a window that is not RFC 3339.")
    ids = [g["id"] for g in m["grants"]]
    logged = acc.get("grants") or []
    if not isinstance(logged, list) or not all(isinstance(g, str) for g in logged) or sorted(logged) != sorted(ids):
        bad(f"the access-start entry {start} lists grants {acc.get('grants')}, not {ids}.")
    at = _time(a.get("time"))
    if at is None:
        bad(f"the access-start entry {start} has no valid time.")

    # Each grant: the right one, unexpired at the access, pinned to this
    # recipient if to any; its schemas and data window.
    spans = []  # (schemas, data_from, data_to) per grant
    for g in m["grants"]:
        e = parsed[g["index"]]
        body = as_dict(e.get("grant"))
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
        pinned = body.get("recipients")
        if pinned is not None and not isinstance(pinned, list):
            bad(f"grant {g['id']} pins its recipients in an unknown form.")
        if pinned and recipient not in pinned:
            bad(f"grant {g['id']} covers only exports to {', '.join(map(str, pinned))}, but this export is to "
                f"{recipient}.")
        gs = body.get("schemas") or []
        if not isinstance(gs, list):
            bad(f"grant {g['id']} lists its schemas in an unknown form.")
        lo, hi = _time(body.get("data_from")), _time(body.get("data_to"))
        if (body.get("data_from") and lo is None) or (body.get("data_to") and hi is None):
            bad(f"grant {g['id']} has a data window that is not RFC 3339.")
        spans.append(([s for s in gs if isinstance(s, str)], lo, hi))
    for s in schemas:
        if not any(covers(gs, s) for ss, _, _ in spans for gs in ss):
            bad(f"no listed grant covers {s}.")

    # The windows: for each schema asked for, inside the logged request
    # window and covered by the data windows of the grants that cover it.
    wins = m.get("windows")
    if not isinstance(wins, dict):
        raise ManifestError(f"the manifest has no windows. {_DO_NOT_USE}")
    out = {}
    for s, ws in wins.items():
        if s not in schemas:
            bad(f"the manifest has windows for {s}, which the access did not ask for.")
        if not isinstance(ws, list) or not ws:
            raise ManifestError(f"the manifest's windows for {s} are malformed. {_DO_NOT_USE}")
        grant_spans = [(lo, hi) for ss, lo, hi in spans if any(covers(gs, s) for gs in ss)]
        parsed_ws = []
        for w in ws:
            if not isinstance(w, dict):
                raise ManifestError(f"the manifest's windows for {s} are malformed. {_DO_NOT_USE}")
            lo, hi = _time(w.get("from")), _time(w.get("to"))
            if ("from" in w and lo is None) or ("to" in w and hi is None) or (lo is not None and hi is not None and lo >= hi):
                raise ManifestError(f"the manifest's window {w} for {s} is malformed. {_DO_NOT_USE}")
            if not _covered(lo, hi, [(req_lo, req_hi)]):
                bad(f"the manifest's window {w} for {s} reaches outside the window the access-start logs "
                    f"({acc.get('from') or 'open'} to {acc.get('to') or 'open'}).")
            if not _covered(lo, hi, grant_spans):
                bad(f"the manifest's window {w} for {s} is not covered by the data windows of the grants that "
                    "cover that schema.")
            parsed_ws.append((lo, hi))
        out[s] = parsed_ws
    for s in schemas:
        if s not in out:
            bad(f"the manifest has no window for {s}.")
    return out


def _check_expect(m, expect):
    if expect is None:
        return
    for name in ("patient", "clinician", "format"):
        want = getattr(expect, name)
        if want is not None and m.get(name) != want:
            raise ManifestError(f"the export is for {name} {m.get(name)!r}, not the {want!r} you asked for. {_DO_NOT_USE}")
    got = (m.get("filters") or {}).get("schemas") or []
    if expect.schemas is not None and (not isinstance(got, list) or not all(isinstance(s, str) for s in got)
                                       or sorted(set(expect.schemas)) != sorted(set(got))):
        raise ManifestError(f"the export covers schemas {got}, not the {expect.schemas} you asked for. {_DO_NOT_USE}")
    if expect.recipients and m.get("recipient") not in expect.recipients:
        raise ManifestError(f"the export says it was encrypted to {m.get('recipient')}, not to this hub's key. {_DO_NOT_USE}")
    if expect.access_start is not None and m.get("access_start") != expect.access_start:
        raise ManifestError(f"the export's access-start index {m.get('access_start')} is not the "
                            f"{expect.access_start} the vault announced. {_DO_NOT_USE}")


def _in_windows(row, windows):
    """None if a parsed row's schema and time lie in the manifest's windows, else why not."""
    schema, t = row[3], times.instant(row[0])
    ws = windows.get(schema) if isinstance(schema, str) else None
    if ws is None:
        return f"its schema {schema!r} is not one the export covers"
    if not any((lo is None or lo <= t) and (hi is None or t < hi) for lo, hi in ws):
        return f"its time {row[0]} is outside the export's windows for {schema}"
    return None


def verify_lines(lines, *, verifier, state=None, fetch_proof: Optional[Callable] = None, expect: Optional[Expect] = None,
                 keep_lines=False, parse=True, allow_stale=False):
    """Verify an export's plaintext lines (bytes, each with its newline); return a VerifiedExport.

    state is a jhvault.state.State (or None to skip the kept-checkpoint
    check, which only tests should do); fetch_proof(m, n) fetches a
    consistency proof from the vault. allow_stale accepts a checkpoint older
    than the kept one when the vault proves it a prefix (for an export
    verified after it was made; never for a live one): the result is marked
    ``stale``, a StaleExportWarning is issued, and nothing is kept. With
    parse=False the data lines are hashed and counted but not read, so
    their schemas and times are not checked against the windows.
    """
    try:
        return _verify_lines(lines, verifier=verifier, state=state, fetch_proof=fetch_proof, expect=expect,
                             keep_lines=keep_lines, parse=parse, allow_stale=allow_stale)
    except (VerificationError, VaultError, ConfigError, MemoryError):
        raise
    except Exception as e:
        raise MalformedExportError(
            f"malformed export: reading it failed ({type(e).__name__}: {e}). No vault writes such an export. "
            + _DO_NOT_USE) from e


def _verify_lines(lines, *, verifier, state, fetch_proof, expect, keep_lines, parse, allow_stale):
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
    signed = m.get("checkpoint")
    if not isinstance(signed, str) or not signed:
        raise ManifestError(f"the manifest carries no checkpoint. {_DO_NOT_USE}")
    cp = open_checkpoint(signed, verifier)
    # 2. Consistency with the kept checkpoint.
    stale, kept_size = False, None
    if state is not None:
        with state.lock():
            kept = state.load(verifier)
            verdict = check_consistency(kept, cp, fetch_proof, allow_older=allow_stale)
            if verdict == NEWER:
                state.store(verifier, cp)
            elif verdict == OLDER:
                stale, kept_size = True, kept.size
    # 3. Inclusion proofs and the entries.
    parsed = _check_inclusion(m, cp)
    windows = _check_entries(m, parsed)

    # 4. The data lines and the trailer (the last line).
    manifest_sha = hashlib.sha256(first).hexdigest()
    h = hashlib.sha256()
    n = 0
    rows, kept_lines, parse_error, window_error = [], ([] if keep_lines else None), None, None
    row = {"omh": frames.omh_row, "fhir": frames.fhir_row, "csv": frames.csv_row}[fmt]
    prev = next(it, None)
    if prev is None:
        raise TrailerMismatchError(f"the export ends after its manifest: no trailer. It was cut short. {_DO_NOT_USE}")
    for line in it:
        # prev is a data line: something follows it.
        h.update(prev)
        if keep_lines:
            kept_lines.append(prev)
        if parse and parse_error is None:
            try:
                s = prev.decode("utf-8")
                if fmt == "csv" and n == 0:
                    frames.check_csv_header(s)
                else:
                    r = row(s)
                    if times.instant(r[0]) is None:
                        raise ValueError(f"it has no time this client can read ({r[0]!r})")
                    if not isinstance(r[3], str):
                        raise ValueError("it names no schema this client can read")
                    why = _in_windows(r, windows)
                    if why and window_error is None:
                        window_error = f"data line {n + 1} of the export is not one the access covers: {why}."
                    rows.append(r)
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
    if window_error:
        raise DataWindowError(window_error + " The vault sent readings outside what its log says this access "
                              "covers. " + _DO_NOT_USE)
    if stale:
        warnings.warn(StaleExportWarning(
            f"this export's checkpoint (size {cp.size}) is older than the one this client kept (size {kept_size}); "
            "the vault proved it a prefix, so the export was in its log, but it was made some time ago: grants "
            "may have been revoked since, and it shows the data as it was then."), stacklevel=3)
    return VerifiedExport(manifest=m, trailer=t, checkpoint=cp, rows=rows, lines=kept_lines, parse_error=parse_error,
                          stale=stale, kept_size=kept_size)


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
