"""Speakers end to end: the real API and worker diarize, export and rename (embedded and channels).

The four-speaker AMI excerpt goes through the whole service with ``diarize=true``: the tiny
Whisper's words are gibberish, but its segments and word times are real, so speakers land on
real segments and words. Exports are parsed back with independent parsers (pysubs2 for SubRip
and WebVTT, pyannote's RTTM layout by ``read_rttm``).
"""

from __future__ import annotations

import io
import re
import subprocess
import sys
import wave

import msgspec
import pysubs2
import pytest
from prometheus_client.parser import text_string_to_metric_families

from maie.client import MaieClient
from maie.pipeline.diarization import read_rttm
from maie.schemas import ResultVersion, TaskStatus
from tests.fixtures.paths import shared_audio
from tests.fixtures.services import HEADERS_A, HEADERS_B, KEY_A

AMI = "pyannote/ami_mixture_4spk.wav"
SPEAKER_LINE = r"^SPEAKER_\d\d: "


@pytest.fixture(scope="module")
def meeting(api, worker):
    """The AMI excerpt diarized (with word timestamps), and its status body."""
    accepted = api.submit(shared_audio(AMI), diarize="true", word_timestamps="true")
    assert accepted.status_code == 202, accepted.text
    status = api.wait(accepted.json()["task_id"])
    assert status["status"] == "COMPLETE", status
    return status


def _silence(path, seconds=3.0):
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(b"\0\0" * int(16000 * seconds))
    return path


class TestMeeting:
    """A four-speaker meeting with diarize=true."""

    def test_every_segment_has_a_speaker(self, meeting):
        results = meeting["results"]
        segments = results["segments"]
        assert segments, "the excerpt has segments"
        assert all(s["speaker"] for s in segments)
        labels = [s["speaker"] for s in segments]
        turns = results["speaker_turns"]
        assert [t["start"] for t in turns] == sorted(t["start"] for t in turns)
        first_seen = list(dict.fromkeys(t["speaker"] for t in turns))
        assert first_seen == [f"SPEAKER_{n:02d}" for n in range(len(first_seen))], "by first appearance"
        assert all(w["speaker"] for s in segments for w in s["words"] or [])
        for segment in segments:  # a segment that straddled a change was split at a word
            assert {w["speaker"] for w in segment["words"] or []} <= {segment["speaker"]}
        speakers = results["speakers"]
        assert [s["id"] for s in speakers] == sorted(s["id"] for s in speakers)
        assert {s["id"] for s in speakers} >= set(labels)
        assert all(s.get("name") is None for s in speakers)
        assert sum(s["segment_count"] for s in speakers) == len(segments)
        assert 3 <= len(speakers) <= 5, speakers
        assert sum(s["speaking_time_s"] for s in speakers) > 30

    def test_versions_metrics_and_stages(self, meeting):
        version = meeting["versions"]["diarization"]
        assert version["backend"] == "embedded"
        assert version["model"] == "resemblyzer-ge2e"
        assert len(version["checkpoint_hash"]) == 64
        assert version["params"]["num_speakers"] is None
        assert {"window_s", "hop_s", "vad", "clustering"} <= set(version["params"])
        metrics = meeting["metrics"]
        assert metrics["num_speakers"] == len(meeting["results"]["speakers"])
        assert 0 < metrics["diarization_rtf"] < 5
        stages = {s["name"]: s for s in meeting["stages"]}
        assert stages["diarize"]["status"] == "done"
        assert stages["transcribe"]["status"] == "done"

    def test_stage_is_measured(self, api, meeting):
        """/metrics times the diarize stage like the others (a cluster-wide series, so at least one)."""
        text = api.client.get("/metrics").text
        samples = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }
        assert samples[("maie_stage_seconds_count", (("stage", "diarize"),))] >= 1
        assert samples[("maie_stage_seconds_sum", (("stage", "diarize"),))] > 0

    def test_rttm_holds_the_turns(self, api, meeting):
        task_id = meeting["task_id"]
        response = api.client.get(f"/v1/tasks/{task_id}/transcript.rttm", headers=HEADERS_A)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/plain")
        turns = read_rttm(response.text, file_id=task_id)
        stored = meeting["results"]["speaker_turns"]
        assert [(t.start, t.speaker) for t in turns] == [(round(t["start"], 3), t["speaker"]) for t in stored]
        for line in response.text.splitlines():
            kind, uri, channel, _, _, *rest = line.split()
            assert (kind, uri, channel) == ("SPEAKER", task_id, "1")
            assert rest[:2] == rest[3:] == ["<NA>", "<NA>"]

    def test_txt_srt_vtt_name_the_speakers(self, api, meeting):
        task_id = meeting["task_id"]
        spoken = [s for s in meeting["results"]["segments"] if s["text"].strip()]
        txt = api.client.get(f"/v1/tasks/{task_id}/transcript.txt", headers=HEADERS_A).text
        assert [line.split(": ", 1)[0] for line in txt.splitlines()] == [s["speaker"] for s in spoken]
        srt = pysubs2.SSAFile.from_string(
            api.client.get(f"/v1/tasks/{task_id}/transcript.srt", headers=HEADERS_A).text, format_="srt"
        )
        assert [e.plaintext.split(": ", 1)[0] for e in srt] == [s["speaker"] for s in spoken]
        vtt = api.client.get(f"/v1/tasks/{task_id}/transcript.vtt", headers=HEADERS_A).text
        cues = [line for line in vtt.splitlines() if line.startswith("<v ")]
        assert [c[3 : c.index(">")] for c in cues] == [s["speaker"] for s in spoken]
        exported = api.client.get(f"/v1/tasks/{task_id}/transcript.json", headers=HEADERS_A).json()
        assert exported["speakers"] == meeting["results"]["speakers"]


