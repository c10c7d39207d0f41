"""Benchmark: what one hostile form does to the API: ``/health`` latency and the API's memory.

It starts an embedded Redis and a real ``maie api`` process, measures ``GET /health`` while nothing
else happens (the baseline), then while one client posts a form to ``/v1/process`` whose text field
(``features``, by default) is ``--field-mb`` MiB long, streamed, and reports for each phase the
median, 99th percentile and worst ``/health`` latency, the worst as a ratio to the baseline's
median, and how much the API's resident memory grew. The hostile request's status and how long
it took to be answered are printed too. It asserts nothing.

``--source`` runs the API from another checkout of MAIE (a folder holding the ``maie`` package,
say an unpacked ``git archive`` of the main branch) with this environment's dependencies, so the
same run can measure the code before and after a change:

    uv run python scripts/bench_hostile_form.py
    uv run python scripts/bench_hostile_form.py --field-mb 300 --field hotwords
    uv run python scripts/bench_hostile_form.py --source /tmp/main-checkout
"""

from __future__ import annotations

import argparse
import io
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import wave
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fixtures.private_stores import Stores, private_stores  # noqa: E402

KEY = "bench-key"
BOUNDARY = "benchboundary"
#: Seconds between two /health requests of the probe.
PROBE_INTERVAL_S = 0.02


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--field-mb", type=float, default=100.0, help="size of the hostile field (default: 100)")
    ap.add_argument("--field", default="features", help="name of the hostile field (default: features)")
    ap.add_argument("--idle-s", type=float, default=3.0, help="seconds of baseline probing (default: 3)")
    ap.add_argument("--source", type=Path, help="folder holding the `maie` package to run the API from")
    return ap.parse_args()


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def rss_mib(pid: int) -> float:
    """Resident memory of ``pid`` in MiB (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class Probe(threading.Thread):
    """Asks ``/health`` every few milliseconds and samples the API's memory, until stopped."""

    def __init__(self, url: str, pid: int) -> None:
        super().__init__(daemon=True)
        self.url, self.pid = url, pid
        self.latencies: list[float] = []
        self.peak_rss = 0.0
        self.halt = threading.Event()

    def run(self) -> None:
        """Probe until halted, at least once: a short phase (a small field) still gets a sample."""
        with httpx.Client(base_url=self.url, timeout=60) as client:
            while True:
                started = time.perf_counter()
                client.get("/health")
                self.latencies.append(time.perf_counter() - started)
                self.peak_rss = max(self.peak_rss, rss_mib(self.pid))
                if self.halt.wait(PROBE_INTERVAL_S):
                    break


def probe_for(url: str, pid: int, work: threading.Thread | float) -> Probe:
    """Probe while ``work`` runs (a started thread), or for ``work`` seconds."""
    probe = Probe(url, pid)
    probe.start()
    if isinstance(work, threading.Thread):
        work.join()
    else:
        time.sleep(work)
    probe.halt.set()
    probe.join()
    return probe


def silence_wav(seconds: float = 2.0) -> bytes:
    """A WAV of silence, 16 kHz mono: the recording that comes with the hostile field."""
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16000)
        wav.writeframes(b"\0\0" * int(16000 * seconds))
    return out.getvalue()


def hostile_body(field: str, size: int):  # noqa: ANN201 - a generator of bytes for httpx
    """A multipart body: ``field`` holding ``size`` bytes of (valid) feature names, then a recording.

    The recording makes the request valid but for the field, so the API gets as far with it as it
    would with a real submission.
    """
    yield f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{field}"\r\n\r\n'.encode()
    name = b"raw_transcript,"
    block = name * 4096
    size -= size % len(name)  # whole names: the field is valid, only too long
    sent = 0
    while sent < size:
        chunk = block[: size - sent]
        sent += len(chunk)
        yield chunk
    yield (
        f'\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="silence.wav"\r\n'
        "Content-Type: audio/wav\r\n\r\n"
    ).encode()
    yield silence_wav()
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


def start_api(work: Path, source: Path | None, stores: Stores) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``maie api`` on ``stores``; return the process and its URL."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAIE_")}
    env.update(
        {
            **stores.env(),
            "MAIE_DATA_DIR": str(work / "data"),
            "MAIE_API_KEYS": f"{KEY}:bench",
            "MAIE_PORT": str(port),
            "MAIE_ASR_BACKEND": "pocketsphinx",
            "MAIE_LLM_BACKEND": "none",
            "MAIE_RATE_LIMIT": "off",
            "MAIE_RATE_LIMIT_SUBMIT": "off",
            "MAIE_LOG_LEVEL": "warning",
        }
    )
    env["PYTHONPATH"] = str((source or ROOT).resolve())
    log = (work / "api.log").open("wb")
    # `-m` puts the working folder first on sys.path: start elsewhere, so `--source` decides.
    api = subprocess.Popen(
        [sys.executable, "-m", "maie", "api"], env=env, cwd=work, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200:  # noqa: PLR2004
                return api, url
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    api.kill()
    msg = f"maie api did not start: {(work / 'api.log').read_text()}"
    raise RuntimeError(msg)


def report(name: str, probe: Probe, baseline_rss: float, baseline_median: float | None) -> float:
    """Print one phase's figures; return its median latency."""
    ms = sorted(x * 1000 for x in probe.latencies)
    median = statistics.median(ms)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    ratio = f"  worst/baseline median {ms[-1] / baseline_median:6.1f}" if baseline_median else ""
    print(
        f"{name:<8} /health n={len(ms):4d}  median {median:7.1f} ms  p99 {p99:7.1f} ms  "
        f"worst {ms[-1]:7.1f} ms"
        f"{ratio}  API RSS +{probe.peak_rss - baseline_rss:6.1f} MiB"
    )
    return median


def main() -> None:
    """Run the benchmark."""
    args = parse_args()
    size = int(args.field_mb * 1024 * 1024)
    with (
        tempfile.TemporaryDirectory(prefix="maie-bench-form-") as folder,
        private_stores(Path(folder) / "stores") as stores,
    ):
        api, url = start_api(Path(folder), args.source, stores)
        try:
            httpx.get(f"{url}/health", timeout=10)
            baseline_rss = rss_mib(api.pid)
            idle = probe_for(url, api.pid, args.idle_s)
            outcome: dict[str, object] = {}

            def hostile() -> None:
                started = time.perf_counter()
                try:
                    response = httpx.post(
                        f"{url}/v1/process",
                        headers={
                            "X-API-Key": KEY,
                            "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
                        },
                        content=hostile_body(args.field, size),
                        timeout=300,
                    )
                    outcome["status"] = response.status_code
                    outcome["detail"] = response.text[:160]
                except httpx.HTTPError as exc:
                    outcome["status"] = f"connection ended ({type(exc).__name__})"
                outcome["seconds"] = time.perf_counter() - started

            attack = threading.Thread(target=hostile)
            attack.start()
            during = probe_for(url, api.pid, attack)
            source = args.source or ROOT
            print(f"API from {source}; hostile field {args.field!r} of {args.field_mb:g} MiB")
            median = report("idle", idle, baseline_rss, None)
            report("hostile", during, baseline_rss, median)
            print(
                f"hostile request: {outcome['status']} after {outcome['seconds']:.2f} s  "
                f"{outcome.get('detail', '')}"
            )
        finally:
            api.terminate()
            api.wait(timeout=30)


if __name__ == "__main__":
    main()
