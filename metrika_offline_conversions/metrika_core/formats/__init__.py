"""Builders for every file Yandex Metrica accepts from this addon, one module per format.

* :mod:`.offline_conversions`: offline conversions (Management API,
  ``offline_conversions/upload``), :func:`build_offline_conversions_file`.
* :mod:`.simple_orders`: CRM data ("CDP") API, simplified flow (``data/simple_orders``),
  :func:`build_simple_orders_file`.
* :mod:`.cdp_detailed`: CRM data API, detailed flow (contacts, orders, status mapping),
  :func:`build_contacts_file`, :func:`build_orders_file`, :func:`build_status_mapping_json`.
* :mod:`._values` (value checks and normalisation every format shares) and :mod:`._csv` (CSV
  writing and :class:`BuiltFile`) serve them.

The caller fills the formats' dataclasses with identifiers that are ALREADY normalised (see
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
  the same wall time (02:30:00). That is a limitation of Metrica's format, not of this package.
  Dates before 1970-01-01 are refused (Metrica does not support them).
* Duplicates: one row per order ``id`` / contact ``uniq_id``. The LATEST occurrence in the input
  wins (Metrica applies duplicates inside one upload in random order); the row keeps the
  position where the id was first seen. Only the winning occurrence is validated, since the
  others are never sent.
* Empty input is refused: an upload without rows is never useful and may be rejected.
* Every problem raises :class:`UploadDataError` (a ``ValueError``) naming the offending row;
  nothing is returned in that case, so a partial file is never produced.

Only the names the addon, the benchmarks and the tests use are re-exported here; the rest is
imported from the format's own module.
"""

from ._csv import BuiltFile
from ._values import (
    CANCELLED,
    IN_PROGRESS,
    ORDER_STATUSES,
    PAID,
    SPAM,
    UploadDataError,
    format_decimal,
    is_valid_goal_identifier,
)
from .cdp_detailed import (
    Contact,
    Order,
    OrderStatusMapping,
    build_contacts_csv,
    build_contacts_file,
    build_contacts_json,
    build_orders_csv,
    build_orders_file,
    build_orders_json,
    build_status_mapping_json,
)
from .offline_conversions import (
    OFFLINE_IDENTIFIER_COLUMNS,
    OfflineConversion,
    build_offline_conversions_csv,
    build_offline_conversions_file,
    group_offline_conversions,
)
from .simple_orders import (
    SIMPLE_ORDERS_COLUMNS,
    SIMPLE_ORDERS_COLUMNS_HASHED,
    SimpleOrder,
    build_simple_orders_csv,
    build_simple_orders_file,
)

__all__ = [
    "CANCELLED",
    "IN_PROGRESS",
    "OFFLINE_IDENTIFIER_COLUMNS",
    "ORDER_STATUSES",
    "PAID",
    "SIMPLE_ORDERS_COLUMNS",
    "SIMPLE_ORDERS_COLUMNS_HASHED",
    "SPAM",
    "BuiltFile",
    "Contact",
    "OfflineConversion",
    "Order",
    "OrderStatusMapping",
    "SimpleOrder",
    "UploadDataError",
    "build_contacts_csv",
    "build_contacts_file",
    "build_contacts_json",
    "build_offline_conversions_csv",
    "build_offline_conversions_file",
    "build_orders_csv",
    "build_orders_file",
    "build_orders_json",
    "build_simple_orders_csv",
    "build_simple_orders_file",
    "build_status_mapping_json",
    "format_decimal",
    "group_offline_conversions",
    "is_valid_goal_identifier",
]
