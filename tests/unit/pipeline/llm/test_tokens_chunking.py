"""Token counts and splitting transcripts on segment boundaries."""

from __future__ import annotations

import json

import pytest

from maie.errors import ModelLoadError
from maie.pipeline.llm.chunking import chunk_segments, split_text
from maie.pipeline.llm.tokens import EstimatedCounter, TokenizerFileCounter, counter_for
from maie.schemas import Segment, Word
from tests.fixtures.paths import TOKENIZER_DIR

SAMPLES = {
    "english": "And so, my fellow Americans: ask not what your country can do for you.",
    "vietnamese": "Xin chào, đây là bản ghi cuộc họp hằng tuần của nhóm chúng tôi.",
    "chinese": "我们下周五发布新版本\uff0c请大家准备好测试报告\u3002",
    "json": json.dumps({"title": "Weekly sync", "segment_ids": [1, 2, 3], "owner": None}),
}


def seg(i: int, text: str) -> Segment:
    return Segment(
        id=i,
        start=float(i),
        end=float(i) + 1,
        text=text,
        words=[Word(start=i, end=i + 1, word=text, probability=1.0)],
    )


@pytest.fixture(scope="module")
def real_tokenizer():
    path = TOKENIZER_DIR / "whisper-tiny" / "tokenizer.json"
    if not path.is_file():
        pytest.skip(f"{path} is absent: Whisper tokenizers come from ../shared/models")
    return TokenizerFileCounter(path)


class TestCounters:
    """The estimate over-counts a real byte-level BPE tokenizer; a tokenizer file counts exactly."""

    @pytest.mark.parametrize("name", sorted(SAMPLES))
    def test_default_estimate_is_conservative(self, real_tokenizer, name):
        text = SAMPLES[name]
        assert EstimatedCounter(2.0).count(text) >= real_tokenizer.count(text)

    def test_default_estimate_is_conservative_on_the_prompts(self, real_tokenizer):
        """The densest text MAIE sends: its templates' schemas and prompts."""
        from maie.pipeline.prompts import TemplateCatalog, default_templates_dir

        for template in TemplateCatalog(default_templates_dir()).all():
            text = template.schema_path.read_text() + template.prompt.text
            assert EstimatedCounter(2.0).count(text) >= real_tokenizer.count(text), template.template_id

    def test_tokenizer_file_or_folder(self, real_tokenizer):
        folder = TOKENIZER_DIR / "whisper-tiny"
        counter = counter_for(str(folder), 2.0)
        assert counter.count("hello world") == real_tokenizer.count("hello world") == 3  # he, llo, Ġworld

    def test_unreadable_tokenizer_says_what_to_do(self, tmp_path):
        bad = tmp_path / "tokenizer.json"
        bad.write_text("not a tokenizer")
        with pytest.raises(ModelLoadError, match="MAIE_LLM_TOKENIZER"):
            counter_for(str(bad), 2.5)

    def test_estimate_without_tokenizer(self):
        counter = counter_for(None, 2.0)
        assert counter.count("abcd") == 2
        assert counter.count("é") == 1  # two UTF-8 bytes


class TestChunking:
    """Chunks respect the budget, keep order and every word."""

    def count(self, text: str) -> int:
        return len(text.split())

    def test_packs_in_order_within_limit(self):
        segments = [seg(i, " ".join(["w"] * n)) for i, n in enumerate([3, 4, 2, 5, 1], start=1)]
        chunks = chunk_segments(segments, self.count, 8, per_segment=1)
        # Costs 4, 5, 3, 6, 2 (words + 1): each chunk takes what fits, in order.
        assert [[s.id for s in c.segments] for c in chunks] == [[1], [2, 3], [4, 5]]
        assert all(c.tokens <= 8 for c in chunks)

    def test_long_segment_is_split_into_its_own_chunks(self):
        long_text = " ".join(f"w{i}" for i in range(25))
        segments = [seg(1, "a b"), seg(2, long_text), seg(3, "c")]
        chunks = chunk_segments(segments, self.count, 10, per_segment=1)
        ids = [[s.id for s in c.segments] for c in chunks]
        assert ids[0] == [1]
        assert all(i == [2] for i in ids[1:-1])
        assert ids[-1] == [3]
        pieces = [c.segments[0].text for c in chunks[1:-1]]
        assert " ".join(pieces) == long_text
        assert all(c.tokens <= 10 for c in chunks)
        assert all(c.segments[0].words is None for c in chunks[1:-1]), "a piece's words no longer match"

    def test_text_without_spaces_is_cut_by_characters(self):
        text = "我们下周五发布新版本请大家准备好测试报告" * 3
        pieces = list(split_text(text, len, 7))
        assert "".join(pieces) == text
        assert all(1 <= len(p) <= 7 for p in pieces)

    def test_limit_too_small(self):
        with pytest.raises(ValueError, match="no room"):
            chunk_segments([seg(1, "a")], self.count, 2, per_segment=2)
