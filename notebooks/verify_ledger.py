"""台帳の独立検証 An auditor's independent check of the ledger, step by step (marimo).

    python notebooks/verify_ledger.py --ledger demo-out/ledger.db [--vkey "name+hash+key"]
    marimo run notebooks/verify_ledger.py -- --ledger demo-out/ledger.db

Each step is computed here with hashlib and PyNaCl only, following the public
specifications (C2SP signed-note and tlog-checkpoint, RFC 6962/9162), not with
Kansa's own verification code: the point is not to trust it. The database is
opened read-only.
"""

import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium", app_title="台帳の独立検証")

with app.setup:
    import argparse
    import base64
    import hashlib
    import sqlite3
    import sys

    import marimo as mo
    from nacl.exceptions import BadSignatureError
    from nacl.signing import VerifyKey

    from ledger import Ledger  # only to fetch proofs, as `kansa ledger prove` would print them

    def leaf_hash(leaf: bytes) -> bytes:
        """RFC 6962 §2.1: SHA-256(0x00 || leaf)."""
        return hashlib.sha256(b"\x00" + leaf).digest()

    def node_hash(left: bytes, right: bytes) -> bytes:
        return hashlib.sha256(b"\x01" + left + right).digest()

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

    def open_note(note: str, vkey: str) -> tuple[bool, str]:
        """C2SP signed-note: is there a valid Ed25519 signature by `vkey` over the body?"""
        name, key_id, key_b64 = vkey.split("+", 2)
        raw = base64.b64decode(key_b64)
        body, _, sigs = note.partition("\n\n")
        body += "\n"
        for line in sigs.splitlines():
            if not line.startswith("— "):
                continue
            signer, _, sig_b64 = line[2:].partition(" ")
            sig = base64.b64decode(sig_b64)
            if signer != name or sig[:4].hex() != key_id:
                continue
            try:
                VerifyKey(raw[1:]).verify(body.encode(), sig[4:])
                return True, body
            except BadSignatureError:
                return False, body
        return False, body


@app.cell
def arguments():
    parser = argparse.ArgumentParser(
        prog="verify_ledger.py", description="台帳の独立検証 An auditor's independent check of the ledger"
    )
    parser.add_argument("--ledger", help="台帳 the ledger file")
    parser.add_argument(
        "--vkey",
        help="信頼する検証鍵 the verifier key you trust (default: the one in the file, flagged as such)",
    )
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
    mo.vstack([mo.md("# 台帳の独立検証 Independent verification"), ledger_input, vkey_input])
    return ledger_input, vkey_input


@app.cell
def chosen(ledger_input, vkey_input):
    ledger_path = ledger_input.value.strip()
    trusted_vkey = vkey_input.value.strip() or None
    return ledger_path, trusted_vkey


@app.cell
def opened(ledger_path):
    mo.stop(not ledger_path, mo.md("台帳のファイルを入力してください。 Enter a ledger file."))
    conn = sqlite3.connect(f"file:{ledger_path}?mode=ro", uri=True)
    meta = dict(conn.execute("SELECT key, value FROM meta"))
    checkpoints = conn.execute("SELECT size, note FROM checkpoints ORDER BY seq").fetchall()
    size = conn.execute("SELECT count(*) FROM entries").fetchone()[0]
    return checkpoints, conn, meta, size


@app.cell
def step1(meta, trusted_vkey):
    vkey = trusted_vkey or meta["vkey"]
    _warn = (
        ""
        if trusted_vkey
        else "<p><b>注意 Note:</b> 信頼する検証鍵が与えられていないため、ファイル内の鍵を使います。本番では市が別経路で受け取った鍵を --vkey に渡してください。"
        " No trusted key given, so the file's own key is used; in earnest, pass the key the city received out of band.</p>"
    )
    mo.Html(
        "<h2>手順1 検証鍵 Step 1: the verifier key</h2>"
        "<p>C2SP の検証鍵は「名前+鍵ハッシュ8桁+base64(0x01‖公開鍵)」。名前は台帳のオリジンです。"
        " A C2SP verifier key is name+hash+base64(0x01 || public key); the name is the ledger's origin.</p>"
        f"<pre>{vkey}</pre>{_warn}"
    )
    return (vkey,)


