"""How a repository retries a command that met a concurrent write: pure values, no I/O.

>>> policy = RetryPolicy(attempts=3, first_delay=0.01, max_delay=0.02)
>>> [0 <= policy.delay(n) <= 0.02 for n in range(3)]
[True, True, True]
"""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["RetryPolicy"]


@dataclass(frozen=True)
class RetryPolicy:
    """Attempts, back-off and an overall deadline for ``Repository.update``.

    After a conflict, the command waits a random time between 0 and
    ``min(max_delay, first_delay * 2 ** conflicts)`` seconds ("full jitter": contenders spread
    out instead of colliding again), then runs again on fresh state. It gives up with
    ``RetriesExhausted`` after ``attempts`` attempts or once ``deadline`` seconds have passed
    since the first (None: no deadline), whichever comes first. The default lets 20
    concurrent commands on one aggregate all succeed on every backend.
    """

    attempts: int = 100
    first_delay: float = 0.001
    max_delay: float = 0.05
    deadline: float | None = 10.0

    def __post_init__(self) -> None:
        if not isinstance(self.attempts, int) or self.attempts < 1:
            raise ValueError(f"attempts must be an int >= 1, got {self.attempts!r}")
        if not 0 <= self.first_delay <= self.max_delay:
            raise ValueError(
                f"delays must satisfy 0 <= first_delay <= max_delay, got "
                f"{self.first_delay!r} and {self.max_delay!r}"
            )
        if self.deadline is not None and not self.deadline > 0:
            raise ValueError(f"deadline must be > 0 seconds or None, got {self.deadline!r}")

    def delay(self, conflicts: int) -> float:
        """Seconds to wait before the next attempt, after ``conflicts`` conflicts in a row."""
        return random.uniform(0, min(self.max_delay, self.first_delay * 2 ** min(conflicts, 30)))
