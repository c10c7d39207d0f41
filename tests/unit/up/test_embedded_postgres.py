"""The embedded PostgreSQL of `maie up`: the wheel's real server, started, killed, restarted."""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import tempfile
from pathlib import Path

import psycopg
import pytest

from maie.errors import ConfigError
from maie.up.postgres import EmbeddedPostgres, read_embedded_url, resolve_database_url
from maie.up.postgres_cluster import SERVER_USER


@pytest.fixture
def folder():
    """A data folder outside pytest's private temp root (the server user must reach it)."""
    path = Path(tempfile.mkdtemp(prefix="maie-test-up-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def server(folder):
    server = EmbeddedPostgres(folder / "postgres", durable=False)
    server.start()
    yield server
    server.stop()


class TestLifecycle:
    """Start, join, stop, crash, restart: the data stays."""

    def test_start_writes_a_private_url_file_that_others_join(self, server, folder):
        url_file = folder / "postgres" / "url"
        assert stat.S_IMODE(url_file.stat().st_mode) == 0o600
        assert read_embedded_url(folder / "postgres") == server.url
        assert resolve_database_url(None, folder) == server.url
        assert resolve_database_url("postgresql://db/maie", folder) == "postgresql://db/maie"
        with psycopg.connect(server.url) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == ("maie",)

    def test_a_second_server_on_the_same_folder_is_refused(self, server, folder):
        with pytest.raises(ConfigError, match="already runs"):
            EmbeddedPostgres(folder / "postgres", durable=False).start()

    def test_data_survives_a_stop_and_a_kill(self, server, folder):
        with psycopg.connect(server.url, autocommit=True) as conn:
            conn.execute("CREATE TABLE kept (n int)")
            conn.execute("INSERT INTO kept VALUES (1)")
        port = server.port
        server.stop()
        assert not (folder / "postgres" / "url").exists()
        assert read_embedded_url(folder / "postgres") is None
        with pytest.raises(ConfigError, match="no embedded PostgreSQL is running"):
            resolve_database_url(None, folder)
        server.start()
        assert server.process is not None
        server.process.kill()  # the postmaster dies; a supervisor notices and restarts it
        server.process.wait()
        assert not server.running
        server.restart()
        assert server.running
        assert server.port == port
        with psycopg.connect(server.url) as conn:
            assert conn.execute("SELECT n FROM kept").fetchall() == [(1,)]

    @pytest.mark.skipif(os.geteuid() != 0, reason="only root hands the server to another user")
    def test_as_root_the_server_user_owns_the_cluster(self, server, folder):
        owner = (folder / "postgres" / "data").stat().st_uid
        assert pwd.getpwuid(owner).pw_name == SERVER_USER


class TestRefusals:
    """What cannot be started says why."""

    def test_a_cluster_of_another_major_version(self, folder):
        data = folder / "postgres" / "data"
        data.mkdir(parents=True)
        (data / "PG_VERSION").write_text("17\n")
        (folder / "postgres" / "password").write_text("x\n")
        with pytest.raises(ConfigError, match="PostgreSQL 17 cluster"):
            EmbeddedPostgres(folder / "postgres", durable=False).start()