@app.cell
def step2(checkpoints, vkey):
    mo.stop(not checkpoints, mo.md("チェックポイントがまだありません。 No checkpoint yet."))
    latest_note = checkpoints[-1][1]
    signature_ok, _body = open_note(latest_note, vkey)
    _origin, _size, _root = _body.splitlines()[:3]
    latest = {"size": int(_size), "root": base64.b64decode(_root)}
    mo.Html(
        "<h2>手順2 チェックポイントの署名 Step 2: the checkpoint's signature</h2>"
        "<p>最新のチェックポイント。本文（オリジン・記録数・根ハッシュ）に対する Ed25519 署名を検証鍵で確かめます。"
        " The latest checkpoint: its body (origin, size, root) must carry a valid Ed25519 signature by the key.</p>"
        f"<pre>{latest_note}</pre>"
        + (
            "<p>✔ 署名は正しい signature valid</p>"
            if signature_ok
            else "<p><b>✘ 署名が正しくありません INVALID SIGNATURE</b></p>"
        )
    )
    return latest, signature_ok


@app.cell
def step3(conn, latest, ledger_path):
    _size = latest["size"]
    _picks = sorted({0, _size // 2, _size - 1}) if _size else []
    inclusion = []
    with Ledger.open(ledger_path, readonly=True) as _ledger:
        for _i in _picks:
            # The proof comes from the ledger (`kansa ledger prove`); the check below does not.
            _proof = _ledger.inclusion_proof(_i, _size)
            _leaf = conn.execute("SELECT leaf FROM entries WHERE idx = ?", (_i,)).fetchone()[0].encode()
            inclusion.append(
                (_i, check_inclusion(_i, _size, leaf_hash(_leaf), _proof, latest["root"]), len(_proof))
            )
    _rows = "".join(
        f"<tr><td>{i}</td><td>{n}</td><td>{'✔ OK' if ok else '✘ FAILED'}</td></tr>" for i, ok, n in inclusion
    )
    mo.Html(
        "<h2>手順3 包含証明 Step 3: inclusion proofs</h2>"
        "<p>記録の葉を SHA-256(0x00‖葉) でハッシュし、監査パスを RFC 9162 §2.1.3.2 の手順でたどって、署名済みの根と一致するか。"
        " Hash each leaf, fold its audit path as RFC 9162 says, and compare with the signed root.</p>"
        f'<table class="kansa"><tr><th>台帳番号 index</th><th>パスの長さ path length</th><th>結果 result</th></tr>{_rows}</table>'
    )
    return (inclusion,)


@app.cell
def step4(checkpoints, latest, ledger_path, vkey):
    consistency = None
    if len(checkpoints) >= 2:
        _old_ok, _old_body = open_note(checkpoints[0][1], vkey)
        _old_size, _old_root = int(_old_body.splitlines()[1]), base64.b64decode(_old_body.splitlines()[2])
        with Ledger.open(ledger_path, readonly=True) as _ledger:
            _proof = _ledger.consistency_proof(_old_size, latest["size"]) if _old_size else []
        consistency = (
            _old_size,
            latest["size"],
            _old_ok
            and (
                _old_size == 0
                or check_consistency(_old_size, latest["size"], _old_root, latest["root"], _proof)
            ),
        )
        _text = (
            f"<p>最初のチェックポイント（{_old_size} 件）と最新（{latest['size']} 件）: "
            + ("✔ 一貫している consistent" if consistency[2] else "<b>✘ 一貫していない NOT consistent</b>")
            + "</p>"
        )
    else:
        _text = "<p>チェックポイントが1つだけなので、この手順は次のチェックポイントの後で。 Only one checkpoint so far.</p>"
    mo.Html(
        "<h2>手順4 一貫性証明 Step 4: a consistency proof</h2>"
        "<p>古いチェックポイントの木が新しい木の先頭部分そのままであること（書き換え・削除がないこと）を RFC 9162 §2.1.4.2 で確かめます。"
        " The older tree must be a prefix of the newer one: nothing rewritten or removed.</p>" + _text
    )
    return (consistency,)


@app.cell
def summary(consistency, inclusion, signature_ok, size):
    all_ok = signature_ok and all(ok for _, ok, _ in inclusion) and (consistency is None or consistency[2])
    mo.Html(
        "<h2>まとめ Summary</h2>"
        + (
            f"<p>✔ すべての手順が成立しました（台帳の記録数 {size}）。全記録の検証は <code>kansa ledger verify</code>、"
            "または Go の sumdb/tlog など別の実装で。 Every step holds; for all entries run kansa ledger verify or another implementation.</p>"
            if all_ok
            else "<p><b>✘ 成立しない手順があります。台帳を信頼しないでください。 A step failed: do not rely on this ledger.</b></p>"
        )
    )
    return (all_ok,)


if __name__ == "__main__":
    app.run()
