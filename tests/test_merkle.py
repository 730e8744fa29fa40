"""RFC 6962 tree hashes and proofs, against published vectors and as properties."""

from __future__ import annotations

import base64
import json

import pytest
from conftest import VECTORS
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import merkle

RFC = json.loads((VECTORS / "rfc6962.json").read_text())
LEAVES = [bytes.fromhex(x) for x in RFC["leaves_hex"]]


def tree(leaves: list[bytes]) -> tuple[merkle.NodeReader, list[bytes]]:
    """Builds the stored nodes the way the ledger does: a compact range over the leaf hashes."""
    nodes: dict[tuple[int, int], bytes] = {}
    edge = merkle.CompactRange()
    roots = [merkle.EMPTY_ROOT]
    for i, leaf in enumerate(leaves):
        digest = merkle.leaf_hash(leaf)
        nodes[(0, i)] = digest
        for level, idx, h in edge.append(digest):
            nodes[(level, idx)] = h
        roots.append(edge.root())
    return (lambda level, idx: nodes[(level, idx)]), roots


def test_node_hashes_and_roots_match_rfc6962_vectors() -> None:
    read, roots = tree(LEAVES)
    for level, row in enumerate(RFC["level0_to_3_hex"]):
        assert [read(level, i).hex() for i in range(len(row))] == row
    assert [r.hex() for r in roots] == RFC["roots_hex"]
    for n in range(9):
        assert merkle.root_hash(read, n).hex() == RFC["roots_hex"][n]


@pytest.mark.parametrize("case", RFC["inclusion"], ids=lambda c: f"{c['index']}@{c['size']}")
def test_inclusion_vectors(case: dict) -> None:
    read, roots = tree(LEAVES)
    proof = merkle.inclusion_proof(read, case["index"], case["size"])
    assert [p.hex() for p in proof] == case["proof"]
    merkle.verify_inclusion(
        case["index"], case["size"], merkle.leaf_hash(LEAVES[case["index"]]), proof, roots[case["size"]]
    )


@pytest.mark.parametrize("case", RFC["consistency"], ids=lambda c: f"{c['old']}to{c['new']}")
def test_consistency_vectors(case: dict) -> None:
    read, roots = tree(LEAVES)
    proof = merkle.consistency_proof(read, case["old"], case["new"])
    assert [p.hex() for p in proof] == case["proof"]
    merkle.verify_consistency(case["old"], case["new"], roots[case["old"]], roots[case["new"]], proof)


def _b64(s: str) -> bytes:
    return base64.b64decode(s)


PROBES = sorted((VECTORS / "merkle-testdata").rglob("*.json"))


@pytest.mark.parametrize("path", PROBES, ids=lambda p: str(p.relative_to(VECTORS / "merkle-testdata")))
def test_transparency_dev_probes(path) -> None:
    probe = json.loads(path.read_text())
    proof = [_b64(p) for p in probe.get("proof") or []]
    if "leafIdx" in probe:
        check = lambda: merkle.verify_inclusion(  # noqa: E731
            probe["leafIdx"], probe["treeSize"], _b64(probe["leafHash"]), proof, _b64(probe["root"])
        )
    else:
        check = lambda: merkle.verify_consistency(  # noqa: E731
            probe["size1"], probe["size2"], _b64(probe["root1"]), _b64(probe["root2"]), proof
        )
    if probe["wantErr"]:
        with pytest.raises(merkle.ProofError):
            check()
    else:
        check()


def test_there_are_probes_of_both_kinds() -> None:
    kinds = {p.relative_to(VECTORS / "merkle-testdata").parts[0] for p in PROBES}
    assert kinds == {"inclusion", "consistency"} and len(PROBES) > 150


BIG = [i.to_bytes(4, "big") for i in range(2500)]
BIG_READ, BIG_ROOTS = tree(BIG)


