"""Upload-file builders of ``metrika_core.formats``: produced bytes are parsed back and compared."""

import csv
import io
import json
from datetime import datetime, timedelta, timezone, tzinfo
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from metrika_core.errors import MetrikaDataError
from metrika_core.formats import (
    CANCELLED,
    IN_PROGRESS,
    OFFLINE_IDENTIFIER_COLUMNS,
    ORDER_STATUSES,
    PAID,
    SIMPLE_ORDERS_COLUMNS,
    SIMPLE_ORDERS_COLUMNS_HASHED,
    SPAM,
    Contact,
    OfflineConversion,
    Order,
    OrderStatusMapping,
    SimpleOrder,
    UploadDataError,
    build_contacts_csv,
    build_contacts_file,
    build_contacts_json,
    build_offline_conversions_csv,
    build_offline_conversions_file,
    build_orders_csv,
    build_orders_file,
    build_orders_json,
    build_simple_orders_csv,
    build_simple_orders_file,
    build_status_mapping_json,
    format_decimal,
    group_offline_conversions,
    is_valid_goal_identifier,
)

UTC = timezone.utc
T0 = datetime(2024, 1, 10, 8, 56, tzinfo=UTC)  # 11:56 in Moscow

# TV9
MD5_MAIL = "3c56ff8fef0f6c65b36b2d25720fe276"  # mail@yandex.ru
MD5_PHONE = "f09f2c3d48f31e2a802944ade2e5aec5"  # 79995551111
MD5_PHONE_PLUS = "ad213a35b7742698d9b368b16bed84b4"  # +79995551111 (wrong form)
MD5_PHONE_2 = "5c5259938ed3e632bc5e3f94731090af"  # 79876543210
MD5_MAIL_2 = "8d2b135ba9bd88fbfbd8ececb31196d1"  # example2@yandex.ru


def parse(data, delimiter=","):
    """(header, rows as dicts) of CSV bytes; also checks the common framing."""
    assert isinstance(data, bytes)
    assert not data.startswith(b"\xef\xbb\xbf"), "no BOM"
    assert b"\r" not in data, "LF line endings"
    assert data.endswith(b"\n")
    reader = csv.reader(io.StringIO(data.decode("utf-8"), newline=""), delimiter=delimiter)
    header, *rows = list(reader)
    return header, [dict(zip(header, row, strict=True)) for row in rows]


def lines(data):
    return data.decode("utf-8").split("\n")[:-1]


def order(order_id="o1", created=T0, **kwargs):
    kwargs.setdefault("client_ids", ("1628529640459314054",))
    return SimpleOrder(id=order_id, create_date_time=created, **kwargs)


def simple_row(orders, time_zone="Europe/Moscow", **kwargs):
    header, rows = parse(build_simple_orders_csv(orders, time_zone, **kwargs))
    return rows[0]


# --------------------------------------------------------------------------- simple orders


def test_simple_orders_header_first_fixed_and_no_bom():
    data = build_simple_orders_csv([order()], "Europe/Moscow")
    assert lines(data)[0] == (
        "id,create_date_time,client_uniq_id,client_ids,emails,phones,order_status,"
        "revenue,cost,currency,goals"
    )
    header, rows = parse(data)
    assert tuple(header) == SIMPLE_ORDERS_COLUMNS
    assert rows == [
        {
            "id": "o1",
            "create_date_time": "2024-01-10 11:56:00",
            "client_uniq_id": "",
            "client_ids": "1628529640459314054",
            "emails": "",
            "phones": "",
            "order_status": "IN_PROGRESS",
            "revenue": "",
            "cost": "",
            "currency": "",
            "goals": "",
        }
    ]


def test_simple_orders_hashed_header_and_tv9_values():
    data = build_simple_orders_csv(
        [
            order(
                client_ids=(),
                emails=("mail@yandex.ru", "example2@yandex.ru"),
                phones=("79995551111", "79876543210"),
            )
        ],
        "Europe/Moscow",
        hashed=True,
    )
    header, rows = parse(data)
    assert tuple(header) == SIMPLE_ORDERS_COLUMNS_HASHED
    assert "emails" not in header and "phones" not in header
    assert rows[0]["emails_md5"] == MD5_MAIL + "," + MD5_MAIL_2
    assert rows[0]["phones_md5"] == MD5_PHONE + "," + MD5_PHONE_2
    assert MD5_PHONE_PLUS not in data.decode()
    # Multi-value cells are quoted in the raw text, each value hashed separately.
    assert '"%s,%s"' % (MD5_PHONE, MD5_PHONE_2) in data.decode()


def test_simple_orders_hashed_single_values():
    row = simple_row([order(emails=("mail@yandex.ru",), phones=("79995551111",))], hashed=True)
    assert (row["emails_md5"], row["phones_md5"]) == (MD5_MAIL, MD5_PHONE)
    assert row["client_ids"] == "1628529640459314054"  # ClientIDs are never hashed


def test_simple_orders_multi_value_cells_quoted_single_values_not():
    data = build_simple_orders_csv(
        [
            order(
                "multi",
                phones=("79876543210", "79991234567"),
                emails=("mail@example.com", "mail2@example.com"),
            ),
            order("single", client_ids=(), phones=("79876543210",)),
        ],
        "Europe/Moscow",
    )
    text_lines = lines(data)
    assert '"79876543210,79991234567"' in text_lines[1]
    assert '"mail@example.com,mail2@example.com"' in text_lines[1]
    assert text_lines[2] == "single,2024-01-10 11:56:00,,,,79876543210,IN_PROGRESS,,,,"
    _, rows = parse(data)
    assert rows[0]["phones"] == "79876543210,79991234567"


def test_simple_orders_repeated_identifier_written_once():
    row = simple_row([order(phones=("79876543210", "79876543210", "79991234567"))])
    assert row["phones"] == "79876543210,79991234567"


def test_simple_orders_lists_and_lone_strings_are_accepted():
    row = simple_row([order(client_ids="1628529640459314054", phones=["79876543210"])])
    assert row["client_ids"] == "1628529640459314054"
    assert row["phones"] == "79876543210"


