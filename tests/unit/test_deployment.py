"""The deployment files: compose files valid against the Compose Specification, and consistent with MAIE.

No container engine runs here. The compose files are validated against the compose-spec JSON schema
that check-jsonschema ships (offline), and with ``docker compose config`` where the compose plugin
is installed. The image itself is not built here; docs/deployment.md says how.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from maie.broker import QUEUE_CPU, QUEUE_GPU
from maie.config import known_variables

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose.yaml"
COMPOSE_CPU = ROOT / "compose.cpu.yaml"
CONTAINERFILE = ROOT / "Containerfile"
MAIE_SERVICES = ("api", "worker-cpu", "worker-gpu")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def _has_compose_plugin() -> bool:
    if shutil.which("docker") is None:
        return False
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
    return probe.returncode == 0


class TestComposeIsValid:
    """What `docker compose config` would say."""

    def test_against_the_compose_spec_schema(self):
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "check_jsonschema",
                "--builtin-schema",
                "vendor.compose-spec",
                COMPOSE,
                COMPOSE_CPU,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr

    def test_the_schema_check_catches_mistakes(self, tmp_path):
        """The same check on a broken copy fails, so the check above can fail too."""
        broken = tmp_path / "compose.yaml"
        broken.write_text(
            COMPOSE.read_text(encoding="utf-8").replace("capabilities: [gpu]", "capabilities: gpu")
        )
        result = subprocess.run(
            [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", broken],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode != 0
        assert "capabilities" in result.stdout

    @pytest.mark.skipif(not _has_compose_plugin(), reason="the docker compose plugin is not installed here")
    @pytest.mark.parametrize(
        "files", [["compose.yaml"], ["compose.yaml", "compose.cpu.yaml"]], ids=["gpu", "cpu"]
    )
    def test_docker_compose_config(self, files):
        args = [arg for name in files for arg in ("-f", name)]
        env = {**os.environ, "MAIE_API_KEYS": "ci-key"}
        result = subprocess.run(
            ["docker", "compose", *args, "config", "--quiet"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr


class TestComposeMatchesMaie:
    """The compose file uses MAIE's own names: queues, variables, ports, paths."""

    def test_redis_keeps_an_append_only_file(self, compose):
        redis = compose["services"]["redis"]
        command = redis["command"]
        assert command[command.index("--appendonly") + 1] == "yes"
        assert command[command.index("--appendfsync") + 1] == "everysec"
        assert command[command.index("--maxmemory-policy") + 1] == "noeviction"
        assert "redis-data:/data" in redis["volumes"]
        assert redis["healthcheck"]["test"][-1] == "ping"

    def test_postgres_keeps_its_data_and_is_waited_for(self, compose):
        services = compose["services"]
        postgres = services["postgres"]
        assert postgres["image"].startswith("postgres:18")
        assert "postgres-data:/var/lib/postgresql" in postgres["volumes"]
        assert postgres["healthcheck"]["test"][1] == "pg_isready"
        env = postgres["environment"]
        url = services["api"]["environment"]["MAIE_DATABASE_URL"]
        assert url.startswith("${MAIE_DATABASE_URL:-postgresql://maie:"), "an external server can replace it"
        assert f"@postgres:5432/{env['POSTGRES_DB']}" in url
        assert f"//{env['POSTGRES_USER']}:" in url
        assert services["migrate"]["command"] == ["db", "upgrade"]
        assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
        assert "postgres-data" in compose["volumes"]
        for name in MAIE_SERVICES:
            depends = services[name]["depends_on"]
            assert depends["postgres"]["condition"] == "service_healthy", name
            assert depends["migrate"]["condition"] == "service_completed_successfully", name
            assert services[name]["environment"]["MAIE_DATABASE_URL"] == url, name

    def test_workers_consume_their_queues(self, compose):
        services = compose["services"]
        assert services["worker-cpu"]["command"] == ["worker", "--queues", QUEUE_CPU]
        assert services["worker-gpu"]["command"] == ["worker", "--queues", QUEUE_GPU]
        device = services["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"][0]
        assert device["driver"] == "nvidia"
        assert device["capabilities"] == ["gpu"]
        cpu_override = yaml.safe_load(COMPOSE_CPU.read_text(encoding="utf-8"))["services"]
        assert cpu_override["worker-gpu"]["deploy"]["replicas"] == 0
        assert cpu_override["worker-asr"]["command"] == ["worker", "--queues", QUEUE_GPU]

    def test_one_data_volume_everywhere(self, compose):
        for name in MAIE_SERVICES:
            service = compose["services"][name]
            assert "maie-data:/data" in service["volumes"], name
            assert service["environment"]["MAIE_DATA_DIR"] == "/data", name
            assert service["depends_on"]["redis"]["condition"] == "service_healthy", name
            assert service["init"] is True, name
        assert {"maie-data", "redis-data"} <= set(compose["volumes"])

    def test_every_maie_variable_exists(self, compose):
        """A misspelt variable would be ignored by MAIE (only a warning): catch it here."""
        text = COMPOSE.read_text(encoding="utf-8") + COMPOSE_CPU.read_text(encoding="utf-8")
        named = set(re.findall(r"\bMAIE_[A-Z0-9_]+", text))
        # Compose's own knobs, which MAIE never reads.
        deployment_only = {"MAIE_IMAGE", "MAIE_CUDA_IMAGE", "MAIE_GPU_COUNT", "MAIE_POSTGRES_PASSWORD"}
        assert named - deployment_only <= known_variables(), named - deployment_only - known_variables()

    def test_healthchecks_use_the_configured_ports(self, compose):
        services = compose["services"]
        assert "/ready" in services["api"]["healthcheck"]["test"][-1]
        assert "8000" in services["api"]["healthcheck"]["test"][-1]
        for name in ("worker-cpu", "worker-gpu"):
            port = services[name]["environment"]["MAIE_WORKER_METRICS_PORT"]
            assert f":{port}/metrics" in services[name]["healthcheck"]["test"][-1], name


class TestContainerfile:
    """What the image promises, read from the Containerfile (the build itself is not run here)."""

    @pytest.fixture
    def text(self) -> str:
        """The Containerfile without its comments."""
        lines = CONTAINERFILE.read_text(encoding="utf-8").splitlines()
        return "\n".join(line for line in lines if not line.lstrip().startswith("#"))

    def test_locked_non_root_ffmpeg_free(self, text):
        syncs = re.findall(r"uv sync[^\n]*", text)
        assert syncs
        assert all("--frozen" in line and "--no-dev" in line for line in syncs)
        assert re.search(r"^USER maie$", text, re.MULTILINE)
        installs = " ".join(re.findall(r"apt-get install[^\n]*", text))
        assert "ffmpeg" not in installs
        assert 'ENTRYPOINT ["maie"]' in text

    def test_build_context_holds_what_the_build_needs(self):
        keep = [
            line[1:].rstrip("/")
            for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
            if line.startswith("!")
        ]
        for name in ("pyproject.toml", "uv.lock", "README.md", "maie", "templates"):
            assert name in keep, name
            assert (ROOT / name).exists(), name

    @pytest.mark.parametrize("extra", ["vllm", "chunkformer"])
    def test_cuda_variant_extras_are_defined(self, text, extra):
        assert 'extras="vllm chunkformer"' in text
        extras = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"].get(
            "optional-dependencies", {}
        )
        if extra not in extras:
            pytest.skip(f"the {extra!r} extra is not defined in pyproject.toml yet; the CUDA build needs it")
        assert extras[extra]
