"""The notebook client: patients, verified exports as DataFrames."""

import contextlib
import datetime as dt
import hashlib
import os
import shutil
import stat
import tempfile
from urllib.parse import quote

import pandas as pd
import requests

from .checkpoint import open_checkpoint
from .decrypt import Decryptor, recipients_of
from .errors import ConfigError, NoteError, VaultError
from .note import Verifier
from .schemas import canonical
from .state import CLOEXEC, NOFOLLOW, State, fsync_dir
from .verify import NEWER, Expect, VerifiedExport, check_consistency, verify_lines

FORMATS = ("omh", "fhir", "csv")


def fingerprint(recipient):
    """The vault's fingerprint of an age recipient: fp_ + the first 16 bytes of SHA-256, in hex."""
    return "fp_" + hashlib.sha256(recipient.encode()).hexdigest()[:32]


def _euid():
    return os.geteuid()


def materialise_identity(key, state):
    """Write an age identity given as text (VAULT_IDENTITY_KEY) to the state directory, once; return its path.

    The file is <state dir>/identity-<first 8 hex of SHA-256 of the key>.agekey,
    mode 0600, created with O_EXCL and O_NOFOLLOW by the user's own process.
    If it exists with the same content it is reused; a symbolic link, a file
    of another user's, or one holding another key is refused. The age CLI
    and 'vault decrypt' read identities from a file, hence the file.
    """
    lines = [l.strip() for l in key.replace("\r", "\n").split("\n")]
    ids = [l for l in lines if l and not l.startswith("#")]
    if not ids or not all(l.upper().startswith("AGE-SECRET-KEY-") for l in ids):
        raise ConfigError("VAULT_IDENTITY_KEY does not hold an age identity: it should be the line "
                          "AGE-SECRET-KEY-1… (or AGE-SECRET-KEY-PQ-1…) that age-keygen prints")
    pubs = [l for l in lines if l.startswith("# public key:")]
    data = ("\n".join(pubs + ids) + "\n").encode()
    tag = hashlib.sha256("\n".join(ids).encode()).hexdigest()[:8]
    path = os.path.join(state.dir, f"identity-{tag}.agekey")
    with state.lock():
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | NOFOLLOW | CLOEXEC, 0o600)
        except FileExistsError:
            _check_identity_file(path, data)
            return path
        except OSError as e:
            raise ConfigError(f"cannot write the age identity to {path}: {e}") from e
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            fsync_dir(state.dir)
        except BaseException as e:
            with contextlib.suppress(OSError):
                os.unlink(path)
            if isinstance(e, OSError):
                raise ConfigError(f"cannot write the age identity to {path}: {e}") from e
            raise
    return path


def _check_identity_file(path, data):
    """An identity file that already exists: reuse it only if it is the user's own regular file holding data."""
    refuse = (f"; remove it (rm {path}) and the client writes it again from VAULT_IDENTITY_KEY")
    try:
        if stat.S_ISLNK(os.lstat(path).st_mode):
            raise ConfigError(f"{path} is a symbolic link, not the identity file this client wrote" + refuse)
        fd = os.open(path, os.O_RDONLY | NOFOLLOW | CLOEXEC)
    except OSError as e:
        raise ConfigError(f"cannot read the age identity {path}: {e}" + refuse) from e
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(f"{path} is not a regular file" + refuse)
        if st.st_uid != _euid():
            raise ConfigError(f"{path} belongs to user id {st.st_uid}, not to you ({_euid()})" + refuse)
        if stat.S_IMODE(st.st_mode) & 0o077:
            os.fchmod(f.fileno(), 0o600)
        got = f.read(len(data) + 1)
    if got != data:
        raise ConfigError(f"{path} holds another identity than VAULT_IDENTITY_KEY" + refuse)


