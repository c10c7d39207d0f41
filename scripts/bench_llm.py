"""Benchmark: MAIE's LLM stages against bare sequential chat requests, in the same run.

For one transcript (reference texts from ../shared/audio, cut into segments and repeated) and one
OpenAI-compatible server:

1. enhancement: bare ``httpx`` POSTs of MAIE's chunk prompts, one after another (the baseline),
   against MAIE's ``Enhancer`` sending the same chunks ``--concurrency`` at a time, with schema
   validation and reassembly;
2. summary: one bare POST of the template prompt against MAIE's ``Summarizer`` (prompt rendering,
   budget, validation);
3. token counting: MAIE's default estimate against a real tokenizer (Whisper's, from
   ../shared/models) on MAIE's own prompts.

Without ``--base-url`` it starts the test server of the test suite (a test double that answers
instantly) and adds ``--latency`` seconds to every answer, so it measures MAIE's orchestration and
concurrency, not a model. It prints measurements and ratios; it asserts nothing.

    uv run python scripts/bench_llm.py                          # test server, 0.2 s per answer
    uv run python scripts/bench_llm.py --base-url http://gpu-host:8001/v1 --model Qwen/Qwen3-4B
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from maie.pipeline.llm.enhance import EnhanceInput, EnhanceOptions, Enhancer  # noqa: E402
from maie.pipeline.llm.openai_backend import OpenAiBackend, OpenAiOptions  # noqa: E402
from maie.pipeline.llm.summarize import SummarizeInput, SummarizeOptions, Summarizer  # noqa: E402
from maie.pipeline.llm.tokens import EstimatedCounter, TokenizerFileCounter  # noqa: E402
from maie.pipeline.prompts import TemplateCatalog, default_templates_dir  # noqa: E402
from maie.schemas import Segment  # noqa: E402
from tests.fixtures.llm_server import MODEL, Fault, LlmTestServer  # noqa: E402

SHARED = ROOT.parent / "shared"
#: Words used when ../shared is absent.
FALLBACK = "and so my fellow americans ask not what your country can do for you"
TEXTS = [
    "jfk.txt",
    "LJ050-0131.txt",
    "picovoice/test.txt",
    "lhotse/2412-153948-0000.txt",
    "stereo_diarization.txt",
]


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base-url", help="an OpenAI-compatible server; default: the test server")
    ap.add_argument("--model", default=MODEL)
    ap.add_argument("--latency", type=float, default=0.2, help="seconds added per answer by the test server")
    ap.add_argument("--segments", type=int, default=120, help="transcript segments (default: %(default)s)")
    ap.add_argument(
        "--chunk-tokens", type=int, default=256, help="enhancement chunk size (default: %(default)s)"
    )
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--runs", type=int, default=3)
    return ap.parse_args()


def transcript(count: int) -> list[Segment]:
    """Reference sentences from ../shared/audio, lower-cased and unpunctuated like raw ASR output."""
    words: list[str] = []
    for name in TEXTS:
        path = SHARED / "audio" / name
        if path.is_file():
            words += "".join(c for c in path.read_text().lower() if c.isalnum() or c.isspace()).split()
    words = words or FALLBACK.split()
    segments = []
    for i in range(count):
        text = " ".join(words[(i * 9 + j) % len(words)] for j in range(12))
        segments.append(Segment(id=i + 1, start=4.0 * i, end=4.0 * i + 4, text=text))
    return segments


def timed(fn, runs: int) -> list[float]:  # noqa: ANN001 - a callable under test
    """Wall times of ``runs`` calls of ``fn``."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return times


def show(label: str, times: list[float]) -> float:
    """Print a measurement; return its median."""
    median = statistics.median(times)
    print(f"{label:<48} median {median:7.3f} s  (runs: {', '.join(f'{t:.3f}' for t in times)})")
    return median


def post_all(base_url: str, bodies: list[dict]) -> None:
    """The baseline: the same request bodies, one after another, on one client."""
    with httpx.Client(timeout=300) as client:
        for body in bodies:
            client.post(f"{base_url}/chat/completions", json=body).raise_for_status()


def bench_enhancement(args: argparse.Namespace, backend: OpenAiBackend, server: LlmTestServer | None) -> None:
    """Chunks sent concurrently by MAIE against the same chunks sent one by one."""
    segments = transcript(args.segments)
    enhancer = Enhancer(EnhanceOptions(chunk_tokens=args.chunk_tokens), backend)
    data = EnhanceInput(segments=segments, language="en")
    artifact = enhancer.process(data)
    print(f"transcript: {len(segments)} segments, {artifact.metrics.chunks} enhancement chunks")
    bodies = list(server.requests) if server else []
    maie = show(
        f"MAIE enhancement, concurrency {args.concurrency}", timed(lambda: enhancer.process(data), args.runs)
    )
    if bodies:
        bare = show(
            "bare sequential POSTs of the same chunks",
            timed(lambda: post_all(backend.options.base_url, bodies), args.runs),
        )
        print(f"{'  ratio MAIE / bare':<48} {maie / bare:7.3f}")


def bench_summary(args: argparse.Namespace, backend: OpenAiBackend, server: LlmTestServer | None) -> None:
    """MAIE's summary stage against one bare request of the same prompt."""
    template = TemplateCatalog(default_templates_dir()).get("meeting_notes_v1")
    summarizer = Summarizer(SummarizeOptions(), backend)
    data = SummarizeInput(segments=transcript(20), template=template, language="en")
    if server:
        server.requests.clear()
    summarizer.process(data)
    bodies = list(server.requests) if server else []
    full = show(
        "MAIE summary (render, budget, decode, validate)", timed(lambda: summarizer.process(data), args.runs)
    )
    if bodies:
        one = show(
            "bare POST of the summary prompt",
            timed(lambda: post_all(backend.options.base_url, bodies), args.runs),
        )
        print(f"{'  ratio MAIE / bare':<48} {full / one:7.3f}")


def bench_tokens() -> None:
    """MAIE's default estimate against a real BPE tokenizer, on MAIE's own prompts."""
    path = SHARED / "models" / "whisper-tokenizer" / "whisper-tiny" / "tokenizer.json"
    if not path.is_file():
        return
    exact, estimate = TokenizerFileCounter(path), EstimatedCounter(2.0)
    for template in TemplateCatalog(default_templates_dir()).all():
        text = template.render(segments=transcript(40), language="en", part=None, parts=None)
        ratio = estimate.count(text) / exact.count(text)
        print(f"tokens of the {template.template_id} prompt: estimate / Whisper tokenizer = {ratio:.2f}")


def main() -> None:
    """Run the measurements and print them."""
    args = parse_args()
    server = None
    if args.base_url is None:
        server = LlmTestServer().start()
        server.hang_s = args.latency
        server.inject(Fault.HANG, times=None)
    base_url = args.base_url or (server.url if server else "")
    print(f"server {base_url}")
    with tempfile.TemporaryDirectory() as tmp:
        options = OpenAiOptions(
            base_url=base_url, model=args.model, concurrency=args.concurrency, data_dir=Path(tmp)
        )
        backend = OpenAiBackend(options)
        backend.load()
        try:
            bench_enhancement(args, backend, server)
            bench_summary(args, backend, server)
        finally:
            backend.unload()
    bench_tokens()
    if server:
        server.stop()


if __name__ == "__main__":
    main()