@pytest.mark.parametrize(
    "value, expected",
    [
        (Decimal("1234.50"), "1234.50"),
        (Decimal("1E+3"), "1000"),
        (Decimal("0.000001"), "0.000001"),
        (Decimal("-0"), "0"),
        (Decimal("12345678901234567890.123"), "12345678901234567890.123"),
        (200, "200"),
        (0.1, "0.1"),
        (1e21, "1000000000000000000000"),
        (43089.54, "43089.54"),
    ],
)
def test_decimals_dot_no_exponent_value_kept(value, expected):
    assert format_decimal(value) == expected
    row = simple_row([order(order_status=PAID, revenue=value, cost=value, currency="RUB")])
    assert (row["revenue"], row["cost"], row["currency"]) == (expected, expected, "RUB")
    assert Decimal(row["revenue"]) == Decimal(str(value))


@pytest.mark.parametrize(
    "value",
    [
        Decimal("NaN"),
        Decimal("sNaN"),
        Decimal("Infinity"),
        float("nan"),
        float("-inf"),
        Decimal("-1"),
        -0.5,
        True,
        "abc",
        object(),
    ],
)
def test_bad_amounts_refused_naming_the_order(value):
    with pytest.raises(UploadDataError) as info:
        build_simple_orders_csv([order("bad-amount", revenue=value)], "Europe/Moscow")
    assert "bad-amount" in str(info.value)
    assert info.value.row_id == "bad-amount"
    with pytest.raises(ValueError):
        build_simple_orders_csv([order("bad-cost", cost=value)], "Europe/Moscow")


def test_simple_orders_goals_cell_like_the_doc_sample():
    row = simple_row([order(order_status=PAID, goals=(("oplata_cash", 200), ("filial_1", None)))])
    assert row["goals"] == "oplata_cash:200,filial_1"
    data = build_simple_orders_csv(
        [order(goals=[("oplata_cash", Decimal("200.50")), "filial_1"])], "Europe/Moscow"
    )
    assert lines(data)[1].endswith(',"oplata_cash:200.50,filial_1"')


def test_is_valid_goal_identifier():
    for good in ("oplata_cash", "filial_1", "goal-action.2", "ЦельОплачена", "status:paid"):
        assert is_valid_goal_identifier(good) is True, good
    for bad in (
        "",
        "with space",
        "a/b",
        "a\\b",
        "a&b",
        "a#b",
        "a?b",
        "a=b",
        'a"b',
        "tab\tx",
        "line\nbreak",
        None,
        42,
    ):
        assert is_valid_goal_identifier(bad) is False, bad


@pytest.mark.parametrize(
    "goal",
    ["", "with space", "a/b", "a\\b", "a&b", "a#b", "a?b", "a=b", 'a"b', "a,b", "a:b", "tab\tx"],
)
def test_simple_orders_bad_goal_refused(goal):
    with pytest.raises(UploadDataError, match="goal-row"):
        build_simple_orders_csv([order("goal-row", goals=((goal, None),))], "Europe/Moscow")


@pytest.mark.parametrize("status", ORDER_STATUSES + ("crm_qualified_lead", "plohoy_lead"))
def test_simple_orders_statuses_and_goal_ids_accepted(status):
    assert simple_row([order(order_status=status)])["order_status"] == status


@pytest.mark.parametrize("status", ["", None, "CANCELED", "paid", "Spam", "my goal", "a/b", 'q"'])
def test_simple_orders_bad_status_refused(status):
    with pytest.raises(UploadDataError, match="status-row"):
        build_simple_orders_csv([order("status-row", order_status=status)], "Europe/Moscow")


def test_simple_orders_latest_duplicate_wins_at_first_position():
    orders = [
        order("A", order_status=IN_PROGRESS),
        order("B"),
        order("A", order_status=PAID, revenue=Decimal("500"), currency="RUB"),
        order("C"),
        order("A", order_status=CANCELLED),
    ]
    _, rows = parse(build_simple_orders_csv(orders, "Europe/Moscow"))
    assert [row["id"] for row in rows] == ["A", "B", "C"]
    assert rows[0]["order_status"] == CANCELLED
    assert rows[0]["revenue"] == ""  # the whole latest row, not a merge


def test_simple_orders_superseded_invalid_row_is_not_sent_nor_checked():
    orders = [order("A", client_ids=()), order("A")]
    _, rows = parse(build_simple_orders_csv(orders, "Europe/Moscow"))
    assert len(rows) == 1


def test_simple_orders_missing_identifier_names_the_order():
    orders = [order("fine"), order("S-0042", client_ids=(), emails=(), phones=())]
    with pytest.raises(UploadDataError, match="S-0042") as info:
        build_simple_orders_csv(orders, "Europe/Moscow")
    assert info.value.row_id == "S-0042"
    assert "identifier" in str(info.value)


@pytest.mark.parametrize(
    "field, value",
    [
        ("phones", "+79995551111"),
        ("phones", "7 999 555 11 11"),
        ("phones", "7999,5551111"),
        ("phones", ""),
        ("phones", 79995551111),
        ("emails", "Mail@yandex.ru"),
        ("emails", "mail@yandex.ru "),
        ("emails", "a,b@yandex.ru"),
        ("emails", "no-at-sign.ru"),
        ("client_ids", "1628529640459314054,1"),
        ("client_ids", "abc"),
        ("client_ids", "١٢٣"),  # non-ASCII digits
    ],
)
def test_simple_orders_unnormalised_identifier_refused(field, value):
    with pytest.raises(UploadDataError, match="ident-row"):
        build_simple_orders_csv([order("ident-row", **{field: (value,)})], "Europe/Moscow")
    # Also inside a multi-value cell.
    good = {"phones": "79995551111", "emails": "mail@yandex.ru", "client_ids": "123"}[field]
    with pytest.raises(UploadDataError, match="ident-row"):
        build_simple_orders_csv([order("ident-row", **{field: (good, value)})], "Europe/Moscow")


@pytest.mark.parametrize("currency", ["rub", "RUBL", "RU", "R1B", 643, "РУБ"])
def test_bad_currency_refused(currency):
    with pytest.raises(UploadDataError, match="cur-row"):
        build_simple_orders_csv([order("cur-row", currency=currency)], "Europe/Moscow")


@pytest.mark.parametrize("order_id", ["", "   ", None, 42])
def test_simple_orders_id_required(order_id):
    with pytest.raises(UploadDataError, match="id must be a non-empty string"):
        build_simple_orders_csv([order(order_id)], "Europe/Moscow")


