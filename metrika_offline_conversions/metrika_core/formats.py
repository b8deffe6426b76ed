"""Builders for every file Yandex Metrica accepts from this addon.

* Offline conversions (Management API, ``offline_conversions/upload``):
  :func:`build_offline_conversions_csv`.
* CRM data ("CDP") API, simplified flow (``data/simple_orders``): :func:`build_simple_orders_csv`.
* CRM data API, detailed flow: :func:`build_contacts_csv` / :func:`build_contacts_json`,
  :func:`build_orders_csv` / :func:`build_orders_json`, and the status mapping body
  :func:`build_status_mapping_json` (``schema/order_statuses``).

The caller fills the dataclasses below with identifiers that are ALREADY normalised (see
``identifiers``): phones as digits with country code, e-mails lower case, ClientIDs as digit
strings. The builders only validate them cheaply (so that a stray comma, ``+`` or upper-case
letter cannot silently produce a wrong cell or hash), hash them when asked, and lay them out.

Conventions shared by every builder (decisions, since the docs leave them open):

* Output is UTF-8 without a BOM (a BOM would corrupt the first header name); the header row
  comes first; CSV lines end with ``"\\n"`` (Metrica does not specify; LF is the common choice
  and what its examples show).
* CSV cells are written by the :mod:`csv` module with ``QUOTE_MINIMAL``: a multi-value cell
  (``"79876543210,79991234567"``) is quoted because it contains the delimiter, a single value
  stays unquoted, exactly as in the documentation samples.
* Decimals are written with a dot, without exponent or thousands separator and without
  changing the value (``Decimal("1234.50")`` -> ``1234.50``, ``Decimal("1E+3")`` -> ``1000``).
  NaN, infinities, negative amounts and booleans are refused.
* Date-times must be timezone-aware. CDP files get the counter's local wall time
  ``yyyy-MM-dd HH:mm:ss`` (seconds truncated); naive values are refused because they are
  ambiguous. An aware instant maps to exactly one wall time, so DST changes are handled, but
  Metrica's format carries no UTC offset: in the repeated hour of an autumn DST change two
  different instants (e.g. 00:30 and 01:30 UTC on 2024-10-27 in Europe/Berlin) are written as
  the same wall time (02:30:00). That is a limitation of Metrica's format, not of this module.
  Dates before 1970-01-01 are refused (Metrica does not support them).
* Duplicates: one row per order ``id`` / contact ``uniq_id``. The LATEST occurrence in the input
  wins (Metrica applies duplicates inside one upload in random order); the row keeps the
  position where the id was first seen. Only the winning occurrence is validated, since the
  others are never sent.
* Empty input is refused: an upload without rows is never useful and may be rejected.
* Every problem raises :class:`UploadDataError` (a ``ValueError``) naming the offending row;
  nothing is returned in that case, so a partial file is never produced.
"""

import csv
import io
import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone, tzinfo
from decimal import Decimal, InvalidOperation
from itertools import islice
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import MetrikaDataError
from .identifiers import md5_hex

__all__ = [
    "IN_PROGRESS",
    "PAID",
    "CANCELLED",
    "SPAM",
    "OTHER",
    "ORDER_STATUSES",
    "STATUS_TYPES",
    "OFFLINE_IDENTIFIER_COLUMNS",
    "DELIMITER_TYPES",
    "CLIENT_TYPE_CONTACT",
    "SIMPLE_ORDERS_COLUMNS",
    "SIMPLE_ORDERS_COLUMNS_HASHED",
    "CONTACTS_COLUMNS",
    "ORDERS_COLUMNS",
    "UploadDataError",
    "SimpleOrder",
    "Contact",
    "Order",
    "OfflineConversion",
    "OrderStatusMapping",
    "build_simple_orders_csv",
    "build_contacts_csv",
    "build_contacts_json",
    "build_orders_csv",
    "build_orders_json",
    "build_status_mapping_json",
    "build_offline_conversions_csv",
    "build_simple_orders_file",
    "build_offline_conversions_file",
    "BuiltFile",
    "group_offline_conversions",
    "columns_mapping",
    "format_local_datetime",
    "format_decimal",
    "is_valid_goal_identifier",
]

IN_PROGRESS = "IN_PROGRESS"
PAID = "PAID"
CANCELLED = "CANCELLED"
SPAM = "SPAM"
OTHER = "OTHER"
ORDER_STATUSES = (IN_PROGRESS, PAID, CANCELLED, SPAM)
# Types a mapped status may have (schema/order_statuses); OTHER is what a JS-goal status gets.
STATUS_TYPES = ORDER_STATUSES + (OTHER,)

OFFLINE_IDENTIFIER_COLUMNS = ("ClientId", "Yclid", "UserId", "PurchaseId")

# CSV delimiter -> value of the ``delimiter_type`` query parameter of the CDP endpoints.
DELIMITER_TYPES = {",": "COMMA", ";": "SEMICOLON"}

CLIENT_TYPE_CONTACT = "CONTACT"

SIMPLE_ORDERS_COLUMNS = (
    "id",
    "create_date_time",
    "client_uniq_id",
    "client_ids",
    "emails",
    "phones",
    "order_status",
    "revenue",
    "cost",
    "currency",
    "goals",
)
SIMPLE_ORDERS_COLUMNS_HASHED = (
    "id",
    "create_date_time",
    "client_uniq_id",
    "client_ids",
    "emails_md5",
    "phones_md5",
    "order_status",
    "revenue",
    "cost",
    "currency",
    "goals",
)
# All columns the detailed builders may emit, in output order; a file holds the required
# ones plus the optional ones some row actually uses.
CONTACTS_COLUMNS = (
    "uniq_id",
    "name",
    "create_date_time",
    "update_date_time",
    "client_ids",
    "emails",
    "phones",
    "emails_md5",
    "phones_md5",
)
_CONTACTS_REQUIRED = ("uniq_id",)
ORDERS_COLUMNS = (
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
)
_ORDERS_REQUIRED = ("id", "client_uniq_id", "client_type", "create_date_time", "order_status")

