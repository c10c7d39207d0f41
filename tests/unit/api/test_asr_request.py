"""Per-request ASR options checked against what the chosen backend can do (no server needed)."""

from __future__ import annotations

import pytest

from maie.api.intake.asr_options import MAX_BEAM_SIZE, check_asr_options
from maie.config import MAX_PROMPT_CHARS
from maie.errors import InvalidRequestError, UnprocessableError
from maie.schemas import ModelInfo


def model(backend_id: str, capabilities: list[str], languages: list[str] | None) -> ModelInfo:
    return ModelInfo(
        backend_id=backend_id,
        name=backend_id,
        default_variant="v",
        description="",
        capabilities=capabilities,
        available=True,
        device="cpu",
        compute_type="int8",
        languages=languages,
    )


WHISPER = model("whisper", ["word_timestamps", "custom_vocabulary", "beam_size"], ["en", "de", "vi"])
POCKETSPHINX = model("pocketsphinx", ["word_timestamps", "long_form", "vad"], ["en"])
CHUNKFORMER = model("chunkformer", ["long_form", "batch_decode"], ["vi"])


def check(info: ModelInfo, **fields):
    values = {
        "language": None,
        "word_timestamps": None,
        "hotwords": None,
        "initial_prompt": None,
        "beam_size": None,
    }
    return check_asr_options(info, **{**values, **fields})


class TestBounds:
    """Malformed values are 400."""

    def test_accepted_values_are_cleaned(self):
        options = check(
            WHISPER, hotwords="  ComfyUI, Kubernetes ", initial_prompt="Notes.", beam_size=MAX_BEAM_SIZE
        )
        assert (options.hotwords, options.initial_prompt, options.beam_size) == (
            "ComfyUI, Kubernetes",
            "Notes.",
            20,
        )

    @pytest.mark.parametrize("beam_size", [0, -1, 21, 1000])
    def test_beam_size_out_of_bounds(self, beam_size):
        with pytest.raises(InvalidRequestError, match="between 1 and 20") as err:
            check(WHISPER, beam_size=beam_size)
        assert err.value.status_code == 400

    @pytest.mark.parametrize(
        ("value", "message"),
        [("   ", "empty"), ("x" * (MAX_PROMPT_CHARS + 1), "at most 1000"), ("a\x00b", "control characters")],
    )
    def test_bad_prompts(self, value, message):
        for field in ("hotwords", "initial_prompt"):
            with pytest.raises(InvalidRequestError, match=message):
                check(WHISPER, **{field: value})


class TestBackendCapabilities:
    """Options the chosen backend cannot honour are 422, naming the backend."""

    @pytest.mark.parametrize(
        ("info", "fields", "message"),
        [
            (
                POCKETSPHINX,
                {"hotwords": "MAIE"},
                "'pocketsphinx' does not support hotwords or initial_prompt",
            ),
            (POCKETSPHINX, {"initial_prompt": "Notes."}, "does not support hotwords or initial_prompt"),
            (POCKETSPHINX, {"beam_size": 5}, "'pocketsphinx' does not support beam_size"),
            (CHUNKFORMER, {"word_timestamps": True}, "'chunkformer' does not support word_timestamps"),
            (
                POCKETSPHINX,
                {"language": "de"},
                "'pocketsphinx' does not transcribe language 'de'; it knows en",
            ),
            (WHISPER, {"language": "xx"}, "'whisper' does not transcribe language 'xx'"),
        ],
    )
    def test_unsupported(self, info, fields, message):
        with pytest.raises(UnprocessableError, match=message) as err:
            check(info, **fields)
        assert err.value.status_code == 422

    def test_supported_combinations_pass(self):
        def fields(options):
            return (options.hotwords, options.initial_prompt, options.beam_size)

        assert fields(check(POCKETSPHINX, language="en", word_timestamps=True)) == (None, None, None)
        assert fields(check(CHUNKFORMER, language="vi", word_timestamps=False)) == (None, None, None)
        assert fields(check(WHISPER, language="de", word_timestamps=True, hotwords="x", beam_size=1)) == (
            "x",
            None,
            1,
        )
