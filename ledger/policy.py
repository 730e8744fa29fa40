"""C2SP tlog-policy: which logs and witnesses a verifier trusts, and the quorum of cosignatures it demands.

    log <vkey> [<url>]
    witness <name> <vkey> [<url>]
    group <name> all|any|<k> <name>...
    quorum <name>          (or `quorum none`)

Names are local to the file; a witness is recognised by its key (the vkey's own
name and key id on the cosignature line), never by the policy name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .checkpoint import Checkpoint, CheckpointError, parse_body
from .cosignature import CosignerKey, cosignatures
from .note import NoteError, Verifier, open_note


class PolicyError(ValueError):
    """A policy file that does not follow tlog-policy."""


@dataclass(frozen=True)
class PolicyWitness:
    name: str
    key: CosignerKey
    url: str | None = None


@dataclass(frozen=True)
class Group:
    name: str
    threshold: int
    members: tuple[str, ...]


@dataclass(frozen=True)
class PolicyLog:
    key: Verifier
    url: str | None = None


@dataclass(frozen=True)
class Cosigned:
    """A checkpoint read under a policy: who cosigned it, and whether that meets the quorum."""

    checkpoint: Checkpoint
    cosigners: tuple[str, ...]  # policy names of the witnesses whose cosignatures verified
    met: bool


@dataclass(frozen=True)
class Policy:
    logs: tuple[PolicyLog, ...]
    witnesses: dict[str, PolicyWitness]
    groups: dict[str, Group]
    quorum: str

    def satisfied_by(self, cosigners: set[str]) -> bool:
        """Whether witnesses named `cosigners` (policy names) meet the quorum."""
        return self._witnessed(self.quorum, cosigners)

    def _witnessed(self, name: str, cosigners: set[str]) -> bool:
        if name == "none":
            return True
        if name in self.witnesses:
            return name in cosigners
        group = self.groups[name]
        return sum(self._witnessed(m, cosigners) for m in group.members) >= group.threshold

    def describe_quorum(self) -> str:
        if self.quorum == "none":
            return "none"
        if self.quorum in self.witnesses:
            return self.quorum
        group = self.groups[self.quorum]
        return f"{group.threshold} of {', '.join(group.members)}"

    def log_for(self, origin: str) -> PolicyLog | None:
        return next((log for log in self.logs if log.key.name == origin), None)

    def check(self, note: str) -> Cosigned:
        """The checkpoint in `note`, signed by one of the policy's logs, with its cosigners.

        Raises NoteError / CheckpointError when no policy log signed it, or when a
        line that names a policy witness's key does not verify.
        """
        opened = open_note(note, *(log.key for log in self.logs))
        checkpoint = parse_body(opened.text)
        if checkpoint.origin not in opened.verified_by:
            raise CheckpointError(f"checkpoint origin {checkpoint.origin!r} is not the name of the log's key")
        by_key = {w.key.name: w.name for w in self.witnesses.values()}
        found = cosignatures(note, [w.key for w in self.witnesses.values()])
        names = tuple(sorted(by_key[key_name] for key_name in found))
        return Cosigned(checkpoint, names, self.satisfied_by(set(names)))


def parse_policy(text: str) -> Policy:
    logs: list[PolicyLog] = []
    witnesses: dict[str, PolicyWitness] = {}
    groups: dict[str, Group] = {}
    quorum: str | None = None
    seen_keys: set[bytes] = set()

    def defined(name: str) -> bool:
        return name in witnesses or name in groups

    for number, raw in enumerate(text.split("\n"), start=1):
        if any(ord(c) < 0x20 and c != "\t" for c in raw) or "\x7f" in raw:
            raise PolicyError(f"line {number}: control character")
        words = raw.replace("\t", " ").split()
        if not words or words[0].startswith("#"):
            continue
        keyword, args = words[0], words[1:]
        try:
            if keyword == "log" and len(args) in (1, 2):
                key = Verifier.parse(args[0])
                if key.public_key in seen_keys:
                    raise PolicyError(f"line {number}: duplicate key")
                seen_keys.add(key.public_key)
                logs.append(PolicyLog(key, args[1] if len(args) == 2 else None))
            elif keyword == "witness" and len(args) in (2, 3):
                name = args[0]
                if defined(name) or name == "none":
                    raise PolicyError(f"line {number}: {name!r} is already defined")
                wkey = CosignerKey.parse(args[1])
                if wkey.public_key in seen_keys:
                    raise PolicyError(f"line {number}: duplicate key")
                seen_keys.add(wkey.public_key)
                witnesses[name] = PolicyWitness(name, wkey, args[2] if len(args) == 3 else None)
            elif keyword == "group" and len(args) >= 3:
                name, threshold_text, members = args[0], args[1], tuple(args[2:])
                if defined(name) or name == "none":
                    raise PolicyError(f"line {number}: {name!r} is already defined")
                for member in members:
                    if not defined(member):
                        raise PolicyError(f"line {number}: {member!r} is not defined on an earlier line")
                if len(set(members)) != len(members):
                    raise PolicyError(f"line {number}: a member is listed twice")
                if threshold_text == "all":
                    threshold = len(members)
                elif threshold_text == "any":
                    threshold = 1
                elif (
                    threshold_text.isascii()
                    and threshold_text.isdigit()
                    and 1 <= int(threshold_text) <= len(members)
                ):
                    threshold = int(threshold_text)
                else:
                    raise PolicyError(f"line {number}: threshold must be all, any or 1..{len(members)}")
                groups[name] = Group(name, threshold, members)
            elif keyword == "quorum" and len(args) == 1:
                if quorum is not None:
                    raise PolicyError(f"line {number}: a second quorum line")
                if args[0] != "none" and not defined(args[0]):
                    raise PolicyError(f"line {number}: {args[0]!r} is not defined on an earlier line")
                quorum = args[0]
            else:
                raise PolicyError(f"line {number}: not a policy line: {raw.strip()!r}")
        except NoteError as exc:
            raise PolicyError(f"line {number}: {exc}") from exc
    if quorum is None:
        raise PolicyError("the policy has no quorum line")
    return Policy(tuple(logs), witnesses, groups, quorum)


def load_policy(path: Path | str) -> Policy:
    try:
        return parse_policy(Path(path).read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise PolicyError(f"{path}: not UTF-8") from exc
