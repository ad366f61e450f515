"""The client's kept checkpoint: the last one it verified, per vault log and pinned key.

It lives in a 0700 directory (default ``~/.jhvault``) as one 0600 file per
(origin, log key), holding the signed checkpoint note. On load it is opened
again with the pinned key, so a file edited on disk is refused rather than
trusted. A lock file serialises clients that share the directory.

The directory must be the user's own and writable by no one else (anyone
who can write there can swap files); files in it are opened without
following symbolic links, and a new checkpoint is written to a fresh
temporary file, synced, renamed over the old one, and the directory synced.
"""

import contextlib
import fcntl
import hashlib
import os
import stat
import tempfile
import threading

from .checkpoint import open_checkpoint
from .errors import ConfigError, StateError, VerificationError

NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def default_state_dir():
    return os.path.join(os.path.expanduser("~"), ".jhvault")


def _euid():
    return os.geteuid()


def check_private_dir(path):
    """Refuse a directory that is not the user's own or that others can write; make it 0700 otherwise."""
    st = os.stat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise ConfigError(f"the state directory {path} is not a directory")
    if st.st_uid != _euid():
        raise ConfigError(
            f"the state directory {path} belongs to user id {st.st_uid}, not to you ({_euid()}): whoever owns it "
            "can replace the checkpoint this client keeps. Use a directory of your own (JHVAULT_STATE_DIR), "
            "or have it chowned to you and run: chmod 700 " + path)
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o022:
        raise ConfigError(
            f"the state directory {path} is writable by others (mode {mode:04o}): they could replace the "
            f"checkpoint this client keeps, or the identity it writes there. Run: chmod 700 {path}")
    if mode & 0o077:
        os.chmod(path, 0o700)  # readable by others: tighten it (nothing there is secret, but keep it private)


class State:
    def __init__(self, directory=None):
        self.dir = os.path.abspath(directory or os.environ.get("JHVAULT_STATE_DIR") or default_state_dir())
        try:
            os.makedirs(self.dir, mode=0o700, exist_ok=True)
            check_private_dir(self.dir)
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
                p = os.path.join(self.dir, ".lock")
                try:
                    fd = os.open(p, os.O_CREAT | os.O_RDWR | NOFOLLOW | CLOEXEC, 0o600)
                except OSError as e:
                    raise StateError(f"cannot open the lock file {p} ({e}); if it is a symbolic link, remove it") from e
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
            fd = os.open(p, os.O_RDONLY | NOFOLLOW | CLOEXEC)
        except FileNotFoundError:
            return None
        except OSError as e:
            raise StateError(f"cannot read the kept checkpoint {p} ({e}); if it is a symbolic link, remove it") from e
        try:
            with os.fdopen(fd, "rb") as f:
                if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                    raise StateError(f"the kept checkpoint {p} is not a regular file; remove it")
                signed = f.read(1 << 16)
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
        """Keep cp, atomically: a fresh temporary file, synced, renamed over the old one; then the directory synced."""
        p = self.path(verifier)
        try:
            fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=".checkpoint-", suffix=".tmp")  # 0600, O_EXCL
        except OSError as e:
            raise StateError(f"cannot write the kept checkpoint in {self.dir}: {e}") from e
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(cp.signed.encode("utf-8"))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, p)
            fsync_dir(self.dir)
        except BaseException as e:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            if isinstance(e, OSError):
                raise StateError(f"cannot write the kept checkpoint {p}: {e}") from e
            raise


def fsync_dir(path):
    """Sync a directory, so a rename or a new file in it survives a crash."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
