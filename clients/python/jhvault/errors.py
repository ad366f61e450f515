"""Exceptions raised by the client.

Every failure to verify an export is a :class:`VerificationError`; its
subclasses name what failed, and each message says what it means for the
clinician and what to do. No data is returned when one is raised.
"""


class VaultError(Exception):
    """The vault answered with an error (a 4xx or 5xx with a JSON body).

    ``status`` is the HTTP status, ``code`` the vault's stable error code
    (such as ``no_consent``) and ``message`` its explanation.
    """

    def __init__(self, status, code, message, body=None):
        self.status = status
        self.code = code
        self.message = message
        self.body = body or {}
        super().__init__(f"vault answered {status} {code}: {message}")


class ConfigError(Exception):
    """The client is not set up: a missing URL, token, identity or pinned key."""


class VerificationError(Exception):
    """An export, checkpoint or proof failed verification; no data was returned."""


class DecryptionError(VerificationError):
    """The export could not be decrypted with the hub's identity."""


class NoteError(VerificationError):
    """A signed note (checkpoint or trailer signature) is malformed or unsigned by the pinned key."""


class CheckpointSignatureError(NoteError):
    """The checkpoint is not signed by the pinned log key."""


class CheckpointFormatError(VerificationError):
    """The checkpoint text is not a canonical tlog checkpoint, or names another log."""


class RollbackError(VerificationError):
    """The vault's log is older than, or forked from, the checkpoint this client kept."""


class ForkError(RollbackError):
    """The vault's log is not an extension (or, for an old export, a prefix) of the checkpoint this client kept."""


class InclusionProofError(VerificationError):
    """An inclusion proof for a grant or the access-start entry does not verify."""


class EntryMismatchError(VerificationError):
    """A ledger entry in the manifest does not say what the manifest claims."""


class ManifestError(VerificationError):
    """The manifest is malformed or does not match the request."""


class TrailerSignatureError(NoteError):
    """The trailer is not signed by the pinned log key: the vault did not make this export."""


class TrailerMismatchError(VerificationError):
    """The trailer's numbers do not match the data received: the export is incomplete or altered."""


class DataWindowError(VerificationError):
    """A data line's schema or time is outside the windows the manifest and the access log name."""


class MalformedExportError(VerificationError):
    """The export is malformed in a way no vault writes (a value of the wrong type, say)."""


class StaleExportWarning(UserWarning):
    """An export verified later carries a checkpoint older than the kept one (see VerifiedExport.stale)."""


class StateError(VerificationError):
    """The kept checkpoint in the client's state directory cannot be read or verified."""


class ExportFormatError(Exception):
    """A verified export holds a line this client cannot parse (a newer vault, or an unknown format)."""
