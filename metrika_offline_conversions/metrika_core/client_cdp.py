"""Client methods of the CRM data ("CDP") API's detailed flow, and of its upload history.

The addon's detailed upload method uses them (contacts, orders, the order status mapping, and
the upload history to find an upload whose answer was lost); the files they send are built by
:mod:`.formats.cdp_detailed`. They send through the client's one request path,
:meth:`~.client.MetrikaClient._request`, so this module imports no HTTP library.
"""

import csv
import datetime
import io

from .client import DELIMITER_TYPES, MERGE_MODES, MetrikaClient, _as_bytes, _check_choice
from .errors import MetrikaUnexpectedResponseError

UPLOAD_FORMATS = ("csv", "json")
_DELIMITERS = {"COMMA": ",", "SEMICOLON": ";"}


def _format_columns_mapping(mapping):
    """``{"uniq_id": "ID"}`` → ``"uniq_id":"ID"`` (the string form Metrica expects)."""
    if isinstance(mapping, str):
        return mapping
    pairs = mapping.items() if isinstance(mapping, dict) else mapping
    parts = []
    for system_name, header in pairs:
        if '"' in str(system_name) or '"' in str(header):
            raise ValueError("columns_mapping names must not contain double quotes")
        parts.append('"%s":"%s"' % (system_name, header))
    if not parts:
        raise ValueError("columns_mapping must not be empty")
    return ",".join(parts)


def _identity_mapping(data, delimiter_type):
    """Identity mapping built from the CSV header row, for files already using system names."""
    first_line = data.split(b"\n", 1)[0].rstrip(b"\r").decode("utf-8-sig")
    headers = next(csv.reader(io.StringIO(first_line), delimiter=_DELIMITERS[delimiter_type]), [])
    headers = [h for h in headers if h]
    if not headers:
        raise ValueError("the CSV has no header row to derive columns_mapping from")
    return _format_columns_mapping((h, h) for h in headers)


def _format_offset(value):
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, datetime.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(datetime.timezone.utc).replace(tzinfo=None)
        return value.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (value.microsecond // 1000)
    raise TypeError("datetime_offset must be a datetime or an ISO string")


def _parse_metrika_datetime(value):
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.timezone.utc)
    return parsed


