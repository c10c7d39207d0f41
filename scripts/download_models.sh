#!/usr/bin/env bash
# Fetch the model weights a MAIE GPU host needs into MAIE_DATA_DIR/models, so workers start
# without reaching the model hub (then run them with HF_HUB_OFFLINE=1).
#
#   scripts/download_models.sh                      # models named by the environment / .env
#   scripts/download_models.sh --asr erax-ai/EraX-WoW-Turbo-V1.1-CT2 --llm Qwen/Qwen3-4B
#   scripts/download_models.sh --dry-run            # say what would be fetched, fetch nothing
#
# What it fetches (docs/deployment.md, "Model weights"):
#   ASR  MAIE_WHISPER_MODEL (default large-v3-turbo), a faster-whisper name or hub repo id, into
#        MAIE_DATA_DIR/models in the Hugging Face cache layout faster-whisper reads.
#   LLM  MAIE_LLM_ENHANCEMENT_MODEL and MAIE_LLM_SUMMARY_MODEL (when MAIE_LLM_BACKEND=vllm, or when
#        named with --llm), hub repo ids, into MAIE_DATA_DIR/models/<org>/<name>, where the vllm
#        backend looks first.
# Values that are local folders are already here and are skipped. HF_TOKEN is honoured for gated
# repositories. Re-running is cheap: files already present are not fetched again.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; }

if [[ -f .env ]]; then
    # The environment wins over .env, as for MAIE itself.
    while IFS='=' read -r key value; do
        [[ "$key" =~ ^MAIE_[A-Z0-9_]+$ ]] || continue
        [[ -n "${!key:-}" ]] && continue
        value="${value%\"}"; value="${value#\"}"
        [[ -n "$value" ]] && export "$key=$value"
    done < <(grep -E '^[[:space:]]*MAIE_[A-Z0-9_]+=' .env | sed 's/^[[:space:]]*//')
fi

DATA_DIR="${MAIE_DATA_DIR:-data}"
DRY_RUN=0
ASR=()
LLM=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --asr) ASR+=("$2"); shift 2 ;;
        --llm) LLM+=("$2"); shift 2 ;;
        --data-dir) DATA_DIR="$2"; shift 2 ;;
        --dry-run) DRY_RUN=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
done

if [[ ${#ASR[@]} -eq 0 ]]; then
    ASR=("${MAIE_WHISPER_MODEL:-large-v3-turbo}")
fi
if [[ ${#LLM[@]} -eq 0 && "${MAIE_LLM_BACKEND:-none}" == "vllm" ]]; then
    for model in "${MAIE_LLM_ENHANCEMENT_MODEL:-}" "${MAIE_LLM_SUMMARY_MODEL:-}"; do
        [[ -n "$model" && ! " ${LLM[*]} " =~ \ $model\  ]] && LLM+=("$model")
    done
fi

if command -v uv >/dev/null 2>&1 && [[ -f pyproject.toml ]]; then
    PYTHON=(uv run --no-sync python)
else
    PYTHON=("${PYTHON:-python3}")
fi

# A model value is a folder when it exists, is absolute, starts with . or ~, or has more than one
# slash (hub repo ids have exactly one) - the rule MAIE itself applies.
is_folder() {
    local value="$1" slashes="${1//[^\/]/}"
    [[ -d "$value" || "$value" == /* || "$value" == .* || "$value" == "~"* || ${#slashes} -gt 1 ]]
}

MODELS_DIR="$DATA_DIR/models"
echo "models folder: $MODELS_DIR"
if [[ $DRY_RUN -eq 0 && "${HF_HUB_OFFLINE:-0}" =~ ^(1|true|yes|on)$ ]]; then
    echo "HF_HUB_OFFLINE is set: unset it for this script (workers may keep it)" >&2
    exit 1
fi

for model in "${ASR[@]}"; do
    if is_folder "$model"; then
        echo "asr  $model: a local folder, skipped"
        continue
    fi
    echo "asr  $model -> $MODELS_DIR (faster-whisper cache)"
    [[ $DRY_RUN -eq 1 ]] && continue
    "${PYTHON[@]}" - "$model" "$MODELS_DIR" <<'PY'
import sys
from faster_whisper.utils import download_model

print("     ", download_model(sys.argv[1], cache_dir=sys.argv[2]))
PY
done

for model in "${LLM[@]}"; do
    if is_folder "$model"; then
        echo "llm  $model: a local folder, skipped"
        continue
    fi
    echo "llm  $model -> $MODELS_DIR/$model"
    [[ $DRY_RUN -eq 1 ]] && continue
    "${PYTHON[@]}" - "$model" "$MODELS_DIR/$model" <<'PY'
import sys
from huggingface_hub import snapshot_download

# Original (non-HF) checkpoints and training states are not needed by vLLM.
ignore = ["original/*", "*.pth", "*.pt", "optimizer*", "training_args*"]
print("     ", snapshot_download(sys.argv[1], local_dir=sys.argv[2], ignore_patterns=ignore))
PY
done
echo "done; start workers with HF_HUB_OFFLINE=1 to be sure nothing else is fetched"