_LINE_TERMINATOR = "\n"
_CSV_CHUNK_ROWS = 4096
# Forbidden in JS-event goal identifiers (Metrica help), plus any whitespace.
_GOAL_FORBIDDEN_RE = re.compile(r'[/\\&#?="\s]')
# Metrica's regex is ^[\w-:]+$ (a Java regex, so \w is ASCII only).
_STATUS_ID_RE = re.compile(r"[\w\-:]{1,255}", re.ASCII)
# Normalised e-mail: name@domain.tld without whitespace, upper-case Latin letters or the
# characters that would need CSV quoting inside a multi-value cell (, ; ").
_EMAIL_RE = re.compile(r'[^\s,;"@A-Z]+@[^\s,;"@A-Z]+\.[^\s,;"@A-Z]+')
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_DATETIME_FORMAT = "%04d-%02d-%02d %02d:%02d:%02d"
_MAX_STATUS_GOALS = 10
_MAX_HUMANIZED = 4096


class UploadDataError(MetrikaDataError):
    """Input that cannot be turned into a valid upload; ``row_id`` names the row (or None).

    A :class:`~.errors.MetrikaDataError`, hence a ``ValueError``.
    """

    def __init__(self, message, row_id=None):
        super().__init__(message)
        self.row_id = row_id


# --------------------------------------------------------------------------- dataclasses


def _as_tuple(value):
    # A lone string would otherwise be iterated character by character.
    if value is None:
        return ()
    if isinstance(value, tuple):
        return value
    if isinstance(value, str):
        return (value,)
    if isinstance(value, dict):
        return tuple(value.items())
    return tuple(value)


def _coerce(instance, *names):
    for name in names:
        value = getattr(instance, name)
        coerced = _as_tuple(value)
        if coerced is not value:
            object.__setattr__(instance, name, coerced)


@dataclass(frozen=True, slots=True)
class SimpleOrder:
    """One row of ``simple_orders``; identifiers already normalised (not hashed).

    ``goals`` holds ``(goal_id, price_or_None)`` pairs (a bare goal id string is accepted too).
    Lists are turned into tuples and a lone string into a one-item tuple.
    """

    id: str
    create_date_time: datetime
    order_status: str = IN_PROGRESS
    client_ids: tuple = ()
    emails: tuple = ()
    phones: tuple = ()
    revenue: Decimal | None = None
    cost: Decimal | None = None
    currency: str | None = None
    client_uniq_id: str | None = None
    goals: tuple = ()

    def __post_init__(self):
        _coerce(self, "client_ids", "emails", "phones", "goals")


@dataclass(frozen=True, slots=True)
class Contact:
    """A customer for the detailed flow (``data/contacts``); identifiers already normalised."""

    uniq_id: str
    name: str | None = None
    create_date_time: datetime | None = None
    update_date_time: datetime | None = None
    client_ids: tuple = ()
    emails: tuple = ()
    phones: tuple = ()

    def __post_init__(self):
        _coerce(self, "client_ids", "emails", "phones")


@dataclass(frozen=True, slots=True)
class Order:
    """An order for the detailed flow (``data/orders``); ``client_type`` is always CONTACT.

    ``goals``: ``(goal_id, price_or_None)`` pairs; ``products``: ``(name, quantity)`` pairs
    (a dict is accepted too). Repeated product names are summed.
    """

    id: str
    client_uniq_id: str
    create_date_time: datetime
    order_status: str
    update_date_time: datetime | None = None
    finish_date_time: datetime | None = None
    revenue: Decimal | None = None
    cost: Decimal | None = None
    currency: str | None = None
    goals: tuple = ()
    products: tuple = ()

    def __post_init__(self):
        _coerce(self, "goals", "products")


@dataclass(frozen=True, slots=True)
class OfflineConversion:
    """One goal hit for ``offline_conversions/upload``; the identifier type is per file."""

    identifier: str
    target: str
    date_time: datetime
    price: Decimal | None = None
    currency: str | None = None


@dataclass(frozen=True, slots=True)
class OrderStatusMapping:
    """One entry of ``POST schema/order_statuses``."""

    id: str
    type: str
    humanized: str | None = None
    goal_action_ids: tuple = ()

    def __post_init__(self):
        _coerce(self, "goal_action_ids")


# --------------------------------------------------------------------------- value helpers


def is_valid_goal_identifier(value):
    """True for a usable JS-event goal identifier: non-empty, no ``/ \\ & # ? = "``, no space."""
    return isinstance(value, str) and bool(value) and _GOAL_FORBIDDEN_RE.search(value) is None


