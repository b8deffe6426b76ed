"""RetryPolicy: pure, deterministic backoff."""

import random

import pytest

from metrika_core.errors import (
    MetrikaAuthError,
    MetrikaBadRequestError,
    MetrikaQuotaError,
    MetrikaServerError,
    MetrikaTimeoutError,
    MetrikaTransportError,
    MetrikaUnexpectedResponseError,
    MetrikaValidationError,
)
from metrika_core.retry import RetryPolicy

NO_JITTER = lambda: 0.5  # noqa: E731 - rng value that leaves the delay unchanged


def test_exponential_growth_without_jitter():
    policy = RetryPolicy()
    assert [policy.delay_for(n, rng=NO_JITTER) for n in range(1, 7)] == [
        2.0,
        4.0,
        8.0,
        16.0,
        32.0,
        64.0,
    ]


def test_custom_base_and_multiplier():
    policy = RetryPolicy(base_delay=10, multiplier=3, jitter=0)
    assert [policy.delay_for(n) for n in (1, 2, 3)] == [10.0, 30.0, 90.0]


def test_cap_applies_and_huge_attempts_do_not_overflow():
    policy = RetryPolicy(max_delay=3600)
    assert policy.delay_for(12, rng=NO_JITTER) == 3600.0  # 2 * 2**11 = 4096 > cap
    assert policy.delay_for(10_000, rng=NO_JITTER) == 3600.0
    assert policy.backoff(10_000) == 3600.0


def test_jitter_bounds_with_injected_rng():
    policy = RetryPolicy(base_delay=2.0, jitter=0.25)
    assert policy.delay_for(3, rng=lambda: 0.0) == pytest.approx(8.0 * 0.75)
    assert policy.delay_for(3, rng=lambda: 0.999999) == pytest.approx(8.0 * 1.25, rel=1e-5)
    assert policy.delay_for(3, rng=lambda: 0.25) == pytest.approx(8.0 * 0.875)


def test_jitter_never_exceeds_the_cap():
    policy = RetryPolicy(base_delay=2.0, max_delay=70.0, jitter=0.25)
    assert policy.delay_for(7, rng=lambda: 0.999) == 70.0  # 128 is capped before and after jitter
    assert policy.delay_for(6, rng=lambda: 0.999) == 70.0  # 64 * 1.25 = 80 would pass the cap
    assert policy.delay_for(6, rng=lambda: 0.0) == 48.0  # downward jitter still applies
    assert policy.delay_for(5, rng=lambda: 0.999) == pytest.approx(32 * (1 + 0.25 * 0.998))


def test_random_jitter_stays_in_bounds():
    policy = RetryPolicy()
    rng = random.Random(42).random
    for attempt in range(1, 15):
        base = policy.backoff(attempt)
        for _ in range(50):
            delay = policy.delay_for(attempt, rng=rng)
            assert base * 0.75 <= delay <= min(base * 1.25, policy.max_delay)


def test_deterministic_with_same_rng_seed():
    policy = RetryPolicy()
    first = [policy.delay_for(n, rng=random.Random(7).random) for n in range(1, 10)]
    second = [policy.delay_for(n, rng=random.Random(7).random) for n in range(1, 10)]
    assert first == second


def test_retry_after_is_a_minimum():
    policy = RetryPolicy()
    quota = MetrikaQuotaError("slow down", status=429, retry_after=30)
    assert policy.delay_for(1, quota, rng=NO_JITTER) == 30.0
    short = MetrikaQuotaError("slow down", status=429, retry_after=1)
    assert policy.delay_for(3, short, rng=NO_JITTER) == 8.0  # backoff already longer


def test_daily_quota_waits_past_the_cap():
    policy = RetryPolicy(max_delay=3600)
    daily = MetrikaQuotaError(
        "daily", status=429, error_type="quota_requests_by_uid", retry_after=20_000
    )
    assert policy.delay_for(1, daily, rng=NO_JITTER) == 20_000.0


def test_server_error_without_retry_after_uses_backoff():
    policy = RetryPolicy()
    assert policy.delay_for(2, MetrikaServerError("x", status=503), rng=NO_JITTER) == 4.0
    assert (
        policy.delay_for(2, MetrikaServerError("x", status=503, retry_after=11), rng=NO_JITTER)
        == 11.0
    )


@pytest.mark.parametrize(
    "error, expected",
    [
        (MetrikaQuotaError("q", status=429), True),
        (MetrikaServerError("s", status=503), True),
        (MetrikaTransportError("t"), True),
        (MetrikaTimeoutError("t"), True),
        (MetrikaAuthError("a", status=401), False),
        (MetrikaBadRequestError("b", status=400), False),
        (MetrikaValidationError("v", errors=["bad"]), False),
        (MetrikaUnexpectedResponseError("u", status=200), False),
        (MetrikaTransportError("tls", retryable=False), False),
        (ValueError("not ours"), False),
    ],
)
def test_should_retry_follows_retryable(error, expected):
    assert RetryPolicy().should_retry(1, error) is expected


def test_should_retry_respects_max_attempts():
    policy = RetryPolicy(max_attempts=3)
    error = MetrikaServerError("s", status=500)
    assert [policy.should_retry(n, error) for n in (1, 2, 3, 4)] == [True, True, False, False]
    assert RetryPolicy().should_retry(1000, error) is True  # unlimited


@pytest.mark.parametrize(
    "kwargs",
    [
        {"base_delay": -1},
        {"max_delay": -1},
        {"multiplier": 0.5},
        {"jitter": 1.0},
        {"jitter": -0.1},
        {"max_attempts": 0},
    ],
)
def test_invalid_policy(kwargs):
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)


@pytest.mark.parametrize("attempt", [0, -1, 1.5, True])
def test_attempts_start_at_one(attempt):
    with pytest.raises(ValueError):
        RetryPolicy().delay_for(attempt)


def test_repr():
    assert repr(RetryPolicy(max_attempts=5)) == (
        "RetryPolicy(base_delay=2.0, max_delay=3600.0, multiplier=2.0, jitter=0.25, max_attempts=5)"
    )
