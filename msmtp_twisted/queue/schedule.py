"""When a queued mail is tried again, and when the queue gives up on it.

The first failure (the attempt ``msmtpq`` makes before queueing) leaves the
mail due at once, so the next flush tries it; after that the wait doubles from
``base`` up to ``cap``.  A mail older than ``max_age`` whose attempt fails
again moves to ``failed/``; a waiting mail is never scheduled past its age
limit, so it gets its last attempt on time.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Schedule"]


@dataclass(frozen=True)
class Schedule:
    base: float = 60.0
    cap: float = 3600.0
    max_age: float = 5 * 24 * 3600.0

    def delay(self, failures: int) -> float:
        """Seconds to wait after the ``failures``-th failed attempt."""
        if failures <= 1:
            return 0.0
        # 2 ** large overflows float quickly; the cap is reached long before
        exponent = min(failures - 2, 60)
        return min(self.base * float(2 ** exponent), self.cap)

    def next_attempt(self, created: float, failures: int, now: float) -> float:
        return min(now + self.delay(failures), created + self.max_age)

    def expired(self, created: float, now: float) -> bool:
        return now - created >= self.max_age
