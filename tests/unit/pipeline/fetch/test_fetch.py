"""Fetching recordings from a real local web server: direct files, redirects, pages, and refusals.

The server listens on 127.0.0.1, so the fetches run with ``allow_private=True`` except where the
point is that loopback is refused. Its pages go through yt-dlp's real generic extractor. Limits
are small so that a stalling or trickling server fails a test in about a second.
"""

from __future__ import annotations

import ipaddress
import subprocess
import sys

import av
import pytest

from maie.errors import (
    AudioTooLongError,
    FetchConnectionError,
    FetchHttpError,
    FetchHttpUnavailableError,
    FetchNoMediaError,
    FetchRefusedAddressError,
    FetchTimeoutError,
    FetchTooLargeError,
    FetchTooManyRedirectsError,
    FetchTooSlowError,
)
from maie.outbound import resolve
from maie.pipeline.fetch import FETCHED_NAME, FetchLimits, FetchOptions, fetch


def options(*, allow_private=True, **limits):
    defaults = {
        "max_bytes": 1_000_000,
        "stall_timeout_s": 1.0,
        "min_bytes_per_s": 2000,
        "total_timeout_s": 20.0,
        "max_redirects": 5,
    }
    return FetchOptions(limits=FetchLimits(**(defaults | limits)), allow_private=allow_private)


def test_resolver(host, port):
    """A test double for DNS: ``*.test`` names are the local server; anything else is real DNS."""
    if host.endswith(".test"):
        return [ipaddress.ip_address("127.0.0.1")]
    return resolve(host, port)


test_resolver.__test__ = False  # a helper, not a test


def run(server, path, tmp_path, **kwargs):
    return fetch(server.url(path, host="media.test"), tmp_path, options(**kwargs), resolver=test_resolver)


def left_behind(folder):
    return sorted(p.name for p in folder.iterdir())