def _rfc3339(t, now):
    """A window bound as RFC 3339 UTC. A timedelta counts back from now; naive times are UTC."""
    if t is None:
        return None
    if isinstance(t, (dt.timedelta, pd.Timedelta)):
        t = now - pd.Timedelta(t)
    ts = pd.Timestamp(t)
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    ts = ts.tz_convert("UTC")
    s = ts.strftime("%Y-%m-%dT%H:%M:%S")
    if ts.microsecond or ts.nanosecond:
        s += f".{ts.microsecond:06d}{ts.nanosecond:03d}".rstrip("0")
    return s + "Z"



def grants_span(grants):
    """The data window several grants cover together, as (from, to).

    Either is None when open: when no grant is given, or when any grant
    leaves that side open (no ``data_from``: from the first reading; no
    ``data_to``: up to now and on). Times compare as instants, so offsets
    other than Z order correctly.
    """
    if not grants:
        return None, None

    def side(key, pick):
        vals = [g.get(key) for g in grants]
        if any(not v for v in vals):
            return None
        return pick(vals, key=lambda v: pd.Timestamp(v))

    return side("data_from", min), side("data_to", max)


def hub_token(timeout=30):
    """The signed-in user's current vault access token, from the JupyterHub that spawned this server.

    The hub signs users in through the vault and keeps their tokens in its
    encrypted auth state; asking the hub's API for the user's model lets the
    hub refresh them first (its authenticator's refresh_user). This needs the
    server's hub token (JUPYTERHUB_API_TOKEN) to hold the scopes
    read:users!user and admin:auth_state!user (docs/jupyterhub.md).
    """
    api, tok, user = (os.environ.get(k) for k in ("JUPYTERHUB_API_URL", "JUPYTERHUB_API_TOKEN", "JUPYTERHUB_USER"))
    if not (api and tok and user):
        raise ConfigError("not in a JupyterHub server: JUPYTERHUB_API_URL, JUPYTERHUB_API_TOKEN and JUPYTERHUB_USER "
                          "are needed to ask the hub for a fresh vault token")
    try:
        r = requests.get(f"{api.rstrip('/')}/users/{quote(user, safe='')}", headers={"Authorization": f"token {tok}"},
                         timeout=timeout)
    except requests.RequestException as e:
        raise VaultError(0, "hub_unreachable", f"cannot reach the hub at {api}: {e}") from e
    if r.status_code != 200:
        raise VaultError(r.status_code, "hub_refused", f"the hub answered {r.status_code} for this user's model")
    state = r.json().get("auth_state") or {}
    if not state.get("access_token"):
        raise ConfigError("the hub did not return this user's auth state: give the server role the scopes "
                          "read:users!user and admin:auth_state!user (docs/jupyterhub.md)")
    return state["access_token"]


