"""A C2SP tlog-witness v1: remembers each log's latest checkpoint and cosigns only consistent growth.

A witness is a directory: `witness.key` (its cosignature/v1 signing key, 0600)
and `witness.db` (SQLite): the logs it witnesses (origin -> the log's verifier
key), one row per origin with the latest checkpoint it cosigned, and the
evidence it kept of refused checkpoints that were validly signed by the log
(a fork or a rollback is proved by such a checkpoint next to the one cosigned).

`add_checkpoint` checks the request's old size against the stored latest size
and replaces that row in one SQLite write transaction (BEGIN IMMEDIATE), which
commits (fsync) before the answer is returned: two concurrent requests cannot
both pass the check, so the witness can never be rolled back by a race
(the race the spec describes).
"""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from .bodies import BodyTooLarge, read_limited
from .checkpoint import Checkpoint, CheckpointError, parse_body, parse_decimal
from .cosignature import Cosigner, add_signatures, split_note
from .keyfile import KeyFileError, read_secret, write_secret
from .merkle import EMPTY_ROOT, HASH_SIZE, ProofError, verify_consistency
from .note import NoteError, Verifier, b64decode, open_note

MAX_PROOF_LINES = 63
MAX_REQUEST_BYTES = 64 * 1024
SIZE_TYPE = "text/x.tlog.size"
KEY_FILE = "witness.key"
DB_FILE = "witness.db"

SCHEMA = """
CREATE TABLE IF NOT EXISTS logs (
    origin TEXT PRIMARY KEY,
    vkey TEXT NOT NULL,
    added_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS latest (
    origin TEXT PRIMARY KEY,
    origin_hash TEXT NOT NULL UNIQUE,
    size INTEGER NOT NULL,
    root BLOB NOT NULL,
    note TEXT NOT NULL,
    cosigned_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS evidence (
    seq INTEGER PRIMARY KEY,
    origin TEXT NOT NULL,
    received_at TEXT NOT NULL,
    status INTEGER NOT NULL,
    reason TEXT NOT NULL,
    request TEXT NOT NULL,
    latest_note TEXT
);
"""


class WitnessError(Exception):
    """A witness directory that cannot be created or used as asked."""


@dataclass(frozen=True)
class Answer:
    """An HTTP answer of the witness protocol."""

    status: int
    body: str = ""
    content_type: str = "text/plain; charset=utf-8"


@dataclass(frozen=True)
class Evidence:
    seq: int
    origin: str
    received_at: str
    status: int
    reason: str
    request: str
    latest_note: str | None


@dataclass(frozen=True)
class _Request:
    old: int
    proof: list[bytes]
    note: str
    checkpoint: Checkpoint


class _Refused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def origin_hash(origin: str) -> str:
    """The monitoring path's origin hash: lowercase hex SHA-256 of the origin line."""
    return hashlib.sha256(origin.encode("utf-8")).hexdigest()


