"""Backoff policy shared by the client (in-process retries) and the Odoo cron (``next_attempt_at``).

Pure and deterministic once ``rng`` is injected: no clock, no sleeping, no I/O.

Attempts are counted from 1: ``attempt`` is the number of the attempt that has just failed.
With the defaults the waits are about 2, 4, 8, 16 … seconds (each ±25 %), never more than one hour,
except that an error implying a longer wait (a daily quota until 00:00 UTC) is always honoured.
"""

import logging
import math
import random

_logger = logging.getLogger(__name__)


class RetryPolicy:
    """Exponential backoff with symmetric jitter, a cap, and server-implied minimum waits.

    :param base_delay: wait after the first failed attempt, seconds
    :param max_delay: cap of the exponential part (jitter included), seconds
    :param multiplier: growth factor per attempt
    :param jitter: fraction in ``[0, 1)``; the wait is scaled by a factor in
        ``[1 - jitter, 1 + jitter]``
    :param max_attempts: total attempts allowed (``None`` = unlimited); see :meth:`should_retry`
    """

    def __init__(
        self, base_delay=2.0, max_delay=3600.0, multiplier=2.0, jitter=0.25, max_attempts=None
    ):
        if base_delay < 0 or max_delay < 0:
            raise ValueError("delays must not be negative")
        if multiplier < 1:
            raise ValueError("multiplier must be at least 1")
        if not 0 <= jitter < 1:
            raise ValueError("jitter must be a fraction in [0, 1)")
        if max_attempts is not None and max_attempts < 1:
            raise ValueError("max_attempts must be at least 1 or None")
        self.base_delay = float(base_delay)
        self.max_delay = float(max_delay)
        self.multiplier = float(multiplier)
        self.jitter = float(jitter)
        self.max_attempts = max_attempts

    def __repr__(self):
        return (
            "RetryPolicy(base_delay=%r, max_delay=%r, multiplier=%r, jitter=%r, max_attempts=%r)"
            % (
                self.base_delay,
                self.max_delay,
                self.multiplier,
                self.jitter,
                self.max_attempts,
            )
        )

    def backoff(self, attempt):
        """The exponential part alone, without jitter:
        ``min(base * multiplier**(attempt-1), max)``."""
        attempt = _check_attempt(attempt)
        try:
            raw = self.base_delay * self.multiplier ** (attempt - 1)
        except OverflowError:
            raw = math.inf
        return min(raw, self.max_delay)

    def delay_for(self, attempt, error=None, rng=random.random):
        """Seconds to wait after failed attempt number ``attempt`` (1-based).

        ``backoff(attempt)`` scaled by ``1 + jitter * (2 * rng() - 1)`` and capped at ``max_delay``;
        then raised to ``error.retry_after`` when the error carries one (quota, ``Retry-After``),
        even beyond the cap: a daily quota waits until 00:00 UTC.
        ``rng`` returns a float in ``[0, 1)`` (``random.random`` by default); 0.5 means no jitter.
        """
        delay = self.backoff(attempt)
        if self.jitter:
            delay *= 1.0 + self.jitter * (2.0 * float(rng()) - 1.0)
        delay = max(0.0, min(delay, self.max_delay))
        retry_after = getattr(error, "retry_after", None)
        if retry_after is not None and retry_after > delay:
            delay = float(retry_after)
        return delay

    def should_retry(self, attempt, error):
        """True when ``error`` is retryable and attempt number ``attempt`` was not the last allowed.

        Errors without a ``retryable`` attribute (anything that is not a ``MetrikaError``) are never
        retried.
        """
        attempt = _check_attempt(attempt)
        if not getattr(error, "retryable", False):
            return False
        return self.max_attempts is None or attempt < self.max_attempts


def _check_attempt(attempt):
    if isinstance(attempt, bool) or int(attempt) != attempt or attempt < 1:
        raise ValueError("attempt numbers start at 1")
    return int(attempt)
