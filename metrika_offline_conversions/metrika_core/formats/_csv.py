"""CSV writing, and :class:`BuiltFile`: what a builder made of each of its input rows."""

import csv
import io
from dataclasses import dataclass
from itertools import islice

from ._values import UploadDataError

# CSV delimiter -> value of the ``delimiter_type`` query parameter of the CDP endpoints.
DELIMITER_TYPES = {",": "COMMA", ";": "SEMICOLON"}

_LINE_TERMINATOR = "\n"
_CSV_CHUNK_ROWS = 4096


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


def _check_delimiter(delimiter):
    if delimiter not in DELIMITER_TYPES:
        raise UploadDataError(
            "delimiter must be one of %s, got %r"
            % (", ".join(map(repr, DELIMITER_TYPES)), delimiter)
        )


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


def _raise_first(errors, nothing_message):
    """The old builders' contract: the first problem (in output order) is raised."""
    if errors:
        raise next(iter(errors.values()))
    raise UploadDataError(nothing_message)


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
