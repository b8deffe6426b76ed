"""The file Direct's Conversion Centre pulls from an HTTP(S) link, streamed chunk by chunk.

Yandex Direct help, "Conversion centre", stage 1 (https://yandex.com/support/direct/en/
statistics/conversions): a CSV file with ``;`` between the columns, UTF-8, the CRM order columns
``id;create_date_time;client_uniq_id;client_ids;emails;phones;order_status;revenue``
(``emails_md5``/``phones_md5`` instead of ``emails``/``phones`` for hashed identifiers), the
creation date in the counter's time zone. The Centre takes rows of the last
:data:`CENTRE_WINDOW_DAYS` days; a row dated in the future is an error.

:func:`iter_centre_csv` turns an iterable of :class:`~.simple_orders.SimpleOrder` into the
file's bytes, one chunk at a time, so that its memory does not grow with the row count. Each
row goes through the checks of :func:`default_checks` (the Centre's window, an identifier, the
preflight check) or those the caller gives: a row a check
refuses is left out, and ``on_rejected(order, reason)`` is told why.
"""

from datetime import timedelta

from .. import preflight
from ._csv import _LINE_TERMINATOR
from ._values import _resolve_time_zone
from .simple_orders import _simple_order_rows

CENTRE_DELIMITER = ";"
# The Centre accepts conversions of at most this many days ago.
CENTRE_WINDOW_DAYS = 113
CENTRE_COLUMNS = (
    "id",
    "create_date_time",
    "client_uniq_id",
    "client_ids",
    "emails",
    "phones",
    "order_status",
    "revenue",
)
CENTRE_COLUMNS_HASHED = (
    "id",
    "create_date_time",
    "client_uniq_id",
    "client_ids",
    "emails_md5",
    "phones_md5",
    "order_status",
    "revenue",
)
# Rows written per chunk: a chunk is one piece of the HTTP response body.
CENTRE_CHUNK_ROWS = 2000

# Why a row is left out of the file (the ``reason`` passed to ``on_rejected``).
REJECT_TOO_OLD = "too_old"
REJECT_FUTURE = "future"
REJECT_NO_IDENTIFIER = "no_identifier"
# Followed by the preflight rule the row breaks (``preflight:value_range``).
REJECT_PREFLIGHT_PREFIX = "preflight:"


def centre_window_start(now):
    """The oldest creation date the file serves when it is built at ``now`` (aware)."""
    return now - timedelta(days=CENTRE_WINDOW_DAYS)


def default_checks(now):
    """The Centre's own rules, then the preflight check of Yandex's published rules, as per-row
    checks: ``check(order) -> reason or None``."""
    oldest = centre_window_start(now)

    def in_window(order):
        created = order.create_date_time
        if created < oldest:
            return REJECT_TOO_OLD
        if created > now:
            return REJECT_FUTURE
        return None

    def has_identifier(order):
        if order.client_ids or order.emails or order.phones:
            return None
        return REJECT_NO_IDENTIFIER

    return [in_window, has_identifier, preflight_check(now)]


def preflight_check(now):
    """The preflight check (:mod:`..preflight`) of each row, with the Centre's window; the
    reason of a refused row is :data:`REJECT_PREFLIGHT_PREFIX` and the rule it breaks. The
    rows past the most a file may weigh are refused too (the Centre gets them once older
    ones leave its window)."""
    check_row = preflight.row_checker(preflight.FORMAT_CENTRE_LINK)
    size = 0

    def passes_preflight(order):
        nonlocal size
        try:
            row_bytes = check_row(order, now)
        except preflight.RowRefused as refusal:
            return REJECT_PREFLIGHT_PREFIX + refusal.rule
        if size + row_bytes > preflight.MAX_FILE_BYTES:
            return REJECT_PREFLIGHT_PREFIX + preflight.RULE_FILE_SIZE
        size += row_bytes
        return None

    return passes_preflight


def centre_header(hashed):
    columns = CENTRE_COLUMNS_HASHED if hashed else CENTRE_COLUMNS
    return (CENTRE_DELIMITER.join(columns) + _LINE_TERMINATOR).encode("utf-8")


def iter_centre_csv(
    orders, time_zone, now, *, hashed=False, checks=None, on_rejected=None, on_written=None
):
    """Yield the Centre's file as bytes chunks: the header, then rows in chunks.

    ``orders``: any iterable of :class:`SimpleOrder` (read lazily, chunk by chunk), identifiers
    normalised and not hashed; ``hashed`` writes their MD5 in the ``*_md5`` columns. ``now``
    (aware) bounds the window. ``checks`` defaults to :func:`default_checks`; a row refused by
    a check, or by the format's own validation, is left out and reported to
    ``on_rejected(order, reason)``. ``on_written(count)`` is told how many rows each chunk
    holds, before it is yielded.
    """
    tz = _resolve_time_zone(time_zone)
    checks = default_checks(now) if checks is None else checks
    yield centre_header(hashed)
    chunk = []
    for order in orders:
        chunk.append(order)
        if len(chunk) >= CENTRE_CHUNK_ROWS:
            data = _chunk_bytes(chunk, tz, hashed, checks, on_rejected, on_written)
            if data:
                yield data
            chunk = []
    if chunk:
        data = _chunk_bytes(chunk, tz, hashed, checks, on_rejected, on_written)
        if data:
            yield data


def _chunk_bytes(orders, tz, hashed, checks, on_rejected, on_written):
    kept = []
    for order in orders:
        reason = None
        for check in checks:
            reason = check(order)
            if reason:
                break
        if reason:
            if on_rejected is not None:
                on_rejected(order, reason)
        else:
            kept.append(order)
    errors = {}
    lines = []
    for row in _simple_order_rows(kept, range(len(kept)), tz, hashed, errors, []):
        # id, created, client_uniq_id, client_ids, emails, phones, status, revenue (cost,
        # currency and goals are not columns of the Centre's file).
        lines.append(_line(row[:8]))
    if on_rejected is not None:
        for index, error in errors.items():
            on_rejected(kept[index], str(error))
    if on_written is not None:
        on_written(len(lines))
    return "".join(lines).encode("utf-8")


def _line(cells):
    # A list of identifiers ("79876543210,79991234567") is quoted, as Yandex asks for lists;
    # the other cells (ids, digits, dates, decimals, statuses) never need it.
    return (
        CENTRE_DELIMITER.join(
            '"%s"' % cell.replace('"', '""')
            if ("," in cell or CENTRE_DELIMITER in cell or '"' in cell or "\n" in cell)
            else cell
            for cell in cells
        )
        + _LINE_TERMINATOR
    )
