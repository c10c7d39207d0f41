"""``Idempotency-Key`` claims: set-if-free, overwrite, and compare-and-delete, as rows with an expiry.

A claim whose ``expires_at`` has passed counts as free (and is taken over in the same
statement); :func:`maie.store.sql.deletion.purge` removes expired ones for good.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from maie.store.sql.operations import Statement, Work

if TYPE_CHECKING:
    from maie.store.sql.operations import Op

__all__ = ["claim", "release_claim", "replace_claim"]

_CLAIM = """
INSERT INTO idempotency_claims (key, value, expires_at) VALUES (%s, %s, now() + make_interval(secs => %s))
ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at
WHERE idempotency_claims.expires_at <= now()
RETURNING key
"""
_HELD = "SELECT value FROM idempotency_claims WHERE key = %s AND expires_at > now()"
_REPLACE = """
INSERT INTO idempotency_claims (key, value, expires_at) VALUES (%s, %s, now() + make_interval(secs => %s))
ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at
"""
_RELEASE = "DELETE FROM idempotency_claims WHERE key = %s AND value = %s"


def claim(key: str, value: bytes, ttl_s: int) -> Work[bytes | None]:
    """Set ``key`` to ``value`` if it is free; None if this call claimed it, else what holds it."""

    def op() -> Op[bytes | None]:
        while True:
            created = yield Statement(_CLAIM, (key, value, ttl_s))
            if created.rows:
                return None
            # ON CONFLICT waited for a concurrent claimer to commit, so its row is visible now;
            # if it was released or expired meanwhile, claim again.
            held = yield Statement(_HELD, (key,))
            if held.rows:
                return bytes(held.rows[0][0])

    return Work(op, transaction=True)


def replace_claim(key: str, value: bytes, ttl_s: int) -> Work[None]:
    """Overwrite a claimed ``key`` (it was ours) with its final ``value``."""

    def op() -> Op[None]:
        yield Statement(_REPLACE, (key, value, ttl_s))

    return Work(op, transaction=False)


def release_claim(key: str, value: bytes) -> Work[None]:
    """Delete ``key`` if it still holds ``value`` (another request's claim is never removed)."""

    def op() -> Op[None]:
        yield Statement(_RELEASE, (key, value))

    return Work(op, transaction=False)