def _resolve_time_zone(time_zone):
    if isinstance(time_zone, tzinfo):
        return time_zone
    if isinstance(time_zone, str) and time_zone:
        try:
            return ZoneInfo(time_zone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise UploadDataError("unknown time zone %r: %s" % (time_zone, exc)) from None
    raise UploadDataError(
        "time_zone must be an IANA name such as 'Europe/Moscow' or a tzinfo, got %r" % (time_zone,)
    )


def _check_aware(value, what, row_id):
    if not isinstance(value, datetime):
        raise UploadDataError(
            "%s: %s must be a timezone-aware datetime, got %r" % (row_id, what, value), row_id
        )
    if value.tzinfo is None or value.utcoffset() is None:
        raise UploadDataError(
            "%s: %s is a naive datetime (%s), which is ambiguous; pass an aware one "
            "(e.g. Odoo's UTC value with tzinfo=timezone.utc)" % (row_id, what, value),
            row_id,
        )


def format_local_datetime(value, tz, what="date_time", row_id="value"):
    """``yyyy-MM-dd HH:mm:ss`` wall time of the aware ``value`` in ``tz`` (seconds truncated)."""
    zone = value.tzinfo if value.__class__ is datetime else None
    if zone is None or (zone.__class__ is not timezone and zone.__class__ is not ZoneInfo):
        # Full check only off the fast path (naive, subclasses, other tzinfo classes, whose
        # utcoffset() may be None: astimezone would then silently assume the system zone).
        _check_aware(value, what, row_id)
    local = value.astimezone(tz)
    if local.year < 1970:
        raise UploadDataError(
            "%s: %s %s is before 1970-01-01, which Metrica does not support"
            % (row_id, what, value),
            row_id,
        )
    # %-formatting is about twice as fast as strftime here.
    return _DATETIME_FORMAT % (
        local.year,
        local.month,
        local.day,
        local.hour,
        local.minute,
        local.second,
    )


def _decimal(value, what, row_id):
    if isinstance(value, bool):
        raise UploadDataError("%s: %s must be a number, got %r" % (row_id, what, value), row_id)
    if value.__class__ is not Decimal:
        try:
            value = Decimal(str(value))
        except (InvalidOperation, ValueError, TypeError):
            raise UploadDataError(
                "%s: %s must be a number, got %r" % (row_id, what, value), row_id
            ) from None
    if not value.is_finite():
        raise UploadDataError("%s: %s must be finite, got %s" % (row_id, what, value), row_id)
    if value < 0:
        raise UploadDataError("%s: %s must not be negative, got %s" % (row_id, what, value), row_id)
    if value.is_zero():
        value = value.copy_abs()  # no "-0"
    return value


def format_decimal(value, what="amount", row_id="value"):
    """Dot decimal without exponent or grouping; value unchanged (``1E+3`` -> ``1000``)."""
    return format(_decimal(value, what, row_id), "f")


def _decimal_cell(value, what, row_id):
    if value is None:
        return ""
    return format(_decimal(value, what, row_id), "f")


def _json_number(value, what, row_id):
    """An int or float that ``json`` writes as exactly ``value``; refuses what would round."""
    d = _decimal(value, what, row_id)
    if d == d.to_integral_value():
        return int(d)
    as_float = float(d)
    if Decimal(repr(as_float)) != d:
        raise UploadDataError(
            "%s: %s %s cannot be written as an exact JSON number (too many significant digits)"
            % (row_id, what, d),
            row_id,
        )
    return as_float


def _currency(value, row_id):
    if value is None or value == "":
        return ""
    if not (
        isinstance(value, str)
        and len(value) == 3
        and value.isascii()
        and value.isalpha()
        and value.isupper()
    ):
        raise UploadDataError(
            "%s: currency must be an ISO 4217 code of 3 upper-case letters, got %r"
            % (row_id, value),
            row_id,
        )
    return value


_IDENTIFIER_RULES = {
    "client_ids": "a ClientID must be a string of digits",
    "emails": "an e-mail must be normalised: lower case, name@domain, no spaces or commas",
    "phones": "a phone must be normalised: digits only, with country code, no '+'",
}


def _bad_identifier(field, value, row_id):
    raise UploadDataError(
        "%s: bad %s value %r (%s)" % (row_id, field, value, _IDENTIFIER_RULES[field]), row_id
    )


# The two checkers below run for every identifier of every row: kept small and call-free.
def _digit_values(values, field, row_id):
    """Validated digit identifiers (ClientIDs, phones), duplicates dropped, order kept."""
    for value in values:
        if value.__class__ is not str or not value.isdigit() or not value.isascii():
            _bad_identifier(field, value, row_id)
    return values if len(values) < 2 else tuple(dict.fromkeys(values))


def _email_values(values, row_id, _fullmatch=_EMAIL_RE.fullmatch):
    """Validated e-mails, duplicates dropped, order kept."""
    for value in values:
        if value.__class__ is not str or _fullmatch(value) is None:
            _bad_identifier("emails", value, row_id)
    return values if len(values) < 2 else tuple(dict.fromkeys(values))


def _identifier_values(values, field, row_id):
    if not values:
        return ()
    if field == "emails":
        return _email_values(values, row_id)
    return _digit_values(values, field, row_id)


def _goal_pairs(goals, row_id):
    """``[(goal_id, price Decimal or None)]`` from pairs or bare goal id strings."""
    pairs = []
    for item in goals:
        if isinstance(item, str):
            goal_id, price = item, None
        else:
            try:
                goal_id, price = item
            except (TypeError, ValueError):
                raise UploadDataError(
                    "%s: a goal must be a goal id or a (goal_id, price) pair, got %r"
                    % (row_id, item),
                    row_id,
                ) from None
        # ',' and ':' separate items and prices inside the goals cell.
        if not is_valid_goal_identifier(goal_id) or "," in goal_id or ":" in goal_id:
            raise UploadDataError(
                "%s: invalid goal identifier %r (must be non-empty, without spaces or "
                '/ \\ & # ? = " , :)' % (row_id, goal_id),
                row_id,
            )
        pairs.append((goal_id, None if price is None else _decimal(price, "goal price", row_id)))
    return pairs


def _goals_cell(goals, row_id):
    if not goals:
        return ""
    return ",".join(
        goal_id if price is None else "%s:%s" % (goal_id, format(price, "f"))
        for goal_id, price in _goal_pairs(goals, row_id)
    )


def _product_quantities(products, row_id):
    """``{name: Decimal quantity}``; repeated names are summed (one order line per product)."""
    quantities = {}
    for item in products:
        try:
            name, quantity = item
        except (TypeError, ValueError):
            raise UploadDataError(
                "%s: a product must be a (name, quantity) pair, got %r" % (row_id, item), row_id
            ) from None
        if not isinstance(name, str) or not name.strip() or "," in name or ":" in name:
            raise UploadDataError(
                "%s: invalid product name %r (non-empty, without ',' or ':')" % (row_id, name),
                row_id,
            )
        quantity = _decimal(quantity, "quantity of product %r" % name, row_id)
        quantities[name] = quantities.get(name, Decimal(0)) + quantity
    return quantities


def _status(value, row_id, *, simple):
    if not isinstance(value, str) or not value:
        raise UploadDataError("%s: order_status is required, got %r" % (row_id, value), row_id)
    if value in ORDER_STATUSES:
        return value
    if simple and value.upper() in ("CANCELED",) + ORDER_STATUSES:
        # A JS-goal id that merely looks like a status is almost surely a typo.
        raise UploadDataError(
            "%s: order_status %r is not a status; use one of %s"
            % (row_id, value, ", ".join(ORDER_STATUSES)),
            row_id,
        )
    if not is_valid_goal_identifier(value):
        raise UploadDataError(
            "%s: order_status %r is neither one of %s nor a valid goal identifier "
            '(non-empty, no spaces or / \\ & # ? = ")' % (row_id, value, ", ".join(ORDER_STATUSES)),
            row_id,
        )
    return value


def _optional_text(value, what, row_id):
    if value is None:
        return ""
    if not isinstance(value, str):
        raise UploadDataError("%s: %s must be a string, got %r" % (row_id, what, value), row_id)
    return value


def _latest_by_key(items, key_name, kind):
    """``{key: item}`` keeping the first-seen position and the LATEST item for each key."""
    latest = {}
    for item in items:
        key = getattr(item, key_name, None)
        if key.__class__ is not str or not key.strip():
            raise UploadDataError(
                "%s %r: %s must be a non-empty string" % (kind, key, key_name), key
            )
        latest[key] = item
    if not latest:
        raise UploadDataError("no %ss to upload" % kind)
    return latest


def _check_delimiter(delimiter):
    if delimiter not in DELIMITER_TYPES:
        raise UploadDataError(
            "delimiter must be one of %s, got %r"
            % (", ".join(map(repr, DELIMITER_TYPES)), delimiter)
        )


def _encode(text):
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise UploadDataError("text cannot be encoded as UTF-8: %s" % exc) from None


def columns_mapping(columns):
    """Identity ``columns_mapping`` query value: ``"col":"col"`` pairs joined by commas.

    Returned raw; the HTTP layer URL-encodes it.
    """
    return ",".join('"%s":"%s"' % (column, column) for column in columns)


# --------------------------------------------------------------------------- simple orders


@dataclass(frozen=True, slots=True)
class BuiltFile:
    """An upload file built once, with what happened to each input row.

    ``data``: the file's bytes, or ``None`` when no row could be written. ``row_count``: data
    rows written. ``rejected``: ``{index in the input: reason}`` of the rows left out because
    they fail validation. ``superseded``: ``{index: index of the later input row}`` of rows
    replaced by a later one with the same key (order ``id``; offline (identifier, Target,
    DateTime)), which was written or rejected in their place. ``row_indexes``: the input index of
    each data row, in file order (so every input index is in exactly one of ``row_indexes``,
    ``rejected`` and ``superseded``).
    """

    data: bytes | None
    row_count: int
    rejected: dict
    superseded: dict
    row_indexes: tuple


def _built_file(data, row_indexes, errors, superseded):
    return BuiltFile(
        data=data if row_indexes else None,
        row_count=len(row_indexes),
        rejected={index: str(error) for index, error in errors.items()},
        superseded=superseded,
        row_indexes=tuple(row_indexes),
    )


def _latest_indexes(items, key_of, errors):
    """``{key: index}`` keeping the first-seen position with the LATEST index of each key, and
    ``{superseded index: latest index}``. ``key_of(index, item)`` returns the key, or raises
    :class:`UploadDataError`, which is kept in ``errors[index]``."""
    latest = {}
    replaced = {}
    for index, item in enumerate(items):
        try:
            key = key_of(index, item)
        except UploadDataError as exc:
            errors[index] = exc
            continue
        previous = latest.get(key)
        if previous is not None:
            replaced[previous] = key
        latest[key] = index
    return latest, {index: latest[key] for index, key in replaced.items()}


def _build_simple_orders(orders, time_zone, hashed, delimiter):
    """(:class:`BuiltFile`, ``{index: UploadDataError}``): the file built once."""
    tz = _resolve_time_zone(time_zone)
    _check_delimiter(delimiter)
    orders = orders if isinstance(orders, (list, tuple)) else list(orders)
    errors = {}
    latest = {}
    replaced = {}
    for index, order in enumerate(orders):  # inlined: this loop runs once per order
        key = getattr(order, "id", None)
        if key.__class__ is not str or not key.strip():
            errors[index] = UploadDataError(
                "simple order %r: id must be a non-empty string" % (key,), key
            )
            continue
        if key in latest:
            replaced[latest[key]] = key
        latest[key] = index
    superseded = {index: latest[key] for index, key in replaced.items()}
    row_indexes = []
    rows = _simple_order_rows(orders, latest.values(), tz, hashed, errors, row_indexes)
    header = SIMPLE_ORDERS_COLUMNS_HASHED if hashed else SIMPLE_ORDERS_COLUMNS
    data = _write_csv_chunked(header, rows, delimiter)
    return _built_file(data, row_indexes, errors, superseded), errors


def build_simple_orders_file(orders, time_zone, *, hashed=False, delimiter=","):
    """The ``simple_orders`` file built once, rows that fail validation left out with a reason.

    Same rules and layout as :func:`build_simple_orders_csv`, but a bad row does not stop the
    build: it is listed in :attr:`BuiltFile.rejected` (``{index in orders: reason}``) and the
    other rows are written. An empty input, or one whose every row is rejected, gives
    ``data=None``. A bad ``time_zone`` or ``delimiter`` still raises :class:`UploadDataError`
    (it concerns every row).
    """
    return _build_simple_orders(orders, time_zone, hashed, delimiter)[0]


def _raise_first(errors, nothing_message):
    """The old builders' contract: the first problem (in output order) is raised."""
    if errors:
        raise next(iter(errors.values()))
    raise UploadDataError(nothing_message)


def build_simple_orders_csv(orders, time_zone, *, hashed=False, delimiter=","):
    """CSV body for ``POST /cdp/api/v1/counter/{id}/data/simple_orders``.

    ``time_zone``: the counter's IANA zone name (``time_zone_name``) or a tzinfo.
    The header is fixed per mode (:data:`SIMPLE_ORDERS_COLUMNS`, or
    :data:`SIMPLE_ORDERS_COLUMNS_HASHED` where each e-mail and phone is replaced by its MD5);
    unused cells stay empty, which Metrica accepts. ``delimiter=";"`` needs
    ``delimiter_type=SEMICOLON`` on the request (see :data:`DELIMITER_TYPES`).
    Every order needs at least one of client_ids, emails, phones. ``order_status`` is one of
    :data:`ORDER_STATUSES` or a JS-goal identifier; look-alikes of a status in another case or
    the legacy spelling ``CANCELED`` are refused as typos rather than sent as goal ids.

    Any invalid row raises :class:`UploadDataError` and nothing is returned;
    :func:`build_simple_orders_file` leaves such rows out instead.
    """
    built, errors = _build_simple_orders(orders, time_zone, hashed, delimiter)
    if errors or built.data is None:
        _raise_first(errors, "no simple orders to upload")
    return built.data


def _write_csv_chunked(header, rows, delimiter):
    """CSV bytes of ``header`` + ``rows``, encoded chunk by chunk.

    Each chunk of rows goes through a fresh StringIO and is encoded into one BytesIO, so no
    full-size str ever sits next to the bytes, and ``getvalue()`` hands the buffer over
    without a copy. (A TextIOWrapper over the BytesIO would do the same but its per-row
    ``write`` is about twice as slow as StringIO's.)
    """
    buffer = io.BytesIO()
    rows = iter(rows)
    first = True
    while True:
        text = io.StringIO()
        writer = csv.writer(text, delimiter=delimiter, lineterminator=_LINE_TERMINATOR)
        if first:
            writer.writerow(header)
            first = False
        writer.writerows(islice(rows, _CSV_CHUNK_ROWS))
        chunk = text.getvalue()
        if not chunk:
            break
        try:
            buffer.write(chunk.encode("utf-8"))
        except UnicodeEncodeError as exc:
            raise UploadDataError("text cannot be encoded as UTF-8: %s" % exc) from None
    return buffer.getvalue()


def _simple_order_rows(orders, indexes, tz, hashed, rejected, row_indexes):
    """Rows of ``orders[index]`` for each of ``indexes``; a row that fails validation is left
    out, its error kept in ``rejected[index]``; the index of each row written goes to
    ``row_indexes``.
    """
    # Hot loop of the simplified flow: single identifiers, plain Decimals and aware stdlib
    # datetimes take inlined fast paths; anything else goes through the general helpers.
    # (The try costs nothing while no row fails.)
    join = ",".join
    statuses = ORDER_STATUSES
    date_format = _DATETIME_FORMAT
    email_match = _EMAIL_RE.fullmatch
    hash_value = md5_hex if hashed else None
    valid_currencies = set()
    written = row_indexes.append
    for index in indexes:
        order = orders[index]
        try:
            row_id = order.id

            values = order.client_ids
            if not values:
                client_ids = ""
            elif (
                len(values) == 1
                and (value := values[0]).__class__ is str
                and value.isdigit()
                and value.isascii()
            ):
                client_ids = value
            else:
                client_ids = join(_digit_values(values, "client_ids", row_id))

            values = order.emails
            if not values:
                emails = ""
            elif (
                len(values) == 1
                and (value := values[0]).__class__ is str
                and email_match(value) is not None
            ):
                emails = hash_value(value) if hashed else value
            else:
                values = _email_values(values, row_id)
                emails = join(map(hash_value, values) if hashed else values)

            values = order.phones
            if not values:
                phones = ""
            elif (
                len(values) == 1
                and (value := values[0]).__class__ is str
                and value.isdigit()
                and value.isascii()
            ):
                phones = hash_value(value) if hashed else value
            else:
                values = _digit_values(values, "phones", row_id)
                phones = join(map(hash_value, values) if hashed else values)

            if not (client_ids or emails or phones):
                raise UploadDataError(
                    "simple order %r has no identifier: "
                    "it needs at least one client id, e-mail or phone" % row_id,
                    row_id,
                )

            status = order.order_status
            if status not in statuses:
                status = _status(status, row_id, simple=True)

            client_uniq_id = order.client_uniq_id
            if client_uniq_id is None:
                client_uniq_id = ""
            elif client_uniq_id.__class__ is not str:
                _optional_text(client_uniq_id, "client_uniq_id", row_id)

            created = order.create_date_time
            zone = created.tzinfo if created.__class__ is datetime else None
            if zone is None or (zone.__class__ is not timezone and zone.__class__ is not ZoneInfo):
                created = format_local_datetime(created, tz, "create_date_time", row_id)
            else:
                local = created.astimezone(tz)
                if local.year < 1970:
                    format_local_datetime(created, tz, "create_date_time", row_id)  # raises
                created = date_format % (
                    local.year,
                    local.month,
                    local.day,
                    local.hour,
                    local.minute,
                    local.second,
                )

            revenue = order.revenue
            if revenue is None:
                revenue = ""
            elif revenue.__class__ is Decimal and revenue.is_finite() and not revenue.is_signed():
                revenue = format(revenue, "f")
            else:
                revenue = format(_decimal(revenue, "revenue", row_id), "f")
            cost = order.cost
            if cost is None:
                cost = ""
            elif cost.__class__ is Decimal and cost.is_finite() and not cost.is_signed():
                cost = format(cost, "f")
            else:
                cost = format(_decimal(cost, "cost", row_id), "f")
            currency = order.currency
            if currency is None:
                currency = ""
            elif currency not in valid_currencies:
                valid_currencies.add(_currency(currency, row_id))
            goals = _goals_cell(order.goals, row_id) if order.goals else ""
        except UploadDataError as exc:
            rejected[index] = exc
            continue
        written(index)
        yield (
            row_id,
            created,
            client_uniq_id,
            client_ids,
            emails,
            phones,
            status,
            revenue,
            cost,
            currency,
            goals,
        )


# --------------------------------------------------------------------------- detailed flow


def _contact_fields(contact, tz, hashed):
    """Column -> value for one contact: strings for CSV cells, tuples for list fields."""
    row_id = contact.uniq_id
    fields = {"uniq_id": row_id}
    name = _optional_text(contact.name, "name", row_id)
    if name:
        fields["name"] = name
    for what in ("create_date_time", "update_date_time"):
        value = getattr(contact, what)
        if value is not None:
            fields[what] = format_local_datetime(value, tz, what, row_id)
    client_ids = _identifier_values(contact.client_ids, "client_ids", row_id)
    emails = _identifier_values(contact.emails, "emails", row_id)
    phones = _identifier_values(contact.phones, "phones", row_id)
    if client_ids:
        fields["client_ids"] = client_ids
    if emails:
        fields["emails_md5" if hashed else "emails"] = (
            tuple(map(md5_hex, emails)) if hashed else emails
        )
    if phones:
        fields["phones_md5" if hashed else "phones"] = (
            tuple(map(md5_hex, phones)) if hashed else phones
        )
    return fields


def _order_fields(order, tz):
    """Column -> value for one order: CSV-ready strings, plus Decimal-based goals/products."""
    row_id = order.id
    client_uniq_id = order.client_uniq_id
    if not isinstance(client_uniq_id, str) or not client_uniq_id.strip():
        raise UploadDataError("order %r: client_uniq_id is required" % (row_id,), row_id)
    fields = {
        "id": row_id,
        "client_uniq_id": client_uniq_id,
        "client_type": CLIENT_TYPE_CONTACT,
        "create_date_time": format_local_datetime(
            order.create_date_time, tz, "create_date_time", row_id
        ),
        "order_status": _status(order.order_status, row_id, simple=False),
    }
    for what in ("update_date_time", "finish_date_time"):
        value = getattr(order, what)
        if value is not None:
            fields[what] = format_local_datetime(value, tz, what, row_id)
    for what in ("revenue", "cost"):
        value = getattr(order, what)
        if value is not None:
            fields[what] = _decimal(value, what, row_id)
    currency = _currency(order.currency, row_id)
    if currency:
        fields["currency"] = currency
    if order.goals:
        fields["goals"] = _goal_pairs(order.goals, row_id)
    if order.products:
        fields["products"] = _product_quantities(order.products, row_id)
    return fields


def _csv_cell(value):
    if isinstance(value, str):
        return value
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, tuple):  # identifier list
        return ",".join(value)
    if isinstance(value, list):  # goals
        return ",".join(
            goal_id if price is None else "%s:%s" % (goal_id, format(price, "f"))
            for goal_id, price in value
        )
    # products
    return ",".join("%s:%s" % (name, format(quantity, "f")) for name, quantity in value.items())