class TestRename:
    """PATCH /v1/tasks/{id}/speakers adds a version; version 1 stays as it was."""

    def test_rename_adds_a_version(self, api, meeting):
        task_id = meeting["task_id"]
        before = api.client.get(f"/v1/tasks/{task_id}/results/1", headers=HEADERS_A)
        response = api.client.patch(
            f"/v1/tasks/{task_id}/speakers", headers=HEADERS_A, json={"names": {"SPEAKER_00": "Alice"}}
        )
        assert response.status_code == 200, response.text
        renamed = response.json()
        assert renamed["kind"] == "speakers"
        assert renamed["version"] == 2
        assert response.headers["content-location"] == f"/v1/tasks/{task_id}/results/2"
        old = before.json()["results"]
        for was, now in zip(old["segments"], renamed["results"]["segments"], strict=True):
            assert now["speaker"] == ("Alice" if was["speaker"] == "SPEAKER_00" else was["speaker"])
            assert now["text"] == was["text"]
        assert {s["id"]: s.get("name") for s in renamed["results"]["speakers"]}["SPEAKER_00"] == "Alice"
        assert "Alice" in {t["speaker"] for t in renamed["results"]["speaker_turns"]}

        after = api.client.get(f"/v1/tasks/{task_id}/results/1", headers=HEADERS_A)
        assert after.content == before.content, "version 1 is byte-for-byte unchanged"
        txt = api.client.get(f"/v1/tasks/{task_id}/transcript.txt", headers=HEADERS_A).text
        assert "Alice: " in txt
        assert "SPEAKER_00: " not in txt
        first = api.client.get(f"/v1/tasks/{task_id}/transcript.txt?version=1", headers=HEADERS_A).text
        assert "SPEAKER_00: " in first
        assert "Alice" not in first
        rttm = api.client.get(f"/v1/tasks/{task_id}/transcript.rttm", headers=HEADERS_A).text
        assert " Alice <NA> <NA>" in rttm
        status = api.client.get(f"/v1/status/{task_id}", headers=HEADERS_A).json()
        assert status["result_version"] == 2

        again = api.client.patch(
            f"/v1/tasks/{task_id}/speakers", headers=HEADERS_A, json={"names": {"SPEAKER_00": "Alice"}}
        )
        assert again.status_code == 200
        assert again.json()["version"] == 2, "a rename that changes nothing adds no version"

    def test_unknown_label_is_422(self, api, meeting):
        response = api.client.patch(
            f"/v1/tasks/{meeting['task_id']}/speakers", headers=HEADERS_A, json={"names": {"SPEAKER_31": "X"}}
        )
        assert response.status_code == 422
        assert "SPEAKER_31" in response.json()["detail"]

    @pytest.mark.parametrize(
        ("names", "says"),
        [
            ({}, "at least one name"),
            ({"SPEAKER_00": "x" * 201}, "at most 200"),
            ({"SPEAKER_00": " "}, "one line"),
        ],
    )
    def test_unusable_names_are_422(self, api, meeting, names, says):
        response = api.client.patch(
            f"/v1/tasks/{meeting['task_id']}/speakers", headers=HEADERS_A, json={"names": names}
        )
        assert response.status_code == 422, response.text
        assert says in response.json()["detail"]

    def test_other_tenant_is_404(self, api, meeting):
        names = {"names": {"SPEAKER_00": "Eve"}}
        response = api.client.patch(f"/v1/tasks/{meeting['task_id']}/speakers", headers=HEADERS_B, json=names)
        assert response.status_code == 404


