"""One Datasette for the auditors: the contract's ledger, the compliance results and the
access log, all read-only, with the rules in `datasette.yaml` and the labels in `metadata.yaml`.

`kansa serve LEDGER` and the tests both build it with `make_datasette`.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from datasette.app import Datasette
from datasette.database import Database

from compliance.results import default_results_path
from ledger import LedgerReader
from ledger.policy import Policy

from .access_log import AccessLog, access_origin, default_access_log_path
from .auditors import LiveAuditors, default_auditors_path, plugin_config
from .sessions import Sessions, default_sessions_path
from .watch import LedgerWatch

SESSION_SECONDS = 8 * 3600  # a working day; then sign in again
HERE = Path(__file__).parent


class SiteError(Exception):
    pass


@dataclass
class Site:
    ledger_path: Path
    compliance_path: Path
    access_path: Path
    auditors_path: Path
    origin: str
    log: AccessLog
    watch: LedgerWatch
    auditors: LiveAuditors
    sessions: Sessions
    session_seconds: int = SESSION_SECONDS
    policy: Policy | None = None  # a C2SP tlog-policy: the status page shows cosignatures against it
    # The status page's cosignature summary, kept with the checkpoint row it was computed at:
    # checking every stored checkpoint against the policy on each visit grows with the contract.
    witness_cache: tuple[int, dict[str, Any]] | None = None


def site_of(datasette: Any) -> Site:
    site: Site | None = getattr(datasette, "kansa_site", None)
    if site is None:
        raise SiteError("this Datasette was not built by datasette_plugins.make_datasette")
    return site


def load_yaml(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(
        resources.files("datasette_plugins").joinpath(name).read_text("utf-8")
    )
    return data


def secret_for(ledger: Path) -> str:
    """Datasette's signing secret (session cookies), kept beside the ledger (0600) so sessions
    survive a restart; `DATASETTE_SECRET` overrides it."""
    if os.environ.get("DATASETTE_SECRET"):
        return os.environ["DATASETTE_SECRET"]
    path = Path(f"{ledger.with_suffix('')}.datasette-secret")
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    return path.read_text().strip()


def make_datasette(
    ledger_path: Path | str,
    *,
    secret: str | None = None,
    session_seconds: int = SESSION_SECONDS,
    verify_in_background: bool = True,
    policy: Policy | None = None,
) -> Datasette:
    ledger_path = Path(ledger_path)
    if not ledger_path.exists():
        raise SiteError(f"no ledger at {ledger_path}")
    with LedgerReader.open(ledger_path) as ledger:
        origin = ledger.origin
    compliance_path = default_results_path(ledger_path)
    if not compliance_path.exists():
        raise SiteError(
            f"no compliance results at {compliance_path}:"
            f" run `kansa check {ledger_path} --month YYYY-MM` first"
        )
    auditors_path = default_auditors_path(ledger_path)
    live = LiveAuditors(auditors_path)
    auditors, _ = live.current()
    if not auditors:
        raise SiteError(f"no auditors yet: add one with `kansa auditor add NAME --ledger {ledger_path}`")
    access_path = default_access_log_path(ledger_path)
    log = AccessLog(access_path, access_origin(origin))

    config = load_yaml("datasette.yaml")
    config.setdefault("plugins", {})["datasette-auth-passwords"] = plugin_config(auditors)
    _register_plugin()
    datasette = Datasette(
        config=config,
        metadata=load_yaml("metadata.yaml"),
        template_dir=str(HERE / "templates"),
        secret=secret or secret_for(ledger_path),
        default_deny=True,
    )
    if "_memory" in datasette.databases:  # Datasette's scratch database: nothing for an auditor there
        datasette.remove_database("_memory")
    for name, path in (("ledger", ledger_path), ("compliance", compliance_path), ("access", access_path)):
        datasette.add_database(Database(datasette, path=str(path), is_mutable=True), name=name)
    watch = LedgerWatch(ledger_path, origin, log)
    sessions = Sessions(default_sessions_path(ledger_path))
    datasette.kansa_site = Site(
        ledger_path,
        compliance_path,
        access_path,
        auditors_path,
        origin,
        log,
        watch,
        live,
        sessions,
        session_seconds,
        policy,
    )
    if verify_in_background:
        watch.start()
    return datasette


def _register_plugin() -> None:
    from datasette.plugins import pm

    from . import hooks

    if not pm.is_registered(hooks):
        pm.register(hooks, name="kansa")
