"""Signed audio links: the tenant's keys sign them, nothing else opens them, and they expire."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import pytest

from maie.api.audio_links import (
    LINK_TTL_S,
    PLAYBACK_NAME,
    AudioSource,
    LinkRefusedError,
    audio_link,
    check_link,
    kept_audio,
)
from maie.config.service import AuthSettings
from maie.errors import NotFoundError
from tests.fixtures.records import make_record

TASK = "6f1c2c1e-1111-4a57-9d0c-6f1e0b7c2a11"
NOW = 1_800_000_000.0
AUTH = AuthSettings(api_keys="key-a:tenant-a,key-a2:tenant-a,key-b:tenant-b")


def record(tenant="tenant-a", audio_path=""):
    made = make_record(TASK)
    made.tenant, made.audio_path = tenant, audio_path
    return made


def signed(link):
    parts = urlsplit(link.url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    return parts.path, query


class TestLinks:
    def test_a_link_names_the_task_and_an_expiry_and_never_the_key(self):
        link = audio_link(AUTH, "tenant-a", TASK, AudioSource.PLAYBACK, NOW)
        path, query = signed(link)
        assert path == f"/media/tasks/{TASK}/audio"
        assert set(query) == {"expires", "signature"}
        assert int(query["expires"]) == int(NOW) + LINK_TTL_S
        assert link.expires_at == datetime.fromtimestamp(int(NOW) + LINK_TTL_S, UTC)
        assert "key-a" not in link.url

    def test_the_owner_opens_it_until_it_expires(self):
        _, query = signed(audio_link(AUTH, "tenant-a", TASK, AudioSource.PLAYBACK, NOW))
        expires, signature = int(query["expires"]), query["signature"]
        check_link(AUTH, record(), AudioSource.PLAYBACK, expires=expires, signature=signature, now=NOW + 60)
        with pytest.raises(LinkRefusedError, match="expired"):
            check_link(
                AUTH, record(), AudioSource.PLAYBACK, expires=expires, signature=signature, now=expires + 1
            )

    def test_a_changed_expiry_source_or_signature_is_refused(self):
        _, query = signed(audio_link(AUTH, "tenant-a", TASK, AudioSource.PLAYBACK, NOW))
        expires, signature = int(query["expires"]), query["signature"]
        for source, when, sig in [
            (AudioSource.PLAYBACK, expires + 3600, signature),
            (AudioSource.ORIGINAL, expires, signature),
            (AudioSource.PLAYBACK, expires, signature[:-1] + ("0" if signature[-1] != "0" else "1")),
            (AudioSource.PLAYBACK, expires, ""),
        ]:
            with pytest.raises(LinkRefusedError, match="not valid"):
                check_link(AUTH, record(), source, expires=when, signature=sig, now=NOW)

    def test_another_tenants_link_does_not_open_this_tenants_task(self):
        _, query = signed(audio_link(AUTH, "tenant-b", TASK, AudioSource.PLAYBACK, NOW))
        with pytest.raises(LinkRefusedError):
            check_link(
                AUTH, record("tenant-a"), AudioSource.PLAYBACK,
                expires=int(query["expires"]), signature=query["signature"], now=NOW,
            )  # fmt: skip

    def test_new_keys_void_old_links_and_a_tenant_without_keys_has_none(self):
        _, query = signed(audio_link(AUTH, "tenant-a", TASK, AudioSource.PLAYBACK, NOW))
        rotated = AuthSettings(api_keys="key-a3:tenant-a,key-b:tenant-b")
        gone = AuthSettings(api_keys="key-b:tenant-b")
        for auth in (rotated, gone):
            with pytest.raises(LinkRefusedError):
                check_link(
                    auth, record(), AudioSource.PLAYBACK,
                    expires=int(query["expires"]), signature=query["signature"], now=NOW,
                )  # fmt: skip
        with pytest.raises(NotFoundError):
            audio_link(gone, "tenant-a", TASK, AudioSource.PLAYBACK, NOW)


class TestKeptAudio:
    def test_playback_prefers_the_wav_and_falls_back_to_the_recording(self, tmp_path):
        folder = tmp_path / "audio" / TASK
        folder.mkdir(parents=True)
        raw = folder / "raw.flac"
        raw.write_bytes(b"fLaC")
        path, media_type = kept_audio(record(audio_path=str(raw)), AudioSource.PLAYBACK, tmp_path)
        assert (path.name, media_type) == ("raw.flac", "audio/flac")
        (folder / PLAYBACK_NAME).write_bytes(b"RIFF")
        path, media_type = kept_audio(record(audio_path=str(raw)), AudioSource.PLAYBACK, tmp_path)
        assert (path.name, media_type) == (PLAYBACK_NAME, "audio/wav")
        path, media_type = kept_audio(record(audio_path=str(raw)), AudioSource.ORIGINAL, tmp_path)
        assert path.name == "raw.flac"

    def test_nothing_outside_the_audio_folder_is_served(self, tmp_path):
        outside = tmp_path / "secret.wav"
        outside.write_bytes(b"RIFF")
        (tmp_path / "audio").mkdir()
        with pytest.raises(NotFoundError, match="MAIE_KEEP_AUDIO"):
            kept_audio(record(audio_path=str(outside)), AudioSource.ORIGINAL, tmp_path)

    def test_no_file_is_a_404_that_says_why(self, tmp_path):
        with pytest.raises(NotFoundError, match="MAIE_KEEP_AUDIO=true"):
            kept_audio(
                record(audio_path=str(tmp_path / "audio" / TASK / "raw.wav")), AudioSource.PLAYBACK, tmp_path
            )
        with pytest.raises(NotFoundError):
            kept_audio(record(audio_path=""), AudioSource.PLAYBACK, tmp_path)
