"""Malformed and oversized multipart forms get 400 or 413 naming the field, on every multipart route.

The bodies are written by hand (the shapes curl and broken clients send) and posted to the real
``maie api`` process; none may answer 500, and none may leave a folder behind.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.fixtures.paths import shared_audio
from tests.fixtures.services import HEADERS_A

if TYPE_CHECKING:
    from collections.abc import Iterator

BOUNDARY = "maie-test-boundary"
ROUTES = ["/v1/process", "/v1/batches"]
FEATURES = b'Content-Disposition: form-data; name="features"\r\n\r\nraw_transcript'


def body(*parts: bytes) -> bytes:
    """A multipart body of ``parts`` (each its headers, a blank line and its content)."""
    sep = f"--{BOUNDARY}\r\n".encode()
    return sep + (b"\r\n" + sep).join(parts) + f"\r\n--{BOUNDARY}--\r\n".encode()


def file_part(disposition: bytes, content: bytes, content_type: bytes = b"audio/wav") -> bytes:
    """A part with ``Content-Disposition: form-data; <disposition>`` and ``content``."""
    return (
        b"Content-Disposition: form-data; "
        + disposition
        + b"\r\nContent-Type: "
        + content_type
        + b"\r\n\r\n"
        + content
    )


def post(api, route: str, content):
    headers = {**HEADERS_A, "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    return api.client.post(route, headers=headers, content=content)


@pytest.fixture
def no_leftovers(service_env) -> Iterator[None]:
    """Fail the test if a refused form left a task or batch folder behind."""
    data = Path(service_env["MAIE_DATA_DIR"])

    def folders() -> set[Path]:
        return {p for sub in ("audio", "batches") if (data / sub).is_dir() for p in (data / sub).iterdir()}

    before = folders()
    yield
    assert not folders() - before, "a refused form left a folder behind"


@pytest.fixture(scope="module")
def wav() -> bytes:
    return shared_audio("jfk_16k.wav").read_bytes()


@pytest.mark.usefixtures("no_leftovers")
@pytest.mark.parametrize("route", ROUTES)
class TestMalformedParts:
    """Ordinary mistakes: 400 saying which field is wrong and what to send instead, never 500."""

    def test_text_field_not_utf8(self, api, route, wav):
        """``curl -F $'features=\\xff'``."""
        form = body(
            b'Content-Disposition: form-data; name="features"\r\n\r\n\xff',
            file_part(b'name="file"; filename="a.wav"', wav),
        )
        response = post(api, route, form)
        assert response.status_code == 400, response.text
        assert "`features`" in response.json()["detail"]
        assert "UTF-8" in response.json()["detail"]

    def test_file_sent_as_text(self, api, route, wav):
        """``curl -F file=<x.wav``: the file's bytes as a text field (not UTF-8)."""
        form = body(FEATURES, b'Content-Disposition: form-data; name="file"\r\n\r\n' + wav)
        response = post(api, route, form)
        assert response.status_code == 400, response.text
        detail = response.json()["detail"]
        assert "`file`" in detail
        assert "file=@" in detail

    def test_text_file_sent_as_text(self, api, route):
        """The same mistake with bytes that happen to be UTF-8 gets the same answer."""
        form = body(FEATURES, b'Content-Disposition: form-data; name="file"\r\n\r\nRIFF....WAVEfmt ')
        response = post(api, route, form)
        assert response.status_code == 400, response.text
        assert "file=@" in response.json()["detail"]

    def test_rfc5987_filename(self, api, route, wav):
        """``filename*=UTF-8''...`` alone names no file in multipart/form-data (RFC 7578 section 4.2)."""
        form = body(FEATURES, file_part(b"name=\"file\"; filename*=UTF-8''r%C3%A9union.wav", wav))
        response = post(api, route, form)
        assert response.status_code == 400, response.text
        detail = response.json()["detail"]
        assert "`file`" in detail
        assert "filename*=" in detail
        assert 'filename="' in detail

    def test_crlf_in_filename(self, api, route, wav):
        """A raw line break inside the quoted filename breaks the part's headers."""
        form = body(FEATURES, file_part(b'name="file"; filename="a\r\nb.wav"', wav))
        response = post(api, route, form)
        assert response.status_code == 400, response.text
        assert "line break" in response.json()["detail"]

    def test_encoded_crlf_in_filename(self, api, route, wav):
        """The HTML5 encoding of a line break (``%0D%0A``) decodes to control characters: refused."""
        form = body(FEATURES, file_part(b'name="file"; filename="a%0D%0Ab.wav"', wav))
        response = post(api, route, form)
        assert response.status_code == 400, response.text
        assert "`file`" in response.json()["detail"]

    def test_empty_filename(self, api, route, wav):
        form = body(FEATURES, file_part(b'name="file"; filename=""', wav))
        response = post(api, route, form)
        assert response.status_code == 400, response.text
        assert "empty filename" in response.json()["detail"]

    def test_blank_filename(self, api, route, wav):
        form = body(FEATURES, file_part(b'name="file"; filename="   "', wav))
        response = post(api, route, form)
        assert response.status_code == 400, response.text
        assert "blank" in response.json()["detail"]

    def test_unknown_charset(self, api, route, wav):
        text = (
            b'Content-Disposition: form-data; name="language"\r\n'
            b"Content-Type: text/plain; charset=klingon\r\n\r\nen"
        )
        form = body(FEATURES, text, file_part(b'name="file"; filename="a.wav"', wav))
        response = post(api, route, form)
        assert response.status_code == 400, response.text
        assert "`language`" in response.json()["detail"]

    def test_not_multipart(self, api, route):
        response = api.client.post(route, headers=HEADERS_A, data={"features": "raw_transcript"})
        assert response.status_code == 415, response.text
        assert "multipart/form-data" in response.json()["detail"]