def test_empty_inputs_refused():
    with pytest.raises(UploadDataError, match="no simple orders"):
        build_simple_orders_csv([], "Europe/Moscow")
    with pytest.raises(UploadDataError):
        build_contacts_csv([], "Europe/Moscow")
    with pytest.raises(UploadDataError):
        build_orders_json(iter(()), "Europe/Moscow")
    with pytest.raises(UploadDataError):
        build_offline_conversions_csv([], "ClientId")
    with pytest.raises(UploadDataError):
        build_status_mapping_json([])


def test_free_text_cells_round_trip_with_quoting():
    nasty = 'ord,"1"\nsecond line;x'
    orders = [order(nasty, client_uniq_id='client, "A"; B')]
    _, rows = parse(build_simple_orders_csv(orders, "Europe/Moscow"))
    assert rows[0]["id"] == nasty
    assert rows[0]["client_uniq_id"] == 'client, "A"; B'
    _, rows = parse(build_simple_orders_csv(orders, "Europe/Moscow", delimiter=";"), delimiter=";")
    assert rows[0]["id"] == nasty


def test_semicolon_delimiter_leaves_multi_value_cells_unquoted():
    data = build_simple_orders_csv(
        [order(phones=("79876543210", "79991234567"), goals=("g1", "g2"))],
        "Europe/Moscow",
        delimiter=";",
    )
    assert lines(data)[0].startswith("id;create_date_time;")
    assert ";79876543210,79991234567;" in lines(data)[1]
    assert lines(data)[1].endswith(";g1,g2")
    with pytest.raises(UploadDataError, match="delimiter"):
        build_simple_orders_csv([order()], "Europe/Moscow", delimiter="\t")


def test_large_batch_is_complete_and_in_order():
    orders = [
        order("o%05d" % i, created=T0 + timedelta(minutes=i), phones=("7999%07d" % i,))
        for i in range(10000)
    ]
    _, rows = parse(build_simple_orders_csv(orders, "Europe/Moscow", hashed=True))
    assert [row["id"] for row in rows] == ["o%05d" % i for i in range(10000)]
    assert rows[-1]["create_date_time"] == "2024-01-17 10:35:00"


# --------------------------------------------------------------------------- time zones


def created_in(zone, *instants):
    orders = [order("o%d" % i, created=instant) for i, instant in enumerate(instants)]
    _, rows = parse(build_simple_orders_csv(orders, zone))
    return [row["create_date_time"] for row in rows]


def test_moscow_counter_is_utc_plus_3_all_year():
    assert created_in(
        "Europe/Moscow",
        datetime(2024, 1, 15, 9, 0, tzinfo=UTC),
        datetime(2024, 7, 15, 9, 0, tzinfo=UTC),
        datetime(2024, 12, 31, 22, 30, 15, tzinfo=UTC),
    ) == ["2024-01-15 12:00:00", "2024-07-15 12:00:00", "2025-01-01 01:30:15"]


def test_yekaterinburg_counter_is_utc_plus_5():
    assert created_in(
        "Asia/Yekaterinburg",
        datetime(2024, 3, 1, 20, 0, tzinfo=UTC),
        datetime(2024, 8, 1, 0, 0, tzinfo=UTC),
    ) == ["2024-03-02 01:00:00", "2024-08-01 05:00:00"]


def test_input_zone_does_not_matter_only_the_instant():
    moscow = ZoneInfo("Europe/Moscow")
    same_instant = [
        datetime(2024, 6, 1, 9, 0, tzinfo=UTC),
        datetime(2024, 6, 1, 12, 0, tzinfo=moscow),
        datetime(2024, 6, 1, 14, 0, tzinfo=timezone(timedelta(hours=5))),
    ]
    assert created_in("Asia/Yekaterinburg", *same_instant) == ["2024-06-01 14:00:00"] * 3


def test_time_zone_as_tzinfo_and_seconds_truncated():
    instant = datetime(2024, 6, 1, 9, 0, 59, 999999, tzinfo=UTC)
    assert created_in(ZoneInfo("Europe/Moscow"), instant) == ["2024-06-01 12:00:59"]
    assert created_in(timezone(timedelta(hours=5)), instant) == ["2024-06-01 14:00:59"]


def test_berlin_spring_forward_2024_03_31():
    # 02:00 CET jumps to 03:00 CEST (01:00 UTC): wall times 02:xx do not exist.
    assert created_in(
        "Europe/Berlin",
        datetime(2024, 3, 31, 0, 59, 59, tzinfo=UTC),
        datetime(2024, 3, 31, 1, 0, 0, tzinfo=UTC),
        datetime(2024, 3, 31, 1, 30, 0, tzinfo=UTC),
        datetime(2024, 3, 30, 12, 0, 0, tzinfo=UTC),
        datetime(2024, 4, 1, 12, 0, 0, tzinfo=UTC),
    ) == [
        "2024-03-31 01:59:59",
        "2024-03-31 03:00:00",
        "2024-03-31 03:30:00",
        "2024-03-30 13:00:00",
        "2024-04-01 14:00:00",
    ]


def test_berlin_fall_back_2024_10_27_repeated_hour():
    # 03:00 CEST goes back to 02:00 CET (01:00 UTC): 02:00-03:00 happens twice. Metrica's
    # format has no offset, so two distinct instants give the same wall time (documented).
    assert created_in(
        "Europe/Berlin",
        datetime(2024, 10, 26, 23, 59, 59, tzinfo=UTC),
        datetime(2024, 10, 27, 0, 0, 0, tzinfo=UTC),
        datetime(2024, 10, 27, 0, 30, 0, tzinfo=UTC),
        datetime(2024, 10, 27, 0, 59, 59, tzinfo=UTC),
        datetime(2024, 10, 27, 1, 0, 0, tzinfo=UTC),
        datetime(2024, 10, 27, 1, 30, 0, tzinfo=UTC),
        datetime(2024, 10, 27, 2, 0, 0, tzinfo=UTC),
    ) == [
        "2024-10-27 01:59:59",
        "2024-10-27 02:00:00",
        "2024-10-27 02:30:00",
        "2024-10-27 02:59:59",
        "2024-10-27 02:00:00",
        "2024-10-27 02:30:00",
        "2024-10-27 03:00:00",
    ]


