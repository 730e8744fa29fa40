"""C2SP tlog-policy files: the spec's example policy, its quorum rules, and what the format forbids."""

from __future__ import annotations

import json

import pytest
from conftest import VECTORS

from ledger import Checkpoint, Signer
from ledger.cosignature import Cosigner, add_signatures
from ledger.note import NoteError
from ledger.policy import PolicyError, parse_policy

SPEC = json.loads((VECTORS / "c2sp_witness.json").read_text())
LOG = Signer.generate("example.com/log")
COSIGNERS = {
    name: Cosigner.generate(f"{name.lower()}.example/w") for name in ("X1", "X2", "X3", "Y1", "Y2", "Y3")
}


def spec_policy() -> str:
    """The spec's example with real keys in place of its elided `<vkey>`s."""
    lines = []
    for line in SPEC["policy_example"].splitlines():
        if line.startswith("log "):
            line = f"log {LOG.verifier.vkey}"
        elif line.startswith("witness "):
            name = line.split()[1]
            line = f"witness {name} {COSIGNERS[name].key.vkey}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def cosigned_by(*names: str) -> str:
    body = Checkpoint("example.com/log", 5, bytes(32)).body
    note = Checkpoint("example.com/log", 5, bytes(32)).sign(LOG)
    return add_signatures(note, [COSIGNERS[n].cosign(body, 1_700_000_000) for n in names])


@pytest.mark.parametrize(
    ("cosigners", "met"),
    [
        (("X1", "X2", "Y3"), True),
        (("X1", "X3", "Y1", "Y2"), True),
        (("X1", "Y1", "Y2", "Y3"), False),  # only one of the X witnesses
        (("X1", "X2", "X3"), False),  # none of the Y witnesses
        ((), False),
    ],
)
def test_the_spec_example_quorum(cosigners: tuple[str, ...], met: bool) -> None:
    policy = parse_policy(spec_policy())
    checked = policy.check(cosigned_by(*cosigners))
    assert checked.cosigners == tuple(sorted(cosigners)) and checked.met is met
    assert checked.checkpoint.size == 5


def test_quorum_none_and_a_single_witness() -> None:
    assert parse_policy(f"log {LOG.verifier.vkey}\nquorum none\n").check(cosigned_by()).met
    one = parse_policy(f"witness X1 {COSIGNERS['X1'].key.vkey} http://w.example\t\nquorum X1\n  # c\n")
    assert one.witnesses["X1"].url == "http://w.example"
    assert one.satisfied_by({"X1"}) and not one.satisfied_by(set())


def test_a_bad_cosignature_by_a_policy_witness_is_refused() -> None:
    policy = parse_policy(spec_policy())
    note = cosigned_by("X1", "X2", "Y1")
    sig = note.split("\n— x1.example/w ")[1].split("\n")[0]
    flipped = sig[:40] + ("A" if sig[40] != "A" else "B") + sig[41:]  # in the signature, past id and time
    forged = note.replace(sig, flipped)
    with pytest.raises(NoteError):
        policy.check(forged)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("witness A {x1}\n", "no quorum"),
        ("quorum A\n", "not defined"),
        ("witness A {x1}\ngroup G 2 A\nquorum G\n", "threshold"),
        ("witness A {x1}\ngroup G ¹ A\nquorum G\n", "threshold"),  # a digit to str.isdigit, not to int
        ("witness A {x1}\ngroup G any A A\nquorum G\n", "twice"),
        ("witness A {x1}\nwitness B {x1}\nquorum A\n", "duplicate key"),
        ("witness A {x1}\nwitness A {x2}\nquorum A\n", "already defined"),
        ("witness none {x1}\nquorum none\n", "already defined"),
        ("quorum none\nquorum none\n", "second quorum"),
        ("witness A {log}\nquorum A\n", "algorithm 1 is not 4"),
        ("log {x1}\nquorum none\n", "algorithm"),
        ("frobnicate\nquorum none\n", "not a policy line"),
        ("quorum none\x0b\n", "control character"),
    ],
)
def test_what_the_format_forbids(text: str, message: str) -> None:
    text = text.format(x1=COSIGNERS["X1"].key.vkey, x2=COSIGNERS["X2"].key.vkey, log=LOG.verifier.vkey)
    with pytest.raises(PolicyError, match=message):
        parse_policy(text)