class TestOtherRecordings:
    """Stereo channels, silence, and a task that was not diarized."""

    def test_stereo_channels(self, api, worker):
        accepted = api.submit(
            shared_audio("stereo_diarization.wav"), diarize="true", diarization_backend="channels"
        )
        assert accepted.status_code == 202, accepted.text
        status = api.wait(accepted.json()["task_id"])
        assert status["status"] == "COMPLETE", (status["error"], worker.log()[-3000:])
        assert [s["id"] for s in status["results"]["speakers"]] == ["SPEAKER_00", "SPEAKER_01"]
        assert status["versions"]["diarization"]["backend"] == "channels"
        channels = status["versions"]["diarization"]["params"]["speaker_channels"]
        assert sorted(channels.values()) == [0, 1]

    def test_channels_on_mono_is_422_and_leaves_nothing(self, api, worker):
        response = api.submit(shared_audio("jfk_16k.wav"), diarize="true", diarization_backend="channels")
        assert response.status_code == 422
        assert "mono" in response.json()["detail"]
        assert "diarization_backend=embedded" in response.json()["detail"]

    def test_silence_has_no_speakers(self, api, worker, tmp_path):
        accepted = api.submit(_silence(tmp_path / "silence.wav"), diarize="true", num_speakers="2")
        assert accepted.status_code == 202, accepted.text
        status = api.wait(accepted.json()["task_id"])
        assert status["status"] == "COMPLETE", status
        assert status["results"]["speakers"] == []
        assert status["metrics"]["num_speakers"] == 0
        assert any("num_speakers=2" in w for w in status["results"]["warnings"])
        rttm = api.client.get(f"/v1/tasks/{status['task_id']}/transcript.rttm", headers=HEADERS_A)
        assert rttm.status_code == 200
        assert rttm.text == ""

    def test_not_diarized_has_no_rttm_and_no_speakers(self, api, worker):
        accepted = api.submit(shared_audio("jfk_16k.wav"))
        status = api.wait(accepted.json()["task_id"])
        assert "speakers" not in status["results"]
        assert "diarize" not in {s["name"] for s in status["stages"]}
        task_id = status["task_id"]
        assert api.client.get(f"/v1/tasks/{task_id}/transcript.rttm", headers=HEADERS_A).status_code == 404
        rename = api.client.patch(
            f"/v1/tasks/{task_id}/speakers", headers=HEADERS_A, json={"names": {"SPEAKER_00": "A"}}
        )
        assert rename.status_code == 409
        assert "diarize=true" in rename.json()["detail"]