def test_fold_of_an_input_datetime_is_respected():
    berlin = ZoneInfo("Europe/Berlin")
    first = datetime(2024, 10, 27, 2, 30, tzinfo=berlin, fold=0)  # 00:30 UTC
    second = datetime(2024, 10, 27, 2, 30, tzinfo=berlin, fold=1)  # 01:30 UTC
    assert created_in("Europe/Moscow", first, second) == [
        "2024-10-27 03:30:00",
        "2024-10-27 04:30:00",
    ]


def test_naive_datetime_refused():
    with pytest.raises(UploadDataError, match="naive") as info:
        build_simple_orders_csv(
            [order("naive-1", created=datetime(2024, 1, 1, 12, 0))], "Europe/Moscow"
        )
    assert "naive-1" in str(info.value)
    with pytest.raises(ValueError, match="naive"):
        build_contacts_csv([Contact("c1", create_date_time=datetime(2024, 1, 1))], "Europe/Moscow")


class _NoOffset(tzinfo):  # a tzinfo whose utcoffset() is None: still naive
    def utcoffset(self, dt):
        return None


@pytest.mark.parametrize(
    "created",
    [datetime(2024, 1, 1, tzinfo=_NoOffset()), "2024-01-01 10:00:00", datetime(2024, 1, 1).date()],
)
def test_non_aware_values_refused(created):
    with pytest.raises(UploadDataError, match="created-row"):
        build_simple_orders_csv([order("created-row", created=created)], "Europe/Moscow")


def test_before_1970_refused():
    with pytest.raises(UploadDataError, match="1970"):
        build_simple_orders_csv(
            [order(created=datetime(1969, 12, 31, 12, tzinfo=UTC))], "Europe/Moscow"
        )


@pytest.mark.parametrize("zone", ["Mars/Olympus", "", None, 3, "../etc/passwd"])
def test_unknown_time_zone_refused(zone):
    with pytest.raises(UploadDataError, match="time"):
        build_simple_orders_csv([order()], zone)


# --------------------------------------------------------------------------- offline conversions


def conversion(
    identifier="133591247640966458",
    target="GOAL1",
    when=datetime(2016, 12, 14, 12, 22, 46, tzinfo=UTC),
    **kwargs,
):
    return OfflineConversion(identifier, target, when, **kwargs)


NOW = datetime(2025, 1, 1, tzinfo=UTC)


def test_offline_tv1():
    data = build_offline_conversions_csv(
        [
            conversion(price=Decimal("123.45"), currency="RUB"),
            conversion(
                target="GOAL2",
                when=datetime(2016, 12, 14, 12, 22, 22, tzinfo=UTC),
                price=Decimal("678.90"),
                currency="RUB",
            ),
        ],
        "ClientId",
        now=NOW,
    )
    assert data == (
        b"ClientId,Target,DateTime,Price,Currency\n"
        b"133591247640966458,GOAL1,1481718166,123.45,RUB\n"
        b"133591247640966458,GOAL2,1481718142,678.90,RUB\n"
    )


def test_offline_datetime_is_utc_epoch_whatever_the_zone():
    moscow = datetime(2016, 12, 14, 15, 22, 46, 999999, tzinfo=ZoneInfo("Europe/Moscow"))
    _, rows = parse(build_offline_conversions_csv([conversion(when=moscow)], "ClientId", now=NOW))
    assert rows[0]["DateTime"] == "1481718166"
    assert rows[0]["Price"] == rows[0]["Currency"] == ""


def test_offline_tv2_yclid_and_every_identifier_column():
    data = build_offline_conversions_csv(
        [
            conversion(
                "6754821930114400255",
                "crm_deal_won",
                datetime(2025, 1, 1, tzinfo=UTC),
                price=Decimal("15000.00"),
                currency="RUB",
            )
        ],
        "Yclid",
        now=datetime(2025, 6, 1, tzinfo=UTC),
    )
    assert lines(data) == [
        "Yclid,Target,DateTime,Price,Currency",
        "6754821930114400255,crm_deal_won,1735689600,15000.00,RUB",
    ]
    for column in OFFLINE_IDENTIFIER_COLUMNS:
        header, _ = parse(build_offline_conversions_csv([conversion("123")], column, now=NOW))
        assert header == [column, "Target", "DateTime", "Price", "Currency"]
    _, rows = parse(build_offline_conversions_csv([conversion("S00042")], "PurchaseId", now=NOW))
    assert rows[0]["PurchaseId"] == "S00042"


def test_offline_future_time_clamped_to_one_second_before_now():
    now = datetime(2025, 1, 1, 12, 0, 0, 500000, tzinfo=UTC)
    now_seconds = int(datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC).timestamp())
    _, rows = parse(
        build_offline_conversions_csv(
            [
                conversion(target="future", when=now + timedelta(hours=3)),
                conversion(target="exactly_now", when=now),
                conversion(target="past", when=now - timedelta(minutes=1)),
            ],
            "ClientId",
            now=now,
        )
    )
    assert [(row["Target"], int(row["DateTime"])) for row in rows] == [
        ("future", now_seconds - 1),
        ("exactly_now", now_seconds - 1),
        ("past", now_seconds - 60),
    ]


def test_offline_default_now_is_the_current_time():
    future = datetime.now(UTC) + timedelta(days=1)
    _, rows = parse(build_offline_conversions_csv([conversion(when=future)], "ClientId"))
    assert int(rows[0]["DateTime"]) < datetime.now(UTC).timestamp()


def test_offline_exact_duplicates_dropped_latest_wins():
    _, rows = parse(
        build_offline_conversions_csv(
            [
                conversion(price=Decimal("1")),
                conversion(target="GOAL2"),
                conversion(price=Decimal("2")),
                conversion(when=datetime(2016, 12, 14, 12, 22, 47, tzinfo=UTC)),
            ],
            "ClientId",
            now=NOW,
        )
    )
    assert [(row["Target"], row["DateTime"], row["Price"]) for row in rows] == [
        ("GOAL1", "1481718166", "2"),
        ("GOAL2", "1481718166", ""),
        ("GOAL1", "1481718167", ""),
    ]


@pytest.mark.parametrize("column", ["CLIENT_ID", "clientid", "Email", "", None])
def test_offline_wrong_identifier_column_refused(column):
    with pytest.raises(UploadDataError, match="identifier column"):
        build_offline_conversions_csv([conversion()], column, now=NOW)


