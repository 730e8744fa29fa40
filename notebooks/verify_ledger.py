"""台帳の独立検証 An auditor's independent check of the ledger, step by step (marimo).

    python notebooks/verify_ledger.py --ledger demo-out/ledger.db [--vkey "name+hash+key"]
    python notebooks/verify_ledger.py --ledger export.jsonl --checkpoint checkpoint.txt --vkey "..."
    marimo run notebooks/verify_ledger.py -- --ledger demo-out/ledger.db

On purpose this file imports nothing of Kansa: it reads the SQLite file with Python's
sqlite3 (read-only) or the `kansa ledger export` JSON Lines, and checks everything with
hashlib and PyNaCl alone, following the public specifications (C2SP signed-note and
tlog-checkpoint, RFC 6962/9162, RFC 8785 leaves). The inclusion and consistency proofs
are computed here from the leaves, not fetched from Kansa. Copy this one file anywhere.

Script mode prints one line per step and a verdict, and exits 0 when every step holds,
1 when the ledger fails (the first failure named), 2 when it could not check at all
(missing file, not a ledger, a garbage key): one line, never a traceback.
"""

import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium", app_title="台帳の独立検証")

with app.setup:
    import argparse
    import base64
    import binascii
    import hashlib
    import json
    import sqlite3
    import sys
    from dataclasses import dataclass, field
    from pathlib import Path

    import marimo as mo
    from nacl.exceptions import BadSignatureError
    from nacl.signing import VerifyKey

    FOREIGN_KEY = "the signature does not verify with this key 署名がこの検証鍵で検証できません"

    class Unusable(Exception):
        """Could not check at all (exit 2): one line for the user."""

    def leaf_hash(leaf: bytes) -> bytes:
        """RFC 6962 §2.1: SHA-256(0x00 || leaf)."""
        return hashlib.sha256(b"\x00" + leaf).digest()

    def node_hash(left: bytes, right: bytes) -> bytes:
        """RFC 6962 §2.1: SHA-256(0x01 || left || right)."""
        return hashlib.sha256(b"\x01" + left + right).digest()

    def split(n: int) -> int:
        """The largest power of two smaller than n (RFC 6962 §2.1)."""
        k = 1
        while k * 2 < n:
            k *= 2
        return k

    def mth(hashes: list[bytes]) -> bytes:
        """RFC 6962 Merkle tree hash over leaf hashes, level by level (no recursion)."""
        if not hashes:
            return hashlib.sha256(b"").digest()
        level = list(hashes)
        while len(level) > 1:
            nxt = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
            if len(level) % 2:
                nxt.append(level[-1])  # an odd node is carried up as is: the same tree as §2.1's split
            level = nxt
        return level[0]

    def audit_path(m: int, hashes: list[bytes]) -> list[bytes]:
        """RFC 6962 §2.1.1 PATH(m, D[n]), computed here from the leaves."""
        n = len(hashes)
        if n <= 1:
            return []
        k = split(n)
        if m < k:
            return audit_path(m, hashes[:k]) + [mth(hashes[k:])]
        return audit_path(m - k, hashes[k:]) + [mth(hashes[:k])]

    def consistency_path(m: int, hashes: list[bytes], whole: bool = True) -> list[bytes]:
        """RFC 6962 §2.1.2 SUBPROOF(m, D[n], b)."""
        n = len(hashes)
        if m == n:
            return [] if whole else [mth(hashes)]
        k = split(n)
        if m <= k:
            return consistency_path(m, hashes[:k], whole) + [mth(hashes[k:])]
        return consistency_path(m - k, hashes[k:], False) + [mth(hashes[:k])]

    def check_inclusion(index: int, size: int, digest: bytes, proof: list[bytes], root: bytes) -> bool:
        """RFC 9162 §2.1.3.2."""
        if index >= size:
            return False
        fn, sn, r = index, size - 1, digest
        for p in proof:
            if sn == 0:
                return False
            if fn & 1 or fn == sn:
                r = node_hash(p, r)
                if not fn & 1:
                    while fn & 1 == 0 and fn != 0:
                        fn >>= 1
                        sn >>= 1
            else:
                r = node_hash(r, p)
            fn >>= 1
            sn >>= 1
        return sn == 0 and r == root

    def check_consistency(old: int, new: int, old_root: bytes, new_root: bytes, proof: list[bytes]) -> bool:
        """RFC 9162 §2.1.4.2."""
        if old == new:
            return old_root == new_root and not proof
        if old == 0 or old > new or not proof:
            return False
        if old & (old - 1) == 0:  # a power of two: the old root is the first node
            proof = [old_root, *proof]
        fn, sn = old - 1, new - 1
        while fn & 1:
            fn >>= 1
            sn >>= 1
        fr = sr = proof[0]
        for c in proof[1:]:
            if sn == 0:
                return False
            if fn & 1 or fn == sn:
                fr = node_hash(c, fr)
                sr = node_hash(c, sr)
                if not fn & 1:
                    while fn & 1 == 0 and fn != 0:
                        fn >>= 1
                        sn >>= 1
            else:
                sr = node_hash(sr, c)
            fn >>= 1
            sn >>= 1
        return sn == 0 and fr == old_root and sr == new_root

    @dataclass(frozen=True)
    class Vkey:
        name: str
        key_id: bytes
        public_key: bytes
        text: str

    def parse_vkey(text: str) -> Vkey:
        """C2SP signed-note verifier key: name+hex(key hash)+base64(0x01 || Ed25519 public key),
        key hash = SHA-256(name || "\\n" || 0x01 || public key)[:4]."""
        parts = text.strip().split("+", 2)
        bad = f"検証鍵の形式が正しくありません not a verifier key: {text.strip()[:60]!r}"
        if len(parts) != 3 or len(parts[1]) != 8:
            raise Unusable(bad)
        try:
            raw = base64.b64decode(parts[2], validate=True)
            key_id = bytes.fromhex(parts[1])
        except (binascii.Error, ValueError):
            raise Unusable(bad) from None
        if len(raw) != 33 or raw[0] != 1:
            raise Unusable(bad)
        if hashlib.sha256(parts[0].encode() + b"\n" + raw).digest()[:4] != key_id:
            raise Unusable(f"検証鍵のハッシュが合いません the verifier key's hash does not match: {parts[0]}")
        return Vkey(parts[0], key_id, raw[1:], text.strip())

    def open_note(note: str, vkey: Vkey) -> str | None:
        """C2SP signed-note: the body when a signature line by `vkey` verifies, else None."""
        body, sep, sigs = note.partition("\n\n")
        if not sep:
            return None
        body += "\n"
        for line in sigs.splitlines():
            if not line.startswith("— "):
                continue
            signer, _, sig_b64 = line[2:].partition(" ")
            try:
                sig = base64.b64decode(sig_b64, validate=True)
            except binascii.Error:
                continue
            if signer != vkey.name or sig[:4] != vkey.key_id:
                continue
            try:
                VerifyKey(vkey.public_key).verify(body.encode(), sig[4:])
                return body
            except (BadSignatureError, ValueError):
                return None
        return None

    @dataclass
    class Source:
        leaves: list[bytes]
        notes: list[str]  # signed checkpoints, oldest first
        file_vkey: str | None  # the key written in the file (not to be trusted blindly)

    def read_source(path: str, checkpoint_file: str | None = None) -> Source:
        """The leaves and the checkpoints, from the SQLite ledger (read-only) or an export."""
        p = Path(path)
        if not p.is_file():
            raise Unusable(f"台帳ファイルがありません no such file: {path}")
        with p.open("rb") as f:
            head = f.read(16)
        notes: list[str] = []
        if checkpoint_file:
            cp = Path(checkpoint_file)
            if not cp.is_file():
                raise Unusable(f"チェックポイントのファイルがありません no such file: {checkpoint_file}")
            notes.append(cp.read_text("utf-8"))
        if head == b"SQLite format 3\x00":
            try:
                conn = sqlite3.connect(f"file:{p.resolve()}?mode=ro", uri=True)
                try:
                    meta = dict(conn.execute("SELECT key, value FROM meta"))
                    leaves = [
                        bytes(leaf)
                        for (leaf,) in conn.execute("SELECT CAST(leaf AS BLOB) FROM entries ORDER BY idx")
                    ]
                    stored = [note for (note,) in conn.execute("SELECT note FROM checkpoints ORDER BY seq")]
                finally:
                    conn.close()
            except sqlite3.DatabaseError as exc:
                raise Unusable(f"台帳として読めません not a ledger: {path}: {exc}") from None
            return Source(leaves, stored + notes, meta.get("vkey"))
        leaves = []
        try:
            with p.open("rb") as f:
                for n, line in enumerate(f, start=1):
                    if not line.strip():
                        continue
                    item = json.loads(line)
                    if item.get("index") != len(leaves):
                        raise Unusable(
                            f"{path}:{n}: index {item.get('index')} where {len(leaves)} was expected"
                        )
                    leaves.append(base64.b64decode(item["leaf"], validate=True))
        except (ValueError, KeyError, TypeError, AttributeError, binascii.Error) as exc:
            raise Unusable(
                f"台帳の書き出し（JSON Lines）として読めません not a ledger export: {path}: {exc}"
            ) from None
        if not notes:
            raise Unusable(
                "書き出しファイルには --checkpoint（署名付きチェックポイント）も必要です an export needs --checkpoint"
            )
        return Source(leaves, notes, None)

    @dataclass
    class Step:
        title: str
        ok: bool
        detail: str

    @dataclass
    class Verdict:
        vkey: Vkey
        trusted: bool  # the key came from the user, not from the file
        size: int
        steps: list[Step] = field(default_factory=list)
        inclusion: list[tuple[int, bool, int]] = field(default_factory=list)
        consistency: tuple[int, int, bool] | None = None

        @property
        def ok(self) -> bool:
            return all(s.ok for s in self.steps)

        @property
        def line(self) -> str:
            if self.ok:
                return (
                    f"OK 検証に成功しました: {self.size} entries, {sum(1 for s in self.steps)} steps hold"
                    + (
                        ""
                        if self.trusted
                        else " (with the key written in the file: pass --vkey to trust your own)"
                    )
                )
            first = next(s for s in self.steps if not s.ok)
            return f"FAILED 検証に失敗しました: {first.title}: {first.detail}"

    def event_bytes(leaf: bytes) -> bytes:
        """The event's RFC 8785 bytes inside a leaf: keys are sorted, so the leaf reads
        {"event":<event>,"index":... and the event is what lies between."""
        head, tail = b'{"event":', b',"index":'
        end = leaf.rfind(tail)
        if not leaf.startswith(head) or end < 0:
            raise ValueError("not a canonical leaf")
        return leaf[len(head) : end]

    def check_chain(leaves: list[bytes], vkey: Vkey) -> Step:
        """Every leaf: its index, its prev (the previous leaf hash), its signature by a key
        registered before it (or the ledger's own key)."""
        keys = {f"{vkey.name}+{vkey.key_id.hex()}": vkey.public_key}
        prev = bytes(32)
        for i, leaf in enumerate(leaves):
            try:
                value = json.loads(leaf)
                if value["index"] != i:
                    return Step(
                        "ハッシュチェーンと署名 chain and signatures",
                        False,
                        f"entry {i}: index {value['index']}",
                    )
                if base64.b64decode(value["prev"]) != prev:
                    return Step(
                        "ハッシュチェーンと署名 chain and signatures",
                        False,
                        f"entry {i}: prev is not the hash of entry {i - 1}",
                    )
                public = keys.get(value["sig"]["key"])
                if public is None:
                    return Step(
                        "ハッシュチェーンと署名 chain and signatures",
                        False,
                        f"entry {i}: signed by an unknown key {value['sig']['key']}",
                    )
                VerifyKey(public).verify(event_bytes(leaf), base64.b64decode(value["sig"]["ed25519"]))
                event = value["event"]
                if event["type"] == "key.registered":
                    keys[event["data"]["key"]] = base64.b64decode(event["data"]["public_key"])
                elif event["type"] == "key.revoked":
                    keys.pop(event["data"]["key"], None)
            except BadSignatureError:
                return Step("ハッシュチェーンと署名 chain and signatures", False, f"entry {i}: {FOREIGN_KEY}")
            except (ValueError, KeyError, TypeError, binascii.Error) as exc:
                return Step(
                    "ハッシュチェーンと署名 chain and signatures", False, f"entry {i}: unreadable ({exc})"
                )
            prev = leaf_hash(leaf)
        return Step(
            "ハッシュチェーンと署名 chain and signatures",
            True,
            f"{len(leaves)} 件すべて、前の記録のハッシュを持ち、登録済みの鍵で署名されています every entry chains and is signed",
        )

    def verify(path: str, vkey_text: str | None = None, checkpoint_file: str | None = None) -> Verdict:
        source = read_source(path, checkpoint_file)
        if vkey_text is None and source.file_vkey is None:
            raise Unusable("検証鍵を --vkey で渡してください pass the verifier key with --vkey")
        vkey = parse_vkey(vkey_text or source.file_vkey or "")
        hashes = [leaf_hash(leaf) for leaf in source.leaves]
        verdict = Verdict(vkey, vkey_text is not None, len(hashes))
        # Step 1: every checkpoint is signed by the key.
        bodies = []
        for note in source.notes:
            body = open_note(note, vkey)
            if body is None:
                verdict.steps.append(Step("チェックポイントの署名 checkpoint signature", False, FOREIGN_KEY))
                return verdict
            lines = body.splitlines()
            if len(lines) < 3 or lines[0] != vkey.name or not lines[1].isdigit():
                verdict.steps.append(
                    Step("チェックポイントの署名 checkpoint signature", False, "not a checkpoint body")
                )
                return verdict
            bodies.append((int(lines[1]), base64.b64decode(lines[2])))
        if not bodies:
            verdict.steps.append(
                Step(
                    "チェックポイントの署名 checkpoint signature",
                    False,
                    "チェックポイントがありません no checkpoint",
                )
            )
            return verdict
        verdict.steps.append(
            Step(
                "チェックポイントの署名 checkpoint signature",
                True,
                f"{len(bodies)} 件すべて検証鍵の署名が正しい all signed by the key",
            )
        )
        # Step 2: the chain and every entry's signature.
        verdict.steps.append(check_chain(source.leaves, vkey))
        # Step 3: the tree of every checkpoint's size, recomputed from the leaves.
        bad = [(size, root) for size, root in bodies if size > len(hashes) or mth(hashes[:size]) != root]
        verdict.steps.append(
            Step(
                "Merkle 木の根 tree roots",
                not bad,
                f"{len(bodies)} 件のチェックポイントの根が葉（記録）から計算した根と一致 every checkpoint root recomputed"
                if not bad
                else f"記録数 {bad[0][0]} のチェックポイントの根が記録から計算した根と一致しません the root of size {bad[0][0]} does not match the entries",
            )
        )
        size, root = bodies[-1]
        if size <= len(hashes) and size:
            for i in sorted({0, size // 2, size - 1}):
                proof = audit_path(i, hashes[:size])
                verdict.inclusion.append((i, check_inclusion(i, size, hashes[i], proof, root), len(proof)))
        verdict.steps.append(
            Step(
                "包含証明 inclusion proofs",
                bool(verdict.inclusion) and all(ok for _, ok, _ in verdict.inclusion),
                ", ".join(f"#{i} {'OK' if ok else 'FAILED'}" for i, ok, _ in verdict.inclusion) or "none",
            )
        )
        if len(bodies) >= 2 and bodies[0][0] and bodies[0][0] <= size <= len(hashes):
            old, old_root = bodies[0]
            proof = consistency_path(old, hashes[:size])
            verdict.consistency = (old, size, check_consistency(old, size, old_root, root, proof))
            verdict.steps.append(
                Step(
                    "一貫性証明 consistency proof",
                    verdict.consistency[2],
                    f"{old} → {size}: "
                    + ("一貫している consistent" if verdict.consistency[2] else "NOT consistent"),
                )
            )
        return verdict

    def main(argv: list[str]) -> int:
        parser = argparse.ArgumentParser(
            prog="verify_ledger.py", description="台帳の独立検証 An auditor's independent check of the ledger"
        )
        parser.add_argument(
            "--ledger", required=True, help="台帳 the ledger file (SQLite) or its export (JSON Lines)"
        )
        parser.add_argument(
            "--vkey", help="信頼する検証鍵 the verifier key you trust (default: the one in the file)"
        )
        parser.add_argument(
            "--checkpoint",
            help="署名付きチェックポイントのファイル a signed checkpoint kept outside the ledger",
        )
        args = parser.parse_args(argv)
        try:
            verdict = verify(args.ledger, args.vkey, args.checkpoint)
        except Unusable as exc:
            print(f"検証できません cannot check: {exc}", file=sys.stderr)
            return 2
        for step in verdict.steps:
            print(f"{'✔' if step.ok else '✘'} {step.title}: {step.detail}")
        print(verdict.line)
        return 0 if verdict.ok else 1


@app.cell
def arguments():
    parser = argparse.ArgumentParser(
        prog="verify_ledger.py", description="台帳の独立検証 An auditor's independent check of the ledger"
    )
    parser.add_argument("--ledger", help="台帳 the ledger file")
    parser.add_argument("--vkey", help="信頼する検証鍵 the verifier key you trust")
    parser.add_argument("--checkpoint", help="署名付きチェックポイント a signed checkpoint file")
    args, _unknown = parser.parse_known_args(sys.argv[1:])
    return (args,)


@app.cell
def inputs(args):
    ledger_input = mo.ui.text(value=args.ledger or "", label="台帳 ledger", full_width=True)
    vkey_input = mo.ui.text(
        value=args.vkey or "",
        label="検証鍵 verifier key (空欄=ファイル内の鍵 blank = the file's own)",
        full_width=True,
    )
    checkpoint_input = mo.ui.text(
        value=args.checkpoint or "", label="チェックポイント checkpoint file", full_width=True
    )
    mo.vstack(
        [mo.md("# 台帳の独立検証 Independent verification"), ledger_input, vkey_input, checkpoint_input]
    )
    return checkpoint_input, ledger_input, vkey_input


@app.cell
def chosen(checkpoint_input, ledger_input, vkey_input):
    ledger_path = ledger_input.value.strip()
    trusted_vkey = vkey_input.value.strip() or None
    checkpoint_file = checkpoint_input.value.strip() or None
    return checkpoint_file, ledger_path, trusted_vkey


@app.cell
def run(checkpoint_file, ledger_path, trusted_vkey):
    mo.stop(not ledger_path, mo.md("台帳のファイルを入力してください。 Enter a ledger file."))
    try:
        verdict = verify(ledger_path, trusted_vkey, checkpoint_file)
        problem = None
    except Unusable as _exc:
        verdict, problem = None, str(_exc)
    mo.stop(problem is not None, mo.md(f"**検証できません cannot check:** {problem}"))
    return (verdict,)


@app.cell
def step1(verdict):
    _warn = (
        ""
        if verdict.trusted
        else "<p><b>注意 Note:</b> 信頼する検証鍵が与えられていないため、ファイル内の鍵を使います。本番では市が別経路で受け取った鍵を --vkey に渡してください。"
        " No trusted key given, so the file's own key is used; in earnest, pass the key the city received out of band.</p>"
    )
    mo.Html(
        "<h2>手順1 検証鍵 Step 1: the verifier key</h2>"
        "<p>C2SP の検証鍵は「名前+鍵ハッシュ8桁+base64(0x01‖公開鍵)」。名前は台帳のオリジン（台帳の名前）です。"
        " A C2SP verifier key is name+hash+base64(0x01 || public key); the name is the ledger's origin (its name).</p>"
        f"<pre>{verdict.vkey.text}</pre>{_warn}"
    )
    return


@app.cell
def steps(verdict):
    _rows = "".join(
        f"<tr><td>{s.title}</td><td>{'✔' if s.ok else '✘'}</td><td>{s.detail}</td></tr>"
        for s in verdict.steps
    )
    _inc = "".join(
        f"<tr><td>{i}</td><td>{n}</td><td>{'✔ OK' if ok else '✘ FAILED'}</td></tr>"
        for i, ok, n in verdict.inclusion
    )
    mo.Html(
        "<h2>手順2 検証 Step 2: the checks</h2>"
        "<p>チェックポイントの署名（C2SP signed-note）、記録のハッシュチェーンと各記録の署名、"
        "記録から計算し直した Merkle 木の根（RFC 6962）、包含証明と一貫性証明（RFC 9162、ここで記録から計算）。"
        " Checkpoint signatures, the chain and every entry's signature, the tree root recomputed from the entries,"
        " inclusion and consistency proofs computed here from the entries.</p>"
        f'<table class="kansa"><tr><th>手順 step</th><th>結果</th><th>内容 detail</th></tr>{_rows}</table>'
        "<h3>包含証明 Inclusion proofs</h3>"
        f'<table class="kansa"><tr><th>台帳番号 index</th><th>パスの長さ path length</th><th>結果 result</th></tr>{_inc}</table>'
    )
    return


@app.cell
def summary(verdict):
    all_ok = verdict.ok
    signature_ok = verdict.steps[0].ok
    inclusion = verdict.inclusion
    consistency = verdict.consistency
    mo.Html(
        "<h2>まとめ Summary</h2>"
        + (
            f"<p>✔ {verdict.line}</p>"
            if all_ok
            else f"<p><b>✘ {verdict.line}<br>台帳を信頼しないでください。 Do not rely on this ledger.</b></p>"
        )
    )
    return all_ok, consistency, inclusion, signature_ok


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
