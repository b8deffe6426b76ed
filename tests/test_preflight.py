"""The preflight check (``metrika_core.preflight``): every rule, a row that passes and one that
breaks it, and the rest of the file going on without the refused row."""

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from metrika_core import preflight
from metrika_core.formats import (
    OfflineConversion,
    SimpleOrder,
    build_offline_conversions_file,
    build_simple_orders_file,
)

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
CLIENT_ID = "1628529640459314054"
CLIENT_ORDER = preflight.FORMAT_SIMPLE_ORDERS
CLIENT_ID_FILE = preflight.offline_format("ClientId")


def order(**values):
    base = {
        "id": "S00001",
        "create_date_time": NOW - timedelta(days=1),
        "order_status": "PAID",
        "client_ids": (CLIENT_ID,),
        "revenue": Decimal("1000.00"),
        "currency": "RUB",
    }
    base.update(values)
    return SimpleOrder(**base)


def hit(**values):
    base = {
        "identifier": CLIENT_ID,
        "target": "order_paid",
        "date_time": NOW - timedelta(hours=2),
        "price": Decimal("10.5"),
        "currency": "RUB",
    }
    base.update(values)
    return OfflineConversion(**base)


def verdict(file_format, row):
    """The rule ``row`` breaks, or None when it passes."""
    passed, refused = preflight.check(file_format, [("row", row)], NOW)
    if passed:
        assert passed == [("row", row)] and not refused
        return None
    [(key, rule, message)] = refused
    assert key == "row" and rule in preflight.RULES and message
    return rule


# Each case: a field, a good value, a bad value, the rule the bad value breaks.
SIMPLE_ORDER_CASES = [
    ("create_date_time", NOW - timedelta(days=110), None, preflight.RULE_DATE_MISSING),
    (
        "create_date_time",
        NOW - timedelta(days=110),
        datetime(2026, 5, 1, 12, 0),  # naive: ambiguous
        preflight.RULE_DATE_MISSING,
    ),
    (
        "create_date_time",
        NOW + timedelta(minutes=5),
        NOW + timedelta(hours=1),
        preflight.RULE_DATE_IN_FUTURE,
    ),
    (
        "create_date_time",
        NOW - timedelta(days=110),
        NOW - timedelta(days=112),
        preflight.RULE_DATE_TOO_OLD,
    ),
    ("client_ids", (CLIENT_ID,), (), preflight.RULE_NO_IDENTIFIER),
    (
        "client_ids",
        ("12345678901234567890",),
        ("123456789012345678901",),
        preflight.RULE_IDENTIFIER_FORMAT,
    ),
    ("client_ids", (CLIENT_ID,), ("16285-29640",), preflight.RULE_IDENTIFIER_FORMAT),
    ("emails", ("ivan@example.ru",), ("Ivan@example.ru",), preflight.RULE_IDENTIFIER_FORMAT),
    ("phones", ("79995551111",), ("+79995551111",), preflight.RULE_IDENTIFIER_FORMAT),
    ("phones", ("79995551111",), ("12345",), preflight.RULE_IDENTIFIER_FORMAT),
    ("order_status", "CANCELLED", "CANCELED", preflight.RULE_STATUS),
    ("order_status", "lead_qualified", "lead qualified", preflight.RULE_GOAL),
    ("goals", (("paid_cash", Decimal("200")),), (("paid cash", None),), preflight.RULE_GOAL),
    ("goals", ("filial_1",), ("filial:1",), preflight.RULE_GOAL),
    ("revenue", Decimal("0"), Decimal("-1"), preflight.RULE_VALUE_RANGE),
    ("revenue", Decimal("0.01"), Decimal("NaN"), preflight.RULE_VALUE_RANGE),
    ("cost", Decimal("5"), "five", preflight.RULE_VALUE_RANGE),
    (
        "goals",
        (("paid_cash", Decimal("1")),),
        (("paid_cash", Decimal("-1")),),
        preflight.RULE_VALUE_RANGE,
    ),
    ("currency", "USD", "rub", preflight.RULE_CURRENCY),
    ("currency", None, "RUBL", preflight.RULE_CURRENCY),
    ("client_uniq_id", "partner-7", "partner\n7", preflight.RULE_ENCODING),
    ("client_uniq_id", "Пётр", "bad \udc80 surrogate", preflight.RULE_ENCODING),
    ("id", "S00001", "S00\u0000001", preflight.RULE_ENCODING),
    ("id", "S00001", " ", preflight.RULE_IDENTIFIER_FORMAT),
]


@pytest.mark.parametrize(("field", "good", "bad", "rule"), SIMPLE_ORDER_CASES)
def test_simple_order_rule(field, good, bad, rule):
    assert verdict(CLIENT_ORDER, order(**{field: good})) is None
    assert verdict(CLIENT_ORDER, order(**{field: bad})) == rule


OFFLINE_CASES = [
    ("identifier", CLIENT_ID, "", preflight.RULE_NO_IDENTIFIER),
    ("identifier", CLIENT_ID, "16285296404593140x", preflight.RULE_IDENTIFIER_FORMAT),
    ("target", "order_paid", "order/paid", preflight.RULE_GOAL),
    ("date_time", NOW - timedelta(days=20), NOW - timedelta(days=22), preflight.RULE_DATE_TOO_OLD),
    (
        "date_time",
        NOW + timedelta(minutes=9),
        NOW + timedelta(minutes=11),
        preflight.RULE_DATE_IN_FUTURE,
    ),
    ("date_time", NOW, None, preflight.RULE_DATE_MISSING),
    ("price", None, Decimal("-0.01"), preflight.RULE_VALUE_RANGE),
    ("price", Decimal("1E+3"), Decimal("Infinity"), preflight.RULE_VALUE_RANGE),
    ("currency", "EUR", "€", preflight.RULE_CURRENCY),
]


