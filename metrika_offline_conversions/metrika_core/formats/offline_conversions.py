"""The offline conversions file of the Management API (``offline_conversions/upload``).

One row per goal hit, one identifier column per file: the addon sends its goal conversions with
:func:`build_offline_conversions_file`.
"""

from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal

from ._csv import _built_file, _latest_indexes, _raise_first, _write_csv_chunked
from ._values import UploadDataError, _check_aware, _currency, _decimal, is_valid_goal_identifier

OFFLINE_IDENTIFIER_COLUMNS = ("ClientId", "Yclid", "UserId", "PurchaseId")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True, slots=True)
class OfflineConversion:
    """One goal hit for ``offline_conversions/upload``; the identifier type is per file."""

    identifier: str
    target: str
    date_time: datetime
    price: Decimal | None = None
    currency: str | None = None


def _decimal_cell(value, what, row_id):
    if value is None:
        return ""
    return format(_decimal(value, what, row_id), "f")


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
