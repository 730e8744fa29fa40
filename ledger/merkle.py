"""RFC 6962 Merkle tree hashes, proofs, and their verification (RFC 9162 §2.1).

Proofs are generated from a `NodeReader`: any function that returns the hash of
a *perfect* subtree, addressed by (level, index) as in Go's sumdb/tlog, where
level 0 holds the leaf hashes and node (l, i) covers leaves [i*2**l, (i+1)*2**l).
The store keeps exactly those nodes, so every proof needs O(log n) reads.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

NodeReader = Callable[[int, int], bytes]


class ProofError(ValueError):
    """A proof that does not verify, or a request for one that cannot exist."""


def leaf_hash(leaf: bytes) -> bytes:
    # The 0x00 / 0x01 prefixes keep leaves and interior nodes apart, so a leaf
    # can never be passed off as a node (second-preimage resistance, RFC 6962 §2.1).
    return hashlib.sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _largest_power_of_two_below(n: int) -> int:
    """k with k < n <= 2k, for n > 1 (the split point of RFC 6962 §2.1)."""
    return 1 << ((n - 1).bit_length() - 1)


def subtree_hash(read: NodeReader, lo: int, hi: int) -> bytes:
    """MTH(D[lo:hi]) for a subtree that RFC 6962's recursion can produce.

    Such a range starts at a multiple of the largest power of two not above
    its size, so it is a perfect stored node or splits into one on the left.
    """
    size = hi - lo
    if size <= 0:
        raise ProofError("empty subtree")
    if size & (size - 1) == 0 and lo % size == 0:
        level = size.bit_length() - 1
        return read(level, lo >> level)
    k = _largest_power_of_two_below(size)
    return node_hash(subtree_hash(read, lo, lo + k), subtree_hash(read, lo + k, hi))


def root_hash(read: NodeReader, size: int) -> bytes:
    """MTH of the first `size` leaves."""
    if size == 0:
        return EMPTY_ROOT
    return subtree_hash(read, 0, size)


def perfect_subtrees(size: int) -> list[tuple[int, int]]:
    """(level, index) of the perfect subtrees that make up a tree of `size`, left to right."""
    nodes = []
    offset = 0
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            nodes.append((level, offset >> level))
            offset += 1 << level
    return nodes


def fold_right(hashes: Sequence[bytes]) -> bytes:
    """The root over a tree's perfect subtrees (left to right): fold from the right."""
    if not hashes:
        return EMPTY_ROOT
    root = hashes[-1]
    for h in reversed(hashes[:-1]):
        root = node_hash(h, root)
    return root


def root_of(hashes: Sequence[bytes]) -> bytes:
    """MTH over a whole list of leaf hashes, level by level (faster than a CompactRange
    leaf by leaf when all of them are at hand): the perfect subtrees of the size, folded."""
    if not hashes:
        return EMPTY_ROOT
    subtrees = []
    offset = 0
    for level in range(len(hashes).bit_length() - 1, -1, -1):
        width = 1 << level
        if len(hashes) & width:
            layer = list(hashes[offset : offset + width])
            while len(layer) > 1:
                layer = [node_hash(layer[i], layer[i + 1]) for i in range(0, len(layer), 2)]
            subtrees.append(layer[0])
            offset += width
    return fold_right(subtrees)


def inclusion_proof(read: NodeReader, index: int, size: int) -> list[bytes]:
    """PATH(index, D[0:size]) of RFC 6962 §2.1.1, leaf to root."""
    if not 0 <= index < size:
        raise ProofError(f"index {index} is not below tree size {size}")
    proof: list[bytes] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _largest_power_of_two_below(hi - lo)
        if index < lo + k:
            proof.append(subtree_hash(read, lo + k, hi))
            hi = lo + k
        else:
            proof.append(subtree_hash(read, lo, lo + k))
            lo = lo + k
    proof.reverse()
    return proof


def consistency_proof(read: NodeReader, old: int, new: int) -> list[bytes]:
    """PROOF(old, D[0:new]) of RFC 6962 §2.1.2."""
    if not 0 < old <= new:
        raise ProofError(f"no consistency proof from size {old} to size {new} (need 0 < old <= new)")
    proof: list[bytes] = []
    lo, hi, m, complete = 0, new, old, True
    while m != hi - lo:
        k = _largest_power_of_two_below(hi - lo)
        if m <= k:
            proof.append(subtree_hash(read, lo + k, hi))
            hi = lo + k
        else:
            proof.append(subtree_hash(read, lo, lo + k))
            lo, m, complete = lo + k, m - k, False
    if not complete:
        proof.append(subtree_hash(read, lo, hi))
    proof.reverse()
    return proof


def _check_hash_sizes(hashes: Sequence[bytes]) -> None:
    if any(len(h) != HASH_SIZE for h in hashes):
        raise ProofError(f"every hash in a proof has {HASH_SIZE} bytes")


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes) -> None:
    """RFC 9162 §2.1.3.2; raises ProofError unless `leaf` (a leaf hash) is at `index`."""
    if not 0 <= index < size:
        raise ProofError(f"index {index} is not below tree size {size}")
    _check_hash_sizes([leaf, *proof])
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ProofError("inclusion proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("inclusion proof is shorter than the tree is deep")
    if r != root:
        raise ProofError("inclusion proof does not lead to the root")


def verify_consistency(old: int, new: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]) -> None:
    """RFC 9162 §2.1.4.2; raises ProofError unless the tree of `old` is a prefix of `new`."""
    if old > new:
        raise ProofError(f"old size {old} is larger than new size {new}")
    if old == 0:
        # Every tree extends the empty one: such a proof would prove nothing.
        raise ProofError("a consistency proof from the empty tree is meaningless")
    if old == new:
        if proof:
            raise ProofError("equal sizes need an empty proof")
        if old_root != new_root:
            raise ProofError("equal sizes but different roots")
        return
    if not proof:
        raise ProofError("empty consistency proof")
    _check_hash_sizes(proof)
    path = list(proof)
    if old & (old - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old - 1, new - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("consistency proof is too short")
    if fr != old_root:
        raise ProofError("consistency proof does not lead to the old root")
    if sr != new_root:
        raise ProofError("consistency proof does not lead to the new root")


class CompactRange:
    """The right edge of a growing tree: one perfect subtree hash per set bit of its size.

    Appending a leaf merges equal-sized neighbours (O(log n) amortised O(1)) and
    reports every perfect node it completes, so the store can keep them.
    """

    __slots__ = ("size", "hashes")

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        if len(hashes) != bin(size).count("1"):
            raise ValueError("a compact range needs one hash per set bit of its size")
        self.size = size
        self.hashes = list(hashes)

    def copy(self) -> CompactRange:
        return CompactRange(self.size, self.hashes)

    def append(self, leaf_hash_: bytes) -> list[tuple[int, int, bytes]]:
        """Adds a leaf hash; returns the completed interior nodes (level >= 1, index, hash)."""
        return self.append_node(0, leaf_hash_)

    def append_node(self, level: int, digest: bytes) -> list[tuple[int, int, bytes]]:
        """Adds a whole perfect subtree of 2**level leaves; the size must be a multiple of it."""
        if self.size % (1 << level):
            raise ValueError(f"a subtree of level {level} cannot start at leaf {self.size}")
        added = 1 << level
        index = self.size >> level
        h = digest
        completed = []
        while index & 1:
            h = node_hash(self.hashes.pop(), h)
            level += 1
            index >>= 1
            completed.append((level, index, h))
        self.hashes.append(h)
        self.size += added
        return completed

    def root(self) -> bytes:
        return fold_right(self.hashes)
