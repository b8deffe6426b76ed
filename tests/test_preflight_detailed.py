"""The preflight check of the detailed CRM files (contacts, orders) and of the Conversion
Centre's file: every rule of their checkers, and the builders' refusals refused first."""

from datetime import timedelta
from decimal import Decimal

import pytest
from test_preflight import CLIENT_ID, NOW, order, verdict

from metrika_core import preflight
from metrika_core.formats import Contact, Order, build_contacts_file, build_orders_file

CONTACTS = preflight.FORMAT_CDP_CONTACTS
ORDERS = preflight.FORMAT_CDP_ORDERS
CENTRE = preflight.FORMAT_CENTRE_LINK


def contact(**values):
    base = {
        "uniq_id": "partner-7",
        "name": "Anna",
        "client_ids": (CLIENT_ID,),
        "emails": ("anna@romashka.ru",),
        "phones": ("79160001122",),
    }
    base.update(values)
    return Contact(**base)


def detailed_order(**values):
    base = {
        "id": "so-1",
        "client_uniq_id": "partner-7",
        "create_date_time": NOW - timedelta(days=1),
        "order_status": "stage_4",
        "revenue": Decimal("1000.00"),
        "cost": Decimal("600"),
        "currency": "RUB",
        "products": (("Sofa", Decimal("1")),),
    }
    base.update(values)
    return Order(**base)


CONTACT_CASES = [
    ("uniq_id", "lead-3", " ", preflight.RULE_IDENTIFIER_FORMAT),
    ("uniq_id", "lead-3", "lead\n3", preflight.RULE_ENCODING),
    ("name", "Анна", "Anna\x00", preflight.RULE_ENCODING),
    ("client_ids", (CLIENT_ID,), ("12ab",), preflight.RULE_IDENTIFIER_FORMAT),
    ("emails", ("a@b.ru",), ("A@B.ru",), preflight.RULE_IDENTIFIER_FORMAT),
    ("phones", ("79160001122",), ("+7 916",), preflight.RULE_IDENTIFIER_FORMAT),
    ("create_date_time", NOW - timedelta(days=400), NOW + timedelta(days=1), None),
]


@pytest.mark.parametrize(("field", "good", "bad", "rule"), CONTACT_CASES)
def test_contact_rule(field, good, bad, rule):
    assert verdict(CONTACTS, contact(**{field: good})) is None
    assert verdict(CONTACTS, contact(**{field: bad})) == (rule or preflight.RULE_DATE_IN_FUTURE)


def test_a_contact_needs_an_identifier_and_any_one_will_do():
    bare = {"client_ids": (), "emails": (), "phones": ()}
    assert verdict(CONTACTS, contact(**bare)) == preflight.RULE_NO_IDENTIFIER
    for kind, value in (("client_ids", CLIENT_ID), ("emails", "a@b.ru"), ("phones", "79160001122")):
        assert verdict(CONTACTS, contact(**{**bare, kind: (value,)})) is None


ORDER_CASES = [
    ("id", "lead-9", "", preflight.RULE_IDENTIFIER_FORMAT),
    ("client_uniq_id", "lead-9", " ", preflight.RULE_NO_IDENTIFIER),
    ("create_date_time", NOW - timedelta(days=110), None, preflight.RULE_DATE_MISSING),
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
    ("update_date_time", NOW, NOW + timedelta(hours=1), preflight.RULE_DATE_IN_FUTURE),
    ("order_status", "PAID", "stage 4", preflight.RULE_STATUS),
    ("order_status", "lead_lost", "этап", preflight.RULE_STATUS),
    ("revenue", Decimal("0"), Decimal("-1"), preflight.RULE_VALUE_RANGE),
    ("cost", Decimal("1.5"), Decimal("NaN"), preflight.RULE_VALUE_RANGE),
    ("currency", "USD", "rub", preflight.RULE_CURRENCY),
    ("goals", (("paid", Decimal("5")),), (("a b", None),), preflight.RULE_GOAL),
    ("products", (("Sofa", Decimal("2")),), (("Sofa:big", Decimal("1")),), preflight.RULE_ENCODING),
    ("products", (("Sofa", Decimal("2")),), (("Sofa", Decimal("-1")),), preflight.RULE_VALUE_RANGE),
]


@pytest.mark.parametrize(("field", "good", "bad", "rule"), ORDER_CASES)
def test_detailed_order_rule(field, good, bad, rule):
    assert verdict(ORDERS, detailed_order(**{field: good})) is None
    assert verdict(ORDERS, detailed_order(**{field: bad})) == rule


def test_the_centre_file_has_the_centre_window():
    """113 days for the Centre, where the simplified API's window is 111."""
    day_112 = order(create_date_time=NOW - timedelta(days=112))
    assert verdict(preflight.FORMAT_SIMPLE_ORDERS, day_112) == preflight.RULE_DATE_TOO_OLD
    assert verdict(CENTRE, day_112) is None
    day_114 = order(create_date_time=NOW - timedelta(days=114))
    assert verdict(CENTRE, day_114) == preflight.RULE_DATE_TOO_OLD
    assert verdict(CENTRE, order(client_ids=())) == preflight.RULE_NO_IDENTIFIER


def test_row_checker_checks_one_row_and_sizes_it():
    check_row = preflight.row_checker(CENTRE)
    assert check_row(order(), NOW) > len("S00001")
    with pytest.raises(preflight.RowRefused) as refusal:
        check_row(order(revenue=Decimal("-3")), NOW)
    assert refusal.value.rule == preflight.RULE_VALUE_RANGE and "-3" in refusal.value.message
    with pytest.raises(ValueError, match="no preflight rules"):
        preflight.row_checker("carrier_pigeon")


def test_every_detailed_row_the_builders_reject_is_refused_first():
    """The builders' own checks stay a safety net: the preflight already refuses those rows."""
    bad_contacts = [
        contact(uniq_id="1", emails=("NOT-AN-EMAIL",)),
        contact(uniq_id="2", phones=("12ab",)),
        contact(uniq_id="3", client_ids=("x",)),
    ]
    built, _mapping = build_contacts_file(bad_contacts, "UTC")
    assert len(built.rejected) == len(bad_contacts)
    passed, refused = preflight.check(CONTACTS, list(enumerate(bad_contacts)), NOW)
    assert not passed and len(refused) == len(bad_contacts)
    bad_orders = [
        detailed_order(id="1", client_uniq_id=" "),
        detailed_order(id="2", order_status="a b"),
        detailed_order(id="3", revenue=Decimal("-1")),
        detailed_order(id="4", currency="rub"),
        detailed_order(id="5", products=(("a,b", 1),)),
    ]
    built, _mapping = build_orders_file(bad_orders, "UTC")
    assert len(built.rejected) == len(bad_orders)
    passed, refused = preflight.check(ORDERS, list(enumerate(bad_orders)), NOW)
    assert not passed and len(refused) == len(bad_orders)
    # What passes, the builders write whole.
    good = [detailed_order(id=str(index)) for index in range(3)]
    passed, refused = preflight.check(ORDERS, list(enumerate(good)), NOW)
    assert len(passed) == 3 and not refused
    built, _mapping = build_orders_file([row for _key, row in passed], "UTC")
    assert built.row_count == 3 and not built.rejected
