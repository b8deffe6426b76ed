"""The preflight check: every row of a file, before it leaves, against the rules Yandex publishes.

``check(file_format, rows, now)`` takes ``(row_key, row)`` pairs (the row being the format's
dataclass: :class:`~.formats.SimpleOrder`, :class:`~.formats.OfflineConversion`, the detailed
:class:`~.formats.Contact` and :class:`~.formats.Order`) and returns
``(passed, refused)``: the pairs that may go, in input order, and ``(row_key, rule, message)``
for each row Metrica would refuse, ``rule`` being one of the ``RULE_*`` codes (the caller turns
it into its own reason; ``message`` is English detail, naming the offending value). A row that
would be refused is kept back on its own instead of failing the whole file at Metrica.

A new format registers its row checker in ``CHECKERS``; the rules below are shared.

Yandex's rules (see shared docs, metrika-api.md §1.3, §2.1, §2.6, §2.8, §4):

* dates: aware, not before 1970-01-01 (CDP, data-import/date), not in the future (offline
  ``DateTime`` "must be in the past"; a CRM order cannot be created later than it is sent), and
  not older than the format's window (``MAX_AGE_DAYS``: Metrica no longer links or updates
  such a row);
* identifiers: at least one; ClientID and yclid digits (at most 20 and 25), phones digits with
  country code, e-mails normalised (lower case, ``name@domain``);
* statuses: ``IN_PROGRESS``, ``PAID``, ``CANCELLED``, ``SPAM`` or a JS-goal identifier (no
  spaces or ``/ \\ & # ? = "``); goals the same;
* values: revenue, cost and prices finite and not negative; currency an ISO 4217 code;
* encoding: every text cell encodable as UTF-8, without control characters (a line break
  inside a cell would split the row for a lenient reader);
* file size: at most 1 GB per file; the rows past it are kept back (they go in a later file).
"""

import re
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation

from .formats._values import (
    _EMAIL_RE,
    ORDER_STATUSES,
    is_currency_code,
    is_valid_goal_identifier,
)
from .formats.cdp_detailed import _STATUS_ID_RE
from .identifiers import CLIENT_ID_MAX_DIGITS, YCLID_MAX_DIGITS

FORMAT_SIMPLE_ORDERS = "simple_orders"
FORMAT_OFFLINE_CONVERSIONS = "offline_conversions"
# The detailed CRM method's two files, and the Conversion Centre's file (simplified CRM rows).
FORMAT_CDP_CONTACTS = "cdp_contacts"
FORMAT_CDP_ORDERS = "cdp_orders"
FORMAT_CENTRE_LINK = "centre_link"

RULE_DATE_MISSING = "date_missing"
RULE_DATE_BEFORE_1970 = "date_before_1970"
RULE_DATE_IN_FUTURE = "date_in_future"
RULE_DATE_TOO_OLD = "date_too_old"
RULE_NO_IDENTIFIER = "no_identifier"
RULE_IDENTIFIER_FORMAT = "identifier_format"
RULE_STATUS = "status"
RULE_GOAL = "goal"
RULE_VALUE_RANGE = "value_range"
RULE_CURRENCY = "currency"
RULE_ENCODING = "encoding"
RULE_FILE_SIZE = "file_size"
RULES = (
    RULE_DATE_MISSING,
    RULE_DATE_BEFORE_1970,
    RULE_DATE_IN_FUTURE,
    RULE_DATE_TOO_OLD,
    RULE_NO_IDENTIFIER,
    RULE_IDENTIFIER_FORMAT,
    RULE_STATUS,
    RULE_GOAL,
    RULE_VALUE_RANGE,
    RULE_CURRENCY,
    RULE_ENCODING,
    RULE_FILE_SIZE,
)