class TestDirect:
    """The URL answers with the file itself."""

    def test_direct_file_is_saved_whole(self, media_server, tmp_path):
        media = run(media_server, "/clip.wav", tmp_path)
        assert media.via == "direct"
        assert media.path == tmp_path / FETCHED_NAME
        assert media.path.read_bytes() == media_server.clip
        assert media.size_bytes == len(media_server.clip)
        assert media.content_type == "audio/wav"
        assert left_behind(tmp_path) == [FETCHED_NAME], "no .part left"
        with av.open(str(media.path)) as container:
            assert container.streams.audio[0].sample_rate == 16000, "a real, decodable recording"
        seen = media_server.requests[-1]
        assert seen.headers["Host"] == f"media.test:{media_server.port}"
        assert seen.headers["Accept-Encoding"] == "identity"

    def test_source_url_is_recorded_without_credentials(self, media_server, tmp_path):
        url = media_server.url("/clip.wav?token=s3cret&id=7", host="alice:hunter2@media.test")
        media = fetch(url, tmp_path, options(), resolver=test_resolver)
        assert media.source_url == f"http://media.test:{media_server.port}/clip.wav?token=REDACTED&id=7"
        assert media_server.requests[-1].headers["Authorization"].startswith("Basic "), (
            "the credentials are used for the request, only not recorded"
        )

    def test_redirect_chain_is_followed(self, media_server, tmp_path):
        media = run(media_server, "/redirect/4", tmp_path)
        assert media.path.read_bytes() == media_server.clip
        assert media.redirects == 5
        assert media_server.paths() == [f"/redirect/{n}" for n in (4, 3, 2, 1, 0)] + ["/clip.wav"]

    def test_too_many_redirects_fail(self, media_server, tmp_path):
        with pytest.raises(FetchTooManyRedirectsError, match="more than 5 times"):
            run(media_server, "/redirect/5", tmp_path)
        assert len(media_server.requests) == 6, "stops at the hop over the limit"
        assert left_behind(tmp_path) == []

    def test_no_redirects_allowed(self, media_server, tmp_path):
        with pytest.raises(FetchTooManyRedirectsError):
            run(media_server, "/redirect/0", tmp_path, max_redirects=0)

    def test_redirect_to_the_metadata_service_is_refused_even_with_private_allowed(
        self, media_server, tmp_path
    ):
        with pytest.raises(FetchRefusedAddressError, match="cloud metadata") as refused:
            run(media_server, "/to-metadata", tmp_path, allow_private=True)
        assert refused.value.code == "fetch_refused_address"
        assert not refused.value.retryable
        assert left_behind(tmp_path) == []

    def test_loopback_is_refused_without_allow_private(self, media_server, tmp_path):
        url = media_server.url("/clip.wav")
        with pytest.raises(FetchRefusedAddressError, match="MAIE_FETCH_ALLOW_PRIVATE=true"):
            fetch(url, tmp_path, options(allow_private=False))
        assert media_server.requests == [], "nothing reached the server"
        fetch(url, tmp_path, options(allow_private=True))
        assert media_server.paths() == ["/clip.wav"], "the same URL with the setting works"

    def test_stated_length_over_the_limit_is_refused_before_the_body(self, media_server, tmp_path):
        with pytest.raises(FetchTooLargeError, match=r"says the file is 0\.3 MiB") as refused:
            run(media_server, "/clip.wav", tmp_path, max_bytes=100_000)
        assert refused.value.status_code == 413
        assert left_behind(tmp_path) == [], "no file was even opened"

    def test_body_without_length_is_cut_at_the_limit(self, media_server, tmp_path):
        with pytest.raises(FetchTooLargeError, match=r"larger than the 0\.1 MiB"):
            run(media_server, "/chunked.wav", tmp_path, max_bytes=100_000)
        assert left_behind(tmp_path) == []

    def test_body_without_length_within_the_limit(self, media_server, tmp_path):
        media = run(media_server, "/chunked.wav", tmp_path)
        assert media.path.read_bytes() == media_server.clip

    def test_a_stalled_server_is_cut_off(self, media_server, tmp_path):
        with pytest.raises(FetchTimeoutError, match="stalled") as stalled:
            run(media_server, "/stall.wav", tmp_path)
        assert stalled.value.retryable, "a stall may be the network's: worth a retry"
        assert left_behind(tmp_path) == []

    def test_a_trickling_server_is_cut_off(self, media_server, tmp_path):
        """200 bytes/s never stalls for a second, but is below the 2000 bytes/s minimum."""
        with pytest.raises(FetchTooSlowError, match="slower than the 2000 bytes/s") as slow:
            run(media_server, "/trickle.wav", tmp_path)
        assert not slow.value.retryable
        assert left_behind(tmp_path) == []

    def test_the_total_time_limit_ends_trickled_headers(self, media_server, tmp_path):
        with pytest.raises(FetchTooSlowError, match="took longer than the 2 s"):
            run(media_server, "/slow-headers", tmp_path, total_timeout_s=2.0, stall_timeout_s=30.0)
        assert left_behind(tmp_path) == []

    def test_404_is_permanent(self, media_server, tmp_path):
        with pytest.raises(FetchHttpError, match="HTTP 404") as missing:
            run(media_server, "/missing", tmp_path)
        assert missing.value.http_status == 404
        assert missing.value.extra["http_status"] == 404
        assert not missing.value.retryable

    def test_503_is_retried(self, media_server, tmp_path):
        with pytest.raises(FetchHttpUnavailableError, match="HTTP 503") as busy:
            run(media_server, "/busy", tmp_path)
        assert busy.value.http_status == 503
        assert busy.value.retryable

    def test_a_refused_connection_is_retried(self, tmp_path):
        """Port 9 (discard) has no listener on loopback."""
        with pytest.raises(FetchConnectionError) as refused:
            fetch("http://127.0.0.1:9/clip.wav", tmp_path, options())
        assert refused.value.retryable
        assert left_behind(tmp_path) == []


class TestPages:
    """The URL answers with a web page: yt-dlp's generic extractor finds the media on it."""

    def test_audio_element_on_a_page(self, media_server, tmp_path):
        media = run(media_server, "/page.html", tmp_path)
        assert media.via == "page"
        assert media.path.read_bytes() == media_server.clip
        assert media.extractor
        assert (media.title or "").startswith("Recording")
        assert left_behind(tmp_path) == [FETCHED_NAME]
        assert media_server.paths().count("/page.html") >= 1
        assert media_server.paths()[-1] == "/clip.wav"

    def test_every_request_of_yt_dlp_goes_through_the_checked_session(self, media_server, tmp_path):
        """``media.test`` resolves only through the fetch's resolver: yt-dlp's own HTTP could not
        even find it. Every request the server saw carries that host name."""
        run(media_server, "/page.html", tmp_path)
        hosts = {seen.headers["Host"] for seen in media_server.requests}
        assert hosts == {f"media.test:{media_server.port}"}
        page_requests = [s for s in media_server.requests if s.path == "/page.html"]
        assert len(page_requests) == 2, "MAIE's first look, then yt-dlp's"
        assert page_requests[0].headers["User-Agent"].startswith("MAIE-Fetch/")
        assert page_requests[1].headers["User-Agent"] != page_requests[0].headers["User-Agent"], (
            "the second look is yt-dlp's own request (its browser User-Agent), through MAIE's session"
        )

    def test_media_behind_redirects_on_a_page(self, media_server, tmp_path):
        media = run(media_server, "/page-redirected-media.html", tmp_path)
        assert media.path.read_bytes() == media_server.clip
        assert media.redirects == 3

    def test_page_media_at_the_metadata_service_is_refused(self, media_server, tmp_path):
        with pytest.raises(FetchRefusedAddressError, match="cloud metadata"):
            run(media_server, "/page-metadata-media.html", tmp_path)
        assert left_behind(tmp_path) == []

    def test_a_page_that_sends_yt_dlp_to_the_metadata_service_is_refused(self, media_server, tmp_path):
        """The ``<meta http-equiv=refresh>`` is followed by yt-dlp itself: its request is refused."""
        with pytest.raises(
            FetchRefusedAddressError, match=r"'169\.254\.169\.254' resolves to a cloud metadata"
        ):
            run(media_server, "/page-refresh.html", tmp_path)
        assert media_server.paths() == ["/page-refresh.html"] * 2, "MAIE's look, then yt-dlp's"

    def test_a_page_without_media(self, media_server, tmp_path):
        with pytest.raises(FetchNoMediaError, match="no audio or video") as none:
            run(media_server, "/page-no-media.html", tmp_path)
        assert none.value.code == "fetch_no_media"
        assert left_behind(tmp_path) == []

    def test_page_media_is_held_to_the_size_limit(self, media_server, tmp_path):
        with pytest.raises(FetchTooLargeError):
            run(media_server, "/page.html", tmp_path, max_bytes=100_000)
        assert left_behind(tmp_path) == []

    def test_page_size_limit(self, media_server, tmp_path):
        """A page larger than ``max_page_bytes`` is not read into memory."""
        with pytest.raises(FetchTooLargeError):
            run(media_server, "/page.html", tmp_path, max_page_bytes=50)