@pytest.mark.parametrize(
    "target", ["", "my goal", "Цель оплачена", "a/b", "a?b=c", "a&b", "#x", 'q"', None]
)
def test_offline_bad_target_refused(target):
    with pytest.raises(UploadDataError, match="Target"):
        build_offline_conversions_csv([conversion(target=target)], "ClientId", now=NOW)


@pytest.mark.parametrize(
    "column, identifier",
    [("ClientId", "12a"), ("Yclid", "-1"), ("ClientId", ""), ("UserId", "  "), ("UserId", 42)],
)
def test_offline_bad_identifier_refused(column, identifier):
    with pytest.raises(UploadDataError, match=column):
        build_offline_conversions_csv([conversion(identifier)], column, now=NOW)


def test_offline_bad_values_refused():
    with pytest.raises(UploadDataError, match="naive"):
        build_offline_conversions_csv([conversion(when=datetime(2024, 1, 1))], "ClientId", now=NOW)
    with pytest.raises(UploadDataError, match="naive"):
        build_offline_conversions_csv([conversion()], "ClientId", now=datetime(2025, 1, 1))
    with pytest.raises(UploadDataError, match="currency"):
        build_offline_conversions_csv([conversion(price=1, currency="rub")], "ClientId", now=NOW)
    with pytest.raises(UploadDataError, match="price"):
        build_offline_conversions_csv([conversion(price=Decimal("NaN"))], "ClientId", now=NOW)
    with pytest.raises(UploadDataError, match="1970"):
        build_offline_conversions_csv(
            [conversion(when=datetime(1969, 1, 1, tzinfo=UTC))], "ClientId", now=NOW
        )


def test_group_offline_conversions():
    a, b, c = conversion("1"), conversion("yc1"), conversion("2")
    assert group_offline_conversions([("ClientId", a), ("Yclid", b), ("ClientId", c)]) == {
        "ClientId": [a, c],
        "Yclid": [b],
    }
    with pytest.raises(UploadDataError):
        group_offline_conversions([("Phone", a)])


# --------------------------------------------------------------------------- detailed CSV


def test_contacts_csv_only_used_columns_and_mapping():
    data, mapping = build_contacts_csv(
        [
            Contact("11", name="John J.", emails=("example@example.com",)),
            Contact("42", name="Michael L.", emails=("somebody@example.com", "other@example.com")),
        ],
        "Europe/Moscow",
    )
    assert mapping == '"uniq_id":"uniq_id","name":"name","emails":"emails"'
    header, rows = parse(data)
    assert header == ["uniq_id", "name", "emails"]
    assert rows == [
        {"uniq_id": "11", "name": "John J.", "emails": "example@example.com"},
        {"uniq_id": "42", "name": "Michael L.", "emails": "somebody@example.com,other@example.com"},
    ]
    assert '"somebody@example.com,other@example.com"' in lines(data)[2]


def test_contacts_csv_all_columns_hashed_and_latest_wins():
    contacts = [
        Contact("c1", name="Old"),
        Contact("c2", phones=("79876543210",)),
        Contact(
            "c1",
            name="Иван, Петров",
            create_date_time=datetime(2020, 4, 17, 13, 12, 21, tzinfo=UTC),
            update_date_time=datetime(2020, 4, 18, 13, 12, 21, tzinfo=UTC),
            client_ids=("12345678910", "10987654321"),
            emails=("mail@yandex.ru",),
            phones=("79995551111", "79876543210"),
        ),
    ]
    data, mapping = build_contacts_csv(contacts, "Europe/Moscow", hashed=True)
    expected_columns = [
        "uniq_id",
        "name",
        "create_date_time",
        "update_date_time",
        "client_ids",
        "emails_md5",
        "phones_md5",
    ]
    assert mapping == ",".join('"%s":"%s"' % (c, c) for c in expected_columns)
    header, rows = parse(data)
    assert header == expected_columns
    assert rows[0] == {
        "uniq_id": "c1",
        "name": "Иван, Петров",
        "create_date_time": "2020-04-17 16:12:21",
        "update_date_time": "2020-04-18 16:12:21",
        "client_ids": "12345678910,10987654321",
        "emails_md5": MD5_MAIL,
        "phones_md5": MD5_PHONE + "," + MD5_PHONE_2,
    }
    assert rows[1] == {
        "uniq_id": "c2",
        "name": "",
        "create_date_time": "",
        "update_date_time": "",
        "client_ids": "",
        "emails_md5": "",
        "phones_md5": MD5_PHONE_2,
    }


def test_contacts_csv_uniq_id_only():
    data, mapping = build_contacts_csv([Contact("only")], "UTC")
    assert (data, mapping) == (b"uniq_id\nonly\n", '"uniq_id":"uniq_id"')


def test_contacts_bad_identifier_names_the_contact():
    with pytest.raises(UploadDataError, match="c-77"):
        build_contacts_csv([Contact("c-77", phones=("+79995551111",))], "Europe/Moscow")


def tv5_orders():
    return [
        Order(
            "100",
            "11",
            datetime(2020, 6, 11, 9, 30, tzinfo=UTC),
            "paid",
            revenue=Decimal("43089.54"),
            goals=(("goal_action_id_1", 1000),),
        ),
        Order(
            "101",
            "42",
            datetime(2019, 10, 11, 6, 10, tzinfo=UTC),
            "paid",
            revenue=Decimal("109999"),
            goals=("goal_action_id_2",),
        ),
    ]


def test_orders_csv_tv5_columns_and_mapping():
    data, mapping = build_orders_csv(tv5_orders(), "Europe/Moscow")
    columns = [
        "id",
        "client_uniq_id",
        "client_type",
        "create_date_time",
        "order_status",
        "revenue",
        "goals",
    ]
    assert mapping == ",".join('"%s":"%s"' % (c, c) for c in columns)
    assert lines(data) == [
        ",".join(columns),
        "100,11,CONTACT,2020-06-11 12:30:00,paid,43089.54,goal_action_id_1:1000",
        "101,42,CONTACT,2019-10-11 09:10:00,paid,109999,goal_action_id_2",
    ]


