"""Files of the CRM data ("CDP") API's detailed flow: contacts, orders and the status mapping.

The addon's detailed upload method sends them with the client methods of :mod:`..client_cdp`.

* Contacts (``data/contacts``): :func:`build_contacts_file` (bad rows left out, each with its
  reason), :func:`build_contacts_csv` / :func:`build_contacts_json`.
* Orders (``data/orders``): :func:`build_orders_file`, :func:`build_orders_csv` /
  :func:`build_orders_json`.
* Status mapping (``schema/order_statuses``): :func:`build_status_mapping_json`.
"""

import json
import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from ..identifiers import md5_hex
from ._csv import _built_file, _check_delimiter, _latest_indexes, _write_csv_chunked
from ._values import (
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
    is_valid_goal_identifier,
)

OTHER = "OTHER"
# Types a mapped status may have (schema/order_statuses); OTHER is what a JS-goal status gets.
STATUS_TYPES = ORDER_STATUSES + (OTHER,)

CLIENT_TYPE_CONTACT = "CONTACT"

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

# Metrica's regex is ^[\w-:]+$ (a Java regex, so \w is ASCII only).
_STATUS_ID_RE = re.compile(r"[\w\-:]{1,255}", re.ASCII)
_MAX_STATUS_GOALS = 10
_MAX_HUMANIZED = 4096


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
class OrderStatusMapping:
    """One entry of ``POST schema/order_statuses``."""

    id: str
    type: str
    humanized: str | None = None
    goal_action_ids: tuple = ()

    def __post_init__(self):
        _coerce(self, "goal_action_ids")


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


def _identifier_values(values, field, row_id):
    if not values:
        return ()
    if field == "emails":
        return _email_values(values, row_id)
    return _digit_values(values, field, row_id)


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


def header_columns_mapping(data, delimiter=","):
    """The ``columns_mapping`` of a file built here, read back from its header line (a kept
    file sent later carries the mapping it was built with)."""
    header = data.split(b"\n", 1)[0].rstrip(b"\r").decode("utf-8")
    return columns_mapping(header.split(delimiter))


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


def _detailed_file(items, key_name, kind, fields_of, all_columns, required, delimiter):
    """``(BuiltFile, columns_mapping)``: the rows that pass written, the others left out with
    their reason; ``(BuiltFile with data None, None)`` when no row passes."""
    _check_delimiter(delimiter)
    items = items if isinstance(items, (list, tuple)) else list(items)
    errors = {}

    def key_of(_index, item):
        key = getattr(item, key_name, None)
        if key.__class__ is not str or not key.strip():
            raise UploadDataError(
                "%s %r: %s must be a non-empty string" % (kind, key, key_name), key
            )
        return key

    latest, superseded = _latest_indexes(items, key_of, errors)
    rows = []
    row_indexes = []
    for index in latest.values():
        try:
            rows.append(fields_of(items[index]))
        except UploadDataError as exc:
            errors[index] = exc
            continue
        row_indexes.append(index)
    if not rows:
        return _built_file(None, row_indexes, errors, superseded), None
    data, mapping = _detailed_csv(rows, all_columns, required, delimiter)
    return _built_file(data, row_indexes, errors, superseded), mapping


def build_contacts_file(contacts, time_zone, *, hashed=False, delimiter=","):
    """``(BuiltFile, columns_mapping)`` for ``POST .../data/contacts/csv``, built once.

    As :func:`build_contacts_csv`, but a contact that fails validation does not stop the build:
    it is in :attr:`BuiltFile.rejected` with its reason, and the others are written.
    """
    tz = _resolve_time_zone(time_zone)
    return _detailed_file(
        contacts,
        "uniq_id",
        "contact",
        lambda contact: _contact_fields(contact, tz, hashed),
        CONTACTS_COLUMNS,
        _CONTACTS_REQUIRED,
        delimiter,
    )


def build_orders_file(orders, time_zone, *, delimiter=","):
    """``(BuiltFile, columns_mapping)`` for ``POST .../data/orders/csv``, built once; an order
    that fails validation is left out with its reason (see :func:`build_contacts_file`)."""
    tz = _resolve_time_zone(time_zone)
    return _detailed_file(
        orders,
        "id",
        "order",
        lambda order: _order_fields(order, tz),
        ORDERS_COLUMNS,
        _ORDERS_REQUIRED,
        delimiter,
    )


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
