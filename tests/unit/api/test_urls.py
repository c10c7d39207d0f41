"""Recordings by URL at submit time: ``file`` or ``url``, a batch's list, and the checks of each URL."""

from __future__ import annotations

import socket

import anyio
import pytest

from maie.api.intake import urls as urls_module
from maie.api.intake.urls import SubmittedUrl, batch_urls, check_url, check_urls, one_source, split_urls
from maie.config import Settings
from maie.errors import (
    FetchDnsUnavailableError,
    FetchInvalidUrlError,
    FetchRefusedAddressError,
    UnprocessableError,
)
from maie.schemas import SkippedMember


def settings(**env: str) -> Settings:
    return Settings.from_env(env, env_file=None)


class TestOneSource:
    def test_the_url_alone(self):
        assert one_source(None, " https://cdn.example/a.mp3 ") == "https://cdn.example/a.mp3"

    @pytest.mark.parametrize(("file", "url", "which"), [(None, None, "neither"), (None, "  ", "neither")])
    def test_neither(self, file, url, which):
        with pytest.raises(UnprocessableError, match=f"either as `file`.*; {which} was sent"):
            one_source(file, url)

    def test_both(self):
        upload = object()
        with pytest.raises(UnprocessableError, match="both was sent"):
            one_source(upload, "https://cdn.example/a.mp3")  # type: ignore[arg-type]


class TestSplit:
    def test_repeated_fields_and_lines_in_order(self):
        values = ["https://a.example/1.mp3", "https://b.example/2.mp3\r\n\n  https://c.example/3.mp3  \n"]
        assert split_urls(values) == [
            "https://a.example/1.mp3",
            "https://b.example/2.mp3",
            "https://c.example/3.mp3",
        ]

    def test_none(self):
        assert split_urls(None) == []

    def test_more_than_the_member_limit_is_refused(self):
        with pytest.raises(UnprocessableError, match="MAIE_BATCH_MAX_MEMBERS=2"):
            anyio.run(
                batch_urls,
                ["http://127.0.0.1/a\nhttp://127.0.0.1/b\nhttp://127.0.0.1/c"],
                settings(MAIE_BATCH_MAX_MEMBERS="2"),
            )


class TestCheck:
    def test_a_public_literal_passes_and_is_recorded_redacted(self):
        checked = anyio.run(check_url, "https://u:p@93.184.215.14/a.mp3?sig=abc&id=4#t=10", settings())

        assert checked == SubmittedUrl(
            url="https://u:p@93.184.215.14/a.mp3?sig=abc&id=4",
            source_url="https://93.184.215.14/a.mp3?sig=REDACTED&id=4",
        )

    def test_loopback_is_refused_unless_allowed(self):
        with pytest.raises(FetchRefusedAddressError, match="MAIE_FETCH_ALLOW_PRIVATE=true") as caught:
            anyio.run(check_url, "http://localhost:8080/a.wav", settings())
        assert caught.value.status_code == 422
        assert "127.0.0.1" not in caught.value.detail
        allowed = anyio.run(
            check_url, "http://localhost:8080/a.wav", settings(MAIE_FETCH_ALLOW_PRIVATE="true")
        )
        assert allowed.source_url == "http://localhost:8080/a.wav"

    def test_the_metadata_service_is_refused_even_when_private_is_allowed(self):
        with pytest.raises(FetchRefusedAddressError, match="cloud metadata"):
            anyio.run(check_url, "http://169.254.169.254/latest/", settings(MAIE_FETCH_ALLOW_PRIVATE="true"))

    def test_only_http_and_https(self):
        with pytest.raises(FetchInvalidUrlError, match=r"http:// or https://"):
            anyio.run(check_url, "file:///etc/passwd", settings())

    def test_a_resolver_that_cannot_answer_now_is_a_503(self, monkeypatch):
        """A test double stands for the resolver: ``anyio.getaddrinfo`` fails with EAI_AGAIN."""

        async def resolver_down(*args: object, **kwargs: object) -> list[object]:
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

        monkeypatch.setattr(anyio, "getaddrinfo", resolver_down)
        with pytest.raises(FetchDnsUnavailableError, match="cannot be resolved for now") as caught:
            anyio.run(check_url, "https://cdn.example/a.mp3", settings())
        assert caught.value.status_code == 503
        assert caught.value.retryable
        assert caught.value.extra == {"host": "cdn.example"}
        with pytest.raises(FetchDnsUnavailableError):  # a batch is refused whole: a retry may take all
            anyio.run(check_urls, ["http://127.0.0.1/a", "https://cdn.example/a.mp3"], settings())


class TestBatch:
    def test_refused_urls_are_skipped_with_the_reason_in_order(self):
        urls = [
            "http://93.184.215.14/a.mp3",
            "http://127.0.0.1/b.wav",
            "gopher://x/",
            "http://93.184.215.14/c",
        ]

        checked = anyio.run(check_urls, urls, settings())

        assert [type(c) for c in checked] == [SubmittedUrl, SkippedMember, SkippedMember, SubmittedUrl]
        assert isinstance(checked[1], SkippedMember)
        assert checked[1].name == "http://127.0.0.1/b.wav"
        assert "loopback" in checked[1].reason

    def test_many_are_checked_a_few_at_a_time(self):
        assert urls_module.CHECKS_AT_ONCE >= 1
        urls = [f"http://93.184.215.14/{n}.mp3" for n in range(3 * urls_module.CHECKS_AT_ONCE)]
        sent, kept, skipped = anyio.run(batch_urls, ["\n".join(urls)], settings())
        assert sent == urls
        assert [k.url for k in kept] == urls
        assert skipped == []