def test_orders_csv_all_columns_products_and_goals():
    full = Order(
        "o1",
        "c1",
        datetime(2022, 9, 21, 6, 48, 23, tzinfo=UTC),
        IN_PROGRESS,
        update_date_time=datetime(2022, 10, 15, 7, 48, 34, tzinfo=UTC),
        finish_date_time=datetime(2022, 10, 16, 7, 0, 0, tzinfo=UTC),
        revenue=5000,
        cost=Decimal("4000.00"),
        currency="RUB",
        goals=(("goal_id1", Decimal("123.5")), ("goal_id2", None)),
        products=(("Laptop TGDD12", 1), ("Laptop TGD123", 2), ("Laptop TGDD12", 1)),
    )
    minimal = Order("o2", "c2", datetime(2022, 9, 21, 6, 48, 23, tzinfo=UTC), SPAM)
    data, mapping = build_orders_csv([full, minimal], "Europe/Moscow")
    header, rows = parse(data)
    assert header == [
        "id",
        "client_uniq_id",
        "client_type",
        "create_date_time",
        "order_status",
        "update_date_time",
        "finish_date_time",
        "revenue",
        "cost",
        "currency",
        "goals",
        "products",
    ]
    assert mapping == ",".join('"%s":"%s"' % (c, c) for c in header)
    assert rows[0] == {
        "id": "o1",
        "client_uniq_id": "c1",
        "client_type": "CONTACT",
        "create_date_time": "2022-09-21 09:48:23",
        "order_status": "IN_PROGRESS",
        "update_date_time": "2022-10-15 10:48:34",
        "finish_date_time": "2022-10-16 10:00:00",
        "revenue": "5000",
        "cost": "4000.00",
        "currency": "RUB",
        "goals": "goal_id1:123.5,goal_id2",
        "products": "Laptop TGDD12:2,Laptop TGD123:2",
    }
    assert rows[1]["order_status"] == "SPAM" and rows[1]["products"] == ""
    assert '"Laptop TGDD12:2,Laptop TGD123:2"' in lines(data)[1]


def test_orders_csv_semicolon_delimiter():
    data, _ = build_orders_csv(tv5_orders()[:1], "Europe/Moscow", delimiter=";")
    assert (
        lines(data)[1] == "100;11;CONTACT;2020-06-11 12:30:00;paid;43089.54;goal_action_id_1:1000"
    )


def test_orders_required_fields_and_latest_wins():
    with pytest.raises(UploadDataError, match="o9"):
        build_orders_csv([Order("o9", "", T0, PAID)], "UTC")
    with pytest.raises(UploadDataError, match="o9"):
        build_orders_csv([Order("o9", "c", T0, "")], "UTC")
    with pytest.raises(UploadDataError, match="o9"):
        build_orders_csv([Order("o9", "c", T0, PAID, products=(("a:b", 1),))], "UTC")
    data, _ = build_orders_csv(
        [Order("o1", "c1", T0, IN_PROGRESS), Order("o1", "c1", T0, PAID)], "UTC"
    )
    assert lines(data)[1:] == ["o1,c1,CONTACT,2024-01-10 08:56:00,PAID"]


# --------------------------------------------------------------------------- JSON


def test_contacts_json_tv6():
    contact = Contact(
        "J3QQ4-H7H2V-2HCH4-M3HK8-6M8VW",
        name="John Smith",
        create_date_time=datetime(2020, 4, 17, 13, 12, 21, tzinfo=UTC),
        update_date_time=datetime(2020, 4, 17, 13, 12, 21, tzinfo=UTC),
        client_ids=("12345678910", "10987654321"),
        emails=("exampl1@example.com", "example2@example.com"),
        phones=("78005553535", "73449932378"),
    )
    data = build_contacts_json([contact], "Europe/Moscow")
    assert not data.startswith(b"\xef\xbb\xbf")
    assert json.loads(data) == {
        "contacts": [
            {
                "uniq_id": "J3QQ4-H7H2V-2HCH4-M3HK8-6M8VW",
                "name": "John Smith",
                "create_date_time": "2020-04-17 16:12:21",
                "update_date_time": "2020-04-17 16:12:21",
                "client_ids": ["12345678910", "10987654321"],
                "emails": ["exampl1@example.com", "example2@example.com"],
                "phones": ["78005553535", "73449932378"],
            }
        ]
    }
    # ClientIDs stay strings even when they exceed int64.
    big = build_contacts_json([Contact("x", client_ids=("18446744073709551617",))], "UTC")
    assert b'"client_ids":["18446744073709551617"]' in big


def test_contacts_json_omits_empty_fields_hashes_and_dedupes():
    data = build_contacts_json(
        [
            Contact("a", name="Old"),
            Contact("b", name="Борис"),
            Contact("a", emails=("mail@yandex.ru",), phones=("79995551111",)),
        ],
        "Europe/Moscow",
        hashed=True,
    )
    assert json.loads(data) == {
        "contacts": [
            {"uniq_id": "a", "emails_md5": [MD5_MAIL], "phones_md5": [MD5_PHONE]},
            {"uniq_id": "b", "name": "Борис"},
        ]
    }
    assert "Борис".encode() in data  # UTF-8, not \u escapes


def test_orders_json_tv7():
    tv7 = Order(
        "704",
        "J3QQ4-H7H2V-2HCH4-M3HK8-6M8VW",
        create_date_time=datetime(2022, 9, 21, 6, 48, 23, tzinfo=UTC),
        order_status=IN_PROGRESS,
        update_date_time=datetime(2022, 10, 15, 7, 48, 34, tzinfo=UTC),
        cost=Decimal("4000"),
        revenue=Decimal("5000.00"),
        goals=(("goal_id1", Decimal("123.5")),),
        products={"pear": 10, "apple": 30},
    )
    data = build_orders_json([tv7], "Europe/Moscow")
    assert json.loads(data) == {
        "orders": [
            {
                "id": "704",
                "client_uniq_id": "J3QQ4-H7H2V-2HCH4-M3HK8-6M8VW",
                "client_type": "CONTACT",
                "order_status": "IN_PROGRESS",
                "create_date_time": "2022-09-21 09:48:23",
                "update_date_time": "2022-10-15 10:48:34",
                "cost": 4000,
                "revenue": 5000,
                "goals": [{"goal_action_id": "goal_id1", "price": 123.5}],
                "products": {"pear": 10, "apple": 30},
            }
        ]
    }
    assert b'"cost":4000' in data and b'"revenue":5000' in data and b'"price":123.5' in data


