"""The Conversion Centre link's file (``metrika_core.formats.centre_link``): parsed back."""

import csv
import io
import tracemalloc
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from metrika_core import preflight
from metrika_core.formats import PAID, SimpleOrder
from metrika_core.formats.centre_link import (
    CENTRE_CHUNK_ROWS,
    CENTRE_COLUMNS,
    CENTRE_COLUMNS_HASHED,
    CENTRE_WINDOW_DAYS,
    REJECT_FUTURE,
    REJECT_NO_IDENTIFIER,
    REJECT_PREFLIGHT_PREFIX,
    REJECT_TOO_OLD,
    default_checks,
    iter_centre_csv,
)

UTC = timezone.utc
NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
MD5_MAIL = "3c56ff8fef0f6c65b36b2d25720fe276"  # mail@yandex.ru
MD5_PHONE = "f09f2c3d48f31e2a802944ade2e5aec5"  # 79995551111


def order(order_id="so-1", created=NOW - timedelta(days=1), **kwargs):
    if not any(kwargs.get(name) for name in ("client_ids", "emails", "phones")):
        kwargs["client_ids"] = ("1628529640459314054",)
    return SimpleOrder(id=order_id, create_date_time=created, **kwargs)


def build(orders, **kwargs):
    rejected = []
    written = []
    chunks = list(
        iter_centre_csv(
            orders,
            "Europe/Moscow",
            NOW,
            on_rejected=lambda row, reason: rejected.append((row.id, reason)),
            on_written=written.append,
            **kwargs,
        )
    )
    data = b"".join(chunks)
    assert not data.startswith(b"\xef\xbb\xbf") and b"\r" not in data
    reader = csv.reader(io.StringIO(data.decode("utf-8"), newline=""), delimiter=";")
    header, *rows = list(reader)
    return header, [dict(zip(header, row, strict=True)) for row in rows], rejected, written


def test_header_and_row_with_semicolons_in_the_counters_time():
    header, rows, rejected, written = build(
        [
            order(
                revenue=Decimal("1500.50"),
                order_status=PAID,
                client_ids=("1628529640459314054",),
                emails=("mail@yandex.ru",),
            )
        ]
    )
    assert header == list(CENTRE_COLUMNS)
    assert rejected == [] and sum(written) == 1
    assert rows == [
        {
            "id": "so-1",
            # 12:00 UTC the day before is 15:00 in Moscow.
            "create_date_time": "2024-05-31 15:00:00",
            "client_uniq_id": "",
            "client_ids": "1628529640459314054",
            "emails": "mail@yandex.ru",
            "phones": "",
            "order_status": "PAID",
            "revenue": "1500.50",
        }
    ]


def test_hashed_gives_md5_columns_only():
    header, rows, _rejected, _written = build(
        [order(emails=("mail@yandex.ru",), phones=("79995551111",))], hashed=True
    )
    assert header == list(CENTRE_COLUMNS_HASHED)
    assert "emails" not in header and "phones" not in header
    assert rows[0]["emails_md5"] == MD5_MAIL and rows[0]["phones_md5"] == MD5_PHONE


def test_window_no_row_older_than_113_days_or_in_the_future():
    oldest = NOW - timedelta(days=CENTRE_WINDOW_DAYS)
    _header, rows, rejected, _written = build(
        [
            order("edge", created=oldest),
            order("old", created=oldest - timedelta(seconds=1)),
            order("future", created=NOW + timedelta(seconds=1)),
            order("now", created=NOW),
        ]
    )
    assert [row["id"] for row in rows] == ["edge", "now"]
    assert sorted(rejected) == [("future", REJECT_FUTURE), ("old", REJECT_TOO_OLD)]


def test_only_rows_with_an_identifier():
    bare = SimpleOrder(id="bare", create_date_time=NOW - timedelta(days=2))
    _header, rows, rejected, _written = build([bare, order("phone", phones=("79995551111",))])
    assert [row["id"] for row in rows] == ["phone"]
    assert rejected == [("bare", REJECT_NO_IDENTIFIER)]


def test_invalid_row_left_out_with_the_formats_reason():
    """The format's own validation stays a safety net behind the checks (here, none)."""
    _header, rows, rejected, _written = build(
        [order("bad", emails=("Not An E-mail",)), order("good")], checks=[]
    )
    assert [row["id"] for row in rows] == ["good"]
    assert rejected[0][0] == "bad" and "e-mail" in rejected[0][1]


def test_rows_the_preflight_refuses_are_left_out_with_its_rule():
    _header, rows, rejected, written = build(
        [
            order("bad-mail", emails=("Not An E-mail",)),
            order("negative", revenue=Decimal("-1")),
            order("goal", order_status="a b"),
            order("good"),
        ]
    )
    assert [row["id"] for row in rows] == ["good"] and written == [1]
    assert rejected == [
        ("bad-mail", REJECT_PREFLIGHT_PREFIX + preflight.RULE_IDENTIFIER_FORMAT),
        ("negative", REJECT_PREFLIGHT_PREFIX + preflight.RULE_VALUE_RANGE),
        ("goal", REJECT_PREFLIGHT_PREFIX + preflight.RULE_GOAL),
    ]


def test_a_check_can_be_plugged_in():
    def no_spam(row):
        return "spam" if row.order_status == "SPAM" else None

    _header, rows, rejected, _written = build(
        [order("a", order_status="SPAM"), order("b")], checks=[*default_checks(NOW), no_spam]
    )
    assert [row["id"] for row in rows] == ["b"] and rejected == [("a", "spam")]


def test_lists_of_identifiers_are_quoted():
    data = b"".join(
        iter_centre_csv([order(phones=("79995551111", "79876543210"))], "UTC", NOW, hashed=False)
    )
    assert b';"79995551111,79876543210";' in data


def test_streams_in_chunks_without_reading_everything_first():
    consumed = []

    def orders():
        for index in range(3 * CENTRE_CHUNK_ROWS):
            consumed.append(index)
            yield order("so-%d" % index)

    chunks = iter_centre_csv(orders(), "UTC", NOW)
    next(chunks)  # the header: nothing read yet
    assert consumed == []
    next(chunks)
    assert len(consumed) == CENTRE_CHUNK_ROWS
    assert sum(chunk.count(b"\n") for chunk in chunks) == 2 * CENTRE_CHUNK_ROWS


def test_memory_does_not_grow_with_the_row_count():
    def peak(count):
        tracemalloc.start()
        for _chunk in iter_centre_csv(
            (order("so-%d" % index) for index in range(count)), "UTC", NOW
        ):
            pass
        peak_bytes = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return peak_bytes

    small, large = peak(2 * CENTRE_CHUNK_ROWS), peak(20 * CENTRE_CHUNK_ROWS)
    # Ten times the rows, about the same peak (one chunk at a time).
    assert large < small * 1.5
