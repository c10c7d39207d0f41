"""The transcribe stage on a worker: leases and batches on a real Redis, real backends, fallbacks."""

from __future__ import annotations

import shutil
import threading
import time
import uuid
import wave
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from maie.config import Settings
from maie.errors import ModelLoadError, PermanentError
from maie.schemas import AsrArtifact, AsrVersion, AudioInfo, PreprocessArtifact, StageName, TaskRequest
from maie.store.keys import asr_claim_key, asr_ready_key
from maie.worker.asr_claims import AsrClaims
from maie.worker.residency import ModelCache
from maie.worker.transcription import Transcriber, waiting_group
from tests.fixtures.paths import shared_audio
from tests.fixtures.records import make_record, put_record

pytest.importorskip("pocketsphinx", reason="the pocketsphinx extra is not installed (uv sync installs it)")

#: The first seconds of the JFK clip: enough speech for real decoding, short enough to be quick.
CLIP_SECONDS = 2.0


@pytest.fixture(scope="module")
def models():
    """One resident cache for the module: backends load once, as on a long-lived worker."""
    cache = ModelCache("resident", max_models=3)
    yield cache
    cache.clear()


@pytest.fixture
def make_transcriber(store, models, tmp_path, tiny_whisper_dir):
    """Transcribers on the test store; ``env`` adds settings (fast tiny-Whisper decoding by default)."""

    made: list[AsrClaims] = []

    def make(claims: AsrClaims | None = None, **env) -> Transcriber:
        values = {
            "MAIE_DATA_DIR": str(tmp_path / "data"),
            "MAIE_WHISPER_MODEL": str(tiny_whisper_dir),
            "MAIE_WHISPER_BEAM_SIZE": "1",
            "MAIE_WHISPER_TEMPERATURE": "0.0",
            "MAIE_WHISPER_MAX_NEW_TOKENS": "8",
            "MAIE_WHISPER_CPU_THREADS": "1",
            **env,
        }
        settings = Settings.from_env(values, env_file=None)
        # A long lease: pocketsphinx holds the GIL for a whole utterance, which on a loaded machine
        # can outlast a short lease's renewal period (no test here needs this lease to lapse).
        claims = claims or AsrClaims(store.client, lease_s=30.0, poll_s=0.05)
        made.append(claims)
        return Transcriber(settings, store, models, claims)

    yield make
    for claims in made:  # before the store's client closes: no renewal may run on a closed pool
        claims.close()


@pytest.fixture
def make_task(store, tmp_path):
    """A task whose audio is preprocessed (a real 16 kHz WAV) and that waits for ASR."""

    def make(task_id: str, backend: str = "pocketsphinx", *, ready: bool = True, **request):
        record = make_record(task_id)
        record.request = TaskRequest(features=record.request.features, asr_backend=backend, **request)
        put_record(store, record)
        folder = tmp_path / "audio" / task_id
        folder.mkdir(parents=True)
        wav = folder / "preprocessed.wav"
        with wave.open(str(shared_audio("jfk_16k.wav"))) as source, wave.open(str(wav), "wb") as target:
            target.setparams(source.getparams())
            target.writeframes(source.readframes(int(CLIP_SECONDS * 16000)))
        info = AudioInfo(
            container="wav", codec="pcm_s16le", duration_s=CLIP_SECONDS, channels=1, sample_rate=16000
        )
        store.put_artifact(
            task_id,
            StageName.PREPROCESS,
            PreprocessArtifact(source=info, wav_path=str(wav), duration_s=CLIP_SECONDS),
        )
        if ready:
            store.client.zadd(asr_ready_key(waiting_group(record)), {task_id: time.time()})
        return record

    return make


def stored(store, task_id) -> AsrArtifact | None:
    return store.get_artifact(task_id, StageName.TRANSCRIBE, AsrArtifact)


def finished(logs) -> int:
    return sum(1 for entry in logs if entry["event"] == "asr.finished")


