"""Kansa's ledger: an append-only store of signed events, chained, under an RFC 6962 tree.

It knows nothing of call centers. Events are checked against a vocabulary,
signed with Ed25519 keys registered in the ledger itself, chained leaf to
leaf, and proved with RFC 6962 inclusion and consistency proofs against C2SP
checkpoints that Go's sumdb/note and sumdb/tlog read as they are.
"""

from .canonical import CanonicalError, canonicalize
from .checkpoint import Checkpoint, CheckpointError, open_checkpoint, parse_body
from .keyfile import KeyFileError, read_key, write_key
from .keys import KeyRecord
from .leaf import build_leaf, event_bytes, parse_leaf
from .merkle import (
    EMPTY_ROOT,
    CompactRange,
    ProofError,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    verify_consistency,
    verify_inclusion,
)
from .note import NoteError, Signer, Verifier, open_note, sign_note
from .reader import LedgerError, LedgerReader, ReadError, StoredCheckpoint
from .store import Appended, AppendError, Ledger, Signature, Submission, format_time
from .verify import Report, verify_ledger, verify_since
from .vocabulary import EventError, Vocabulary, load_vocabulary

__all__ = [
    "EMPTY_ROOT",
    "AppendError",
    "Appended",
    "CanonicalError",
    "Checkpoint",
    "CheckpointError",
    "CompactRange",
    "EventError",
    "KeyFileError",
    "KeyRecord",
    "Ledger",
    "LedgerError",
    "LedgerReader",
    "NoteError",
    "ProofError",
    "ReadError",
    "Report",
    "Signature",
    "Signer",
    "StoredCheckpoint",
    "Submission",
    "Verifier",
    "Vocabulary",
    "build_leaf",
    "canonicalize",
    "consistency_proof",
    "event_bytes",
    "format_time",
    "inclusion_proof",
    "leaf_hash",
    "load_vocabulary",
    "node_hash",
    "open_checkpoint",
    "open_note",
    "parse_body",
    "parse_leaf",
    "read_key",
    "sign_note",
    "verify_consistency",
    "verify_inclusion",
    "verify_ledger",
    "verify_since",
    "write_key",
]
