"""The ``simple_orders`` file of the CRM data ("CDP") API's simplified flow.

``POST /cdp/api/v1/counter/{id}/data/simple_orders``, one row per order: the addon sends its
orders and leads with :func:`build_simple_orders_file`.
"""

from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

from ..identifiers import md5_hex
from ._csv import (
    _built_file,
    _check_delimiter,
    _latest_indexes,
    _raise_first,
    _write_csv_chunked,
)
from ._values import (
    _DATETIME_FORMAT,
    _EMAIL_RE,
    IN_PROGRESS,
    ORDER_STATUSES,
    UploadDataError,
    _coerce,
    _currency,
    _decimal,
    _digit_values,
    _email_values,
    _goal_pairs,
    _optional_text,
    _resolve_time_zone,
    _status,
    format_local_datetime,
)

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


def _order_id(_index, order):
    """The order's ``id``, the key of its row: a later order with the same id replaces it."""
    key = getattr(order, "id", None)
    if key.__class__ is not str or not key.strip():
        raise UploadDataError("simple order %r: id must be a non-empty string" % (key,), key)
    return key


def _build_simple_orders(orders, time_zone, hashed, delimiter):
    """(:class:`BuiltFile`, ``{index: UploadDataError}``): the file built once."""
    tz = _resolve_time_zone(time_zone)
    _check_delimiter(delimiter)
    orders = orders if isinstance(orders, (list, tuple)) else list(orders)
    errors = {}
    latest, superseded = _latest_indexes(orders, _order_id, errors)
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


def build_simple_orders_csv(orders, time_zone, *, hashed=False, delimiter=","):
    """CSV body for ``POST /cdp/api/v1/counter/{id}/data/simple_orders``.

    ``time_zone``: the counter's IANA zone name (``time_zone_name``) or a tzinfo.
    The header is fixed per mode (:data:`SIMPLE_ORDERS_COLUMNS`, or
    :data:`SIMPLE_ORDERS_COLUMNS_HASHED` where each e-mail and phone is replaced by its MD5);
    unused cells stay empty, which Metrica accepts. ``delimiter=";"`` needs
    ``delimiter_type=SEMICOLON`` on the request (see :data:`~._csv.DELIMITER_TYPES`).
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


def _goals_cell(goals, row_id):
    if not goals:
        return ""
    return ",".join(
        goal_id if price is None else "%s:%s" % (goal_id, format(price, "f"))
        for goal_id, price in _goal_pairs(goals, row_id)
    )


# One inlined loop on purpose: it runs once per order, and the 100,000 rows/s target needs it.
def _simple_order_rows(orders, indexes, tz, hashed, rejected, row_indexes):  # noqa: C901
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