def flip(h: bytes, bit: int) -> bytes:
    b = bytearray(h)
    b[bit // 8 % len(b)] ^= 1 << (bit % 8)
    return bytes(b)


@settings(max_examples=150, deadline=None)
@given(
    st.integers(1, len(BIG)).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n - 1))),
    st.integers(0, 10**6),
)
def test_every_inclusion_proof_verifies_and_any_alteration_fails(size_index, noise) -> None:
    size, index = size_index
    proof = merkle.inclusion_proof(BIG_READ, index, size)
    leaf, root = merkle.leaf_hash(BIG[index]), BIG_ROOTS[size]
    merkle.verify_inclusion(index, size, leaf, proof, root)
    with pytest.raises(merkle.ProofError):
        merkle.verify_inclusion(index, size, flip(leaf, noise), proof, root)
    with pytest.raises(merkle.ProofError):
        merkle.verify_inclusion(index, size, leaf, proof, flip(root, noise))
    if proof:
        k = noise % len(proof)
        altered = proof[:k] + [flip(proof[k], noise)] + proof[k + 1 :]
        with pytest.raises(merkle.ProofError):
            merkle.verify_inclusion(index, size, leaf, altered, root)
    other_index = (index + 1 + noise % size) % size
    if other_index != index:
        with pytest.raises(merkle.ProofError):
            merkle.verify_inclusion(other_index, size, leaf, proof, root)
    # A size is bound by the signed checkpoint that carries its root, so an altered
    # size is checked against the root of that size (with the same root, a size whose
    # path has the same shape would verify: that is not a proof of anything).
    other_size = index + 1 + noise % (len(BIG) - index)
    if other_size != size:
        with pytest.raises(merkle.ProofError):
            merkle.verify_inclusion(index, other_size, leaf, proof, BIG_ROOTS[other_size])


@settings(max_examples=150, deadline=None)
@given(
    st.integers(1, len(BIG)).flatmap(lambda n: st.tuples(st.integers(1, n), st.just(n))),
    st.integers(0, 10**6),
)
def test_every_consistency_proof_verifies_and_any_alteration_fails(sizes, noise) -> None:
    old, new = sizes
    proof = merkle.consistency_proof(BIG_READ, old, new)
    r1, r2 = BIG_ROOTS[old], BIG_ROOTS[new]
    merkle.verify_consistency(old, new, r1, r2, proof)
    with pytest.raises(merkle.ProofError):
        merkle.verify_consistency(old, new, flip(r1, noise), r2, proof)
    with pytest.raises(merkle.ProofError):
        merkle.verify_consistency(old, new, r1, flip(r2, noise), proof)
    if proof:
        k = noise % len(proof)
        altered = proof[:k] + [flip(proof[k], noise)] + proof[k + 1 :]
        with pytest.raises(merkle.ProofError):
            merkle.verify_consistency(old, new, r1, r2, altered)
    if old < new:
        other = 1 + (old + noise) % (new - 1) if new > 2 else None
        if other is not None and other != old and BIG_ROOTS[other] != r1:
            with pytest.raises(merkle.ProofError):
                merkle.verify_consistency(other, new, r1, r2, proof)


def test_compact_range_append_node_equals_leaf_by_leaf() -> None:
    by_leaf, by_node = merkle.CompactRange(), merkle.CompactRange()
    hashes = [merkle.leaf_hash(b) for b in BIG[:64]]
    for h in hashes:
        by_leaf.append(h)
    for k in range(0, 64, 16):
        sub = merkle.CompactRange()
        for h in hashes[k : k + 16]:
            sub.append(h)
        by_node.append_node(4, sub.root())
    assert by_node.size == by_leaf.size == 64 and by_node.root() == by_leaf.root()
    with pytest.raises(ValueError):
        merkle.CompactRange(3, by_leaf.hashes[:2]).append_node(2, hashes[0])


def test_root_of_a_whole_list_equals_the_compact_range() -> None:
    for n in (0, 1, 2, 3, 5, 8, 13, 64, 100, 1000, 2500):
        assert merkle.root_of([merkle.leaf_hash(b) for b in BIG[:n]]) == BIG_ROOTS[n]
