"""Live transcription at ``/v1/stream`` with a real client (the ``websockets`` package) and real services.

The session's ``maie api`` runs sessions itself (no MAIE_STREAM_URL); the module also starts a
``maie stream`` process, and an API that relays ``/v1/stream`` to it, as ``maie up`` runs them.
Recognition is PocketSphinx's (real words) unless a test says otherwise; every stored task is
finished by the session's real worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
import time

import pytest

from tests.fixtures.live_client import stream_pcm
from tests.fixtures.paths import shared_audio
from tests.fixtures.services import HEADERS_A, HEADERS_B, KEY_A, KEY_B, free_port
from tests.fixtures.wer import run_ffmpeg, wer_points

pytest.importorskip("websockets", reason="websockets is a dependency (uv sync installs it)")
pytest.importorskip("pocketsphinx", reason="the pocketsphinx extra is not installed (uv sync installs it)")

import numpy as np

#: Largest gap, in WER points, between live finals and batch on the same audio.
MARGIN_POINTS = 5.0
JFK = "jfk_16k.wav"
#: Clips streamed faster than real time, at their own rate (22.05 kHz and 16 kHz).
FAST = (("LJ050-0131.wav", 22050), ("picovoice/test.wav", 16000))
POCKETSPHINX = {"asr_backend": "pocketsphinx", "features": ["raw_transcript"]}


def pcm(name: str, rate: int = 16000) -> np.ndarray:
    raw = run_ffmpeg("-i", str(shared_audio(name)), "-ac", "1", "-ar", str(rate), "-f", "s16le", "-")
    return np.frombuffer(raw, dtype="<i2")


def reference(name: str) -> str:
    return shared_audio(name).with_suffix(".txt").read_text(encoding="utf-8").strip()


def ws_url(api) -> str:
    return api.url.replace("http://", "ws://") + "/v1/stream"


def live(api, audio, **kwargs):
    kwargs.setdefault("headers", HEADERS_A)
    kwargs["start"] = {**POCKETSPHINX, **kwargs.get("start", {})}
    return asyncio.run(stream_pcm(ws_url(api), audio, **kwargs))


def wait_stored(api, task_id: str, timeout_s: float = 60) -> dict:
    """The task once it exists (a dropped session is stored a moment after the drop) and is finished."""
    deadline = time.monotonic() + timeout_s
    while api.client.get(f"/v1/status/{task_id}", headers=HEADERS_A).status_code == 404:
        assert time.monotonic() < deadline, f"task {task_id} was never stored"
        time.sleep(0.1)
    return api.wait(task_id)


def batch_text(api, name: str) -> str:
    """The batch transcript of the same clip by the same backend (POST /v1/process)."""
    task = api.submit(shared_audio(name), asr_backend="pocketsphinx").json()["task_id"]
    return api.wait(task)["results"]["raw_transcript"]


@pytest.fixture(scope="module")
def jfk_realtime(api, worker):
    """JFK streamed at real-time pace, with word timestamps."""
    return live(api, pcm(JFK), realtime=True, start={"word_timestamps": True})


@pytest.fixture(scope="module")
def whisper_realtime(api, worker):
    """A short clip streamed at real-time pace to the tiny Whisper model."""
    return live(
        api, pcm("picovoice/test.wav"), realtime=True, start={"asr_backend": "whisper", "language": "en"}
    )


class TestRealTime:
    """A client streaming a recording as it is spoken."""

    def test_partials_come_before_the_final_of_their_segment(self, jfk_realtime):
        """PocketSphinx: its hypothesis of the open utterance, in real words, then the utterance's final.

        How soon they come is the bench's to measure: PocketSphinx needs about half a core per
        stream, and on a loaded machine its partials trail the audio by seconds.
        """
        run = jfk_realtime
        assert run.of("ready")[0]["backend"] == "pocketsphinx"
        kinds = [m["type"] for _, _, m in run.messages if m["type"] in {"partial", "final"}]
        assert kinds[0] == "partial", kinds
        partials = run.partials
        assert all(p["text"] and p["end"] >= p["start"] >= 0 for p in partials)
        assert partials[0]["end"] < run.finals[0]["segment"]["end"], "a partial of the open utterance"
        assert wer_points(reference(JFK), partials[0]["text"]) < 100  # words of the speech

    def test_partials_arrive_while_it_streams(self, whisper_realtime):
        """The tiny Whisper (cheap enough to keep up on any machine): partials while the client speaks."""
        run = whisper_realtime
        assert run.of("ready")[0]["backend"] == "whisper"
        while_sending = run.arrived_while_sending("partial")
        assert len(while_sending) >= 2, run.messages
        assert all(p["end"] <= sent + 1e-6 for _, sent, p in run.messages if p["type"] == "partial")
        assert [p["end"] for p in while_sending] == sorted(p["end"] for p in while_sending)

    def test_finals_are_ordered_segments_with_words(self, jfk_realtime):
        segments = [f["segment"] for f in jfk_realtime.finals]
        assert segments
        assert [s["id"] for s in segments] == list(range(1, len(segments) + 1))
        assert all(a["end"] <= b["start"] + 1e-6 for a, b in itertools.pairwise(segments))
        words = [w for s in segments for w in s.get("words") or []]
        assert words
        assert all(
            s["start"] - 1e-6 <= w["start"] <= w["end"] <= s["end"] + 1e-6
            for s in segments
            for w in s.get("words") or []
        )

    def test_the_end_names_a_stored_complete_task(self, jfk_realtime, api):
        run = jfk_realtime
        end = run.end
        assert end is not None, run.messages
        assert end["task_id"] == run.of("ready")[0]["task_id"]
        assert end["status_url"] == f"/v1/status/{end['task_id']}"
        assert end["duration_s"] == pytest.approx(11.0, abs=0.05)
        assert run.close_code == 1000
        task = api.wait(end["task_id"])
        assert task["status"] == "COMPLETE"
        assert task["asr_backend"] == "pocketsphinx"
        assert task["metrics"]["input_duration_seconds"] == pytest.approx(11.0, abs=0.05)
        listed = api.client.get("/v1/tasks", headers=HEADERS_A, params={"limit": 100}).json()["tasks"]
        assert end["task_id"] in [t["task_id"] for t in listed]
        assert api.client.get(f"/v1/status/{end['task_id']}", headers=HEADERS_B).status_code == 404
        # The stored transcript is the batch pipeline's: the recording is what preprocessing makes
        # of the same audio, sample for sample, so it is the batch transcript exactly.
        assert task["results"]["raw_transcript"] == batch_text(api, JFK)


class TestAccuracy:
    def test_finals_are_as_accurate_as_batch(self, api, worker, jfk_realtime):
        """JFK at real-time pace, two clips faster at their own rates (resampled live), against batch.

        Live decoding normalises each utterance by a running cepstral mean, batch by the
        utterance's own, which moves a short clip by a word or two either way; so the clips are
        scored together, as the session layer's own test does.
        """
        live_texts, batch_texts, references = [jfk_realtime.text], [batch_text(api, JFK)], [reference(JFK)]
        for name, rate in FAST:
            run = live(api, pcm(name, rate), rate=rate)
            assert run.end is not None, run.messages
            assert api.wait(run.end["task_id"])["status"] == "COMPLETE"
            live_texts.append(run.text)
            batch_texts.append(batch_text(api, name))
            references.append(reference(name))
        live_wer = wer_points(" ".join(references), " ".join(live_texts))
        batch_wer = wer_points(" ".join(references), " ".join(batch_texts))
        assert live_wer <= batch_wer + MARGIN_POINTS, (live_wer, batch_wer, live_texts)
        assert live_wer < 50  # real words

    def test_whisper_sessions_are_stored_too(self, api, whisper_realtime):
        """The tiny random Whisper model: gibberish, but the whole protocol and a stored task."""
        run = whisper_realtime
        assert run.finals
        assert run.end is not None, run.messages
        task = api.wait(run.end["task_id"])
        assert task["status"] == "COMPLETE"
        assert task["asr_backend"] == "whisper"


class TestAuth:
    def test_a_browser_sends_the_key_in_the_first_message(self, api, worker):
        run = live(api, pcm("picovoice/test.wav")[:32000], headers={}, start={"api_key": KEY_B})
        assert run.end is not None, run.messages
        assert api.client.get(f"/v1/status/{run.end['task_id']}", headers=HEADERS_B).status_code == 200
        assert api.client.get(f"/v1/status/{run.end['task_id']}", headers=HEADERS_A).status_code == 404

    def test_bearer_works_on_the_upgrade(self, api, worker):
        run = live(api, pcm("picovoice/test.wav")[:32000], headers={"Authorization": f"Bearer {KEY_A}"})
        assert run.end is not None, run.messages

    @pytest.mark.parametrize(
        ("headers", "start"),
        [({"X-API-Key": "wrong"}, {}), ({}, {}), ({}, {"api_key": "wrong"})],
        ids=["wrong-header", "none", "wrong-in-message"],
    )
    def test_no_valid_key_is_an_error_and_a_policy_close(self, api, headers, start):
        run = live(api, pcm("picovoice/test.wav")[:16000], headers=headers, start=start)
        assert run.error["code"] == "unauthorized"
        assert run.close_code == 1008
        assert run.end is None
        assert not run.of("ready")


class TestBadInput:
    """Bad messages and frames: an error, a clean close, and the process serves the next session."""

    def test_audio_before_start(self, api):
        replies = asyncio.run(_raw(ws_url(api), [b"\x00\x01" * 160, '{"type": "stop"}']))
        assert [r["type"] for r in replies] == ["error"]
        assert replies[0]["code"] == "bad_message"

    def test_not_json(self, api):
        replies = asyncio.run(_raw(ws_url(api), ["hello"]))
        assert replies[0]["type"] == "error"
        assert replies[0]["code"] == "bad_message"

    def test_a_frame_that_is_not_whole_samples_stores_what_came_before(self, api, worker):
        good = pcm("picovoice/test.wav")[:32000]
        frames = [good[i : i + 320].tobytes() for i in range(0, good.size, 320)] + [b"\x01\x02\x03"]
        run = live(api, None, frames=frames)
        assert run.error["code"] == "bad_frame", run.messages
        assert run.close_code == 1008
        assert run.end["duration_s"] == pytest.approx(2.0, abs=0.01)
        assert api.wait(run.end["task_id"])["status"] == "COMPLETE"

    def test_a_backend_that_cannot_stream(self, api):
        run = live(api, pcm("picovoice/test.wav")[:16000], start={"asr_backend": "chunkformer"})
        assert run.error["code"] == "backend_unavailable"
        assert "pocketsphinx" in run.error["detail"]
        assert run.close_code == 1008

    def test_a_session_with_next_to_no_audio_stores_nothing(self, api):
        run = live(api, pcm("picovoice/test.wav")[:1600])  # 0.1 s, under MAIE_MIN_DURATION_S
        assert run.error["code"] == "audio_too_short"
        assert run.end is None
        ready = run.of("ready")[0]
        assert api.client.get(f"/v1/status/{ready['task_id']}", headers=HEADERS_A).status_code == 404

    def test_the_server_still_serves(self, api, worker):
        run = live(api, pcm("picovoice/test.wav")[:32000])
        assert run.end is not None


class TestDroppedConnection:
    def test_what_was_received_is_stored(self, api, worker):
        run = live(api, pcm(JFK), drop_after_s=3.0)
        task_id = run.of("ready")[0]["task_id"]
        task = wait_stored(api, task_id)
        assert task["status"] == "COMPLETE"
        assert task["metrics"]["input_duration_seconds"] == pytest.approx(3.0, abs=0.05)


class TestMetrics:
    def test_sessions_audio_and_latencies_are_counted(self, api, jfk_realtime):
        text = api.client.get("/metrics").text
        stored = _metric(text, 'maie_stream_sessions_total{backend="pocketsphinx",outcome="stored"}')
        assert stored >= 1
        assert _metric(text, 'maie_stream_audio_seconds_total{backend="pocketsphinx"}') >= 11.0
        assert _metric(text, 'maie_stream_partial_latency_seconds_count{backend="pocketsphinx"}') >= 3
        assert _metric(text, 'maie_stream_final_latency_seconds_count{backend="pocketsphinx"}') >= 1
        assert "maie_stream_sessions_open" in text


@pytest.fixture(scope="module")
def stream_process(service_env, start_process, worker):
    """`maie stream` on its own port, with small limits: one session at a time, for one key too."""
    port = free_port()
    env = {
        **service_env,
        "MAIE_STREAM_PORT": str(port),
        "MAIE_STREAM_MAX_SESSIONS": "1",
        "MAIE_STREAM_MAX_SESSIONS_PER_KEY": "1",
        "MAIE_STREAM_IDLE_TIMEOUT_S": "2",
        # Above the 5.9 s clip the relay test sends at real-time pace (so a loaded machine cannot
        # make it overflow), below the 22 s the overflow test sends at once.
        "MAIE_STREAM_MAX_BACKLOG_S": "6",
        "MAIE_STREAM_MAX_FRAME_BYTES": "4096",
        "MAIE_STREAM_PRELOAD": "pocketsphinx",
    }
    process = start_process("stream", env)
    url = f"ws://127.0.0.1:{port}/v1/stream"
    asyncio.run(_wait_for_ready(f"http://127.0.0.1:{port}/ready", process))
    return url


@pytest.fixture(scope="module")
def relaying_api(service_env, start_process, stream_process):
    """An API that relays /v1/stream to the stream process (as `maie up` sets it up)."""
    return start_process("api", {**service_env, "MAIE_STREAM_URL": stream_process.rsplit("/v1/stream", 1)[0]})


class TestStreamProcess:
    def test_a_session_through_the_api_relay(self, relaying_api, api):
        run = live(relaying_api, pcm("picovoice/test.wav"), realtime=True)
        assert run.of("ready")
        assert run.finals
        assert run.end is not None, run.messages
        assert run.close_code == 1000
        assert api.wait(run.end["task_id"])["status"] == "COMPLETE"

    def test_errors_and_close_codes_pass_the_relay(self, relaying_api):
        run = live(relaying_api, pcm("picovoice/test.wav")[:16000], headers={"X-API-Key": "wrong"})
        assert run.error["code"] == "unauthorized"
        assert run.close_code == 1008

    def test_the_per_key_limit_holds_across_processes(self, api, stream_process):
        """A session open on the shared API counts against the key on the stream process (Redis)."""
        first, second = asyncio.run(_second_while_first_is_open(ws_url(api), stream_process, HEADERS_A))
        assert first.of("ready")[0]["task_id"]
        assert second.error["code"] == "too_many_sessions", second.messages
        assert "MAIE_STREAM_MAX_SESSIONS_PER_KEY=1" in second.error["detail"]
        assert second.close_code == 1013

    def test_the_per_process_limit(self, stream_process):
        first, second = asyncio.run(_second_while_first_is_open(stream_process, stream_process, HEADERS_B))
        assert first.end is not None, first.messages
        assert second.error["code"] == "too_many_sessions"
        assert "MAIE_STREAM_MAX_SESSIONS=1" in second.error["detail"]

    def test_an_idle_client_is_closed_and_its_audio_stored(self, stream_process, api):
        run = asyncio.run(
            stream_pcm(
                stream_process,
                pcm(JFK)[:32000],
                realtime=True,
                start=POCKETSPHINX,
                headers=HEADERS_A,
                stop=False,
            )
        )
        assert run.error["code"] == "stream_idle", run.messages
        assert run.close_code == 1008
        assert api.wait(run.end["task_id"])["metrics"]["input_duration_seconds"] == pytest.approx(
            2.0, abs=0.01
        )

    def test_a_client_far_faster_than_real_time_is_told(self, stream_process, api):
        """MAIE_STREAM_MAX_BACKLOG_S=6: 22 s sent at once cannot be transcribed as it comes."""
        twice = np.concatenate([pcm(JFK), pcm(JFK)])
        run = asyncio.run(stream_pcm(stream_process, twice, start=POCKETSPHINX, headers=HEADERS_A))
        assert run.error["code"] == "stream_overflow", run.messages
        assert run.close_code == 1008
        stored = api.wait(run.end["task_id"])
        assert stored["status"] == "COMPLETE"
        assert 6.0 <= run.end["duration_s"] <= twice.size / 16000

    def test_a_frame_over_the_size_limit(self, stream_process):
        run = asyncio.run(
            stream_pcm(stream_process, None, frames=[b"\x00" * 8192], start=POCKETSPHINX, headers=HEADERS_A)
        )
        assert run.error["code"] == "bad_frame"
        assert "MAIE_STREAM_MAX_FRAME_BYTES" in run.error["detail"]
        assert run.close_code == 1008


async def _raw(url: str, messages: list) -> list[dict]:
    """Send ``messages`` as they are (no start of ours) and collect the replies."""
    import json

    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    replies = []
    async with connect(url, additional_headers=HEADERS_A) as ws:
        with contextlib.suppress(ConnectionClosed):
            for message in messages:
                await ws.send(message)
            # One by one: the iteration raises at a close other than 1000, after the replies.
            async for data in ws:
                replies.append(json.loads(data))  # noqa: PERF401
    return replies


async def _wait_for_ready(url: str, process) -> None:
    import time

    import httpx

    deadline = time.monotonic() + 60
    async with httpx.AsyncClient() as client:
        while True:
            if process.popen.poll() is not None:
                raise RuntimeError(f"maie stream exited:\n{process.log()}")
            try:
                if (await client.get(url)).status_code == 200 and "stream.preloaded" in process.log():
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"maie stream did not become ready:\n{process.log()}")
            await asyncio.sleep(0.1)


def _metric(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, flags=re.MULTILINE)
    assert match, f"{name} not in /metrics"
    return float(match.group(1))


async def _second_while_first_is_open(first_url: str, second_url: str, second_headers: dict[str, str]):
    """Stream 4 s in real time as tenant A on ``first_url``; once its ``ready`` came (the session
    is open), stream a second clip on ``second_url``. Both runs, when done."""
    answered = asyncio.Event()
    clip = pcm(JFK)[:64000]
    first = asyncio.create_task(
        stream_pcm(first_url, clip, realtime=True, start=POCKETSPHINX, headers=HEADERS_A, answered=answered)
    )
    await asyncio.wait_for(answered.wait(), 120)
    second = await stream_pcm(second_url, pcm(JFK)[:16000], start=POCKETSPHINX, headers=second_headers)
    return await first, second
