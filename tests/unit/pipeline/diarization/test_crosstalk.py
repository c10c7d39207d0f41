"""Crosstalk and level rules of the ``channels`` backend on synthetic signals."""

from __future__ import annotations

import numpy as np
import pytest

from maie.pipeline.diarization.crosstalk import FRAME_S, bleed_frames, frame_db, level_gain

RATE = 16000


def bursts(rng: np.random.Generator, seconds: float, on: list[tuple[float, float]]) -> np.ndarray:
    """Noise bursts standing in for speech (a test double for a voice): loud where ``on``."""
    out = np.zeros(round(seconds * RATE))
    for a, b in on:
        out[round(a * RATE) : round(b * RATE)] = rng.normal(0, 0.1, round(b * RATE) - round(a * RATE))
    return out


class TestLevel:
    def test_a_quiet_channel_is_brought_to_the_target(self):
        rng = np.random.default_rng(0)
        quiet = bursts(rng, 4, [(0.5, 3.5)]) * 0.01
        gain = level_gain(frame_db(quiet), -20.0)
        assert abs(np.percentile(frame_db(quiet * gain), 95) + 20.0) < 0.1

    def test_gain_is_capped_and_a_muted_channel_is_left_alone(self):
        rng = np.random.default_rng(0)
        hiss = rng.normal(0, 1e-4, RATE * 2)  # -80 dBFS: 60 dB short of the target
        assert level_gain(frame_db(hiss), -20.0) == pytest.approx(10 ** (40 / 20))
        assert level_gain(frame_db(np.zeros(RATE * 2)), -20.0) == 1.0


class TestBleed:
    def test_a_delayed_quieter_copy_is_bleed_and_the_source_is_not(self):
        rng = np.random.default_rng(0)
        talker = bursts(rng, 4, [(0.5, 3.5)])
        copy = np.r_[np.zeros(120), talker[:-120]] * 0.2 + rng.normal(0, 1e-4, len(talker))
        channels = np.stack([talker, copy])
        loudness = np.stack([frame_db(c) for c in channels])
        speech = slice(round(0.6 / FRAME_S), round(3.4 / FRAME_S))
        assert bleed_frames(channels, 1, loudness, 0.7, 3.0)[speech].all()
        assert not bleed_frames(channels, 0, loudness, 0.7, 3.0).any()

    def test_two_parties_talking_at_once_are_not_bleed(self):
        rng = np.random.default_rng(1)
        a = bursts(rng, 4, [(0.5, 3.5)])
        b = bursts(rng, 4, [(1.0, 3.0)]) * 0.05  # 26 dB quieter, but a different signal
        channels = np.stack([a, b])
        loudness = np.stack([frame_db(c) for c in channels])
        assert not bleed_frames(channels, 1, loudness, 0.7, 3.0).any()
