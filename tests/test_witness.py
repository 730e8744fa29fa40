"""The witness (C2SP tlog-witness v1, cosignature/v1): the spec's examples, every answer over HTTP."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import socket
import stat
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from conftest import NOW, ORIGIN, VECTORS, event
from processes import EXE, Served

from ledger import Checkpoint, Ledger, Signer, Submission
from ledger.cosignature import (
    Cosigner,
    CosignerKey,
    add_signatures,
    cosignatures,
    parse_signature_line,
    signed_message,
    split_note,
)
from ledger.merkle import EMPTY_ROOT
from ledger.note import NoteError, b64encode
from ledger.witness import Witness, origin_hash, parse_request

SPEC = json.loads((VECTORS / "c2sp_witness.json").read_text())


# -- the spec's examples -------------------------------------------------------------


def test_spec_cosignature_example_carries_the_signed_messages_timestamp() -> None:
    text, lines = split_note(SPEC["cosigned_checkpoint"])
    assert [line.name for line in lines] == ["example.com/behind-the-sofa", "witness.example.com/w1"]
    cosig = lines[1]
    assert len(cosig.signature) == 8 + 64  # timestamped_signature: u64 || Ed25519
    timestamp = int.from_bytes(cosig.signature[:8], "big")
    assert timestamp == 1679315147
    # The spec's example signed message is exactly what we sign for that body and time.
    assert signed_message(text, timestamp).decode() == SPEC["cosignature_signed_message"]
    assert lines[0].text + lines[1].text == SPEC["cosigned_checkpoint"].split("\n\n")[1]


def test_spec_request_body_parses() -> None:
    request = parse_request(SPEC["witness_request_body"].encode())
    assert request.old == 20852014
    assert [b64encode(h) for h in request.proof] == SPEC["witness_request_body"].split("\n")[1:5]
    assert request.checkpoint.origin == "example.com/behind-the-sofa"
    assert request.checkpoint.size == 20852163
    assert len(split_note(request.note)[1]) == 2


def test_spec_response_body_is_cosignature_lines() -> None:
    lines = [parse_signature_line(line) for line in SPEC["witness_response_body"].splitlines()]
    assert [line.name for line in lines] == ["witness.example/w1", "witness.example/w1", "witness.example/w2"]
    assert all(len(line.signature) == 72 for line in lines)


def test_key_id_is_sha256_of_name_newline_0x04_key() -> None:
    cosigner = Cosigner.generate("city.example/witness")
    public = cosigner.key.public_key
    expected = hashlib.sha256(b"city.example/witness\n\x04" + public).digest()[:4]
    assert cosigner.key_id == int.from_bytes(expected, "big")
    vkey = cosigner.key.vkey
    name, key_id, key = vkey.split("+", 2)
    assert (name, key_id) == ("city.example/witness", expected.hex())
    assert base64.b64decode(key) == b"\x04" + public
    assert CosignerKey.parse(vkey) == cosigner.key
    # A log key (type 0x01) is not a witness key, and a key whose id disagrees is refused.
    with pytest.raises(NoteError):
        CosignerKey.parse(Signer.generate("city.example/witness").verifier.vkey)
    with pytest.raises(NoteError):
        CosignerKey.parse(f"{name}+00000000+{key}")


def test_cosignature_verifies_and_a_tampered_one_does_not() -> None:
    cosigner = Cosigner.generate("w.example/1")
    body = Checkpoint(ORIGIN, 3, bytes(32)).body
    line = cosigner.cosign(body, 1700000000)
    note = body + "\n" + line.text
    assert cosignatures(note, [cosigner.key]) == {"w.example/1": 1700000000}
    other = Cosigner.generate("w.example/2")
    assert cosignatures(note, [other.key]) == {}  # unknown keys are ignored
    forged = note.replace("\n3\n", "\n4\n")
    with pytest.raises(NoteError, match="invalid cosignature"):
        cosignatures(forged, [cosigner.key])


# -- the service over real HTTP ------------------------------------------------------


@pytest.fixture
def log(tmp_path: Path, ledger_signer: Signer) -> Ledger:
    led = Ledger.create(tmp_path / "ledger.db", origin=ORIGIN, signer=ledger_signer, now=NOW)
    led.append([Submission(event()) for _ in range(20)], now=NOW)
    return led


@dataclass
class RunningWitness:
    served: Served
    vkey: str
    directory: Path

    @property
    def url(self) -> str:
        return self.served.url


@pytest.fixture
def witness(tmp_path: Path, log: Ledger) -> Iterator[RunningWitness]:
    directory = tmp_path / "witness"
    out = subprocess.run(
        [EXE, "witness", "init", str(directory), "--name", "city.example/witness"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert CosignerKey.parse(out.strip()).name == "city.example/witness"
    assert stat.S_IMODE(os.stat(directory / "witness.key").st_mode) == 0o600
    subprocess.run(
        [EXE, "witness", "add-log", str(directory), "--origin", ORIGIN, "--vkey", log.verifier.vkey],
        check=True,
        capture_output=True,
    )
    served = Served(["witness", "serve", str(directory)], tmp_path / "witness.log").start()
    yield RunningWitness(served, out.strip(), directory)
    served.stop()


def post(served: RunningWitness, old: int, proof: list[bytes], note: str) -> httpx.Response:
    body = f"old {old}\n" + "".join(b64encode(h) + "\n" for h in proof) + "\n" + note
    return httpx.post(f"{served.url}/add-checkpoint", content=body.encode(), timeout=10)


def checkpoint_note(log: Ledger, size: int, signer: Signer) -> str:
    return Checkpoint(ORIGIN, size, log.root(size)).sign(signer)


def test_every_answer_of_add_checkpoint(witness: RunningWitness, log: Ledger, ledger_signer: Signer) -> None:
    key = CosignerKey.parse(witness.vkey)
    first = checkpoint_note(log, 10, ledger_signer)

    # 200: the first checkpoint, from old size 0 with an empty proof.
    answer = post(witness, 0, [], first)
    assert answer.status_code == 200, answer.text
    assert answer.text.startswith("\u2014 city.example/witness ") and answer.text.endswith("\n")
    stamps = cosignatures(first + answer.text, [key])
    assert set(stamps) == {"city.example/witness"} and stamps["city.example/witness"] > 1_700_000_000

    # GET <hex sha256(origin)>/checkpoint: the latest cosigned, with the log's signature and the cosignature.
    latest = httpx.get(f"{witness.url}/{origin_hash(ORIGIN)}/checkpoint").text
    assert latest.startswith(Checkpoint(ORIGIN, 10, log.root(10)).body)
    assert cosignatures(latest, [key]) and ORIGIN in latest.split("\n\n")[1]
    assert httpx.get(f"{witness.url}/{hashlib.sha256(b'other').hexdigest()}/checkpoint").status_code == 404

    # 409: the old size is not the one it cosigned last; the body says which, typed text/x.tlog.size.
    second = checkpoint_note(log, 20, ledger_signer)
    answer = post(witness, 0, [], second)
    assert answer.status_code == 409
    assert answer.headers["content-type"] == "text/x.tlog.size" and answer.text == "10\n"

    # 200 with a consistency proof from 10.
    assert post(witness, 10, log.consistency_proof(10, 20), second).status_code == 200

    # 404: unknown origin (signed by a key it does not know for any log).
    stranger = Signer.generate("other.example/log")
    unknown = Checkpoint("other.example/log", 1, bytes(32)).sign(stranger)
    assert post(witness, 0, [], unknown).status_code == 404

    # 403: known origin, but no signature by the log's key (or a bad one).
    impostor = Signer.generate(ORIGIN)
    assert post(witness, 20, [], checkpoint_note(log, 20, impostor)).status_code == 403
    tampered = second.replace(b64encode(log.root(20)), b64encode(bytes(32)))
    assert post(witness, 20, [], tampered).status_code == 403

    # 400: old size above the checkpoint's size; and a malformed body.
    assert post(witness, 20, [], checkpoint_note(log, 15, ledger_signer)).status_code == 400
    bad = httpx.post(f"{witness.url}/add-checkpoint", content=b"old 01\n\n" + second.encode())
    assert bad.status_code == 400

    # 422: a bad proof; a proof from size 0; the same size with another root (a fork).
    log.append([Submission(event()) for _ in range(5)], now=NOW)
    third = checkpoint_note(log, 25, ledger_signer)
    assert post(witness, 20, log.consistency_proof(15, 25), third).status_code == 422
    fork = Checkpoint(ORIGIN, 20, hashlib.sha256(b"fork").digest()).sign(ledger_signer)
    assert post(witness, 20, [], fork).status_code == 422

    # Still at 20: none of the refusals moved it; the next good one is cosigned.
    assert post(witness, 20, log.consistency_proof(20, 25), third).status_code == 200
    # The same checkpoint again needs an empty proof (422, but that is no misbehaviour: not kept).
    assert post(witness, 25, [bytes(32)], third).status_code == 422
    assert post(witness, 25, [], third).status_code == 200

    # The refused checkpoints signed by the log are kept as evidence, with what it had cosigned.
    with Witness(witness.directory) as opened:
        evidence = opened.evidence(ORIGIN)
    reasons = [e.reason for e in evidence]
    assert any("not consistent" in r for r in reasons)
    assert any("fork" in r for r in reasons)
    assert len(evidence) == 2  # the inconsistent proof and the fork; not the stale or malformed requests
    fork_evidence = next(e for e in evidence if "fork" in e.reason)
    assert fork_evidence.request == fork and fork_evidence.latest_note is not None
    assert fork_evidence.latest_note.startswith(Checkpoint(ORIGIN, 20, log.root(20)).body)


def test_size_zero_needs_the_empty_root(tmp_path: Path, ledger_signer: Signer) -> None:
    Witness.init(tmp_path / "w", "w.example/1").close()
    with Witness(tmp_path / "w") as opened:
        opened.add_log(ORIGIN, ledger_signer.verifier.vkey, now=NOW)
        bad = Checkpoint(ORIGIN, 0, bytes(32)).sign(ledger_signer)
        assert opened.add_checkpoint(b"old 0\n\n" + bad.encode(), now=NOW).status == 422
        good = Checkpoint(ORIGIN, 0, EMPTY_ROOT).sign(ledger_signer)
        assert opened.add_checkpoint(b"old 0\n\n" + good.encode(), now=NOW).status == 200
        too_long = "old 0\n" + "".join(b64encode(bytes(32)) + "\n" for _ in range(64)) + "\n" + good
        assert opened.add_checkpoint(too_long.encode(), now=NOW).status == 400


def test_init_refuses_an_existing_witness_and_add_log_a_bad_key(tmp_path: Path) -> None:
    run = [EXE, "witness", "init", str(tmp_path / "w"), "--name", "w.example/1"]
    assert subprocess.run(run, capture_output=True).returncode == 0
    again = subprocess.run(run, capture_output=True, text=True)
    assert again.returncode == 1 and "already holds a witness" in again.stderr
    bad = subprocess.run(
        [EXE, "witness", "add-log", str(tmp_path / "w"), "--origin", ORIGIN, "--vkey", "nonsense"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 1 and "Traceback" not in bad.stderr and "verifier key" in bad.stderr


def test_a_newer_cosignature_replaces_the_older_one() -> None:
    cosigner = Cosigner.generate("w.example/1")
    log_key = Signer.generate(ORIGIN)
    checkpoint = Checkpoint(ORIGIN, 3, bytes(32))
    note = add_signatures(checkpoint.sign(log_key), [cosigner.cosign(checkpoint.body, 1_700_000_000)])
    newer = add_signatures(note, [cosigner.cosign(checkpoint.body, 1_700_000_100)])
    assert len(split_note(newer)[1]) == 2  # the log's line, and one cosignature
    assert cosignatures(newer, [cosigner.key]) == {"w.example/1": 1_700_000_100}


def test_an_oversized_request_is_refused_before_it_is_read(witness: RunningWitness) -> None:
    """A declared body over 64 KiB gets 400 at once (the witness read it whole first: a client
    declaring 100 MB and sending a few bytes held a connection until its timeout); a streamed
    body over 64 KiB is refused too."""
    host, port = witness.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        raw.sendall(
            b"POST /add-checkpoint HTTP/1.1\r\nHost: w\r\nContent-Length: 100000000\r\n\r\nold 0\n"
        )
        answer = ""
        while "request too large" not in answer:  # the status line and the body may come apart
            part = raw.recv(4096).decode()
            if not part:
                break
            answer += part
    assert answer.startswith("HTTP/1.1 400") and "request too large" in answer

    def chunks() -> Iterator[bytes]:
        for _ in range(20):
            yield b"x" * 8192

    assert httpx.post(f"{witness.url}/add-checkpoint", content=chunks(), timeout=10).status_code == 400


def test_latest_never_shows_a_cosignature_not_yet_committed(tmp_path: Path, log: Ledger) -> None:
    """The witness has one database connection: a read beside add_checkpoint's open transaction
    would have seen its uncommitted write. latest() waits for the lock instead."""
    directory = tmp_path / "w"
    with Witness.init(directory, "city.example/witness") as w:
        w.add_log(ORIGIN, log.verifier.vkey, now=NOW)
        digest = hashlib.sha256(ORIGIN.encode()).hexdigest()
        seen: list[str | None] = []
        reader = threading.Thread(target=lambda: seen.append(w.latest(digest)))
        with contextlib.suppress(RuntimeError), w._lock, w._transaction():
            w._conn.execute(
                "INSERT INTO latest (origin, origin_hash, size, root, note, cosigned_at)"
                " VALUES (?, ?, 1, ?, 'uncommitted', 0)",
                (ORIGIN, digest, bytes(32)),
            )
            reader.start()
            reader.join(0.5)
            assert reader.is_alive()  # waiting, not reading beside the transaction
            raise RuntimeError("roll back")
        reader.join(5)
        assert seen == [None]