class MetrikaCdpClient(MetrikaClient):
    """:class:`~.client.MetrikaClient` plus the detailed flow's uploads (contacts, orders), the
    order status mapping and the CDP upload history (:meth:`find_cdp_uploading`)."""

    def _cdp_upload(
        self, kind, data, *, fmt, merge_mode, delimiter_type, columns_mapping, filename
    ):
        _check_choice("merge_mode", merge_mode, MERGE_MODES)
        _check_choice("fmt", fmt, UPLOAD_FORMATS)
        path = "%s/data/%s/%s" % (self._cdp_path, kind, fmt)
        if fmt == "json":
            params = {"merge_mode": merge_mode}
            if isinstance(data, (bytes, bytearray, memoryview, str)):
                body = self._request("POST", path, params=params, data=_as_bytes(data))
            else:
                payload = {kind: data} if isinstance(data, (list, tuple)) else data
                body = self._request("POST", path, params=params, json_body=payload)
            return self._uploading(body)
        _check_choice("delimiter_type", delimiter_type, DELIMITER_TYPES)
        data = _as_bytes(data)
        if columns_mapping is None:
            columns_mapping = _identity_mapping(data, delimiter_type)
        params = {
            "merge_mode": merge_mode,
            "columns_mapping": _format_columns_mapping(columns_mapping),
            "delimiter_type": delimiter_type,
        }
        files = {"file": (filename, data, "text/csv")}
        return self._uploading(self._request("POST", path, params=params, files=files))

    def upload_contacts(
        self,
        data,
        *,
        columns_mapping=None,
        merge_mode="SAVE",
        fmt="csv",
        delimiter_type="COMMA",
        filename="contacts.csv",
    ):
        """Upload customers: ``…/data/contacts/csv`` (multipart) or ``…/data/contacts/json``.

        :param data: CSV bytes/str; for ``fmt="json"`` JSON bytes/str, a ``{"contacts": [...]}``
            dict or the list of contacts
        :param columns_mapping: ``{"system_name": "CSV header"}``, a list of pairs, or the ready
            string ``"uniq_id":"ID",…``; ``None`` = identity mapping from the CSV header row
        :raise MetrikaValidationError: on ``api_validation_status == "FAILED"``
        """
        return self._cdp_upload(
            "contacts",
            data,
            fmt=fmt,
            merge_mode=merge_mode,
            delimiter_type=delimiter_type,
            columns_mapping=columns_mapping,
            filename=filename,
        )

    def upload_orders(
        self,
        data,
        *,
        columns_mapping=None,
        merge_mode="SAVE",
        fmt="csv",
        delimiter_type="COMMA",
        filename="orders.csv",
    ):
        """Upload orders: ``…/data/orders/csv`` (multipart) or ``…/data/orders/json``.

        Same conventions as :meth:`upload_contacts` (a JSON list is wrapped as
        ``{"orders": [...]}``).
        """
        return self._cdp_upload(
            "orders",
            data,
            fmt=fmt,
            merge_mode=merge_mode,
            delimiter_type=delimiter_type,
            columns_mapping=columns_mapping,
            filename=filename,
        )

    def get_order_statuses(self):
        """``GET …/schema/order_statuses`` → list of status mappings."""
        return self._field(
            self._request("GET", self._cdp_path + "/schema/order_statuses"), "order_statuses", list
        )

    def set_order_statuses(self, statuses):
        """``POST …/schema/order_statuses`` with ``{"order_statuses": [...]}`` → ``True``.

        :param statuses: the list of statuses, the whole ``{"order_statuses": [...]}`` dict, or its
            JSON bytes/str. Idempotent, so it is retried in-process like a GET.
        """
        path = self._cdp_path + "/schema/order_statuses"
        if isinstance(statuses, (bytes, bytearray, memoryview, str)):
            body = self._request("POST", path, data=_as_bytes(statuses), idempotent=True)
        else:
            payload = statuses if isinstance(statuses, dict) else {"order_statuses": list(statuses)}
            body = self._request("POST", path, json_body=payload, idempotent=True)
        if not isinstance(body, dict) or body.get("success") is not True:
            raise MetrikaUnexpectedResponseError(
                "Metrica did not confirm the order statuses", status=200
            )
        return True

    def last_uploadings(self, limit=10, datetime_offset=None):
        """``GET …/last_uploadings?limit&datetime_offset&source=API`` → list, newest first.

        :param limit: 1–1000
        :param datetime_offset: only uploads strictly earlier (``datetime`` or ISO string)
        """
        limit = int(limit)
        if not 1 <= limit <= 1000:
            raise ValueError("limit must be between 1 and 1000")
        params = {
            "limit": limit,
            "datetime_offset": _format_offset(datetime_offset),
            "source": "API",
        }
        return self._field(
            self._request("GET", self._cdp_path + "/last_uploadings", params=params),
            "uploadings",
            list,
        )

    def find_cdp_uploading(
        self,
        uploading_id=None,
        limit=100,
        *,
        since=None,
        elements_count=None,
        entity_subtype=None,
        exclude_ids=(),
    ):
        """Look an upload up in :meth:`last_uploadings`; the dict or ``None``.

        With ``uploading_id`` the match is by id. After a timeout the id is unknown: pass
        ``since`` (aware ``datetime``, e.g. just before the POST) and optionally ``elements_count``
        (rows sent) to get the newest upload made since then with that many elements.
        ``entity_subtype`` (``CONTACTS``, ``ORDERS``, ``SIMPLE_ORDERS``: what the list's items
        say they hold) narrows the match where the item tells it; uploads whose id is in
        ``exclude_ids`` (those already accounted for) never match.
        """
        if uploading_id is None and since is None:
            raise ValueError("give uploading_id or since")
        excluded = {str(known) for known in exclude_ids}
        if since is not None:
            if since.tzinfo is None:
                since = since.replace(tzinfo=datetime.timezone.utc)
            since = since.replace(microsecond=0)  # Metrica's times may have whole seconds only
        for uploading in self.last_uploadings(limit=limit):
            if uploading_id is not None and str(uploading.get("uploading_id")) != str(uploading_id):
                continue
            if since is not None:
                when = _parse_metrika_datetime(uploading.get("datetime"))
                if when is None or when < since:
                    continue
            if elements_count is not None and uploading.get("elements_count") != elements_count:
                continue
            subtype = uploading.get("entity_subtype")
            if entity_subtype is not None and subtype and subtype != entity_subtype:
                continue
            if str(uploading.get("uploading_id")) in excluded:
                continue
            return uploading
        return None
