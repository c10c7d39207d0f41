"""MAIE_DATABASE_* and MAIE_RETENTION_*: defaults, checks, and a password that never reaches a log."""

from __future__ import annotations

import pytest

from maie.config import Settings
from maie.config.database import redact_url
from maie.errors import ConfigError


class TestDatabaseSettings:
    """The system of record's settings."""

    def test_defaults_mean_embedded_and_keep_everything(self):
        settings = Settings.from_env({}, env_file=None)
        assert settings.database.url is None
        assert settings.retention.days is None
        assert settings.database.pool_min_size <= settings.database.pool_max_size

    def test_values_are_read(self):
        settings = Settings.from_env(
            {
                "MAIE_DATABASE_URL": "postgresql://maie:pw@db:5432/maie",
                "MAIE_DATABASE_POOL_MAX_SIZE": "20",
                "MAIE_RETENTION_DAYS": "30",
            },
            env_file=None,
        )
        assert settings.database.url == "postgresql://maie:pw@db:5432/maie"
        assert settings.database.pool_max_size == 20
        assert settings.retention.days == 30

    @pytest.mark.parametrize(
        ("env", "message"),
        [
            ({"MAIE_DATABASE_URL": "mysql://u:secret@h/db"}, "must start with postgresql://"),
            ({"MAIE_DATABASE_POOL_MIN_SIZE": "5", "MAIE_DATABASE_POOL_MAX_SIZE": "2"}, "must not be larger"),
            ({"MAIE_DATABASE_CONNECT_TIMEOUT_S": "1"}, "MAIE_DATABASE_CONNECT_TIMEOUT_S"),
            ({"MAIE_RETENTION_DAYS": "0"}, "MAIE_RETENTION_DAYS"),
        ],
    )
    def test_invalid_values_name_the_variable(self, env, message):
        with pytest.raises(ConfigError, match=message) as caught:
            Settings.from_env(env, env_file=None)
        assert "secret" not in str(caught.value)

    def test_the_password_is_redacted(self):
        settings = Settings.from_env(
            {"MAIE_DATABASE_URL": "postgresql://maie:s3cr%40t@db/maie"}, env_file=None
        )
        assert settings.redacted()["database"]["MAIE_DATABASE_URL"] == "postgresql://maie:***@db/maie"

    @pytest.mark.parametrize(
        ("url", "expected"),
        [
            ("postgresql://db/maie", "postgresql://db/maie"),
            ("postgresql://u@db/maie", "postgresql://u@db/maie"),
            ("postgresql://u:p@/maie?host=/run/pg", "postgresql://u:***@/maie?host=/run/pg"),
        ],
    )
    def test_redact_url(self, url, expected):
        assert redact_url(url) == expected
