"""C2SP signed notes and tlog checkpoints, against the C2SP, Go and Tessera vectors."""

from __future__ import annotations

import json

import pytest
from conftest import VECTORS

from ledger import merkle
from ledger.checkpoint import Checkpoint, CheckpointError, open_checkpoint, parse_body
from ledger.note import NoteError, Signer, Verifier, open_note, sign_note

V = json.loads((VECTORS / "signed_notes.json").read_text())
GO = V["go_example"]
TESSERA = V["tessera_log"]


def test_c2sp_example_verifies() -> None:
    verifier = Verifier.parse(V["c2sp_example"]["vkey"])
    opened = open_note(V["c2sp_example"]["note"], verifier)
    assert opened.text == "This is an example message.\n"
    assert opened.verified_by == ("example.com/foo",)


def test_go_example_is_reproduced_byte_for_byte() -> None:
    signer = Signer.parse(GO["skey"])
    assert signer.verifier.vkey == GO["vkey"]
    assert signer.skey == GO["skey"]
    text = GO["note"][: GO["note"].index("\n\n") + 1]
    assert sign_note(text, signer) == GO["note"]
    assert open_note(GO["note"], Verifier.parse(GO["vkey"])).text == text


def test_unknown_signatures_are_ignored_but_a_known_key_is_required() -> None:
    verifier = Verifier.parse(GO["vkey"])
    two = GO["note"] + GO["unknown_signature_line"]
    assert open_note(two, verifier).verified_by == ("PeterNeumann",)
    other = Signer.generate("someone")
    with pytest.raises(NoteError, match="no signature by a known key"):
        open_note(GO["note"], other.verifier)


def test_a_bad_signature_by_a_known_key_is_rejected() -> None:
    verifier = Verifier.parse(GO["vkey"])
    tampered = GO["note"].replace("cryptography", "Cryptography")
    with pytest.raises(NoteError, match="invalid signature"):
        open_note(tampered, verifier)


@pytest.mark.parametrize("bad", GO["bad_vkeys"])
def test_go_bad_verifier_keys_are_rejected(bad: str) -> None:
    with pytest.raises(NoteError):
        Verifier.parse(bad)


@pytest.mark.parametrize("key", [GO["vkey"], GO["skey"]])
def test_every_substring_and_byte_increment_of_a_key_is_rejected(key: str) -> None:
    parse = Signer.parse if key.startswith("PRIVATE") else Verifier.parse
    parse(key)
    for i in range(len(key)):
        for j in range(i + 1, len(key) + 1):
            if (i, j) != (0, len(key)):
                with pytest.raises(NoteError):
                    parse(key[i:j])
    for i in range(len(key)):
        bumped = key[:i] + chr(ord(key[i]) + 1) + key[i + 1 :]
        with pytest.raises(NoteError):
            parse(bumped)


def test_tessera_log_checkpoints_are_reproduced_byte_for_byte() -> None:
    signer = Signer.parse(TESSERA["skey"])
    assert signer.verifier.vkey == TESSERA["vkey"]
    edge = merkle.CompactRange()
    roots = [edge.root()]
    for entry in TESSERA["entries"]:
        edge.append(merkle.leaf_hash(entry.encode()))
        roots.append(edge.root())
    assert len(TESSERA["checkpoints"]) == 16
    for cp in TESSERA["checkpoints"]:
        n = cp["size"]
        assert roots[n].hex() == cp["root_hex"]
        note = Checkpoint(signer.name, n, roots[n]).sign(signer)
        expected = f"{signer.name}\n{n}\n{cp['root_b64']}\n\n\u2014 {signer.name} {cp['signature_b64']}\n"
        assert note == expected
        assert open_checkpoint(note, Verifier.parse(TESSERA["vkey"])).size == n


@pytest.mark.parametrize(
    "body",
    [
        "origin\n01\nAAAA\n",  # leading zero
        "origin\n1\n" + "A" * 44 + "\n",  # not 32 bytes
        "\n1\nAAAA\n",  # empty origin
        "origin\n1\n",  # missing root
        "origin\n-1\n" + "A" * 43 + "=\n",  # negative size
    ],
)
def test_malformed_checkpoint_bodies_are_rejected(body: str) -> None:
    with pytest.raises(CheckpointError):
        parse_body(body)


def test_checkpoint_extension_lines_round_trip() -> None:
    cp = Checkpoint("o", 3, bytes(32), ("ext one",))
    assert parse_body(cp.body) == cp


def test_checkpoint_origin_must_be_the_key_name() -> None:
    signer = Signer.generate("a.example/log")
    note = Checkpoint("b.example/log", 1, bytes(32)).sign(signer)
    with pytest.raises(CheckpointError, match="origin"):
        open_checkpoint(note, signer.verifier)