class TestStatedDuration:
    """A duration the page states is checked before downloading."""

    def test_page_duration_over_the_limit(self, monkeypatch, media_server, tmp_path):
        """yt-dlp's generic extractor states no duration for ``<audio>``; a stand-in choice does
        (a test double for an extractor that reads it from the page)."""
        from maie.pipeline.fetch import pages

        real = pages.find_media

        def with_duration(url, session):
            choice = real(url, session)
            return pages.MediaChoice(url=choice.url, headers=choice.headers, duration_s=7200.0)

        monkeypatch.setattr(pages, "find_media", with_duration)
        with pytest.raises(AudioTooLongError, match="7200 s"):
            run(media_server, "/page.html", tmp_path, max_duration_s=3600.0)
        assert media_server.paths()[-1] != "/clip.wav", "refused before the download"


class TestSettings:
    """MAIE_FETCH_* and the upload limits make the fetch's options; the actor outlasts the fetch."""

    def test_options_from_settings(self):
        from maie.config import Settings

        env = {
            "MAIE_MAX_FILE_SIZE_MB": "2",
            "MAIE_MAX_DURATION_S": "600",
            "MAIE_FETCH_ALLOW_PRIVATE": "true",
            "MAIE_FETCH_CONNECT_TIMEOUT_S": "3",
            "MAIE_FETCH_TOTAL_TIMEOUT_S": "120",
            "MAIE_FETCH_STALL_TIMEOUT_S": "7",
            "MAIE_FETCH_MIN_BYTES_PER_S": "0",
            "MAIE_FETCH_MAX_REDIRECTS": "2",
            "MAIE_FETCH_MAX_PAGE_MB": "0.5",
        }
        options = FetchOptions.from_settings(Settings.from_env(env, env_file=None))

        assert options.allow_private
        assert options.limits == FetchLimits(
            max_bytes=2 * 1024 * 1024,
            max_duration_s=600.0,
            connect_timeout_s=3.0,
            total_timeout_s=120.0,
            stall_timeout_s=7.0,
            min_bytes_per_s=0,
            max_redirects=2,
            max_page_bytes=512 * 1024,
        )

    def test_the_fetch_actor_outlasts_the_fetch_and_the_probe(self):
        from maie.actor_table import FETCH
        from maie.config import Settings

        settings = Settings.from_env({"MAIE_FETCH_TOTAL_TIMEOUT_S": "100"}, env_file=None)
        options = FETCH.options(settings)

        assert options["time_limit"] > (100 + settings.audio.decode_time_limit_s) * 1000
        assert options["queue_name"] == "maie.cpu"


class TestLayering:
    """The fetch stage is pure pipeline code."""

    def test_no_edge_imports_and_yt_dlp_only_for_pages(self):
        code = (
            "import sys, maie.pipeline.fetch\n"
            "assert 'yt_dlp' not in sys.modules, 'direct downloads do not pay for importing yt-dlp'\n"
            "import maie.pipeline.fetch.pages\n"
            "edge = ('litestar', 'dramatiq', 'redis', 'maie.store', 'maie.api', 'maie.worker')\n"
            "bad = [m for m in sys.modules if m.split('.')[0] in edge[:3] or m.startswith(edge[3:])]\n"
            "assert not bad, bad\n"
        )
        subprocess.run([sys.executable, "-c", code], check=True)