class TestBatching:
    """Waiting tasks of the same backend are transcribed in one pass, each exactly once."""

    def test_one_message_transcribes_the_waiting_tasks(self, store, make_transcriber, make_task):
        transcriber = make_transcriber(MAIE_ASR_BATCH_MAX_TASKS="3")
        first, *others = [make_task(f"t{i}") for i in range(3)]

        with capture_logs() as logs:
            artifact = transcriber.run(first)

        assert finished(logs) == 3
        claimed = [e["tasks"] for e in logs if e["event"] == "asr.batch_claimed"]
        assert claimed == [["t0", "t1", "t2"]]
        assert stored(store, "t0") == artifact
        assert all(stored(store, r.task_id) is not None for r in others)
        assert not store.client.keys("maie:task:*:asr-claim"), "every lease is released"
        assert store.client.zcard(asr_ready_key("pocketsphinx")) == 0

        with capture_logs() as later:
            again = transcriber.run(others[0])  # its own message arrives afterwards
        assert finished(later) == 0
        assert again == stored(store, "t1")

    def test_batch_size_is_bounded_and_oldest_first(self, store, make_transcriber, make_task):
        transcriber = make_transcriber(MAIE_ASR_BATCH_MAX_TASKS="2")
        records = [make_task(f"t{i}") for i in range(4)]

        transcriber.run(records[2])

        assert [stored(store, r.task_id) is not None for r in records] == [True, False, True, False]

    def test_only_the_same_backend_joins(self, store, make_transcriber, make_task):
        transcriber = make_transcriber(MAIE_ASR_BATCH_MAX_TASKS="4")
        mine = make_task("p1")
        make_task("w1", backend="whisper")

        transcriber.run(mine)

        assert stored(store, "w1") is None

    def test_only_the_same_model_variant_joins(self, store, make_transcriber, make_task, tiny_whisper_dir):
        """One pass runs one model: tasks asking for another variant of the backend wait for theirs."""
        models = f"tiny-a={tiny_whisper_dir},tiny-b={tiny_whisper_dir}"
        transcriber = make_transcriber(
            MAIE_ASR_BATCH_MAX_TASKS="4", MAIE_WHISPER_MODEL="", MAIE_WHISPER_MODELS=models
        )
        mine = make_task("a1", backend="whisper", model="tiny-a")
        make_task("b1", backend="whisper", model="tiny-b")
        make_task("a2", backend="whisper", model="tiny-a")

        with capture_logs() as logs:
            artifact = transcriber.run(mine)

        assert [e["tasks"] for e in logs if e["event"] == "asr.batch_claimed"] == [["a1", "a2"]]
        assert stored(store, "b1") is None
        assert artifact.version.model_variant == "tiny-a"
        assert store.client.zcard(asr_ready_key("whisper:tiny-b")) == 1, "still waiting for its variant"

        other = transcriber.run(store.get("b1"))
        assert other.version.model_variant == "tiny-b"

    def test_batching_off_transcribes_one(self, store, make_transcriber, make_task):
        transcriber = make_transcriber()  # MAIE_ASR_BATCH_MAX_TASKS=1
        first = make_task("t0")
        make_task("t1")

        transcriber.run(first)

        assert stored(store, "t1") is None

    def test_a_task_leased_elsewhere_is_left_alone(self, store, make_transcriber, make_task):
        other_worker = AsrClaims(store.client, lease_s=5.0)
        transcriber = make_transcriber(MAIE_ASR_BATCH_MAX_TASKS="3")
        first = make_task("t0")
        make_task("t1")
        assert other_worker.try_claim("t1")

        transcriber.run(first)

        assert stored(store, "t1") is None
        assert other_worker.holder("t1") is not None, "the other worker's lease is untouched"
        other_worker.release("t1")
        other_worker.close()

    def test_a_companion_that_cannot_be_read_is_left_to_its_own_message(
        self, store, make_transcriber, make_task
    ):
        transcriber = make_transcriber(MAIE_ASR_BATCH_MAX_TASKS="3")
        first = make_task("t0")
        broken = make_task("t1")
        audio = store.get_artifact("t1", StageName.PREPROCESS, PreprocessArtifact)
        Path(audio.wav_path).unlink()  # e.g. the data volume lost it

        transcriber.run(first)

        assert stored(store, "t0") is not None
        assert stored(store, "t1") is None
        assert store.client.get(asr_claim_key("t1")) is None
        with pytest.raises(PermanentError, match="preprocessed audio is missing"):
            transcriber.run(broken)


def wait_one_lease(client, lease_s):
    """Wait until a key set now for ``lease_s`` and never renewed has expired, in Redis's clock."""
    key = f"test:unrenewed:{uuid.uuid4().hex}"
    client.set(key, "1", px=int(lease_s * 1000))
    deadline = time.monotonic() + 30
    while client.exists(key):
        assert time.monotonic() < deadline, "Redis never expired the key"
        time.sleep(0.02)


