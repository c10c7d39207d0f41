"""scripts/download_models.sh: which weights go where (dry runs; the hub is not reachable here)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "download_models.sh"


def run(*args, **env):
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MAIE_", "HF_"))}
    return subprocess.run(
        ["bash", str(SCRIPT), *args], env={**base, **env}, capture_output=True, text=True, check=False
    )


class TestPlan:
    def test_models_from_the_environment(self, tmp_path):
        result = run(
            "--dry-run",
            MAIE_DATA_DIR=str(tmp_path),
            MAIE_LLM_BACKEND="vllm",
            MAIE_LLM_SUMMARY_MODEL="Qwen/Qwen3-4B",
            MAIE_LLM_ENHANCEMENT_MODEL="Qwen/Qwen3-4B",
            MAIE_WHISPER_MODEL="erax-ai/EraX-WoW-Turbo-V1.1-CT2",
        )
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert f"asr  erax-ai/EraX-WoW-Turbo-V1.1-CT2 -> {tmp_path}/models (faster-whisper cache)" in lines
        assert lines.count(f"llm  Qwen/Qwen3-4B -> {tmp_path}/models/Qwen/Qwen3-4B") == 1, (
            "once for both tasks"
        )

    def test_openai_backend_needs_no_llm_weights(self, tmp_path):
        result = run(
            "--dry-run", MAIE_DATA_DIR=str(tmp_path), MAIE_LLM_BACKEND="openai", MAIE_LLM_SUMMARY_MODEL="m"
        )
        assert "llm " not in result.stdout
        assert "asr  large-v3-turbo" in result.stdout

    def test_folders_are_skipped_and_arguments_win(self, tmp_path):
        result = run(
            "--dry-run", "--asr", str(tmp_path), "--llm", "org/name", "--data-dir", str(tmp_path / "d")
        )
        assert f"asr  {tmp_path}: a local folder, skipped" in result.stdout
        assert f"llm  org/name -> {tmp_path}/d/models/org/name" in result.stdout

    def test_refuses_to_run_offline(self, tmp_path):
        result = run(MAIE_DATA_DIR=str(tmp_path), HF_HUB_OFFLINE="1")
        assert result.returncode == 1
        assert "HF_HUB_OFFLINE" in result.stderr

    def test_unknown_argument(self):
        assert run("--nope").returncode == 2
