"""What city auditors see in Datasette (issue 6): sign-in, an access log that is itself a
ledger, the ledger's status with a fresh verification, entries with inclusion proofs,
findings with the contract's words and KPIs. See docs/datasette.md."""

from .site import make_datasette

__all__ = ["make_datasette"]
