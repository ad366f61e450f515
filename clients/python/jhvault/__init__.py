"""jhvault: the JupyterHealth Vault notebook client.

    import jhvault
    client = jhvault.Client()          # VAULT_URL, VAULT_TOKEN, VAULT_IDENTITY, VAULT_LOG_KEY
    client.patients()
    df = client.export(patient_id, ["blood-glucose", "heart-rate"], start=pd.Timedelta(days=14))

Every export is verified against the pinned log key before any data is
returned; a failure raises a VerificationError subclass.
"""

from .checkpoint import Checkpoint, open_checkpoint
from .client import Client, fingerprint, hub_token
from .errors import (CheckpointFormatError, CheckpointSignatureError, ConfigError, DataWindowError, DecryptionError,
                     EntryMismatchError, ExportFormatError, ForkError, InclusionProofError, MalformedExportError,
                     ManifestError, NoteError, RollbackError, StaleExportWarning, StateError, TrailerMismatchError,
                     TrailerSignatureError, VaultError, VerificationError)
from .note import Verifier
from .schemas import CANONICAL as SCHEMAS, canonical
from .summary import glucose_mgdl, resample, time_in_range
from .verify import VerifiedExport, trailer_text, verify_bytes, verify_lines

__version__ = "0.1.0"

__all__ = [
    "Client", "hub_token", "Checkpoint", "Verifier", "VerifiedExport", "SCHEMAS", "canonical", "fingerprint",
    "open_checkpoint", "verify_lines", "verify_bytes", "trailer_text",
    "glucose_mgdl", "time_in_range", "resample",
    "VaultError", "ConfigError", "ExportFormatError", "VerificationError", "DecryptionError", "NoteError",
    "CheckpointSignatureError", "CheckpointFormatError", "RollbackError", "InclusionProofError",
    "EntryMismatchError", "ManifestError", "TrailerSignatureError", "TrailerMismatchError", "StateError",
    "ForkError", "DataWindowError", "MalformedExportError", "StaleExportWarning",
]
