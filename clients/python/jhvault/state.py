"""The client's kept checkpoint: the last one it verified, per vault log and pinned key.

It lives in a 0700 directory (default ``~/.jhvault``) as one 0600 file per
(origin, log key), holding the signed checkpoint note. On load it is opened
again with the pinned key, so a file edited on disk is refused rather than
trusted. A lock file serialises clients that share the directory.
"""

import contextlib
import fcntl
import hashlib
import os
import stat
import threading

from .checkpoint import open_checkpoint
from .errors import ConfigError, StateError, VerificationError


def default_state_dir():
    return os.path.join(os.path.expanduser("~"), ".jhvault")


class State:
    def __init__(self, directory=None):
        self.dir = os.path.abspath(directory or os.environ.get("JHVAULT_STATE_DIR") or default_state_dir())
        try:
            os.makedirs(self.dir, mode=0o700, exist_ok=True)
            st = os.stat(self.dir)
            if st.st_uid == os.getuid() and stat.S_IMODE(st.st_mode) & 0o077:
                os.chmod(self.dir, 0o700)
        except OSError as e:
            raise ConfigError(f"cannot use the state directory {self.dir}: {e}") from e
        self._mu = threading.RLock()
        self._depth = 0
        self._fd = None

    def path(self, verifier):
        tag = hashlib.sha256(f"{verifier.name}\n{verifier.key_string}".encode()).hexdigest()[:20]
        return os.path.join(self.dir, f"checkpoint-{tag}")

    @contextlib.contextmanager
    def lock(self):
        """An exclusive lock on the state directory, re-entrant within this process."""
        with self._mu:
            if self._depth == 0:
                fd = os.open(os.path.join(self.dir, ".lock"), os.O_CREAT | os.O_RDWR, 0o600)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                except BaseException:
                    os.close(fd)
                    raise
                self._fd = fd
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0:
                    fcntl.flock(self._fd, fcntl.LOCK_UN)
                    os.close(self._fd)
                    self._fd = None

    def load(self, verifier):
        """The kept checkpoint for this log and key, or None."""
        p = self.path(verifier)
        try:
            with open(p, "r", encoding="utf-8") as f:
                signed = f.read()
        except FileNotFoundError:
            return None
        except OSError as e:
            raise StateError(f"cannot read the kept checkpoint {p}: {e}") from e
        try:
            return open_checkpoint(signed, verifier)
        except VerificationError as e:
            raise StateError(
                f"the kept checkpoint {p} does not verify with the pinned key ({e}). It was altered on disk; "
                "if you are sure nothing is wrong (say, you restored this directory from elsewhere), "
                "delete the file and the next export starts from the vault's current checkpoint") from e

    def store(self, verifier, cp):
        p = self.path(verifier)
        tmp = f"{p}.tmp{os.getpid()}"
        fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(cp.signed)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, p)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
