"""Media built to break decoders, sent through the real API and the real worker.

Every file gets an answer, never a 5xx: refused at upload (415/422, leaving nothing behind), or
accepted and then COMPLETE or FAILED with a reason. Nothing crashes the API or the worker, and a
good recording still goes through afterwards. The preprocess unit tests cover these files at
stage level; this battery checks the service around the stage. The stack here accepts at most
10 minutes of audio, so the duration bombs (5 hours) trip the limit cheaply.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

import av
import numpy as np
import pytest

from maie.up.redis import EmbeddedRedis
from tests.fixtures import bad_media
from tests.fixtures.paths import shared_audio
from tests.fixtures.postgres import fresh_database, task_ids
from tests.fixtures.services import HEADERS_A

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

pytestmark = pytest.mark.slow

#: Longest audio the battery's stack accepts; the bombs decode to much more.
MAX_DURATION_S = 600
#: Length of the duration bombs.
BOMB_HOURS = 5


def write_silence_bomb(folder: Path, name: str = "bomb.flac", *, hours: float = BOMB_HOURS) -> Path:
    """A FLAC of digital silence at 1 kHz: about 400 kB that decode to ``hours`` of audio."""
    rate, block = 1000, 4096
    path = folder / name
    zeros = np.zeros((1, block), dtype=np.int16)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("flac", rate=rate, layout="mono")
        for start in range(0, int(hours * 3600 * rate), block):
            frame = av.AudioFrame.from_ndarray(zeros, format="s16", layout="mono")
            frame.sample_rate = rate
            frame.pts = start
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def write_wav_claiming_hours(folder: Path, name: str = "claims_hours.wav") -> Path:
    """A 1 s WAV whose header claims 5 hours of data."""
    path = bad_media.write_tone_wav(folder, name, seconds=1.0)
    data = bytearray(path.read_bytes())
    claimed = BOMB_HOURS * 3600 * 16000 * 2
    data[4:8] = (36 + claimed).to_bytes(4, "little")
    data[40:44] = claimed.to_bytes(4, "little")
    path.write_bytes(bytes(data))
    return path


@pytest.fixture(scope="module")
def stack(service_env, start_process, postgres_server, tmp_path_factory) -> Iterator[dict[str, object]]:
    """A private Redis, database, API and worker accepting at most MAX_DURATION_S of audio."""
    folder = tmp_path_factory.mktemp("hostile")
    server = EmbeddedRedis(folder / "redis")
    server.start()
    database = fresh_database(postgres_server)
    env = {
        **service_env,
        "MAIE_REDIS_URL": server.url,
        "MAIE_DATABASE_URL": database,
        "MAIE_DATA_DIR": str(folder / "data"),
        "MAIE_MAX_DURATION_S": str(MAX_DURATION_S),
    }
    api = start_process("api", env)
    worker = start_process("worker", env)
    yield {"api": api, "worker": worker, "database": database, "audio": folder / "data" / "audio"}
    api.stop()
    worker.stop()
    server.stop()


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("media")


#: name -> writer of one hostile file into a folder.
CASES: dict[str, Callable[[Path], Path]] = {
    "flac-truncated-half": lambda d: bad_media.write_truncated(d, shared_audio("jfk.flac"), fraction=0.5),
    "flac-truncated-header": lambda d: bad_media.write_truncated(d, shared_audio("jfk.flac"), fraction=0.004),
    "flac-bit-flipped": lambda d: bad_media.write_bit_flipped(d, shared_audio("jfk.flac"), flips=400),
    "mp3-truncated-half": lambda d: bad_media.write_truncated(d, shared_audio("hotwords.mp3"), fraction=0.5),
    "mp3-truncated-header": lambda d: bad_media.write_truncated(
        d, shared_audio("hotwords.mp3"), fraction=0.01
    ),
    "mp3-bit-flipped": lambda d: bad_media.write_bit_flipped(d, shared_audio("hotwords.mp3"), flips=400),
    "wav-truncated-half": lambda d: bad_media.write_truncated(d, shared_audio("jfk_16k.wav"), fraction=0.5),
    "wav-truncated-header": bad_media.write_truncated_wav_header,
    "wav-bit-flipped": lambda d: bad_media.write_bit_flipped(d, shared_audio("jfk_16k.wav"), flips=400),
    "wav-claims-5h": write_wav_claiming_hours,
    "flac-claims-5h": lambda d: bad_media.write_flac_with_false_length(
        d, bad_media.write_encoded(d, "tone.flac", "flac"), claim=BOMB_HOURS * 3600 * 16000
    ),
    "flac-decodes-to-5h-no-length": lambda d: bad_media.write_flac_with_false_length(
        d, write_silence_bomb(d, "bomb_unknown.flac"), claim=0, name="bomb_no_length.flac"
    ),
    "flac-decodes-to-5h-claims-2s": lambda d: bad_media.write_flac_with_false_length(
        d, write_silence_bomb(d, "bomb_short.flac"), claim=2000, name="bomb_claims_2s.flac"
    ),
    "video-only": bad_media.write_video_mp4,
}
#: Damage seeds of the mixed-damage cases (cut, overwritten and inserted junk, bit flips).
SEEDS = range(8)


class TestHostileMedia:
    """Each file: a clear answer, a reason when it fails, nothing left behind when refused."""

    def _check(self, stack, path: Path) -> tuple[int, dict[str, object]]:
        api = stack["api"]
        audio: Path = stack["audio"]
        folders = set(audio.iterdir()) if audio.is_dir() else set()
        records = task_ids(stack["database"])
        response = api.submit(path)
        assert response.status_code in {202, 415, 422}, response.text
        body = response.json()
        if response.status_code != 202:
            assert body["status_code"] == response.status_code
            assert body["detail"]
            assert (set(audio.iterdir()) if audio.is_dir() else set()) == folders, "left a folder"
            assert task_ids(stack["database"]) == records, "left a record"
            return response.status_code, body
        status = api.wait(body["task_id"], headers=HEADERS_A)
        assert status["status"] in {"COMPLETE", "FAILED"}
        if status["status"] == "FAILED":
            assert status["error"]
            assert status["error_code"] not in {None, "internal_error"}, status
            assert status["failed_stage"] == "preprocess"
        return 202, status

    @pytest.mark.parametrize("case", list(CASES))
    def test_case(self, stack, media, case):
        folder = media / case
        folder.mkdir()
        code, body = self._check(stack, CASES[case](folder))
        if case == "flac-claims-5h":  # refused on the header, before decoding
            assert code == 422
            assert "MAIE_MAX_DURATION_S" in body["detail"]
        elif case == "wav-claims-5h":  # FFmpeg measures the data, not the header's claim
            assert (code, body["status"]) == (202, "COMPLETE")
            assert body["metrics"]["input_duration_seconds"] == pytest.approx(1.0, abs=0.05)
        elif case.startswith("flac-decodes-to-5h"):
            # The upload probe trusts a stated (or estimated) length; decoding in the worker stops
            # at the limit and fails the task, having written no more than 10 minutes of WAV.
            too_long = (code == 422 and "MAIE_MAX_DURATION_S" in body["detail"]) or (
                code == 202 and (body["status"], body["error_code"]) == ("FAILED", "audio_too_long")
            )
            assert too_long, body
        elif case == "video-only":
            assert code == 415
            assert "no audio stream" in body["detail"]
        elif case.endswith("truncated-half"):  # what arrived is worth transcribing
            assert (code, body["status"]) == (202, "COMPLETE")

    @pytest.mark.parametrize("seed", SEEDS)
    @pytest.mark.parametrize("source", ["jfk.flac", "hotwords.mp3", "jfk_16k.wav"])
    def test_mixed_damage(self, stack, media, source, seed):
        folder = media / f"{source}-{seed}"
        folder.mkdir()
        self._check(stack, bad_media.write_damaged(folder, shared_audio(source), seed=seed))

    def test_service_survives(self, stack):
        """After the battery both processes run and a good recording completes."""
        assert stack["api"].popen.poll() is None
        assert stack["worker"].popen.poll() is None
        response = stack["api"].submit(shared_audio("jfk_16k.wav"))
        assert response.status_code == 202
        assert stack["api"].wait(response.json()["task_id"])["status"] == "COMPLETE"


class TestNoOtherFilesNoNetwork:
    """Playlists and scripts named .mp3 are refused by format before FFmpeg follows a reference."""

    @pytest.fixture
    def listener(self) -> Iterator[socket.socket]:
        """A local HTTP port that records whether anyone connected."""
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        sock.setblocking(False)  # noqa: FBT003 - the socket API
        yield sock
        sock.close()

    def _refused(self, stack, path: Path) -> None:
        """415 before any reference is followed: FFmpeg may only use whitelisted audio demuxers."""
        response = stack["api"].submit(path)
        assert response.status_code == 415, response.text
        assert "not audio MAIE can decode" in response.json()["detail"]

    def _no_connection(self, listener: socket.socket) -> None:
        with pytest.raises(BlockingIOError):
            listener.accept()

    def test_hls_playlist_pointing_at_a_real_file(self, stack, media):
        target = shared_audio("jfk_16k.wav").resolve()  # decodable: following it would mean 202
        self._refused(stack, bad_media.write_hls_playlist(media, str(target), name="hls_file.mp3"))

    def test_hls_playlist_pointing_at_the_network(self, stack, media, listener):
        port = listener.getsockname()[1]
        playlist = bad_media.write_hls_playlist(media, f"http://127.0.0.1:{port}/seg.mp3", name="hls_net.mp3")
        self._refused(stack, playlist)
        self._no_connection(listener)

    def test_ffconcat_script(self, stack, media):
        self._refused(stack, bad_media.write_ffconcat_script(media, "jfk_16k.wav", name="concat.mp3"))