def _detailed_csv(rows, all_columns, required, delimiter):
    used = set(required)
    for fields in rows:
        used.update(fields)
    header = [column for column in all_columns if column in used]
    cells = ([_csv_cell(fields[c]) if c in fields else "" for c in header] for fields in rows)
    return _write_csv_chunked(header, cells, delimiter), columns_mapping(header)


def build_contacts_csv(contacts, time_zone, *, hashed=False, delimiter=","):
    """``(csv_bytes, columns_mapping)`` for ``POST .../data/contacts/csv``.

    The file holds ``uniq_id`` plus the optional columns (:data:`CONTACTS_COLUMNS`) that at
    least one contact uses; ``columns_mapping`` is the identity mapping of exactly those
    header columns (raw, to be URL-encoded by the HTTP layer). With ``hashed=True`` e-mails
    and phones go to ``emails_md5`` / ``phones_md5``, one MD5 per value.
    """
    tz = _resolve_time_zone(time_zone)
    _check_delimiter(delimiter)
    latest = _latest_by_key(contacts, "uniq_id", "contact")
    rows = [_contact_fields(contact, tz, hashed) for contact in latest.values()]
    return _detailed_csv(rows, CONTACTS_COLUMNS, _CONTACTS_REQUIRED, delimiter)


def build_orders_csv(orders, time_zone, *, delimiter=","):
    """``(csv_bytes, columns_mapping)`` for ``POST .../data/orders/csv``.

    Required columns always, optional ones (:data:`ORDERS_COLUMNS`) when some order uses
    them. ``goals`` cells hold ``goal[:price]`` items and ``products`` cells ``name:qty``
    items, comma-joined (quoted by the csv module; ``delimiter=";"`` with
    ``delimiter_type=SEMICOLON`` is the docs' tip for such cells).
    """
    tz = _resolve_time_zone(time_zone)
    _check_delimiter(delimiter)
    latest = _latest_by_key(orders, "id", "order")
    rows = [_order_fields(order, tz) for order in latest.values()]
    return _detailed_csv(rows, ORDERS_COLUMNS, _ORDERS_REQUIRED, delimiter)