def test_orders_json_numbers_exact_or_refused():
    ok = Order("o1", "c1", T0, PAID, revenue=Decimal("43089.54"), cost=0.1, goals=("g_no_price",))
    payload = json.loads(build_orders_json([ok], "UTC"), parse_float=Decimal)["orders"][0]
    assert payload["revenue"] == Decimal("43089.54") and payload["cost"] == Decimal("0.1")
    assert payload["goals"] == [{"goal_action_id": "g_no_price"}]
    assert "currency" not in payload and "products" not in payload
    too_precise = Order("o2", "c1", T0, PAID, revenue=Decimal("12345678901234567.89"))
    with pytest.raises(UploadDataError, match="o2"):
        build_orders_json([too_precise], "UTC")


def test_orders_json_dedupes_latest_wins():
    data = build_orders_json(
        [
            Order("o1", "c1", T0, IN_PROGRESS),
            Order("o2", "c1", T0, PAID),
            Order("o1", "c1", T0, CANCELLED),
        ],
        "UTC",
    )
    assert [(o["id"], o["order_status"]) for o in json.loads(data)["orders"]] == [
        ("o1", CANCELLED),
        ("o2", PAID),
    ]


def test_status_mapping_tv8():
    tv8 = {
        "order_statuses": [
            {"id": "new", "humanized": "New", "type": "IN_PROGRESS"},
            {
                "id": "delivery",
                "humanized": "Out for delivery",
                "type": "IN_PROGRESS",
                "goal_action_ids": ["dostavka"],
            },
            {
                "id": "cancelled_by_shop",
                "humanized": "Canceled by shop",
                "type": "CANCELLED",
                "goal_action_ids": ["otmena"],
            },
            {
                "id": "test_order",
                "humanized": "Test order",
                "type": "SPAM",
                "goal_action_ids": ["proverka"],
            },
            {"id": "success", "humanized": "Completed successfully", "type": "PAID"},
        ]
    }
    from_dicts = build_status_mapping_json(tv8["order_statuses"])
    assert json.loads(from_dicts) == tv8
    from_objects = build_status_mapping_json(
        [
            OrderStatusMapping("new", IN_PROGRESS, "New"),
            OrderStatusMapping("delivery", IN_PROGRESS, "Out for delivery", ("dostavka",)),
            OrderStatusMapping("cancelled_by_shop", CANCELLED, "Canceled by shop", ["otmena"]),
            OrderStatusMapping("test_order", SPAM, "Test order", "proverka"),
            OrderStatusMapping("success", PAID, "Completed successfully"),
        ]
    )
    assert from_objects == from_dicts
    assert json.loads(build_status_mapping_json([{"id": "a-b:c_1", "type": "OTHER"}])) == {
        "order_statuses": [{"id": "a-b:c_1", "type": "OTHER"}],
    }


@pytest.mark.parametrize(
    "status",
    [
        {"id": "", "type": "PAID"},
        {"id": "with space", "type": "PAID"},
        {"id": "новый", "type": "PAID"},
        {"id": "x" * 256, "type": "PAID"},
        {"id": "ok", "type": "DONE"},
        {"id": "ok", "type": "paid"},
        {"id": "ok", "type": "PAID", "goal_action_ids": ["g%d" % i for i in range(11)]},
        {"id": "ok", "type": "PAID", "goal_action_ids": ["bad goal"]},
        {"id": "ok", "type": "PAID", "humanized": "x" * 4097},
        {"id": "ok", "type": "PAID", "colour": "red"},
        {"type": "PAID"},
    ],
)
def test_status_mapping_invalid_refused(status):
    with pytest.raises(UploadDataError):
        build_status_mapping_json([status])


def test_status_mapping_limits_accepted_and_duplicate_refused():
    data = build_status_mapping_json(
        [
            {
                "id": "x" * 255,
                "type": "PAID",
                "goal_action_ids": ["g%d" % i for i in range(10)],
                "humanized": "h" * 4096,
            },
        ]
    )
    assert len(json.loads(data)["order_statuses"][0]["goal_action_ids"]) == 10
    with pytest.raises(UploadDataError, match="twice"):
        build_status_mapping_json([{"id": "a", "type": "PAID"}, {"id": "a", "type": "SPAM"}])


def test_errors_are_value_errors():
    assert issubclass(UploadDataError, ValueError)


# --------------------------------------------------------------------------- built once, per row


def assert_every_index_accounted_for(built, count):
    """Each input index is in exactly one of row_indexes, rejected and superseded."""
    parts = [set(built.row_indexes), set(built.rejected), set(built.superseded)]
    assert sum(len(part) for part in parts) == count
    assert set().union(*parts) == set(range(count))


def test_simple_orders_file_of_valid_rows_is_the_csv_builders_file():
    orders = [order("A"), order("B", emails=("mail@yandex.ru",)), order("C", revenue=Decimal(5))]
    built = build_simple_orders_file(orders, "Europe/Moscow", hashed=True)
    assert built.data == build_simple_orders_csv(orders, "Europe/Moscow", hashed=True)
    assert (built.row_count, built.rejected, built.superseded) == (3, {}, {})
    assert built.row_indexes == (0, 1, 2)


def test_simple_orders_file_leaves_bad_rows_out_with_their_reason():
    orders = [
        order("A", revenue=Decimal(1)),  # 0: superseded by 4
        order("B", client_ids=(), emails=(), phones=()),  # 1: no identifier
        order("C"),  # 2
        order(None),  # 3: no id
        order("A", revenue=Decimal(2)),  # 4: wins at A's first position
        order("D", order_status="CANCELED"),  # 5: legacy spelling
        order("E", currency="rub"),  # 6: bad currency
        order("F", emails=("Mail@Yandex.ru",)),  # 7: not normalised
    ]
    built = build_simple_orders_file(orders, "Europe/Moscow")
    header, rows = parse(built.data)
    assert [row["id"] for row in rows] == ["A", "C"]
    assert rows[0]["revenue"] == "2"
    assert built.row_count == 2 and built.row_indexes == (4, 2)
    assert built.superseded == {0: 4}
    assert sorted(built.rejected) == [1, 3, 5, 6, 7]
    assert "no identifier" in built.rejected[1]
    assert "id must be a non-empty string" in built.rejected[3]
    assert "CANCELED" in built.rejected[5]
    assert all(isinstance(reason, str) and reason for reason in built.rejected.values())
    assert_every_index_accounted_for(built, len(orders))