# "File size: up to 1 GB" (offline conversions and CDP upload pages).
MAX_FILE_BYTES = 1024**3
# How old a row's date may be: a CRM order is updated for 111 days after its visit, which
# precedes its creation; a goal hit is linked to a visit at most 21 days old.
MAX_AGE_DAYS = {
    FORMAT_SIMPLE_ORDERS: 111,
    FORMAT_OFFLINE_CONVERSIONS: 21,
    FORMAT_CDP_ORDERS: 111,
    # The Conversion Centre takes rows of the last 113 days (Direct's help).
    FORMAT_CENTRE_LINK: 113,
}
# Dates a little ahead of ``now`` are clock skew between Odoo's workers and the database
# (offline DateTimes are capped at now - 1 s by the builder); further ahead, a row is refused.
FUTURE_TOLERANCE = timedelta(minutes=10)
_EPOCH_YEAR = 1970
_DIGIT_IDENTIFIERS = {"ClientId": CLIENT_ID_MAX_DIGITS, "Yclid": YCLID_MAX_DIGITS}
# A cell's share of the file: its bytes, a separator; a row's line end and header share.
_ROW_OVERHEAD_BYTES = 16
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


class RowRefused(Exception):
    """One rule a row breaks: ``rule`` (a ``RULE_*`` code) and an English ``message``."""

    def __init__(self, rule, message):
        super().__init__(message)
        self.rule = rule
        self.message = message


def check(file_format, rows, now, *, max_file_bytes=MAX_FILE_BYTES):
    """``(passed, refused)`` of ``rows`` (``(row_key, row)`` pairs) for ``file_format``.

    ``now``: an aware datetime, the moment the file leaves. ``refused``: ``(row_key, rule,
    message)`` each, in input order. The rows past ``max_file_bytes`` (estimated from their
    cells) are refused with :data:`RULE_FILE_SIZE`.
    """
    if file_format not in CHECKERS:
        raise ValueError("no preflight rules for file format %r" % (file_format,))
    if not isinstance(now, datetime) or now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime, got %r" % (now,))
    checker = row_checker(file_format)
    passed, refused = [], []
    size = 0
    for row_key, row in rows:
        try:
            row_bytes = checker(row, now)
            if size + row_bytes > max_file_bytes:
                raise RowRefused(
                    RULE_FILE_SIZE,
                    "the file would exceed %s bytes, the most Metrica takes" % max_file_bytes,
                )
        except RowRefused as refusal:
            refused.append((row_key, refusal.rule, refusal.message))
            continue
        size += row_bytes
        passed.append((row_key, row))
    return passed, refused


def row_checker(file_format):
    """``check(row, now) -> row bytes`` of one row of ``file_format``, raising
    :class:`RowRefused`: for a file written row by row (the Centre's stream), where
    :func:`check` would hold every row."""
    if file_format not in CHECKERS:
        raise ValueError("no preflight rules for file format %r" % (file_format,))
    checker = CHECKERS[file_format]
    # "offline_conversions:ClientId" has the window of "offline_conversions".
    max_age = MAX_AGE_DAYS.get(file_format.split(":", 1)[0])

    def check_row(row, now):
        line = ",".join(checker(row, now, max_age))
        return _ROW_OVERHEAD_BYTES + (len(line) if line.isascii() else len(line.encode("utf-8")))

    return check_row


# -- the rules ----------------------------------------------------------------------------------


def _check_date(value, what, now, max_age, future_tolerance=timedelta(0)):
    if value is None:
        raise RowRefused(RULE_DATE_MISSING, "%s is missing" % what)
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise RowRefused(RULE_DATE_MISSING, "%s is not a timezone-aware date-time" % what)
    if value.year < _EPOCH_YEAR or (value - value.utcoffset()).year < _EPOCH_YEAR:
        raise RowRefused(RULE_DATE_BEFORE_1970, "%s %s is before 1970-01-01" % (what, value))
    if now is None:
        return
    if value > now + future_tolerance:
        raise RowRefused(RULE_DATE_IN_FUTURE, "%s %s is in the future" % (what, value))
    if max_age is not None and value < now - timedelta(days=max_age):
        raise RowRefused(
            RULE_DATE_TOO_OLD, "%s %s is more than %s days old" % (what, value, max_age)
        )