class HugeField:
    """A body whose ``features`` field is ``size`` bytes of feature names, streamed, then a recording."""

    def __init__(self, size: int, wav: bytes) -> None:
        self.size, self.wav = size, wav

    def __iter__(self) -> Iterator[bytes]:
        yield f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="features"\r\n\r\n'.encode()
        block = b"raw_transcript," * 4096
        for _ in range(self.size // len(block)):
            yield block
        yield b"\r\n" + f"--{BOUNDARY}\r\n".encode() + file_part(b'name="file"; filename="a.wav"', self.wav)
        yield f"\r\n--{BOUNDARY}--\r\n".encode()


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident memory so far (``VmHWM``), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmHWM for process {pid}")


@pytest.fixture(scope="module")
def own_api(service_env, start_process):
    """An API of this module's own, so that its peak memory is this module's doing."""
    api = start_process("api", service_env)
    yield api
    api.stop()


@pytest.mark.usefixtures("no_leftovers")
class TestFormLimits:
    """Text fields and part counts are bounded while the body streams; 413 names the limit."""

    @pytest.mark.parametrize("route", ROUTES)
    def test_huge_text_field(self, own_api, route, wav):
        """A 64 MiB ``features`` field is refused after its first KiBs: never held in memory or parsed.

        The rest of the body is read and dropped (so the client gets its answer); the API's peak
        memory shows whether the field was kept, as it was when Litestar read the form.
        """
        assert post(own_api, route, body(FEATURES)).status_code == 422  # a first request, for the baseline
        before = peak_rss_mib(own_api.popen.pid)
        response = post(own_api, route, HugeField(64 * 1024 * 1024, wav))
        assert response.status_code == 413, response.text[:300]
        body_ = response.json()
        assert "`features`" in body_["detail"]
        assert body_["extra"] == {"field": "features", "max_bytes": 16 * 1024}
        grown = peak_rss_mib(own_api.popen.pid) - before
        assert grown < 32, f"the API's peak memory grew by {grown:.0f} MiB for a 64 MiB field"

    def test_too_many_parts(self, api, wav):
        """More parts than a submission has fields: 413 with the limit, not a 400."""
        fields = [b'Content-Disposition: form-data; name="features"\r\n\r\nraw_transcript'] * 200
        response = post(api, "/v1/process", body(*fields, file_part(b'name="file"; filename="a.wav"', wav)))
        assert response.status_code == 413, response.text
        assert "more than 64 parts" in response.json()["detail"]

    def test_too_many_batch_parts(self, api):
        """A batch may have a part per recording (MAIE_BATCH_MAX_MEMBERS) plus its fields; more is 413."""
        parts = [file_part(f'name="file"; filename="{n}.wav"'.encode(), b"x") for n in range(1100)]
        response = post(api, "/v1/batches", body(FEATURES, *parts))
        assert response.status_code == 413, response.text
        assert "MAIE_BATCH_MAX_MEMBERS" in response.json()["detail"]

    def test_batch_url_list_may_exceed_a_field(self, api):
        """A batch's ``url`` field holds a list, one URL per line: longer than one text field may be."""
        urls = "\n".join(f"http://127.0.0.1/recording-{n:04d}.wav" for n in range(600)).encode()
        assert len(urls) > 16 * 1024
        url_field = b'Content-Disposition: form-data; name="url"\r\n\r\n' + urls
        response = post(api, "/v1/batches", body(FEATURES, url_field))
        # Every URL names a loopback address, which the fetch rules refuse: no recording is left.
        assert response.status_code == 422, response.text[:300]
        assert "no URL may be fetched" in response.json()["detail"]
        assert len(response.json()["extra"]["skipped"]) == 600, "every URL of the field was read and judged"