class TestLeases:
    """A message whose task is leased elsewhere waits; a dead holder's lease lapses."""

    def test_waits_for_the_holder_then_reuses_its_transcript(self, store, make_transcriber, make_task):
        holder = AsrClaims(store.client, lease_s=5.0)
        transcriber = make_transcriber()
        record = make_task("t0")
        assert holder.try_claim("t0")
        done = AsrArtifact(
            text="made by the holder",
            segments=[],
            language="en",
            duration_s=CLIP_SECONDS,
            processing_time_s=1.0,
            version=AsrVersion(
                name="whisper",
                model_variant="v",
                model_path="/m",
                checkpoint_hash="0" * 64,
                compute_type="int8",
                device="cpu",
            ),
        )

        def finish_later(logs):
            # Once the transcriber says it waits for the holder, never before.
            deadline = time.monotonic() + 30
            while not any(e["event"] == "asr.claimed_elsewhere" for e in list(logs)):
                if time.monotonic() > deadline:
                    break  # the assertions below say what went wrong
                time.sleep(0.02)
            store.put_artifact("t0", StageName.TRANSCRIBE, done)
            holder.release("t0")

        with capture_logs() as logs:
            thread = threading.Thread(target=finish_later, args=(logs,))
            thread.start()
            artifact = transcriber.run(record)
        thread.join()

        holder.close()
        assert artifact.text == "made by the holder"
        assert finished(logs) == 0
        assert any(e["event"] == "asr.claimed_elsewhere" for e in logs)

    def test_a_dead_holders_lease_lapses_and_the_task_is_done_here(self, store, make_transcriber, make_task):
        transcriber = make_transcriber()
        record = make_task("t0")
        store.client.set(asr_claim_key("t0"), "dead-worker:1", px=400)  # taken, never renewed

        with capture_logs() as logs:
            artifact = transcriber.run(record)

        assert finished(logs) == 1
        assert [e["event"] for e in logs if e["event"].startswith("asr.claim")] == [
            "asr.claimed_elsewhere",
            "asr.claim_taken_over",
        ]
        assert stored(store, "t0") == artifact

    def test_leases_are_renewed_while_held(self, store):
        claims = AsrClaims(store.client, lease_s=0.3)
        assert claims.try_claim("t0")
        assert not AsrClaims(store.client).try_claim("t0"), "exclusive"

        for _ in range(2):  # well past one lease: only renewal keeps it
            wait_one_lease(store.client, 0.3)

        assert claims.holder("t0") is not None
        claims.release("t0")
        assert claims.holder("t0") is None
        claims.close()

    def test_closed_claims_stop_renewing(self, store):
        """After close() (worker shutdown) a held lease is left to lapse, never renewed on a closed client."""
        claims = AsrClaims(store.client, lease_s=0.3)
        assert claims.try_claim("t0")

        claims.close()
        wait_one_lease(store.client, 0.3)  # the last renewal, at most one lease ago, has lapsed

        assert claims.holder("t0") is None

    def test_release_never_drops_someone_elses_lease(self, store):
        mine = AsrClaims(store.client, lease_s=0.2)
        assert mine.try_claim("t0")
        store.client.set(asr_claim_key("t0"), "someone-else", px=5000)  # mine lapsed and was retaken

        mine.release("t0")
        mine.close()

        assert store.client.get(asr_claim_key("t0")) == b"someone-else"


class TestFallbackChain:
    """The requested backend cannot load: the configured chain, logged and recorded."""

    @pytest.fixture
    def broken_whisper(self, tiny_whisper_dir, tmp_path):
        folder = tmp_path / "broken-whisper"
        shutil.copytree(tiny_whisper_dir, folder)
        (folder / "model.bin").write_bytes(b"not a model")
        return folder

    def test_falls_back_and_records_why(self, make_transcriber, make_task, broken_whisper):
        transcriber = make_transcriber(
            MAIE_WHISPER_MODEL=str(broken_whisper), MAIE_ASR_FALLBACK="pocketsphinx"
        )
        record = make_task("t0", backend="whisper")

        with capture_logs() as logs:
            artifact = transcriber.run(record)

        assert artifact.version.name == "pocketsphinx"
        assert artifact.version.fallback is not None
        assert artifact.version.fallback.startswith(
            "whisper→pocketsphinx: whisper: cannot load Whisper model"
        )
        (entry,) = [e for e in logs if e["event"] == "asr.fallback"]
        assert (entry["requested"], entry["used"], entry["log_level"]) == (
            "whisper",
            "pocketsphinx",
            "warning",
        )

    def test_no_fallback_configured_fails_with_the_load_error(
        self, make_transcriber, make_task, broken_whisper
    ):
        transcriber = make_transcriber(MAIE_WHISPER_MODEL=str(broken_whisper))

        with pytest.raises(ModelLoadError, match="no ASR backend could be loaded: whisper: cannot load"):
            transcriber.run(make_task("t0", backend="whisper"))

    def test_unavailable_fallbacks_are_skipped_with_their_reason(
        self, make_transcriber, make_task, broken_whisper, tmp_path
    ):
        transcriber = make_transcriber(
            MAIE_WHISPER_MODEL=str(broken_whisper),
            MAIE_ASR_FALLBACK="pocketsphinx",
            MAIE_POCKETSPHINX_LM=str(tmp_path / "missing.lm.bin"),
        )

        with pytest.raises(ModelLoadError) as err:
            transcriber.run(make_task("t0", backend="whisper"))

        assert "whisper: cannot load" in err.value.detail
        assert "pocketsphinx: MAIE_POCKETSPHINX_LM=" in err.value.detail
        assert err.value.extra == {"tried": ["whisper", "pocketsphinx"]}

    def test_working_backend_records_no_fallback(self, make_transcriber, make_task):
        transcriber = make_transcriber(MAIE_ASR_FALLBACK="whisper")

        artifact = transcriber.run(make_task("t0", backend="pocketsphinx"))

        assert (artifact.version.name, artifact.version.fallback) == ("pocketsphinx", None)

    def test_request_options_reach_the_backend(self, make_transcriber, make_task):
        transcriber = make_transcriber()

        artifact = transcriber.run(
            make_task("t0", backend="whisper", language="en", hotwords="MAIE", beam_size=2)
        )

        params = artifact.version.decoding_params
        assert (params["hotwords"], params["beam_size"], params["language"]) == ("MAIE", 2, "en")