class TestSubmission:
    """The diarization fields are checked at submit, before anything is stored."""

    @pytest.mark.parametrize(
        ("fields", "says"),
        [
            ({"num_speakers": "2"}, "add diarize=true"),
            ({"diarize": "true", "min_speakers": "4", "max_speakers": "2"}, "lower min_speakers"),
            ({"diarize": "true", "num_speakers": "40"}, "from 1 to 32"),
            ({"diarize": "true", "num_speakers": "5", "max_speakers": "3"}, "give num_speakers alone"),
            ({"diarize": "true", "diarization_backend": "nope"}, "known backends: embedded"),
        ],
    )
    def test_refused_with_what_to_change(self, api, fields, says):
        response = api.submit(shared_audio("jfk_16k.wav"), **fields)
        assert response.status_code == 422, response.text
        assert says in response.json()["detail"]

    def test_models_list_diarizers(self, api):
        body = api.client.get("/v1/models", headers=HEADERS_A).json()
        diarizers = {d["backend_id"]: d for d in body["diarizers"]}
        assert set(diarizers) == {"embedded", "pyannote", "channels"}
        assert diarizers["embedded"]["available"] is True
        assert diarizers["channels"]["available"] is True
        assert set(diarizers["embedded"]) >= set(body["models"][0]) - {"variants", "size_bytes", "languages"}

    def test_unavailable_backend_says_why_and_is_422(self, api):
        """pyannote's weights are gated (and pyannote.audio is not in the extra): listed with the reason."""
        body = api.client.get("/v1/models", headers=HEADERS_A).json()
        pyannote = {d["backend_id"]: d for d in body["diarizers"]}["pyannote"]
        if pyannote["available"]:
            pytest.skip("pyannote runs here")
        reason = pyannote["unavailable_reason"]
        assert "install" in reason or "MAIE_DIARIZATION_PYANNOTE" in reason, reason
        response = api.submit(shared_audio("jfk_16k.wav"), diarize="true", diarization_backend="pyannote")
        assert response.status_code == 422, response.text
        assert reason in response.json()["detail"]


def test_batch_export_has_speaker_statistics(api, worker, tmp_path):
    """A diarized batch's JSON Lines rows carry each task's speakers."""
    audio = shared_audio("stereo_diarization.wav")
    with audio.open("rb") as fh:
        response = api.client.post(
            "/v1/batches",
            headers=HEADERS_A,
            files=[("file", ("a.wav", fh.read()))],
            data={"features": "raw_transcript", "diarize": "true", "diarization_backend": "channels"},
        )
    assert response.status_code == 202, response.text
    task_id = response.json()["task_ids"][0]
    api.wait(task_id)
    batch_id = response.json()["batch_id"]
    rows = api.client.get(f"/v1/batches/{batch_id}/export", headers=HEADERS_A).text.splitlines()
    row = __import__("json").loads(rows[0])
    assert row["num_speakers"] == 2
    assert [s["id"] for s in row["speakers"]] == ["SPEAKER_00", "SPEAKER_01"]
    table = api.client.get(f"/v1/batches/{batch_id}/export", headers=HEADERS_A, params={"format": "csv"}).text
    header = next(iter(io.StringIO(table))).strip().split(",")
    assert {"num_speakers", "speakers"} <= set(header)