class Client:
    """A clinician's client for one vault.

    url, token: the vault's base URL and a clinician token (default: the
    VAULT_URL and VAULT_TOKEN environment variables).
    identity: the hub's age identity file (default: VAULT_IDENTITY; failing
    that, VAULT_IDENTITY_KEY, the identity itself, which the client writes
    once to a 0600 file in state_dir; see materialise_identity).
    log_key: the vault's pinned log verifier key, from the hub's config
    (default: VAULT_LOG_KEY). Required: without it nothing can be verified,
    and a key fetched from the vault itself would prove nothing.
    state_dir: where the last verified checkpoint is kept (default
    ~/.jhvault, or JHVAULT_STATE_DIR).
    decryptor: "pyrage", "age" or "vault" to force a backend (default: the
    first that works; see jhvault.decrypt).
    token_source: a function returning a fresh token, asked once when the
    vault answers that the token has expired (or is no longer valid), and
    the request retried with it; Client.from_hub() passes hub_token, so a
    notebook outlives its OAuth access token.
    """

    def __init__(self, url=None, token=None, identity=None, log_key=None, state_dir=None,
                 decryptor=None, vault_bin=None, timeout=120, token_source=None):
        self.url = (url or os.environ.get("VAULT_URL") or "").rstrip("/")
        self.token = token or os.environ.get("VAULT_TOKEN")
        self._token_source = token_source
        if not self.token and token_source is not None:
            self.token = token_source()
        self.identity = identity or os.environ.get("VAULT_IDENTITY")
        log_key = log_key or os.environ.get("VAULT_LOG_KEY")
        if not self.url:
            raise ConfigError("no vault URL: pass url= or set VAULT_URL (such as http://localhost:8080)")
        if not self.token:
            raise ConfigError("no clinician token: pass token= or set VAULT_TOKEN (a vc_… token)")
        if not log_key:
            raise ConfigError("no pinned log key: pass log_key= or set VAULT_LOG_KEY to the key 'vault admin ledger-key' "
                              "prints (from the hub's config, never from the vault itself). Without it no export "
                              "can be verified, so the client refuses to work")
        try:
            self.verifier = Verifier(log_key)
        except NoteError as e:
            raise ConfigError(f"VAULT_LOG_KEY: {e}") from e
        self.state = State(state_dir)
        if not self.identity and os.environ.get("VAULT_IDENTITY_KEY", "").strip():
            self.identity = materialise_identity(os.environ["VAULT_IDENTITY_KEY"], self.state)
        self.timeout = timeout
        self._session = requests.Session()
        self._session.headers["Authorization"] = f"Bearer {self.token}"
        self._decryptor_name, self._vault_bin = decryptor, vault_bin
        self._decryptor = None
        self._recipients = None

    @classmethod
    def from_hub(cls, **kwargs):
        """A client inside a JupyterHub server whose hub signs users in through the vault.

        The token is the OAuth access token the hub put in VAULT_TOKEN at
        spawn; when it expires, the client asks the hub for the user's
        refreshed one (hub_token). The client secret and the refresh token
        stay in the hub. Other arguments as for Client().
        """
        kwargs.setdefault("token_source", hub_token)
        return cls(**kwargs)

    def close(self):
        """Close the client's HTTP connections."""
        self._session.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        with contextlib.suppress(Exception):
            self._session.close()

    # --- HTTP -------------------------------------------------------------

    def _get(self, path, params=None, stream=False, auth=True):
        headers = None if auth else {"Authorization": None}  # public endpoints: no token sent
        for attempt in (1, 2):
            try:
                r = self._session.get(self.url + path, params=params, stream=stream, timeout=self.timeout, headers=headers)
            except requests.RequestException as e:
                raise VaultError(0, "unreachable", f"cannot reach the vault at {self.url}: {e}") from e
            if not (auth and attempt == 1 and r.status_code == 401 and self._token_source is not None):
                break
            # The token expired (an OAuth access token lives an hour at
            # most): take a fresh one and try once more.
            r.close()
            fresh = self._token_source()
            if not fresh or fresh == self.token:
                raise VaultError(401, "token_expired", "the vault token has expired and no fresh one could be had; "
                                 "sign in to the hub again")
            self.token = fresh
            self._session.headers["Authorization"] = f"Bearer {fresh}"
        if r.status_code >= 400:
            try:
                body = r.json()
                code, msg = body.get("code", "error"), body.get("message", r.reason)
            except ValueError:
                body, code, msg = {}, "error", (r.text[:200] or r.reason)
            r.close()
            raise VaultError(r.status_code, code, msg, body)
        return r

    def _json(self, path, params=None, auth=True):
        r = self._get(path, params, auth=auth)
        try:
            return r.json()
        except ValueError as e:
            raise VaultError(r.status_code, "bad_response", f"{path} did not answer JSON") from e

    def consistency_proof(self, m, n):
        """The vault's consistency proof between tree sizes m <= n (public)."""
        return self._json("/api/v1/ledger/proof", {"from": m, "size": n}, auth=False)

    def inclusion_proof(self, index, n):
        return self._json("/api/v1/ledger/proof", {"index": index, "size": n}, auth=False)

    # --- the directory ----------------------------------------------------

    def patients(self, as_frame=True):
        """The patients with an active grant to you: one row each (id, name, schemas, window, expiry, grant ids).

        ``data_from`` and ``data_to`` span every grant's data window: the
        earliest start and the latest end, and NaT where any grant leaves
        that side open (a grant without ``data_from`` covers all earlier
        data). The span may hold gaps between grants' windows; each export's
        manifest says the exact windows.
        """
        out = self._json("/api/v1/clinician/patients")
        if not as_frame:
            return out
        rows = []
        for p in out:
            gs = p.get("grants") or []
            schemas = sorted({s for g in gs for s in g.get("schemas") or []})
            data_from, data_to = grants_span(gs)
            rows.append({
                "id": p.get("id"), "name": p.get("name"), "schemas": schemas,
                "data_from": data_from, "data_to": data_to,
                "expires_at": max((g.get("expires_at") for g in gs if g.get("expires_at")), default=None),
                "grants": [g.get("id") for g in gs],
            })
        df = pd.DataFrame(rows, columns=["id", "name", "schemas", "data_from", "data_to", "expires_at", "grants"])
        for c in ("data_from", "data_to", "expires_at"):
            df[c] = pd.to_datetime(df[c], utc=True)
        return df

    def keys(self):
        """Your registered hub keys (GET /api/v1/clinician/keys)."""
        return self._json("/api/v1/clinician/keys")

    # --- the ledger -------------------------------------------------------

    def checkpoint(self, fresh=False):
        """Fetch the vault's checkpoint, verify it with the pinned key and against the kept one, and keep it."""
        r = self._get("/api/v1/ledger/checkpoint", {"fresh": "1"} if fresh else None, auth=False)
        cp = open_checkpoint(r.text, self.verifier)
        with self.state.lock():
            if check_consistency(self.state.load(self.verifier), cp, self.consistency_proof) == NEWER:
                self.state.store(self.verifier, cp)
        return cp

    def kept_checkpoint(self):
        """The last checkpoint this client verified, or None."""
        return self.state.load(self.verifier)

    # --- exports ----------------------------------------------------------

    @property
    def decryptor(self):
        if self._decryptor is None:
            if not self.identity:
                raise ConfigError("no age identity: pass identity=, or set VAULT_IDENTITY to the hub's identity file "
                                  "(or VAULT_IDENTITY_KEY to the identity itself)")
            self._decryptor = Decryptor(self.identity, self._decryptor_name, self._vault_bin)
        return self._decryptor

    def recipients(self):
        """The fingerprints of the recipients this client's identity can open (empty if they can't be derived).

        From the identity file's '# public key:' comments, else derived from
        it (pyrage, or age-keygen -y for X25519), else VAULT_RECIPIENT.
        """
        if self._recipients is None:
            rs = recipients_of(self.identity) if self.identity else []
            env = os.environ.get("VAULT_RECIPIENT", "").strip()
            if not rs and env.startswith("age1"):
                rs = [env]
            self._recipients = {fingerprint(r) for r in rs}
        return self._recipients

    def add_key(self, label, recipient=None):
        """Register this hub's age recipient with the vault (POST /api/v1/clinician/keys).

        recipient defaults to the identity's own (its '# public key:' comment,
        or derived from it). A key added with a token is usable after the
        vault's activation delay (24 hours by default).
        """
        if recipient is None:
            rs = recipients_of(self.identity) if self.identity else []
            if len(rs) != 1:
                raise ConfigError("cannot tell this identity's recipient; pass recipient='age1…'")
            recipient = rs[0]
        try:
            r = self._session.post(self.url + "/api/v1/clinician/keys", json={"label": label, "recipient": recipient},
                                   timeout=self.timeout)
        except requests.RequestException as e:
            raise VaultError(0, "unreachable", f"cannot reach the vault at {self.url}: {e}") from e
        body = r.json() if r.headers.get("Content-Type", "").startswith("application/json") else {}
        if r.status_code >= 400:
            raise VaultError(r.status_code, body.get("code", "error"), body.get("message", r.reason), body)
        self._recipients = None
        return body

    def remove_key(self, fingerprint_):
        """Remove one of your registered keys (DELETE /api/v1/clinician/keys/{fingerprint})."""
        try:
            r = self._session.delete(f"{self.url}/api/v1/clinician/keys/{requests.utils.quote(fingerprint_, safe='')}",
                                     timeout=self.timeout)
        except requests.RequestException as e:
            raise VaultError(0, "unreachable", f"cannot reach the vault at {self.url}: {e}") from e
        if r.status_code >= 400:
            try:
                body = r.json()
            except ValueError:
                body = {}
            raise VaultError(r.status_code, body.get("code", "error"), body.get("message", r.reason), body)

    def _choose_recipient(self, recipient):
        if recipient is not None:
            return recipient, None
        keys = self.keys()
        active = [k for k in keys if k.get("status") == "active"]
        clinician = next((k.get("clinician") for k in keys if k.get("clinician")), None)
        mine = self.recipients()
        matching = [k["fingerprint"] for k in active if k.get("fingerprint") in mine]
        if len(matching) == 1:
            return matching[0], clinician
        if len(active) == 1 and not mine:
            return None, clinician  # the vault's default, the only active key
        pending = [k for k in keys if k.get("status") == "pending" and k.get("fingerprint") in mine]
        if pending:
            raise ConfigError(f"this hub's key {pending[0]['fingerprint']} is registered but not active until "
                              f"{pending[0].get('active_from')} (the vault's key activation delay)")
        if not active or mine:
            raise ConfigError(
                "none of your active keys at the vault is this hub's identity "
                f"({', '.join(sorted(mine)) or self.identity}): register it with client.add_key('my hub') "
                "(a new key waits out the vault's activation delay)")
        raise ConfigError(
            f"cannot tell which of your active keys ({', '.join(k['fingerprint'] for k in active)}) this hub's "
            f"identity {self.identity} opens; pass recipient=FINGERPRINT")

    def _params(self, schemas, start, end, format, recipient):
        if isinstance(schemas, str):
            schemas = [schemas]
        ids = []
        for s in schemas:
            c = canonical(s)
            if c not in ids:
                ids.append(c)
        if not ids:
            raise ValueError("name at least one schema, such as 'blood-glucose'")
        if format not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}")
        now = pd.Timestamp.now(tz="UTC")
        params = [("schema", s) for s in ids] + [("format", format)]
        f, t = _rfc3339(start, now), _rfc3339(end, now)
        if f:
            params.append(("from", f))
        if t:
            params.append(("to", t))
        if recipient:
            params.append(("recipient", recipient))
        return ids, params

    @contextlib.contextmanager
    def _private_dir(self):
        d = tempfile.mkdtemp(prefix="jhvault-")  # 0700
        try:
            yield d
        finally:
            shutil.rmtree(d, ignore_errors=True)

    def _download_to(self, path, patient, params):
        r = self._get(f"/api/v1/patients/{requests.utils.quote(patient, safe='')}/export", params, stream=True)
        ctype = r.headers.get("Content-Type", "")
        if not ctype.startswith("application/age"):
            r.close()
            raise VaultError(r.status_code, "bad_response", f"the export answered {ctype!r}, not application/age")
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                for chunk in r.iter_content(1 << 16):
                    f.write(chunk)
        except requests.RequestException as e:
            raise VaultError(0, "broken_stream", f"the export broke off while downloading: {e}; retry") from e
        finally:
            r.close()
        hdr = r.headers.get("X-Vault-Access-Start")
        return int(hdr) if hdr and hdr.isdigit() else None

    def download(self, patient, schemas, path, start=None, end=None, format="omh", recipient=None):
        """Save an export's ciphertext to path (0600), unverified; check it later with verify_file."""
        recipient, _ = self._choose_recipient(recipient)
        _, params = self._params(schemas, start, end, format, recipient)
        return self._download_to(path, patient, params)

    def fetch(self, patient, schemas, start=None, end=None, format="omh", recipient=None, keep_lines=False):
        """Download, decrypt and verify an export; return a VerifiedExport (rows, and raw lines if asked)."""
        recipient, clinician = self._choose_recipient(recipient)
        ids, params = self._params(schemas, start, end, format, recipient)
        expect = Expect(patient=patient, clinician=clinician, format=format, schemas=ids,
                        recipients=({recipient} if recipient else (self.recipients() or None)))
        # Hold the state lock from the request on, so clients sharing the
        # state directory see their checkpoints in the order the vault made them.
        with self.state.lock(), self._private_dir() as d:
            path = os.path.join(d, "export.age")
            expect.access_start = self._download_to(path, patient, params)
            return self._verify_path(path, expect, keep_lines)

    def export(self, patient, schemas, start=None, end=None, format="omh", recipient=None):
        """A patient's consented readings as a verified pandas DataFrame.

        schemas: names ('blood-glucose', 'heart-rate', …) or ids
        ('omh:blood-glucose:4.0'). start, end: the window, half-open
        (datetimes, strings, or a timedelta counting back from now; naive
        times are UTC); the vault clips it to the grants. The frame's
        ``attrs`` hold what was verified: grants, access_start, checkpoint.
        """
        return self.fetch(patient, schemas, start, end, format, recipient).to_frame()

    def _verify_path(self, path, expect=None, keep_lines=False, allow_stale=False):
        with self.decryptor.lines(path) as lines:
            return verify_lines(lines, verifier=self.verifier, state=self.state, fetch_proof=self.consistency_proof,
                                expect=expect, keep_lines=keep_lines, allow_stale=allow_stale)

    def verify_file(self, path, patient=None, format=None, keep_lines=False, allow_stale=True):
        """Decrypt and verify an age export file (as downloaded, or as a hub stored it).

        The file may be older than the checkpoint this client kept since: its
        checkpoint is then accepted if the vault proves it a prefix of the
        kept one (GET /api/v1/ledger/proof?from=OLD&size=KEPT), the result is
        marked ``stale`` and a StaleExportWarning is issued. allow_stale=False
        refuses it, as a live export is refused (RollbackError).
        """
        return self._verify_path(path, Expect(patient=patient, format=format), keep_lines, allow_stale)

    def save_data(self, path, out, patient=None, format=None, allow_stale=True):
        """Verify an age export file fully (as verify_file), then write only its data lines to ``out``.

        ``out`` is then a plain file: a CSV (header row, one row per
        reading) for a csv export, NDJSON of OMH points or FHIR
        Observations otherwise; no manifest line, no trailer line. It is a
        new 0600 file, written only once the export verified (an existing
        ``out`` is never replaced); on any failure nothing is left at
        ``out``. Returns the VerifiedExport.
        """
        v = self._verify_path(path, Expect(patient=patient, format=format), keep_lines=True, allow_stale=allow_stale)
        d = os.path.dirname(os.path.abspath(out))
        fd, tmp = tempfile.mkstemp(dir=d, prefix=".jhvault-data-")
        try:
            with os.fdopen(fd, "wb") as f:
                for line in v.lines:
                    f.write(line)
            os.link(tmp, out)  # fails if out exists
        finally:
            os.unlink(tmp)
        return v

    def verify_payload(self, payload, patient=None, format=None, keep_lines=False, allow_stale=True):
        """Verify a decrypted payload (bytes, or an iterable of lines) without decrypting; as verify_file."""
        from .verify import split_lines
        lines = split_lines(payload) if isinstance(payload, (bytes, bytearray)) else payload
        return verify_lines(lines, verifier=self.verifier, state=self.state, fetch_proof=self.consistency_proof,
                            expect=Expect(patient=patient, format=format), keep_lines=keep_lines,
                            allow_stale=allow_stale)


__all__ = ["Client", "VerifiedExport", "fingerprint", "materialise_identity"]