@pytest.mark.parametrize(("field", "good", "bad", "rule"), OFFLINE_CASES)
def test_offline_rule(field, good, bad, rule):
    base = {"identifier": CLIENT_ID, "target": "order_paid", "date_time": NOW - timedelta(hours=1)}
    base["price"] = None
    base["currency"] = None
    assert verdict(CLIENT_ID_FILE, OfflineConversion(**{**base, field: good})) is None
    assert verdict(CLIENT_ID_FILE, OfflineConversion(**{**base, field: bad})) == rule


def test_dates_before_1970_are_refused_whatever_the_window():
    # Any window refuses them too; a format without one (max_age None) still does.
    cells = preflight.CHECKERS[CLIENT_ORDER]
    assert cells(order(create_date_time=datetime(1970, 1, 1, tzinfo=timezone.utc)), NOW, None)
    with pytest.raises(preflight.RowRefused) as refused:
        cells(
            order(create_date_time=datetime(1969, 12, 31, 23, 59, tzinfo=timezone.utc)), NOW, None
        )
    assert refused.value.rule == preflight.RULE_DATE_BEFORE_1970


def test_offline_identifier_columns():
    # yclids are digits too, up to 25 of them; UserId and PurchaseId are any text.
    yclid_file = preflight.offline_format("Yclid")
    assert verdict(yclid_file, hit(identifier="6754821930114400255123456")) is None
    assert (
        verdict(yclid_file, hit(identifier="67548219301144002551234567"))
        == preflight.RULE_IDENTIFIER_FORMAT
    )
    user_file = preflight.offline_format("UserId")
    assert verdict(user_file, hit(identifier="user-42")) is None
    assert verdict(user_file, hit(identifier="user\t42")) == preflight.RULE_ENCODING


def test_bad_rows_are_kept_back_and_the_rest_goes_in_order():
    rows = [
        ("a", order(id="A")),
        ("b", order(id="B", revenue=Decimal("-5"))),
        ("c", order(id="C", client_ids=())),
        ("d", order(id="D", emails=("d@example.ru",), client_ids=())),
    ]
    passed, refused = preflight.check(CLIENT_ORDER, rows, NOW)
    assert [key for key, _row in passed] == ["a", "d"]
    assert [(key, rule) for key, rule, _message in refused] == [
        ("b", preflight.RULE_VALUE_RANGE),
        ("c", preflight.RULE_NO_IDENTIFIER),
    ]
    assert "-5" in refused[0][2]
    # What passes, the builder writes whole: the preflight refuses at least what it refuses.
    built = build_simple_orders_file([row for _key, row in passed], "Europe/Moscow")
    assert built.row_count == 2 and not built.rejected


def test_rows_past_the_file_size_limit_are_kept_back():
    rows = [(index, order(id="S%05d" % index)) for index in range(10)]
    one_row = len(preflight.CHECKERS[CLIENT_ORDER](rows[0][1], NOW, 111))
    assert one_row  # cells of a row
    passed, refused = preflight.check(CLIENT_ORDER, rows, NOW, max_file_bytes=400)
    assert passed and refused
    assert len(passed) + len(refused) == 10
    assert {rule for _key, rule, _message in refused} == {preflight.RULE_FILE_SIZE}
    # The rows that fit come first; the rest wait for a later file.
    assert [key for key, _row in passed] == list(range(len(passed)))
    passed, refused = preflight.check(CLIENT_ORDER, rows, NOW)
    assert len(passed) == 10 and not refused


def test_every_row_the_builders_reject_is_refused_first():
    """The builders' own checks stay a safety net: the preflight already refuses those rows."""
    bad_orders = [
        order(id="1", client_ids=()),
        order(id="2", emails=("NOT-AN-EMAIL",)),
        order(id="3", order_status="paid"),
        order(id="4", revenue=Decimal("-1")),
        order(id="5", currency="rub"),
        order(id="6", goals=("a b",)),
    ]
    built = build_simple_orders_file(bad_orders, "UTC")
    assert len(built.rejected) == len(bad_orders)
    passed, refused = preflight.check(CLIENT_ORDER, list(enumerate(bad_orders)), NOW)
    assert not passed and len(refused) == len(bad_orders)
    bad_hits = [hit(identifier="x1"), hit(target="a=b"), hit(price=Decimal("-2"))]
    built = build_offline_conversions_file(bad_hits, "ClientId", now=NOW)
    assert len(built.rejected) == len(bad_hits)
    passed, refused = preflight.check(CLIENT_ID_FILE, list(enumerate(bad_hits)), NOW)
    assert not passed and len(refused) == len(bad_hits)


def test_unknown_format_and_naive_now_are_programming_errors():
    with pytest.raises(ValueError, match="no preflight rules"):
        preflight.check("carrier_pigeon", [], NOW)
    with pytest.raises(ValueError, match="timezone-aware"):
        preflight.check(CLIENT_ORDER, [], datetime(2026, 6, 1))
    assert preflight.check(CLIENT_ORDER, [], NOW) == ([], [])
