"""Talk scripts, manuals and FAQs as the manager loads them, and the steps of a talk script.

A version is a file (Markdown or plain text). The city approves its SHA-256
(`document.approved`); the console shows operators only an approved version.
In a talk script, numbered lines (`1.`, `2)`, `３．` ...) are the steps: the
operator ticks them as the call goes, and reaching the last one is what
`script: completed` means.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
import threading
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from pathlib import Path

MAX_BYTES = 1024 * 1024  # a talk script, a manual or an FAQ as text
KINDS = {"talk_script": "トークスクリプト", "manual": "業務マニュアル", "faq": "FAQ"}

SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    kind TEXT NOT NULL,
    version TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    filename TEXT NOT NULL,
    text TEXT NOT NULL,
    loaded_by TEXT NOT NULL,
    loaded_at TEXT NOT NULL,
    PRIMARY KEY (kind, version)
)
"""

_STEP = re.compile(r"^\s*(?:[-*]\s*)?(\d+)\s*[.)、．）]\s*(.+?)\s*$")


class DocumentError(Exception):
    pass


@dataclass(frozen=True)
class Document:
    kind: str
    version: str
    sha256: str
    filename: str
    text: str
    loaded_by: str
    loaded_at: str

    @cached_property
    def steps(self) -> list[str]:
        return script_steps(self.text)

    @property
    def title(self) -> str:
        for line in self.text.splitlines():
            if line.strip():
                return line.strip().lstrip("#").strip()
        return self.filename


def script_steps(text: str) -> list[str]:
    """The numbered steps of a talk script, in order (full-width digits read as digits). A step's
    words are shown as the city approved them: only its number is read, nothing normalized (NFKC
    made "名乗り：「…」（…）" read "名乗り:「…」(…)" on the operator's screen)."""
    steps = []
    for line in text.splitlines():
        match = _STEP.match(line)
        if match:
            steps.append(match.group(2))
    return steps


class Documents:
    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(folder / "documents.db", isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(SCHEMA)
        self._lock = threading.Lock()
        # A version, once loaded, never changes (kind and version are its key): every page
        # asks for the approved talk script, read once here.
        self._loaded: dict[tuple[str, str], Document] = {}

    def close(self) -> None:
        self._db.close()

    def load(self, kind: str, version: str, filename: str, raw: bytes, *, by: str, now: datetime) -> Document:
        if kind not in KINDS:
            raise DocumentError("種類を選んでください")
        version = version.strip()
        if not version or len(version) > 40:
            raise DocumentError("版（40文字まで）を入力してください")
        if "/" in version:  # it names the document's page, /documents/KIND/VERSION
            raise DocumentError("版に「/」は使えません")
        if len(raw) > MAX_BYTES:  # a talk script's steps are a checklist on every call page
            raise DocumentError("ファイルが大きすぎます（1 MB まで）")
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise DocumentError("UTF-8 のテキストファイルを選んでください") from exc
        if not text.strip():
            raise DocumentError("ファイルが空です")
        if kind == "talk_script" and not script_steps(text):
            raise DocumentError("番号付きの手順（「1. …」）がありません")
        doc = Document(kind, version, hashlib.sha256(raw).hexdigest(), filename, text, by, now.isoformat())
        with self._lock:
            try:
                self._db.execute(
                    "INSERT INTO documents VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (doc.kind, doc.version, doc.sha256, doc.filename, doc.text, doc.loaded_by, doc.loaded_at),
                )
            except sqlite3.IntegrityError as exc:
                raise DocumentError(f"{KINDS[kind]} の版 {version} はすでにあります") from exc
        return doc

    def all(self) -> list[Document]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM documents ORDER BY kind, loaded_at").fetchall()
        return [Document(*row) for row in rows]

    def get(self, kind: str, version: str) -> Document | None:
        with self._lock:
            doc = self._loaded.get((kind, version))
            if doc is None:
                row = self._db.execute(
                    "SELECT * FROM documents WHERE kind = ? AND version = ?", (kind, version)
                ).fetchone()
                if row is not None:
                    doc = self._loaded[(kind, version)] = Document(*row)
        return doc