def _dump_json(payload):
    return _encode(json.dumps(payload, ensure_ascii=False, separators=(",", ":")))


def build_contacts_json(contacts, time_zone, *, hashed=False):
    """``{"contacts":[...]}`` body for ``POST .../data/contacts/json``.

    Empty fields are omitted; identifier fields are lists of strings (ClientIDs too: they can
    exceed int64 although the schema says integer).
    """
    tz = _resolve_time_zone(time_zone)
    latest = _latest_by_key(contacts, "uniq_id", "contact")
    items = []
    for contact in latest.values():
        fields = _contact_fields(contact, tz, hashed)
        items.append({k: list(v) if isinstance(v, tuple) else v for k, v in fields.items()})
    return _dump_json({"contacts": items})


def build_orders_json(orders, time_zone):
    """``{"orders":[...]}`` body for ``POST .../data/orders/json``.

    Revenue, cost, goal prices and product quantities are JSON numbers equal to the given
    value: integral values as integers, others as floats only when the float is exactly the
    decimal (``123.5``); a value a float would round (more than ~15 significant digits)
    raises :class:`UploadDataError` rather than being sent altered.
    """
    tz = _resolve_time_zone(time_zone)
    latest = _latest_by_key(orders, "id", "order")
    items = []
    for order in latest.values():
        row_id = order.id
        fields = _order_fields(order, tz)
        for what in ("revenue", "cost"):
            if what in fields:
                fields[what] = _json_number(fields[what], what, row_id)
        if "goals" in fields:
            goals = []
            for goal_id, price in fields["goals"]:
                goal = {"goal_action_id": goal_id}
                if price is not None:
                    goal["price"] = _json_number(price, "goal price", row_id)
                goals.append(goal)
            fields["goals"] = goals
        if "products" in fields:
            fields["products"] = {
                name: _json_number(quantity, "quantity of product %r" % name, row_id)
                for name, quantity in fields["products"].items()
            }
        items.append(fields)
    return _dump_json({"orders": items})


