"""``maie up``: embedded Redis and PostgreSQL, the API, ``maie stream`` and workers, kept alive until stopped.

The database schema is brought up to date (:func:`maie.store.sql.upgrade`) before the API and
workers start, whether the server is embedded or ``MAIE_DATABASE_URL``'s. A child that dies is
started again after a back-off that grows while it keeps dying quickly; so are the embedded
servers, on the same port and folder, so Redis's AOF and PostgreSQL's WAL bring the data back and
the API and workers reconnect by themselves. On SIGINT or SIGTERM every worker is asked to stop
(SIGTERM), given time to finish, then killed if it must be; then the API; the embedded Redis and
PostgreSQL are stopped last, so nothing the children wrote is lost. Children run in their own
sessions, so a terminal's Ctrl-C reaches only the supervisor, and they get SIGTERM if the
supervisor dies.

Signals are caught by :class:`~maie.stop_signal.StopSignal`, whose handler takes no lock.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Protocol

import sqlalchemy as sa
import structlog

from maie.config.database import redact_url
from maie.errors import ConfigError
from maie.stop_signal import StopSignal
from maie.store.sql import upgrade
from maie.up.parent_death import die_with_parent
from maie.up.postgres import EmbeddedPostgres
from maie.up.redis import EmbeddedRedis

if TYPE_CHECKING:
    import threading
    from collections.abc import Mapping

    from maie.config import Settings

__all__ = ["Backoff", "Child", "Supervisor"]

log = structlog.get_logger(__name__)

#: Longest pause before restarting a child that keeps dying.
MAX_BACKOFF_S = 30.0
#: A child that ran this long is healthy again: its back-off starts over.
HEALTHY_AFTER_S = 60.0
#: Seconds between two looks at the children when no signal wakes the loop.
TICK_S = 0.5


class Backoff:
    """When to start a process again after it exited: 0.5 s, then doubling up to :data:`MAX_BACKOFF_S`."""

    def __init__(self) -> None:
        self.started_at = 0.0
        self.failures = 0
        self.restart_at: float | None = None

    def started(self, now: float) -> None:
        """The process was (re)started at ``now``."""
        self.started_at = now
        self.restart_at = None

    def exited(self, now: float) -> float | None:
        """Note an exit seen at ``now`` (once per exit); return the delay chosen, None if already noted."""
        if self.restart_at is not None:
            return None
        self.failures = 0 if now - self.started_at > HEALTHY_AFTER_S else self.failures + 1
        delay = min(MAX_BACKOFF_S, 2.0 ** max(0, self.failures - 1)) if self.failures else 0.5
        self.restart_at = now + delay
        return delay

    def due(self, now: float) -> bool:
        """Whether the restart noted by :meth:`exited` may happen now."""
        return self.restart_at is not None and now >= self.restart_at


class Child:
    """One supervised process."""

    def __init__(self, name: str, argv: list[str], env: Mapping[str, str]) -> None:
        self.name = name
        self.argv = argv
        self.env = dict(env)
        self.process: subprocess.Popen[bytes] | None = None
        self.backoff = Backoff()

    def start(self) -> None:
        """Start (or start again) the process."""
        self.process = subprocess.Popen(  # noqa: S603 - our own command
            self.argv,
            env=self.env,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=die_with_parent,  # noqa: PLW1509 - it only calls prctl, looked up before the fork
        )
        self.backoff.started(time.monotonic())
        log.info("child.started", child=self.name, pid=self.process.pid)

    def check(self, now: float) -> None:
        """Notice (and reap) an exit and start the process again when its back-off has passed."""
        if self.process is None:
            return
        code = self.process.poll()
        if code is None:
            return
        if (delay := self.backoff.exited(now)) is not None:
            log.warning("child.exited", child=self.name, code=code, restart_in_s=delay)
        if self.backoff.due(now):
            self.start()

    def terminate(self) -> None:
        """Ask the process to stop."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()

    def wait(self, deadline: float) -> None:
        """Wait for the process until ``deadline`` (monotonic), then kill it."""
        if self.process is None:
            return
        try:
            self.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("child.killed", child=self.name)
            self.process.kill()
            self.process.wait()