class TestClientAndCli:
    """The Python client, `maie submit` and `maie transcribe` with speakers."""

    STEREO = "stereo_diarization.wav"

    def test_client_diarizes_and_names_speakers(self, api, worker):
        with MaieClient(api.url, KEY_A) as maie:
            accepted = maie.submit(
                shared_audio(self.STEREO),
                features=["raw_transcript"],
                diarize=True,
                diarization_backend="channels",
            )
            status = maie.wait(accepted.task_id, timeout=120)
            assert status.status == TaskStatus.COMPLETE
            assert [s.id for s in status.results.speakers or []] == ["SPEAKER_00", "SPEAKER_01"]
            renamed = maie.name_speakers(accepted.task_id, {"SPEAKER_01": "Bob"})
            assert (renamed.version, renamed.kind) == (2, "speakers")
            turns = read_rttm(maie.transcript(accepted.task_id, "rttm"), file_id=accepted.task_id)
            assert {t.speaker for t in turns} == {"SPEAKER_00", "Bob"}
            first = read_rttm(maie.transcript(accepted.task_id, "rttm", version=1), file_id=accepted.task_id)
            assert {t.speaker for t in first} == {"SPEAKER_00", "SPEAKER_01"}

    def test_submit_flags_imply_diarize(self, api, worker, service_env, tmp_path):
        out = tmp_path / "out"
        args = ["submit", str(shared_audio(self.STEREO)), "--features", "raw_transcript", "--out", str(out)]
        args += ["--diarization-backend", "channels", "--url", api.url, "--api-key", KEY_A]
        done = _maie(service_env, *args)
        assert done.returncode == 0, done.stdout + done.stderr
        result = msgspec.json.decode((out / "stereo_diarization.json").read_bytes(), type=ResultVersion)
        assert result.versions.diarization is not None
        assert result.versions.diarization.backend == "channels"
        srt = pysubs2.SSAFile.from_string((out / "stereo_diarization.srt").read_text(), format_="srt")
        assert srt.events
        assert all(re.match(SPEAKER_LINE, e.plaintext) for e in srt)

    def test_offline_transcribe_with_speakers(self, service_env):
        """`--speakers 2` implies --diarize; the embedded backend runs in the process."""
        env = {k: v for k, v in service_env.items() if k != "MAIE_REDIS_URL"}
        done = _maie(env, "transcribe", str(shared_audio(self.STEREO)), "--speakers", "2", "--format", "json")
        assert done.returncode == 0, done.stderr
        result = msgspec.json.decode(done.stdout, type=ResultVersion)
        assert result.versions.diarization is not None
        assert result.versions.diarization.backend == "embedded"
        assert result.versions.diarization.params["num_speakers"] == 2
        assert result.metrics is not None
        assert result.metrics.num_speakers == len(result.results.speakers or []) >= 1
        assert all(s.speaker for s in result.results.segments or [])

    def test_fallback_runs_the_next_backend_and_says_so(self, service_env, tmp_path):
        """Unreadable encoder weights: MAIE_DIARIZATION_FALLBACK's ``channels`` runs, recorded as such."""
        junk = tmp_path / "pretrained.pt"
        junk.write_bytes(b"not a checkpoint")
        env = {k: v for k, v in service_env.items() if k != "MAIE_REDIS_URL"}
        env |= {"MAIE_DIARIZATION_ENCODER_WEIGHTS": str(junk), "MAIE_DIARIZATION_FALLBACK": "channels"}
        done = _maie(env, "transcribe", str(shared_audio(self.STEREO)), "--diarize", "--format", "json")
        assert done.returncode == 0, done.stderr
        result = msgspec.json.decode(done.stdout, type=ResultVersion)
        version = result.versions.diarization
        assert version is not None
        assert (version.backend, version.fallback_from) == ("channels", "embedded")
        assert [s.id for s in result.results.speakers or []] == ["SPEAKER_00", "SPEAKER_01"]
        assert any(w.startswith("embedded→channels: embedded: ") for w in result.results.warnings or [])

        env.pop("MAIE_DIARIZATION_FALLBACK")
        failed = _maie(env, "transcribe", str(shared_audio(self.STEREO)), "--diarize")
        assert failed.returncode == 1
        assert "no diarization backend could be loaded" in failed.stderr


def _maie(env, *args, timeout=180):
    return subprocess.run(
        [sys.executable, "-m", "maie", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