def test_simple_orders_file_a_rejected_winner_takes_its_duplicates_with_it():
    orders = [order("A"), order("A", client_ids=()), order("B")]
    built = build_simple_orders_file(orders, "Europe/Moscow")
    assert built.superseded == {0: 1} and list(built.rejected) == [1]
    assert built.row_indexes == (2,)
    assert_every_index_accounted_for(built, 3)


def test_simple_orders_file_without_a_valid_row_has_no_data():
    built = build_simple_orders_file([order("A", client_ids=())], "Europe/Moscow")
    assert (built.data, built.row_count, list(built.rejected)) == (None, 0, [0])
    empty = build_simple_orders_file(iter([]), "Europe/Moscow")
    assert (empty.data, empty.row_count, empty.rejected, empty.row_indexes) == (None, 0, {}, ())


def test_simple_orders_file_settings_of_every_row_still_raise():
    with pytest.raises(UploadDataError):
        build_simple_orders_file([order("A")], "Mars/Olympus")
    with pytest.raises(UploadDataError):
        build_simple_orders_file([order("A")], "Europe/Moscow", delimiter="|")


def test_simple_orders_file_accepts_a_generator_and_the_old_builder_still_raises_the_first():
    orders = [order("A"), order("B", client_ids=()), order("C", client_ids=())]
    built = build_simple_orders_file((o for o in orders), "Europe/Moscow")
    assert built.row_indexes == (0,) and sorted(built.rejected) == [1, 2]
    with pytest.raises(UploadDataError, match="'B' has no identifier") as info:
        build_simple_orders_csv(orders, "Europe/Moscow")
    assert info.value.row_id == "B"


def test_offline_file_leaves_bad_rows_out_and_merges_duplicates():
    conversions = [
        conversion("111", when=NOW - timedelta(hours=1), price=Decimal(1)),  # 0: superseded
        conversion("12x"),  # 1: not digits
        conversion("222", target="bad goal"),  # 2: space in the Target
        conversion("111", when=NOW - timedelta(hours=1), price=Decimal(2)),  # 3: wins
        conversion("333", when=NOW + timedelta(days=1)),  # 4: future, clamped to now - 1 s
        conversion("444", when=datetime(1969, 12, 31, tzinfo=UTC)),  # 5: before 1970
        conversion("555", when=datetime(2024, 1, 1)),  # 6: naive
    ]
    built = build_offline_conversions_file(conversions, "ClientId", now=NOW)
    header, rows = parse(built.data)
    assert header == ["ClientId", "Target", "DateTime", "Price", "Currency"]
    assert [(row["ClientId"], row["Price"]) for row in rows] == [("111", "2"), ("333", "")]
    assert rows[1]["DateTime"] == str(int(NOW.timestamp()) - 1)
    assert built.row_indexes == (3, 4) and built.row_count == 2
    assert built.superseded == {0: 3}
    assert sorted(built.rejected) == [1, 2, 5, 6]
    assert "digits expected" in built.rejected[1] and "Target" in built.rejected[2]
    assert_every_index_accounted_for(built, len(conversions))


def test_offline_file_of_valid_rows_is_the_csv_builders_file_and_bad_column_raises():
    conversions = [conversion("1"), conversion("2", target="GOAL2")]
    built = build_offline_conversions_file(conversions, "ClientId", now=NOW)
    assert built.data == build_offline_conversions_csv(conversions, "ClientId", now=NOW)
    assert built.rejected == {} and built.row_count == 2
    none_valid = build_offline_conversions_file([conversion("x")], "Yclid", now=NOW)
    assert none_valid.data is None and none_valid.row_count == 0
    assert build_offline_conversions_file([], "UserId", now=NOW).data is None
    with pytest.raises(UploadDataError, match="identifier column"):
        build_offline_conversions_file(conversions, "Email", now=NOW)
    with pytest.raises(UploadDataError, match="no offline conversions"):
        build_offline_conversions_csv([], "ClientId", now=NOW)


def test_data_errors_are_metrika_data_errors_and_value_errors():
    assert issubclass(UploadDataError, MetrikaDataError) and issubclass(UploadDataError, ValueError)


# ------------------------------------------------------------- detailed files, row by row


def test_contacts_file_leaves_out_a_bad_contact_with_its_reason():
    built, mapping = build_contacts_file(
        [
            Contact("c1", client_ids=("123", "456"), emails=("a@example.ru",)),
            Contact("c2", phones=("+79995551111",)),
            Contact("c3", phones=("79995551111",)),
            Contact("c1", client_ids=("789",)),
        ],
        "Europe/Moscow",
        hashed=True,
    )
    assert set(built.rejected) == {1} and "c2" in built.rejected[1]
    assert built.superseded == {0: 3}
    assert built.row_indexes == (3, 2), "first-seen position, latest value"
    header, rows = parse(built.data)
    assert mapping == ",".join('"%s":"%s"' % (column, column) for column in header)
    assert rows == [
        {"uniq_id": "c1", "client_ids": "789", "phones_md5": ""},
        {"uniq_id": "c3", "client_ids": "", "phones_md5": "f09f2c3d48f31e2a802944ade2e5aec5"},
    ]


def test_orders_file_rejects_row_by_row_and_none_when_all_fail():
    good = Order("o1", "c1", T0, "odoo_paid", revenue=Decimal("10.50"), products=(("Sofa", 2),))
    bad = Order("o2", "", T0, "PAID")
    built, mapping = build_orders_file([good, bad], "Europe/Moscow")
    assert list(built.rejected) == [1] and "client_uniq_id" in built.rejected[1]
    header, rows = parse(built.data)
    assert rows == [
        {
            "id": "o1",
            "client_uniq_id": "c1",
            "client_type": "CONTACT",
            "create_date_time": "2024-01-10 11:56:00",
            "order_status": "odoo_paid",
            "revenue": "10.50",
            "products": "Sofa:2",
        }
    ]
    assert '"client_type":"client_type"' in mapping
    nothing, no_mapping = build_orders_file([bad], "Europe/Moscow")
    assert nothing.data is None and no_mapping is None and nothing.row_count == 0
