"""The ledger's SQLite schema. Every table is append-only: triggers refuse UPDATE and DELETE.

`entries.leaf` holds the exact bytes that are hashed (RFC 8785 JSON, UTF-8);
the other columns of `entries` are copies for browsing, and `verify` checks
each of them against the leaf. `tree_nodes` holds the RFC 6962 interior nodes
of every perfect subtree (level >= 1); level 0 is `entries.leaf_hash`.
"""

FORMAT = "kansa-ledger-1"

TABLES = ("meta", "entries", "tree_nodes", "checkpoints")

SCHEMA = """
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE entries (
    idx INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    case_ref TEXT,
    received TEXT NOT NULL,
    key TEXT NOT NULL,
    leaf TEXT NOT NULL,
    leaf_hash BLOB NOT NULL
);
CREATE INDEX entries_type ON entries (type);
CREATE INDEX entries_case ON entries (case_ref) WHERE case_ref IS NOT NULL;
CREATE TABLE tree_nodes (
    level INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    hash BLOB NOT NULL,
    PRIMARY KEY (level, idx)
) WITHOUT ROWID;
CREATE TABLE checkpoints (
    seq INTEGER PRIMARY KEY,
    size INTEGER NOT NULL,
    root BLOB NOT NULL,
    note TEXT NOT NULL UNIQUE,
    signed_at TEXT NOT NULL
);
""" + "".join(
    f"""
CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table}
BEGIN SELECT RAISE(ABORT, 'the ledger is append-only: {table} rows cannot be updated'); END;
CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table}
BEGIN SELECT RAISE(ABORT, 'the ledger is append-only: {table} rows cannot be deleted'); END;
"""
    for table in TABLES
)
