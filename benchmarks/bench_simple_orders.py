#!/usr/bin/env python3
"""Benchmark of ``build_simple_orders_csv`` (hashed mode, Europe/Moscow counter).

Generates N SimpleOrder objects (default 100,000) with three identifiers each (a 19-digit
ClientID, an e-mail, a phone; about a third PAID with revenue and cost), then times only the
build. Fails (exit status 1) below 100,000 rows/s (median of the timed runs) or above 150 MB
peak resident memory of the whole process (generation included).

    python3 benchmarks/bench_simple_orders.py [--orders N] [--repeat R] [--tracemalloc]

The median of R timed builds (default 5) is compared with the threshold, because a shared
virtual machine can slow a single run down by half.

``--tracemalloc`` adds one extra, untimed build under tracemalloc and reports the peak of
Python allocations made by the build alone (tracemalloc slows code down, so it never runs
during the timed builds).
"""

import argparse
import os
import pathlib
import platform
import random
import resource
import statistics
import sys
import time
import tracemalloc
from datetime import datetime, timedelta, timezone
from decimal import Decimal

# Same set-up as tests/conftest.py: Odoo must stay out, the core is imported from the addon dir.
sys.modules["odoo"] = None
ADDON_DIR = pathlib.Path(__file__).resolve().parent.parent / "metrika_offline_conversions"
if str(ADDON_DIR) not in sys.path:
    sys.path.insert(0, str(ADDON_DIR))

from metrika_core.formats import (  # noqa: E402
    CANCELLED,
    IN_PROGRESS,
    PAID,
    SimpleOrder,
    build_simple_orders_csv,
)

MIN_ROWS_PER_SECOND = 100_000
MAX_PEAK_MB = 150.0
DOMAINS = ("yandex.ru", "gmail.com", "mail.ru", "example.com", "company.org")


def generate_orders(count, seed=20240331):
    rng = random.Random(seed)
    start = datetime(2024, 1, 1, tzinfo=timezone.utc)
    orders = []
    for index in range(count):
        # _ym_uid shape: 10-digit creation timestamp + 9 random digits.
        client_id = "%d%09d" % (1_700_000_000 + rng.randrange(30_000_000), rng.randrange(10**9))
        email = "customer.%d.%d@%s" % (index, rng.randrange(10_000), DOMAINS[index % len(DOMAINS)])
        phone = "79%09d" % rng.randrange(10**9)
        created = start + timedelta(
            seconds=rng.randrange(180 * 86400), microseconds=rng.randrange(10**6)
        )
        kind = rng.random()
        if kind < 0.35:
            status = PAID
            revenue = Decimal(rng.randrange(100, 5_000_000)).scaleb(-2)
            cost = (revenue * Decimal("0.6")).quantize(Decimal("0.01"))
            currency = "RUB"
        else:
            status = CANCELLED if kind > 0.9 else IN_PROGRESS
            revenue = cost = currency = None
        orders.append(
            SimpleOrder(
                id="SO%07d" % index,
                create_date_time=created,
                order_status=status,
                client_ids=(client_id,),
                emails=(email,),
                phones=(phone,),
                revenue=revenue,
                cost=cost,
                currency=currency,
                client_uniq_id="partner_%d" % rng.randrange(count // 2 + 1),
            )
        )
    return orders


def peak_rss_mb():
    # ru_maxrss is in KiB on Linux (bytes on macOS).
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if sys.platform == "darwin":
        return peak / (1024 * 1024)
    return peak / 1024


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--orders", type=int, default=100_000, help="number of orders (default 100000)"
    )
    parser.add_argument(
        "--repeat", type=int, default=5, help="timed builds (default 5; the median counts)"
    )
    parser.add_argument(
        "--tracemalloc", action="store_true", help="also report the build's tracemalloc peak"
    )
    args = parser.parse_args(argv)

    print(
        "machine: %s CPUs, %s, Python %s (%s)"
        % (
            os.cpu_count(),
            platform.platform(),
            platform.python_version(),
            platform.python_implementation(),
        )
    )

    started = time.perf_counter()
    orders = generate_orders(args.orders)
    print(
        "generated %d orders in %.2f s (not timed)" % (len(orders), time.perf_counter() - started)
    )

    timings = []
    data = b""
    for _ in range(max(1, args.repeat)):
        data = b""  # drop the previous result so two outputs never coexist
        started = time.perf_counter()
        data = build_simple_orders_csv(orders, "Europe/Moscow", hashed=True)
        timings.append(time.perf_counter() - started)
    rows = data.count(b"\n") - 1
    assert rows == len(orders), (rows, len(orders))

    median = statistics.median(timings)
    rate = len(orders) / median
    print("build times: %s s" % ", ".join("%.3f" % t for t in timings))
    print("rows/s (median): %.0f   best: %.0f" % (rate, len(orders) / min(timings)))
    print("output: %d bytes (%.1f MB), %d data rows" % (len(data), len(data) / 1e6, rows))
    peak = peak_rss_mb()
    print("peak RSS of the process (ru_maxrss): %.1f MB" % peak)

    if args.tracemalloc:
        data = b""
        tracemalloc.start()
        build_simple_orders_csv(orders, "Europe/Moscow", hashed=True)
        _, traced_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print("tracemalloc peak of one build: %.1f MB" % (traced_peak / 1e6))

    failures = []
    if rate < MIN_ROWS_PER_SECOND:
        failures.append("%.0f rows/s is below %d" % (rate, MIN_ROWS_PER_SECOND))
    if peak > MAX_PEAK_MB:
        failures.append("peak %.1f MB is above %.0f MB" % (peak, MAX_PEAK_MB))
    if failures:
        print("FAIL: " + "; ".join(failures))
        return 1
    print("OK (>= %d rows/s, <= %.0f MB)" % (MIN_ROWS_PER_SECOND, MAX_PEAK_MB))
    return 0


if __name__ == "__main__":
    sys.exit(main())
