"""Decrypting an age export inside the hub.

Backends, in the order tried: ``pyrage`` (if importable), Debian's ``age``
CLI, then the vault binary's ``vault decrypt`` (``VAULT_BIN`` or ``vault``
on PATH). A post-quantum identity (``AGE-SECRET-KEY-PQ-1…``) skips the first
two: age 1.1 and pyrage cannot open ``age1pq1`` exports.

Plaintext is never written to disk: the subprocess backends stream it
through a pipe, and pyrage works in memory. Each backend yields the
plaintext as lines; a failure to decrypt (a wrong identity, or ciphertext
that fails age's authentication) raises DecryptionError before the last
line (the trailer) is handed over: pyrage decrypts the whole file first,
and the subprocess backends hold each line back until the next one arrives,
yielding the last only after the decryptor has exited successfully.
"""

import contextlib
import os
import shutil
import subprocess
import threading

from .errors import ConfigError, DecryptionError

BACKENDS = ("pyrage", "age", "vault")


def read_identity(path):
    """The identity lines (no comments) and any '# public key:' recipients in an age identity file."""
    try:
        with open(path, "r", encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise ConfigError(f"cannot read the age identity {path}: {e}") from e
    ids, pubs = [], []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("# public key:"):
            pubs.append(line.split(":", 1)[1].strip())
        elif line and not line.startswith("#"):
            ids.append(line)
    if not ids:
        raise ConfigError(f"{path} holds no age identity (AGE-SECRET-KEY-1… or AGE-SECRET-KEY-PQ-1…)")
    return ids, pubs


def is_post_quantum(ids):
    return any(i.upper().startswith("AGE-SECRET-KEY-PQ-1") for i in ids)


def _pyrage():
    try:
        import pyrage  # noqa: F401
        return pyrage
    except ImportError:
        return None


def find_vault_bin(vault_bin=None):
    cand = vault_bin or os.environ.get("VAULT_BIN") or "vault"
    if os.sep in cand:
        return cand if os.access(cand, os.X_OK) else None
    return shutil.which(cand)


def recipients_of(identity_path):
    """The age recipients (public keys) of an identity file, where they can be derived."""
    ids, pubs = read_identity(identity_path)
    out = list(pubs)
    if out:
        return out
    pr = _pyrage()
    if pr is not None:
        for i in ids:
            with contextlib.suppress(Exception):
                out.append(str(pr.x25519.Identity.from_str(i).to_public()))
    if not out and not is_post_quantum(ids) and shutil.which("age-keygen"):
        r = subprocess.run(["age-keygen", "-y", identity_path], capture_output=True, text=True, timeout=30)
        if r.returncode == 0:
            out = [l.strip() for l in r.stdout.splitlines() if l.strip()]
    return out


class Decryptor:
    """One decryption backend bound to an identity file."""

    def __init__(self, identity, backend=None, vault_bin=None):
        self.identity = identity
        ids, _ = read_identity(identity)
        self._ids = ids
        pq = is_post_quantum(ids)
        self.vault_bin = find_vault_bin(vault_bin)
        backend = backend or os.environ.get("JHVAULT_DECRYPTOR") or None
        if backend is not None:
            if backend not in BACKENDS:
                raise ConfigError(f"unknown decryptor {backend!r}; choose one of {', '.join(BACKENDS)}")
            if backend == "pyrage" and _pyrage() is None:
                raise ConfigError("decryptor pyrage asked for, but pyrage is not installed")
            if backend == "age" and not shutil.which("age"):
                raise ConfigError("decryptor age asked for, but the age CLI is not on PATH (apt-get install age)")
            if backend in ("pyrage", "age") and pq:
                raise ConfigError(f"{identity} holds a post-quantum identity, which {backend} cannot open; "
                                  "use the vault binary's 'vault decrypt'")
            if backend == "vault" and not self.vault_bin:
                raise ConfigError("decryptor vault asked for, but no vault binary was found (set VAULT_BIN)")
            self.name = backend
            return
        if not pq and _pyrage() is not None:
            self.name = "pyrage"
        elif not pq and shutil.which("age"):
            self.name = "age"
        elif self.vault_bin:
            self.name = "vault"
        else:
            need = "the vault binary (set VAULT_BIN)" if pq else "pyrage, the age CLI (apt-get install age), or the vault binary (set VAULT_BIN)"
            raise ConfigError(f"no way to decrypt exports: install {need}")

    @contextlib.contextmanager
    def lines(self, path):
        """Decrypt the age file at path; yield an iterator over its plaintext lines (bytes)."""
        if self.name == "pyrage":
            yield self._pyrage_lines(path)
            return
        if self.name == "age":
            argv = [shutil.which("age"), "--decrypt", "-i", self.identity, path]
        else:
            argv = [self.vault_bin, "decrypt", "-i", self.identity, path]
        with _piped(argv, self.name) as it:
            yield it

    def _pyrage_lines(self, path):
        pr = _pyrage()
        idents = []
        for i in self._ids:
            try:
                idents.append(pr.x25519.Identity.from_str(i))
            except Exception as e:
                raise ConfigError(f"pyrage cannot parse the identity in {self.identity}: {e}") from e
        with open(path, "rb") as f:
            ct = f.read()
        try:
            pt = pr.decrypt(ct, idents)
        except Exception as e:
            raise DecryptionError(
                f"the export does not decrypt with {self.identity} (pyrage: {e}). Either it was encrypted to "
                "another key, or it was damaged or altered in transit; download it again") from e
        del ct
        start = 0
        while start < len(pt):
            end = pt.find(b"\n", start)
            end = len(pt) if end < 0 else end + 1
            yield pt[start:end]
            start = end


@contextlib.contextmanager
def _piped(argv, name):
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    errbuf = []
    t = threading.Thread(target=lambda: errbuf.append(proc.stderr.read()), daemon=True)
    t.start()

    def gen():
        # One line is held back: the last one (the trailer) is handed over
        # only once the decryptor has exited and said the whole file
        # authenticated, so a failure is raised before it.
        held = None
        for line in proc.stdout:
            if held is not None:
                yield held
            held = line
        rc = proc.wait()
        t.join()
        if rc != 0:
            msg = b"".join(errbuf).decode("utf-8", "replace").strip()
            raise DecryptionError(
                f"the export does not decrypt ({name} said: {msg or 'exit ' + str(rc)}). Either it was encrypted "
                "to another key than this hub's identity, or it was damaged or altered in transit; "
                "download it again, and if it keeps failing, tell the vault's operator")
        if held is not None:
            yield held

    try:
        yield gen()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdout.close()
        t.join(timeout=5)
        proc.stderr.close()
