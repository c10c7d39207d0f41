"""``maie up``: embedded Redis, the API and workers as child processes, kept alive until told to stop.

A child that dies is started again after a back-off that grows while it keeps dying quickly. On
SIGINT or SIGTERM every child is asked to stop (SIGTERM), given time to finish, then killed if it
must be, and the embedded Redis is stopped last so nothing is lost from its AOF. Children run in
their own sessions, so a terminal's Ctrl-C reaches only the supervisor, and they get SIGTERM if the
supervisor dies.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from typing import TYPE_CHECKING

import structlog

from maie.up.redis import EmbeddedRedis, die_with_parent

if TYPE_CHECKING:
    from collections.abc import Mapping

    from maie.config import Settings

__all__ = ["Child", "Supervisor"]

log = structlog.get_logger(__name__)

#: Longest pause before restarting a child that keeps dying.
MAX_BACKOFF_S = 30.0
#: A child that ran this long is healthy again: its back-off starts over.
HEALTHY_AFTER_S = 60.0


class Child:
    """One supervised process."""

    def __init__(self, name: str, argv: list[str], env: Mapping[str, str]) -> None:
        self.name = name
        self.argv = argv
        self.env = dict(env)
        self.process: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.failures = 0
        self.restart_at: float | None = None

    def start(self) -> None:
        """Start (or start again) the process."""
        self.process = subprocess.Popen(  # noqa: S603 - our own command
            self.argv,
            env=self.env,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=die_with_parent,  # noqa: PLW1509 - it only calls prctl, looked up before the fork
        )
        self.started_at = time.monotonic()
        self.restart_at = None
        log.info("child.started", child=self.name, pid=self.process.pid)

    def check(self, now: float) -> None:
        """Notice an exit and start the process again when its back-off has passed."""
        if self.process is None:
            return
        code = self.process.poll()
        if code is None:
            return
        if self.restart_at is None:
            self.failures = 0 if now - self.started_at > HEALTHY_AFTER_S else self.failures + 1
            delay = min(MAX_BACKOFF_S, 2.0 ** max(0, self.failures - 1)) if self.failures else 0.5
            self.restart_at = now + delay
            log.warning("child.exited", child=self.name, code=code, restart_in_s=delay)
        if now >= self.restart_at:
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


class Supervisor:
    """Runs everything ``maie up`` starts."""

    def __init__(self, settings: Settings, *, api_keys: str, workers: int = 1) -> None:
        self.settings = settings
        self.api_keys = api_keys
        self.workers = workers
        self._stop = threading.Event()

    def stop(self) -> None:
        """Ask :meth:`run` to stop everything (safe from a signal handler or another thread)."""
        self._stop.set()

    def run(self, *, ready: threading.Event | None = None) -> None:
        """Start Redis (unless MAIE_REDIS_URL is set), the API and the workers; supervise until stopped."""
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: self.stop())
        embedded = None
        redis_url = self.settings.redis.url
        if not redis_url:
            embedded = EmbeddedRedis(self.settings.storage.data_dir / "redis")
            redis_url = embedded.start()
        server = self.settings.server
        env = {
            **os.environ,
            "MAIE_REDIS_URL": redis_url,
            "MAIE_API_KEYS": self.api_keys,
            "MAIE_HOST": server.host,
            "MAIE_PORT": str(server.port),
        }
        command = [sys.executable, "-m", "maie"]
        children = [Child("api", [*command, "api"], env)]
        children += [Child(f"worker-{i + 1}", [*command, "worker"], env) for i in range(self.workers)]
        try:
            for child in children:
                child.start()
            if ready is not None:
                ready.set()
            while not self._stop.wait(0.5):
                now = time.monotonic()
                for child in children:
                    child.check(now)
        finally:
            log.info("up.stopping")
            for child in children:
                child.terminate()
            deadline = time.monotonic() + self.settings.worker.worker_stop_timeout_s + 5
            for child in children:
                child.wait(deadline)
            if embedded is not None:
                embedded.stop()
            log.info("up.stopped")