def build_status_mapping_json(statuses):
    """``{"order_statuses":[...]}`` body for ``POST .../schema/order_statuses``.

    Each status is an :class:`OrderStatusMapping` or a dict with the same keys. ``id``:
    1-255 chars of ``[A-Za-z0-9_:-]`` (Metrica's ``^[\\w-:]+$``, ASCII); ``type`` one of
    :data:`STATUS_TYPES`; ``humanized`` up to 4096 chars; at most 10 ``goal_action_ids``.
    A repeated id is an error (a mapping is configuration; there is no "latest" to prefer).
    """
    items = []
    seen = set()
    for status in statuses:
        if isinstance(status, dict):
            unknown = set(status) - {"id", "type", "humanized", "goal_action_ids"}
            if unknown:
                raise UploadDataError(
                    "status %r: unknown keys %s" % (status.get("id"), ", ".join(sorted(unknown))),
                    status.get("id"),
                )
            try:
                status = OrderStatusMapping(**status)
            except TypeError as exc:
                raise UploadDataError(
                    "status %r: %s" % (status.get("id"), exc), status.get("id")
                ) from None
        status_id = status.id
        if not isinstance(status_id, str) or not _STATUS_ID_RE.fullmatch(status_id):
            raise UploadDataError(
                "status %r: id must be 1-255 characters of letters, digits, '_', '-' or ':'"
                % (status_id,),
                status_id,
            )
        if status_id in seen:
            raise UploadDataError("status %r appears twice" % status_id, status_id)
        seen.add(status_id)
        if status.type not in STATUS_TYPES:
            raise UploadDataError(
                "status %r: type must be one of %s, got %r"
                % (status_id, ", ".join(STATUS_TYPES), status.type),
                status_id,
            )
        item = {"id": status_id}
        if status.humanized is not None:
            if not isinstance(status.humanized, str) or len(status.humanized) > _MAX_HUMANIZED:
                raise UploadDataError(
                    "status %r: humanized must be a string of at most %d characters"
                    % (status_id, _MAX_HUMANIZED),
                    status_id,
                )
            item["humanized"] = status.humanized
        item["type"] = status.type
        goal_ids = status.goal_action_ids
        if len(goal_ids) > _MAX_STATUS_GOALS:
            raise UploadDataError(
                "status %r: at most %d goal_action_ids, got %d"
                % (status_id, _MAX_STATUS_GOALS, len(goal_ids)),
                status_id,
            )
        for goal_id in goal_ids:
            if not is_valid_goal_identifier(goal_id):
                raise UploadDataError(
                    "status %r: invalid goal identifier %r" % (status_id, goal_id), status_id
                )
        if goal_ids:
            item["goal_action_ids"] = list(goal_ids)
        items.append(item)
    if not items:
        raise UploadDataError("no order statuses to upload")
    return _dump_json({"order_statuses": items})