def _check_text(value, what):
    """The cell of an optional text value; refused when it cannot travel in a UTF-8 CSV."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise RowRefused(RULE_ENCODING, "%s is not text: %r" % (what, value))
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise RowRefused(RULE_ENCODING, "%s cannot be encoded as UTF-8" % what) from None
    if _CONTROL_RE.search(value):
        raise RowRefused(RULE_ENCODING, "%s holds a control character: %r" % (what, value))
    return value


def _check_amount(value, what):
    if value is None:
        return ""
    if isinstance(value, bool):
        raise RowRefused(RULE_VALUE_RANGE, "%s is not a number: %r" % (what, value))
    try:
        amount = value if isinstance(value, Decimal) else Decimal(str(value))
    except (InvalidOperation, ValueError, TypeError):
        raise RowRefused(RULE_VALUE_RANGE, "%s is not a number: %r" % (what, value)) from None
    if not amount.is_finite() or amount < 0:
        raise RowRefused(
            RULE_VALUE_RANGE, "%s must be a number of 0 or more, got %s" % (what, value)
        )
    return format(amount, "f")


def _check_currency(value):
    if value is None or value == "":
        return ""
    if not is_currency_code(value):
        raise RowRefused(RULE_CURRENCY, "currency %r is not an ISO 4217 code" % (value,))
    return value


def _check_goal(value, what):
    # ',' and ':' separate the items and prices of a goals cell.
    if not is_valid_goal_identifier(value) or "," in value or ":" in value:
        raise RowRefused(
            RULE_GOAL,
            '%s %r is not a goal identifier (no spaces or / \\ & # ? = " , :)' % (what, value),
        )
    return value


def _check_digits(value, what, max_digits):
    if not (
        isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= max_digits
    ):
        raise RowRefused(
            RULE_IDENTIFIER_FORMAT,
            "%s %r is not a number of at most %s digits" % (what, value, max_digits),
        )
    return value


def _identifier_list(values, what, valid):
    for value in values:
        if not (isinstance(value, str) and valid(value)):
            raise RowRefused(RULE_IDENTIFIER_FORMAT, "%s %r is not normalised" % (what, value))
    return ",".join(values)


def _is_phone(value):
    # E.164: a country code and the number, at most 15 digits.
    return value.isascii() and value.isdigit() and 7 <= len(value) <= 15


def _is_email(value):
    return _EMAIL_RE.fullmatch(value) is not None


def _is_client_id(value):
    return value.isascii() and value.isdigit() and len(value) <= CLIENT_ID_MAX_DIGITS


def _simple_order_cells(order, now, max_age):
    """The cells of a ``simple_orders`` row; raises :class:`RowRefused`."""
    key = _check_text(order.id, "id")
    if not key.strip():
        raise RowRefused(RULE_IDENTIFIER_FORMAT, "the order id is empty")
    _check_date(order.create_date_time, "create_date_time", now, max_age, FUTURE_TOLERANCE)
    client_ids = _identifier_list(order.client_ids, "ClientID", _is_client_id)
    emails = _identifier_list(order.emails, "e-mail", _is_email)
    phones = _identifier_list(order.phones, "phone", _is_phone)
    if not (client_ids or emails or phones):
        raise RowRefused(RULE_NO_IDENTIFIER, "no ClientID, e-mail or phone")
    status = order.order_status
    if status not in ORDER_STATUSES:
        if isinstance(status, str) and status.upper() in ("CANCELED",) + ORDER_STATUSES:
            raise RowRefused(RULE_STATUS, "order_status %r is a misspelt status" % (status,))
        _check_goal(status, "order_status")
    goals = [
        _check_goal(goal if isinstance(goal, str) else goal[0], "goal") for goal in order.goals
    ]
    prices = [
        _check_amount(goal[1], "goal price") for goal in order.goals if not isinstance(goal, str)
    ]
    return (
        key,
        "0000-00-00 00:00:00",  # the date's cell, for the file's size
        _check_text(order.client_uniq_id, "client_uniq_id"),
        client_ids,
        emails,
        phones,
        status,
        _check_amount(order.revenue, "revenue"),
        _check_amount(order.cost, "cost"),
        _check_currency(order.currency),
        *goals,
        *prices,
    )


def _offline_cells(identifier_column):
    """The checker of the offline conversions rows of one identifier column."""

    def cells(conversion, now, max_age):
        identifier = conversion.identifier
        if identifier is None or identifier == "":
            raise RowRefused(RULE_NO_IDENTIFIER, "no %s" % identifier_column)
        if identifier_column in _DIGIT_IDENTIFIERS:
            _check_digits(identifier, identifier_column, _DIGIT_IDENTIFIERS[identifier_column])
        else:
            _check_text(identifier, identifier_column)
        _check_date(conversion.date_time, "DateTime", now, max_age, FUTURE_TOLERANCE)
        return (
            identifier,
            _check_goal(conversion.target, "Target"),
            "0000000000",  # the DateTime's cell, for the file's size
            _check_amount(conversion.price, "Price"),
            _check_currency(conversion.currency),
        )

    return cells


def offline_format(identifier_column):
    """The format name of a goal-based file: one identifier column per file, named after it."""
    return "%s:%s" % (FORMAT_OFFLINE_CONVERSIONS, identifier_column)


def _contact_cells(contact, now, max_age):
    """The cells of a detailed ``cdp_contacts`` row; raises :class:`RowRefused`."""
    key = _check_text(contact.uniq_id, "uniq_id")
    if not key.strip():
        raise RowRefused(RULE_IDENTIFIER_FORMAT, "the contact's uniq_id is empty")
    for what in ("create_date_time", "update_date_time"):
        value = getattr(contact, what)
        if value is not None:
            _check_date(value, what, now, max_age, FUTURE_TOLERANCE)
    client_ids = _identifier_list(contact.client_ids, "ClientID", _is_client_id)
    emails = _identifier_list(contact.emails, "e-mail", _is_email)
    phones = _identifier_list(contact.phones, "phone", _is_phone)
    if not (client_ids or emails or phones):
        raise RowRefused(RULE_NO_IDENTIFIER, "no ClientID, e-mail or phone")
    return (
        key,
        _check_text(contact.name, "name"),
        "0000-00-00 00:00:00",  # a date's cell, for the file's size
        client_ids,
        emails,
        phones,
    )


def _detailed_order_cells(order, now, max_age):
    """The cells of a detailed ``cdp_orders`` row; raises :class:`RowRefused`. Its status is
    one of Metrica's four, or an id of the pushed status mapping (``[\\w:-]``, ASCII)."""
    key = _check_text(order.id, "id")
    if not key.strip():
        raise RowRefused(RULE_IDENTIFIER_FORMAT, "the order id is empty")
    # The order's identifiers are its contact's: the order only points at it.
    contact = _check_text(order.client_uniq_id, "client_uniq_id")
    if not contact.strip():
        raise RowRefused(RULE_NO_IDENTIFIER, "the order has no client_uniq_id")
    _check_date(order.create_date_time, "create_date_time", now, max_age, FUTURE_TOLERANCE)
    for what in ("update_date_time", "finish_date_time"):
        value = getattr(order, what)
        if value is not None:
            _check_date(value, what, now, None, FUTURE_TOLERANCE)
    status = order.order_status
    if status not in ORDER_STATUSES and not (
        isinstance(status, str) and _STATUS_ID_RE.fullmatch(status)
    ):
        raise RowRefused(RULE_STATUS, "order_status %r is not a status id" % (status,))
    goals = [
        _check_goal(goal if isinstance(goal, str) else goal[0], "goal") for goal in order.goals
    ]
    prices = [
        _check_amount(goal[1], "goal price") for goal in order.goals if not isinstance(goal, str)
    ]
    products = []
    for item in order.products:
        if not (isinstance(item, (tuple, list)) and len(item) == 2):
            raise RowRefused(
                RULE_ENCODING, "a product is not a (name, quantity) pair: %r" % (item,)
            )
        name = _check_text(item[0], "product name")
        quantity = item[1]
        if not name.strip() or "," in name or ":" in name:
            raise RowRefused(
                RULE_ENCODING, "product name %r is empty or holds ',' or ':'" % (name,)
            )
        products.append("%s:%s" % (name, _check_amount(quantity, "product quantity")))
    return (
        key,
        contact,
        "0000-00-00 00:00:00",  # the date's cell, for the file's size
        status,
        _check_amount(order.revenue, "revenue"),
        _check_amount(order.cost, "cost"),
        _check_currency(order.currency),
        *goals,
        *prices,
        *products,
    )


# File format -> row checker ``(row, now, max_age) -> cells``.
CHECKERS = {
    FORMAT_SIMPLE_ORDERS: _simple_order_cells,
    FORMAT_CDP_CONTACTS: _contact_cells,
    FORMAT_CDP_ORDERS: _detailed_order_cells,
    # The Centre's rows are simplified CRM orders, with the Centre's window.
    FORMAT_CENTRE_LINK: _simple_order_cells,
    **{
        offline_format(column): _offline_cells(column)
        for column in ("ClientId", "Yclid", "UserId", "PurchaseId")
    },
}