def parse_request(body: bytes) -> _Request:
    """The add-checkpoint body: `old N`, up to 63 proof lines, a blank line, a signed checkpoint."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _Refused(400, "the body is not UTF-8") from exc
    head, sep, note = text.partition("\n\n")
    if not sep:
        raise _Refused(400, "no blank line after the old size and proof")
    lines = head.split("\n")
    if not lines[0].startswith("old "):
        raise _Refused(400, "the first line must be `old <size>`")
    try:
        old = parse_decimal(lines[0][4:])
    except ValueError as exc:
        raise _Refused(400, str(exc)) from exc
    if len(lines) - 1 > MAX_PROOF_LINES:
        raise _Refused(400, f"more than {MAX_PROOF_LINES} consistency proof lines")
    proof = []
    for line in lines[1:]:
        try:
            digest = b64decode(line)
        except NoteError as exc:
            raise _Refused(400, f"bad proof line: {exc}") from exc
        if len(digest) != HASH_SIZE:
            raise _Refused(400, "a proof line is one base64 SHA-256 hash")
        proof.append(digest)
    try:
        checkpoint_text, _ = split_note(note)
        checkpoint = parse_body(checkpoint_text)
    except (NoteError, CheckpointError) as exc:
        raise _Refused(400, f"bad checkpoint: {exc}") from exc
    return _Request(old, proof, note, checkpoint)


class Witness:
    """An open witness directory."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)
        key_path = self.directory / KEY_FILE
        db_path = self.directory / DB_FILE
        if not key_path.exists() or not db_path.exists():
            raise WitnessError(f"{self.directory} is not a witness (run `kansa witness init` first)")
        try:
            self.cosigner = Cosigner.parse(read_secret(key_path))
        except (KeyFileError, NoteError) as exc:
            raise WitnessError(f"{key_path}: {exc}") from exc
        self._conn = sqlite3.connect(db_path, isolation_level=None, timeout=30, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._lock = threading.Lock()

    @classmethod
    def init(cls, directory: Path | str, name: str) -> Witness:
        """Creates a witness: a new key (0600) and an empty state database."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        if (directory / KEY_FILE).exists() or (directory / DB_FILE).exists():
            raise WitnessError(f"{directory} already holds a witness")
        try:
            cosigner = Cosigner.generate(name)
        except NoteError as exc:
            raise WitnessError(str(exc)) from exc
        conn = sqlite3.connect(directory / DB_FILE, isolation_level=None)
        conn.executescript(SCHEMA)
        conn.close()
        write_secret(directory / KEY_FILE, cosigner.skey)
        return cls(directory)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Witness:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def vkey(self) -> str:
        return self.cosigner.key.vkey

    def add_log(self, origin: str, vkey: str, *, now: datetime) -> None:
        """Witnesses the log `origin`, whose checkpoints are signed by the Ed25519 key `vkey`."""
        try:
            verifier = Verifier.parse(vkey.strip())
        except NoteError as exc:
            raise WitnessError(f"bad log verifier key: {exc}") from exc
        if not origin or "\n" in origin:
            raise WitnessError("an origin is one non-empty line")
        if verifier.name != origin:
            raise WitnessError(f"the key is named {verifier.name!r}, not after the origin {origin!r}")
        with self._lock:
            self._conn.execute(
                "INSERT INTO logs (origin, vkey, added_at) VALUES (?, ?, ?)"
                " ON CONFLICT (origin) DO UPDATE SET vkey = excluded.vkey",
                (origin, verifier.vkey, now.isoformat()),
            )

    def logs(self) -> dict[str, str]:
        with self._lock:
            return dict(self._conn.execute("SELECT origin, vkey FROM logs ORDER BY origin").fetchall())

    def latest(self, origin_hash_hex: str) -> str | None:
        """The latest checkpoint cosigned for the origin with this hash (with the log's signature).

        Under the lock: the witness has one connection, and a read beside add_checkpoint's open
        transaction would see a cosignature not yet committed (and perhaps rolled back)."""
        with self._lock:
            row = self._conn.execute(
                "SELECT note FROM latest WHERE origin_hash = ?", (origin_hash_hex,)
            ).fetchone()
        return None if row is None else str(row[0])

    def evidence(self, origin: str | None = None) -> list[Evidence]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT seq, origin, received_at, status, reason, request, latest_note FROM evidence"
                " WHERE ? IS NULL OR origin = ? ORDER BY seq",
                (origin, origin),
            ).fetchall()
        return [Evidence(*row) for row in rows]

    def add_checkpoint(self, body: bytes, *, now: datetime) -> Answer:
        """One add-checkpoint request, answered exactly as tlog-witness says."""
        if len(body) > MAX_REQUEST_BYTES:
            return Answer(400, "request too large\n")
        try:
            request = parse_request(body)
            verifier = self._log_key(request.checkpoint.origin)
            try:
                opened = open_note(request.note, verifier)
            except NoteError as exc:
                raise _Refused(403, f"no valid signature by the log's key: {exc}") from exc
            if request.old > request.checkpoint.size:
                raise _Refused(400, f"old size {request.old} is above the checkpoint size")
            if request.checkpoint.size == 0 and request.checkpoint.root != EMPTY_ROOT:
                raise _Refused(422, "a checkpoint of size 0 must have the empty tree's root")
            with self._lock, self._transaction():
                return self._check_and_update(request, opened.verified_by, now)
        except _Refused as refused:
            return Answer(refused.status, refused.reason + "\n")

    def _log_key(self, origin: str) -> Verifier:
        with self._lock:
            row = self._conn.execute("SELECT vkey FROM logs WHERE origin = ?", (origin,)).fetchone()
        if row is None:
            raise _Refused(404, f"unknown log {origin!r}")
        return Verifier.parse(row[0])

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def _check_and_update(self, request: _Request, log_names: tuple[str, ...], now: datetime) -> Answer:
        checkpoint = request.checkpoint
        row = self._conn.execute(
            "SELECT size, root, note FROM latest WHERE origin = ?", (checkpoint.origin,)
        ).fetchone()
        latest_size, latest_root, latest_note = (0, EMPTY_ROOT, None) if row is None else row
        latest_root = bytes(latest_root)
        if request.old != latest_size:
            if checkpoint.size < latest_size:
                # Validly signed by the log, yet smaller than what it had us cosign: a rollback
                # (or a replayed old checkpoint). Keep it; it is the log's own word.
                reason = f"checkpoint of size {checkpoint.size} below the cosigned size {latest_size}"
                self._keep(request, 409, reason, latest_note, now)
            return Answer(409, f"{latest_size}\n", SIZE_TYPE)
        if request.old == 0:
            if request.proof:
                return Answer(422, "a consistency proof from size 0 must be empty\n")
        elif request.old == checkpoint.size:
            if checkpoint.root != latest_root:
                reason = f"same size {checkpoint.size} as the cosigned checkpoint but another root (a fork)"
                self._keep(request, 422, reason, latest_note, now)
                return Answer(422, reason + "\n")
            if request.proof:
                return Answer(422, "the same size needs an empty consistency proof\n")
        else:
            try:
                verify_consistency(request.old, checkpoint.size, latest_root, checkpoint.root, request.proof)
            except ProofError as exc:
                reason = f"not consistent with the cosigned checkpoint of size {request.old}: {exc}"
                self._keep(request, 422, reason, latest_note, now)
                return Answer(422, reason + "\n")
        line = self.cosigner.cosign(checkpoint.body, int(now.timestamp()))
        text, signatures = split_note(request.note)
        kept = [s for s in signatures if s.name in log_names]
        note = add_signatures(text + "\n" + "".join(s.text for s in kept), [line])
        self._conn.execute(
            "INSERT INTO latest (origin, origin_hash, size, root, note, cosigned_at)"
            " VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (origin) DO UPDATE SET size = excluded.size, root = excluded.root,"
            " note = excluded.note, cosigned_at = excluded.cosigned_at",
            (
                checkpoint.origin,
                origin_hash(checkpoint.origin),
                checkpoint.size,
                checkpoint.root,
                note,
                now.isoformat(),
            ),
        )
        return Answer(200, line.text)

    def _keep(
        self, request: _Request, status: int, reason: str, latest_note: str | None, now: datetime
    ) -> None:
        self._conn.execute(
            "INSERT INTO evidence (origin, received_at, status, reason, request, latest_note)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (request.checkpoint.origin, now.isoformat(), status, reason, request.note, latest_note),
        )


def create_witness_app(witness: Witness, *, clock: Callable[[], datetime]) -> Starlette:
    """`POST /add-checkpoint` and `GET /<origin hash>/checkpoint`."""

    async def add_checkpoint(request: Request) -> Response:
        try:
            body = await read_limited(request, MAX_REQUEST_BYTES)
        except BodyTooLarge:
            return PlainTextResponse("request too large\n", status_code=400)
        answer = await run_in_threadpool(witness.add_checkpoint, body, now=clock())
        # Headers, not media_type: Starlette would append a charset to text/x.tlog.size.
        return Response(answer.body, status_code=answer.status, headers={"Content-Type": answer.content_type})

    async def get_checkpoint(request: Request) -> Response:
        # Off the event loop: latest() waits while a cosigning holds the witness's lock.
        note = await run_in_threadpool(witness.latest, request.path_params["origin_hash"])
        if note is None:
            return PlainTextResponse("no checkpoint cosigned for this log\n", status_code=404)
        return PlainTextResponse(note, headers={"Cache-Control": "no-cache"})

    return Starlette(
        routes=[
            Route("/add-checkpoint", add_checkpoint, methods=["POST"]),
            Route("/{origin_hash:str}/checkpoint", get_checkpoint),
        ]
    )
