"""Value checks and normalisation shared by the upload formats.

The order statuses, the goal identifier rule (:func:`is_valid_goal_identifier`), time zones and
local date-times, decimals, currencies, identifier lists (ClientIDs, phones, e-mails), goals, and
:class:`UploadDataError`, which every builder raises.
"""

import re
from datetime import datetime, timezone, tzinfo
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..errors import MetrikaDataError

IN_PROGRESS = "IN_PROGRESS"
PAID = "PAID"
CANCELLED = "CANCELLED"
SPAM = "SPAM"
ORDER_STATUSES = (IN_PROGRESS, PAID, CANCELLED, SPAM)

# Forbidden in JS-event goal identifiers (Metrica help), plus any whitespace.
_GOAL_FORBIDDEN_RE = re.compile(r'[/\\&#?="\s]')
# Normalised e-mail: name@domain.tld without whitespace, upper-case Latin letters or the
# characters that would need CSV quoting inside a multi-value cell (, ; ").
_EMAIL_RE = re.compile(r'[^\s,;"@A-Z]+@[^\s,;"@A-Z]+\.[^\s,;"@A-Z]+')
_DATETIME_FORMAT = "%04d-%02d-%02d %02d:%02d:%02d"


class UploadDataError(MetrikaDataError):
    """Input that cannot be turned into a valid upload; ``row_id`` names the row (or None).

    A :class:`~..errors.MetrikaDataError`, hence a ``ValueError``.
    """

    def __init__(self, message, row_id=None):
        super().__init__(message)
        self.row_id = row_id


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


def is_currency_code(value):
    """Whether ``value`` has the form of an ISO 4217 code: three upper-case Latin letters."""
    return (
        isinstance(value, str)
        and len(value) == 3
        and value.isascii()
        and value.isalpha()
        and value.isupper()
    )


def _currency(value, row_id):
    if value is None or value == "":
        return ""
    if not is_currency_code(value):
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