# --------------------------------------------------------------------------- offline conversions


def group_offline_conversions(conversions_with_types):
    """``{identifier_column: [OfflineConversion, ...]}`` from ``(column, conversion)`` pairs.

    One file per identifier column (see :func:`build_offline_conversions_csv`); input order is
    kept inside each group.
    """
    groups = {}
    for column, conversion in conversions_with_types:
        if column not in OFFLINE_IDENTIFIER_COLUMNS:
            raise UploadDataError(
                "identifier column must be one of %s, got %r"
                % (", ".join(OFFLINE_IDENTIFIER_COLUMNS), column)
            )
        groups.setdefault(column, []).append(conversion)
    return groups


def _unix_seconds(value, what, row_id):
    _check_aware(value, what, row_id)
    # Exact integer arithmetic (no float rounding); floor to whole seconds.
    delta = value - _EPOCH
    return delta.days * 86400 + delta.seconds


def _check_offline_column(identifier_column):
    if identifier_column not in OFFLINE_IDENTIFIER_COLUMNS:
        raise UploadDataError(
            "identifier column must be one of %s, got %r"
            % (", ".join(OFFLINE_IDENTIFIER_COLUMNS), identifier_column)
        )


def _offline_row(conversion, identifier_column, digits_only, limit):
    """The CSV row of one offline conversion; raises :class:`UploadDataError` if it is invalid."""
    identifier = conversion.identifier
    if (
        not isinstance(identifier, str)
        or not identifier.strip()
        or (digits_only and not (identifier.isdigit() and identifier.isascii()))
    ):
        raise UploadDataError(
            "offline conversion: bad %s %r (%s)"
            % (
                identifier_column,
                identifier,
                "digits expected" if digits_only else "non-empty string expected",
            ),
            identifier,
        )
    row_id = "offline conversion %s=%s target=%r" % (
        identifier_column,
        identifier,
        conversion.target,
    )
    if not is_valid_goal_identifier(conversion.target):
        raise UploadDataError(
            '%s: Target must be a goal identifier (non-empty, no spaces or / \\ & # ? = ")'
            % row_id,
            identifier,
        )
    seconds = _unix_seconds(conversion.date_time, "date_time", row_id)
    if seconds < 0:
        raise UploadDataError("%s: date_time is before 1970-01-01" % row_id, identifier)
    seconds = min(seconds, limit)
    return (
        identifier,
        conversion.target,
        str(seconds),
        _decimal_cell(conversion.price, "price", row_id),
        _currency(conversion.currency, row_id),
    )


