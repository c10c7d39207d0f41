"""How much cleaning changed a transcript, measured with rapidfuzz's Levenshtein distance."""

from __future__ import annotations

from rapidfuzz.distance import Levenshtein

__all__ = ["edit_rate", "letters", "similarity", "word_edit_rate"]


def edit_rate(raw: str, clean: str) -> float:
    """Character edits turning ``raw`` into ``clean``, over the length of ``raw`` (0 when both are empty)."""
    if not raw:
        return 0.0 if not clean else 1.0
    return Levenshtein.distance(raw, clean) / len(raw)


def word_edit_rate(raw: str, clean: str) -> float:
    """Word edits (whitespace-separated, case and punctuation included) over the words of ``raw``."""
    raw_words, clean_words = raw.split(), clean.split()
    if not raw_words:
        return 0.0 if not clean_words else 1.0
    return Levenshtein.distance(raw_words, clean_words) / len(raw_words)


def letters(text: str) -> str:
    """``text`` lower-cased with only letters and digits left: what was said, without the writing."""
    return "".join(ch for ch in text.lower() if ch.isalnum())


def similarity(raw: str, clean: str) -> float:
    """Similarity in [0, 1] of what ``raw`` and ``clean`` say, ignoring case, punctuation and spacing."""
    a, b = letters(raw), letters(clean)
    if not a and not b:
        return 1.0
    return Levenshtein.normalized_similarity(a, b)