class Server(Protocol):
    """An embedded server the supervisor keeps running (:class:`EmbeddedRedis`, :class:`EmbeddedPostgres`)."""

    @property
    def url(self) -> str:
        """Where clients reach it."""
        ...

    def start(self) -> str:
        """Start it; return its URL."""
        ...

    def exit_code(self) -> int | None:
        """Its exit status once it exited, else None."""
        ...

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop it cleanly."""
        ...

    def restart(self) -> None:
        """Stop it if it runs and start it again on the same port and folder."""
        ...


class KeptServer:
    """An embedded server, started again on its port and folder whenever it exits.

    Args:
        name: ``redis`` or ``postgres``: the prefix of its log events (``<name>.exited``,
            ``<name>.restarted``, ``<name>.restart_failed``).
        server: The server.
    """

    def __init__(self, name: str, server: Server) -> None:
        self.name = name
        self.server = server
        self.backoff = Backoff()
        self._exited, self._restarted, self._failed = (
            f"{name}.{e}" for e in ("exited", "restarted", "restart_failed")
        )

    def start(self) -> str:
        """Start the server; its URL."""
        url = self.server.start()
        self.backoff.started(time.monotonic())
        return url

    def check(self, now: float) -> None:
        """Notice an exit and start the server again when its back-off has passed."""
        code = self.server.exit_code()
        if code is None:
            return
        if (delay := self.backoff.exited(now)) is not None:
            log.warning(self._exited, code=code, url=redact_url(self.server.url), restart_in_s=delay)
        if not self.backoff.due(now):
            return
        try:
            self.server.restart()
        except ConfigError as exc:  # the port was taken meanwhile, the data is damaged, ...
            self.backoff.started(now)  # counts as a quick death: the next delay doubles
            log.exception(self._failed, reason=exc.detail, retry_in_s=self.backoff.exited(now))
            return
        self.backoff.started(time.monotonic())
        log.warning(self._restarted, url=redact_url(self.server.url))

    def stop(self) -> None:
        """Stop the server."""
        self.server.stop()


class Supervisor:
    """Runs everything ``maie up`` starts."""

    def __init__(self, settings: Settings, *, api_keys: str, workers: int = 1, stream: bool = True) -> None:
        self.settings = settings
        self.api_keys = api_keys
        self.workers = workers
        #: Whether live sessions run in a ``maie stream`` child, to which the API relays /v1/stream.
        self.stream = stream
        self._signal: StopSignal | None = None
        self._stop_asked = False
        #: The embedded servers this process started (only those are stopped, their URL files removed).
        self._servers: list[KeptServer] = []
        self._running: list[Child] = []

    def stop(self) -> None:
        """Ask :meth:`run` to stop everything; takes no lock, so a signal handler may call it too."""
        self._stop_asked = True
        if self._signal is not None:
            self._signal.request()

    def _stopping(self) -> bool:
        return self._stop_asked or (self._signal is not None and self._signal.requested)

    def run(self, *, ready: threading.Event | None = None) -> None:
        """Start Redis and PostgreSQL (unless their URLs are set), migrate, start the API and workers.

        Must run in the main thread, where signal handlers live. A second SIGTERM or SIGINT while
        stopping changes nothing: the children still get their ``MAIE_WORKER_STOP_TIMEOUT_S``.
        """
        with StopSignal() as stop:
            self._signal = stop
            try:
                self._start()
                if ready is not None:
                    ready.set()
                while not self._stopping() and not stop.wait(TICK_S):
                    now = time.monotonic()
                    for server in self._servers:
                        server.check(now)
                    for child in self._running:
                        child.check(now)
            finally:
                self._shutdown()
                self._signal = None

    def _start(self) -> None:
        data_dir = self.settings.storage.data_dir
        redis_url = self.settings.redis.url
        if not redis_url:
            redis = KeptServer("redis", EmbeddedRedis(data_dir / "redis"))
            redis_url = redis.start()
            self._servers.append(redis)
        database_url = self.settings.database.url
        if not database_url:
            port = self.settings.database.embedded_port or None
            postgres = KeptServer("postgres", EmbeddedPostgres(data_dir / "postgres", port=port))
            database_url = postgres.start()
            self._servers.append(postgres)
        _migrate(database_url)
        for child in self._children(redis_url, database_url):
            if self._stopping():
                return
            child.start()
            self._running.append(child)

    def _shutdown(self) -> None:
        log.info("up.stopping")
        # Workers first (they finish or hand back their messages), then the API: while a worker
        # finishes, clients can still read its progress.
        deadline = time.monotonic() + self.settings.worker.worker_stop_timeout_s + 5
        workers = [c for c in self._running if c.name != "api"]
        for group in (workers, [c for c in self._running if c.name == "api"]):
            for child in group:
                child.terminate()
            for child in group:
                child.wait(max(deadline, time.monotonic() + 5))
        for server in reversed(self._servers):
            server.stop()
        log.info("up.stopped")

    def _children(self, redis_url: str, database_url: str) -> list[Child]:
        server = self.settings.server
        env = {
            **os.environ,
            "MAIE_REDIS_URL": redis_url,
            "MAIE_DATABASE_URL": database_url,
            "MAIE_API_KEYS": self.api_keys,
            "MAIE_HOST": server.host,
            "MAIE_PORT": str(server.port),
        }
        command = [sys.executable, "-m", "maie"]
        children = []
        if self.stream:
            stream_port = self.settings.stream.port
            children.append(
                Child("stream", [*command, "stream"], {**env, "MAIE_STREAM_PORT": str(stream_port)})
            )
            # Clients use the API's port; the API relays their sessions to the stream process.
            env["MAIE_STREAM_URL"] = f"ws://{_local(server.host)}:{stream_port}"
        children.insert(0, Child("api", [*command, "api"], env))
        children += [Child(f"worker-{i + 1}", [*command, "worker"], env) for i in range(self.workers)]
        return children


def _migrate(url: str) -> None:
    """Bring the database schema up to date before anything uses it.

    Raises:
        ConfigError: if PostgreSQL cannot be reached or a migration fails (which changes nothing).
    """
    try:
        revision = upgrade(url)
    except sa.exc.SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        msg = f"the schema of {redact_url(url)} could not be brought up to date: {reason}"
        raise ConfigError(msg) from exc
    log.info("database.migrated", revision=revision, url=redact_url(url))


def _local(host: str) -> str:
    """Where a process on this host reaches a server bound to ``host``."""
    return "127.0.0.1" if host in {"0.0.0.0", "::", ""} else host  # noqa: S104 - recognising, not binding