def _build_offline_conversions(conversions, identifier_column, now):
    """(:class:`BuiltFile`, ``{index: UploadDataError}``): the file built once."""
    _check_offline_column(identifier_column)
    if now is None:
        now = datetime.now(timezone.utc)
    limit = _unix_seconds(now, "now", "now") - 1
    digits_only = identifier_column in ("ClientId", "Yclid")
    rows = {}

    def key_of(index, conversion):
        row = _offline_row(conversion, identifier_column, digits_only, limit)
        rows[index] = row
        return row[:3]  # (identifier, Target, DateTime): one conversion to Metrica

    errors = {}
    latest, superseded = _latest_indexes(conversions, key_of, errors)
    row_indexes = list(latest.values())
    header = (identifier_column, "Target", "DateTime", "Price", "Currency")
    data = _write_csv_chunked(header, (rows[index] for index in row_indexes), ",")
    return _built_file(data, row_indexes, errors, superseded), errors


def build_offline_conversions_file(conversions, identifier_column, *, now=None):
    """The offline-conversions file built once, invalid rows left out with a reason.

    Same rules and layout as :func:`build_offline_conversions_csv`, but a bad row (identifier,
    Target, date) is listed in :attr:`BuiltFile.rejected` (``{index in conversions: reason}``)
    instead of stopping the build; rows with the same (identifier, Target, DateTime) after
    clamping are in :attr:`BuiltFile.superseded`, pointing at the one written. An empty input, or
    one whose every row is rejected, gives ``data=None``; a bad ``identifier_column`` raises.
    """
    return _build_offline_conversions(conversions, identifier_column, now)[0]


def build_offline_conversions_csv(conversions, identifier_column, *, now=None):
    """CSV body for ``POST /management/v1/counter/{id}/offline_conversions/upload``.

    Header ``<identifier_column>,Target,DateTime,Price,Currency`` (one identifier column per
    file, one of :data:`OFFLINE_IDENTIFIER_COLUMNS`; ClientId and Yclid must be digits).
    ``DateTime`` is the true UTC Unix time in seconds of the aware ``date_time`` (not shifted
    by the counter's zone). Metrica rejects future times, so every DateTime is capped at
    ``now - 1 s`` (``now``: aware datetime, default the current UTC time): a later value is
    clamped rather than refused, which also absorbs clock skew.
    Rows with the same (identifier, Target, DateTime) after clamping are one conversion to
    Metrica (it keeps only one); the latest in the input wins, at the first one's position.
    Any invalid row raises :class:`UploadDataError`; :func:`build_offline_conversions_file`
    leaves such rows out instead.
    """
    built, errors = _build_offline_conversions(conversions, identifier_column, now)
    if errors or built.data is None:
        _raise_first(errors, "no offline conversions to upload")
    return built.data
