"""The uvicorn configuration `maie api` runs with: MAIE_HTTP_* settings reach the server."""

from __future__ import annotations

from litestar import Litestar

from maie.api.http_protocol import GuardedH11Protocol
from maie.api.server import server_config
from maie.config import Settings


class TestServerConfig:
    def test_settings_reach_uvicorn_and_the_protocol(self):
        settings = Settings.from_env(
            {
                "MAIE_PORT": "8123",
                "MAIE_HTTP_KEEP_ALIVE_TIMEOUT_S": "3",
                "MAIE_HTTP_HEADER_TIMEOUT_S": "7",
                "MAIE_HTTP_BODY_TIMEOUT_S": "11",
                "MAIE_HTTP_BODY_MIN_BYTES_PER_S": "900",
                "MAIE_HTTP_MAX_CONNECTIONS": "64",
            },
            env_file=None,
        )
        config = server_config(Litestar(), settings)
        assert config.port == 8123
        assert config.timeout_keep_alive == 3
        assert config.limit_concurrency == 65, "uvicorn refuses at >= its limit: 64 are served"
        protocol = config.http
        assert isinstance(protocol, type)
        assert issubclass(protocol, GuardedH11Protocol)
        limits = protocol.limits
        assert (limits.header_timeout_s, limits.body_timeout_s) == (7, 11)
        assert (limits.body_min_bytes_per_s, limits.max_connections) == (900, 64)

    def test_defaults(self):
        server = Settings.from_env({}, env_file=None).server
        assert server.http_keep_alive_timeout_s == 5
        assert server.http_header_timeout_s == 20
        assert server.http_body_timeout_s == 30
        assert server.http_body_min_bytes_per_s == 500
        assert server.http_max_connections == 1000

    def test_no_uvicorn_access_log(self):
        """MAIE logs each request itself (``http.request``); uvicorn's access line would repeat it."""
        config = server_config(Litestar(), Settings.from_env({}, env_file=None))
        assert config.access_log is False
