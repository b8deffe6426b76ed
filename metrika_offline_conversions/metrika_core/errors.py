"""Typed errors raised by :class:`~.client.MetrikaClient`, and the local data errors.

Every :class:`MetrikaError` carries a ``retryable`` flag and a ``maybe_accepted`` flag (class-level
defaults an instance may override), a ``pauses_sending`` flag (class level: an administrator must
fix something before any further request can succeed) and a readable ``str()``. Nothing here ever
sees the OAuth token: the client sends it only in the ``Authorization`` header and builds no
message from it.

Hierarchy of the errors about a request (what Metrica answered, or that it did not)::

    MetrikaError
    ├── MetrikaAuthError                 401 / 403            pauses sending (re-authorise)
    ├── MetrikaRejectedError             (base: carries Metrica's ``errors`` list)
    │   ├── MetrikaSettingsError         404, request-level 400, 405/406/415   pauses sending
    │   ├── MetrikaBadRequestError       400 about the file, 409, 413…  not retryable (fix data)
    │   └── MetrikaValidationError       CDP upload FAILED    not retryable
    ├── MetrikaQuotaError                429 / 420            retryable, ``retry_after`` always set
    ├── MetrikaServerError               5xx                  retryable, ``retry_after`` from header
    ├── MetrikaTransportError            no HTTP answer       retryable
    │   └── MetrikaTimeoutError          connect/read timeout retryable
    └── MetrikaUnexpectedResponseError   unusable answer      not retryable

Errors found locally, before any request, are ``ValueError`` subclasses (so an existing
``except ValueError`` keeps catching them), under one base the addon can catch exactly::

    MetrikaDataError(ValueError)
    ├── MetrikaConfigError               the client's settings: token, counter id, URL, timeouts
    ├── UploadCommentError               an upload comment with characters Metrica does not allow
    ├── UploadDataError (formats)        input that cannot become a valid upload row / file
    └── InvalidIdentifier (identifiers)  a ClientID, yclid, phone or e-mail that is not valid

``maybe_accepted`` tells whether Metrica may have stored the request although the client got no
usable answer (read timeout, dropped connection, 5xx). Before re-posting such an upload the caller
checks the offline uploadings list or :meth:`~.client_cdp.MetrikaCdpClient.find_cdp_uploading`.

The one place that maps an HTTP answer to an error is :func:`error_from_response`.
"""

import datetime
import email.utils
import logging
import re

_logger = logging.getLogger(__name__)

#: Wait implied by a 429/420 quota answer that names no known quota and has no Retry-After.
DEFAULT_QUOTA_RETRY_AFTER = 60.0
#: Wait for the per-second quotas (30 requests/s per IP).
SHORT_QUOTA_RETRY_AFTER = 1.0
#: Wait for the "3 parallel requests per user" quota.
PARALLEL_QUOTA_RETRY_AFTER = 2.0

# Quotas (https://yandex.com/dev/metrika/en/intro/quotas, .../en/intro/errors). The per-user daily
# quota is lifted "at 00:00 Greenwich Mean Time (GMT)"; the quotas page gives no time for the
# per-counter one (its row is blank), and the errors page calls it daily ("The tag exceeded the
# daily limit on API requests"), so it is taken to reset at the same 00:00 UTC. (The legacy api2
# page said midnight Moscow time, 21:00 UTC: that would only make our wait 3 hours too long.)
QUOTA_BY_UID = "quota_requests_by_uid"  # 5 000 requests per user per day
QUOTA_BY_COUNTER = "quota_requests_by_counter_id"  # requests per counter per day
QUOTA_BY_IP = "quota_requests_by_ip"  # requests per IP per second
QUOTA_PARALLEL = "quota_parallel_requests"  # 3 parallel requests per user
QUOTA_GRANTS = "quota_grants_requests"  # access grants per counter per hour, reset at the hour
QUOTA_DELEGATES = "quota_delegate_requests"  # representatives added per hour, reset at the hour
#: Quotas lifted at the next 00:00 UTC.
DAILY_QUOTAS = (QUOTA_BY_UID, QUOTA_BY_COUNTER)
#: Quotas lifted at the start of the next hour (00 minutes).
HOURLY_QUOTAS = (QUOTA_GRANTS, QUOTA_DELEGATES)

# What a 400 is about (https://yandex.com/dev/metrika/en/intro/errors, metrika-api.md §4.2): the
# request itself (a query parameter missing or wrong: the same for every request, so sending must
# pause) or the file it carried (this upload only).
REQUEST_LEVEL_ERROR_TYPES = ("invalid_parameter", "missing_parameter")
#: Statuses that say the request's shape is wrong, whatever file it carries.
REQUEST_LEVEL_STATUSES = (404, 405, 406, 415)
#: Query and path parameters of the requests this client sends: an ``invalid_parameter`` located
#: at one of them is about the request, not the uploaded content.
REQUEST_PARAMETERS = (
    "type",
    "comment",
    "merge_mode",
    "delimiter_type",
    "columns_mapping",
    "limit",
    "offset",
    "datetime_offset",
    "source",
    "client_id_type",
    "counter_id",
    "counterid",
    "uploading_id",
    "uploadingid",
)

#: Upper bound for any Retry-After header we honour (a broken header must not park us for years).
MAX_HEADER_RETRY_AFTER = 7 * 24 * 3600.0

_MAX_TEXT = 500  # longest server message kept in an error text


def _rebuild(cls, state):
    """Unpickle helper: errors take keyword arguments, so the default pickling would fail."""
    obj = cls.__new__(cls)
    Exception.__init__(obj, state.get("message", ""))
    obj.__dict__.update(state)
    return obj


def _clip(text, limit=_MAX_TEXT):
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class MetrikaError(Exception):
    """Base of every error the client raises.

    :param message: human-readable reason (Metrica's own message when it gave one)
    :param status: HTTP status of the answer, or ``None`` when there was no answer
    :param error_type: Metrica's ``error_type`` of the first error (``invalid_token``,
        ``quota_requests_by_uid`` …) or ``None``
    :param retryable: override the class default
    :param maybe_accepted: override the class default (see the module docstring)
    """

    retryable = False
    maybe_accepted = False
    #: An administrator must fix something (token, counter, settings) before any request can
    #: succeed: stop sending for this counter instead of failing batch after batch.
    pauses_sending = False

    def __init__(
        self, message, *, status=None, error_type=None, retryable=None, maybe_accepted=None
    ):
        super().__init__(message)
        self.message = message
        self.status = status
        self.error_type = error_type
        if retryable is not None:
            self.retryable = bool(retryable)
        if maybe_accepted is not None:
            self.maybe_accepted = bool(maybe_accepted)

    def _details(self):
        """Extra text appended to ``str()`` by subclasses."""
        return ""

    def __str__(self):
        head = []
        if self.status is not None:
            head.append("HTTP %s" % self.status)
        if self.error_type:
            head.append(str(self.error_type))
        text = self.message or self.__class__.__name__
        if head:
            text = "%s: %s" % (" ".join(head), text)
        return text + self._details()

    def __repr__(self):
        return "%s(status=%r, error_type=%r, message=%r)" % (
            self.__class__.__name__,
            self.status,
            self.error_type,
            self.message,
        )

    def __reduce__(self):
        return (_rebuild, (self.__class__, self.__dict__.copy()))

    def redact(self, secret):
        """Replace ``secret`` everywhere in this error's texts (defence in depth).

        The client calls it with the token before raising, in case a server ever echoed it.
        """
        if not secret:
            return self
        for name, value in list(self.__dict__.items()):
            self.__dict__[name] = _redact_value(value, secret)
        self.args = tuple(_redact_value(arg, secret) for arg in self.args)
        return self


def _redact_value(value, secret):
    if isinstance(value, str):
        return value.replace(secret, "***")
    if isinstance(value, list):
        return [_redact_value(item, secret) for item in value]
    if isinstance(value, tuple):
        return tuple(_redact_value(item, secret) for item in value)
    if isinstance(value, dict):
        return {key: _redact_value(item, secret) for key, item in value.items()}
    return value


class MetrikaAuthError(MetrikaError):
    """401/403: the token is missing, invalid, revoked, or has no access to the counter.

    ``error_type`` keeps Metrica's reason (``unauthorized``, ``invalid_token``, ``access_denied``,
    ``counter_in_connect``). Metrica answers 403 ``access_denied`` both for a token without the
    needed scope and for a user without access to the counter, so both land here. Not retryable;
    ``pauses_sending``: an administrator must re-authorise or grant access.
    """

    pauses_sending = True


class MetrikaRejectedError(MetrikaError):
    """Base of the answers that refuse the request and say why.

    ``errors`` is the list of Metrica's messages, each ``"<error_type>: <message> (at <location>)"``
    (for :class:`MetrikaValidationError`, its ``api_validation_errors``).
    """

    def __init__(self, message, *, errors=None, **kwargs):
        super().__init__(message, **kwargs)
        self.errors = [str(e) for e in (errors or [])]

    def _details(self):
        extra = [
            e
            for e in self.errors
            if e and e != self.message and not e.endswith(": " + str(self.message))
        ]
        if not extra:
            return ""
        shown = "; ".join(extra[:5])
        if len(extra) > 5:
            shown += "; … (%d more)" % (len(extra) - 5)
        return " [%s]" % shown


class MetrikaBadRequestError(MetrikaRejectedError):
    """400 about the request's content (the uploaded file), and the other non-retryable 4xx
    (409, 413 …): fix this upload. Settings faults are :class:`MetrikaSettingsError`.
    """


class MetrikaSettingsError(MetrikaRejectedError):
    """A fault of the settings or of the request's shape, the same for every request.

    What an administrator must fix, as opposed to the content of one file
    (:class:`MetrikaBadRequestError`). The split follows Yandex's error list
    (https://yandex.com/dev/metrika/en/intro/errors) and metrika-api.md §4:

    * 404 ``not_found`` ("The specified object was not found"): the counter id is wrong or the
      counter was deleted. (Polling an uploading id that Metrica gave us gets the same answer only
      if the counter changed since, so it pauses too.)
    * 405, 406 ``not_acceptable``, 415: the request's method or format is wrong, e.g. a wrong API
      URL in front of Metrica.
    * 400 with ``missing_parameter`` ("A required parameter was omitted"), or ``invalid_parameter``
      ("Invalid parameter set") whose ``location`` names one of the request's query or path
      parameters (:data:`REQUEST_PARAMETERS`: ``merge_mode``, ``comment`` …). A 400 whose errors
      are about the uploaded content (``invalid_uploading``, ``invalid_json``,
      ``limit_exceeded``…, or an ``invalid_parameter`` without a location or located elsewhere,
      e.g. in the body) stays :class:`MetrikaBadRequestError`. Yandex does not document the
      ``location`` values; the rule errs towards the file, so an unknown 400 never pauses sending.

    No access to the counter is a 403, :class:`MetrikaAuthError`. Not retryable, never accepted;
    ``pauses_sending``.
    """

    pauses_sending = True


class MetrikaQuotaError(MetrikaError):
    """429 (and 420, the code the English quota page documents): a quota is exhausted.

    ``retry_after`` (seconds, always set) is, in order of preference:

    * the ``Retry-After`` header (seconds or an HTTP date), when present;
    * the daily quotas ``quota_requests_by_uid`` (5 000 requests/user/day) and
      ``quota_requests_by_counter_id`` (per counter per day): seconds until the next 00:00 UTC;
    * the hourly ``quota_grants_requests`` and ``quota_delegate_requests``: seconds until the next
      full hour (UTC);
    * ``quota_requests_by_ip`` (per second): :data:`SHORT_QUOTA_RETRY_AFTER` (1 s);
    * ``quota_parallel_requests``: :data:`PARALLEL_QUOTA_RETRY_AFTER` (2 s);
    * anything else (an unknown quota, no body): :data:`DEFAULT_QUOTA_RETRY_AFTER` (60 s).
    """

    retryable = True

    def __init__(self, message, *, retry_after=None, **kwargs):
        super().__init__(message, **kwargs)
        self.retry_after = DEFAULT_QUOTA_RETRY_AFTER if retry_after is None else float(retry_after)

    def _details(self):
        return " (retry after %d s)" % round(self.retry_after)


class MetrikaServerError(MetrikaError):
    """5xx: Metrica failed (``backend_error`` 503, ``timeout`` 504, bare 500/502).

    Retryable. ``retry_after`` is ``None`` unless the answer had a ``Retry-After`` header.
    The request may have been processed (``maybe_accepted``): check before re-posting an upload.
    """

    retryable = True
    maybe_accepted = True

    def __init__(self, message, *, retry_after=None, **kwargs):
        super().__init__(message, **kwargs)
        self.retry_after = None if retry_after is None else float(retry_after)


class MetrikaTransportError(MetrikaError):
    """No HTTP answer: connection refused or reset, dropped connection, broken TLS.

    Retryable by default. ``maybe_accepted`` is ``False`` only when the request provably never
    left (the connection could not be opened).
    """

    retryable = True
    maybe_accepted = True


class MetrikaTimeoutError(MetrikaTransportError):
    """Connect or read timeout. Retryable.

    After a *read* timeout the upload may have been accepted by Metrica (``maybe_accepted``);
    after a *connect* timeout it was not sent at all (``maybe_accepted`` is ``False``).
    """


class MetrikaUnexpectedResponseError(MetrikaError):
    """An answer the client cannot use: a 2xx body that is not the expected JSON shape, or a
    status outside the known families (1xx, 3xx, > 599).

    Not retryable: the same request would get the same answer, and a human (or a client update)
    must look at it. The first bytes of the body are *not* kept (they may contain customer data).
    """


class MetrikaValidationError(MetrikaRejectedError):
    """A CDP upload was answered 200 with ``api_validation_status == "FAILED"``: nothing loaded.

    ``errors`` is Metrica's ``api_validation_errors`` list; ``uploading`` the whole ``uploading``
    dict (with ``uploading_id``). Not retryable: the file must be fixed.
    """

    def __init__(self, message, *, errors=None, uploading=None, **kwargs):
        kwargs.setdefault("status", 200)
        super().__init__(message, errors=errors, **kwargs)
        self.uploading = dict(uploading or {})

    @property
    def uploading_id(self):
        return self.uploading.get("uploading_id")

    def _details(self):
        if not self.errors:
            return ""
        shown = "; ".join(_clip(e, 200) for e in self.errors[:5])
        if len(self.errors) > 5:
            shown += "; … (%d more)" % (len(self.errors) - 5)
        return " [%s]" % shown


class MetrikaDataError(ValueError):
    """Base of the problems found locally, before any request: bad settings, input or comment.

    A ``ValueError``, so code that catches ``ValueError`` keeps working; the addon catches this
    class (or a subclass) to tell them from real bugs.
    """


class MetrikaConfigError(MetrikaDataError):
    """A client setting that cannot work: empty or unsafe token, bad counter id, base URL,
    timeouts or retry count. The message never contains the token."""


class UploadCommentError(MetrikaDataError):
    """An upload comment Metrica does not allow: more than 255 characters, or characters other
    than digits, Latin and Cyrillic letters (see :func:`~.client.offline_upload_comment`)."""


# --------------------------------------------------------------------------------------------
# status → exception


def _utc_now(now):
    """Normalise the injectable clock value to an aware UTC datetime."""
    if now is None:
        return datetime.datetime.now(datetime.timezone.utc)
    if callable(now):
        now = now()
    if isinstance(now, (int, float)):
        return datetime.datetime.fromtimestamp(now, datetime.timezone.utc)
    if now.tzinfo is None:
        return now.replace(tzinfo=datetime.timezone.utc)
    return now.astimezone(datetime.timezone.utc)


def seconds_until_next_utc_midnight(now=None):
    """Seconds from ``now`` (datetime, epoch seconds or ``None`` = now) to the next 00:00 UTC."""
    now = _utc_now(now)
    midnight = datetime.datetime.combine(
        now.date() + datetime.timedelta(days=1), datetime.time(0), tzinfo=datetime.timezone.utc
    )
    return (midnight - now).total_seconds()


def seconds_until_next_utc_hour(now=None):
    now = _utc_now(now)
    top = now.replace(minute=0, second=0, microsecond=0) + datetime.timedelta(hours=1)
    return (top - now).total_seconds()


def _header(headers, name):
    if not headers:
        return None
    value = headers.get(name) if hasattr(headers, "get") else None
    if value is None:
        lowered = name.lower()
        for key, item in dict(headers).items():
            if str(key).lower() == lowered:
                return item
    return value


def parse_retry_after(value, now=None):
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP date); ``None`` if unusable."""
    if value is None:
        return None
    value = str(value).strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=datetime.timezone.utc)
        seconds = (when - _utc_now(now)).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), MAX_HEADER_RETRY_AFTER)


def _parse_errors(body):
    """(error_types, readable messages, top-level message) from Metrica's error body."""
    types, messages, top = [], [], None
    if not isinstance(body, dict):
        return types, messages, top
    if isinstance(body.get("message"), str) and body["message"].strip():
        top = _clip(body["message"])
    errors = body.get("errors")
    if isinstance(errors, list):
        for item in errors:
            if isinstance(item, dict):
                etype = item.get("error_type")
                msg = item.get("message")
                loc = item.get("location")
                if etype:
                    types.append(str(etype))
                text = (
                    ": ".join(str(x) for x in (etype, msg and _clip(msg)) if x) or "unknown error"
                )
                if loc:
                    text += " (at %s)" % _clip(loc, 100)
                messages.append(text)
            elif item:
                messages.append(_clip(item))
    return types, messages, top


def _error_items(body):
    errors = body.get("errors") if isinstance(body, dict) else None
    return [item for item in errors if isinstance(item, dict)] if isinstance(errors, list) else []


def _quota_retry_after(error_types, now):
    waits = []
    for etype in error_types or [None]:
        if etype in DAILY_QUOTAS:
            waits.append(seconds_until_next_utc_midnight(now))
        elif etype in HOURLY_QUOTAS:
            waits.append(seconds_until_next_utc_hour(now))
        elif etype == QUOTA_BY_IP:
            waits.append(SHORT_QUOTA_RETRY_AFTER)
        elif etype == QUOTA_PARALLEL:
            waits.append(PARALLEL_QUOTA_RETRY_AFTER)
        else:
            waits.append(DEFAULT_QUOTA_RETRY_AFTER)
    return max(waits)


# A location that is a parameter's bare name, optionally "query." / "path." first.
_PARAMETER_LOCATION_RE = re.compile(r"(?:(?:query|path)[.:])?([a-z_]+)")


def _is_request_level(errors):
    """True when one of Metrica's errors (dicts of its body) is about the request, not the file."""
    for item in errors:
        error_type = item.get("error_type")
        if error_type not in REQUEST_LEVEL_ERROR_TYPES:
            continue
        if error_type == "missing_parameter":
            return True
        # "merge_mode", "query.merge_mode" name a parameter; "order_statuses[0].type" (a field
        # of the body) and no location at all do not.
        match = _PARAMETER_LOCATION_RE.fullmatch(str(item.get("location") or "").strip().lower())
        if match and match.group(1) in REQUEST_PARAMETERS:
            return True
    return False


_REASONS = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Access denied",
    404: "Not found",
    405: "Method not allowed",
    406: "Not acceptable",
    408: "Request timeout",
    409: "Conflict",
    413: "Payload too large",
    415: "Unsupported media type",
    420: "Quota exceeded",
    429: "Quota exceeded",
    500: "Internal server error",
    502: "Bad gateway",
    503: "Service unavailable",
    504: "Gateway timeout",
}


def error_from_response(status, body=None, headers=None, now=None):
    """Map one non-2xx HTTP answer to the matching :class:`MetrikaError` (returned, not raised).

    :param status: HTTP status code
    :param body: the parsed JSON body, or ``None`` when the body was empty or not JSON
    :param headers: response headers (any mapping; looked up case-insensitively)
    :param now: clock for the daily-quota wait: aware/naive-UTC ``datetime``, epoch seconds,
        a callable returning either, or ``None`` for the real clock

    ===============================  =====================================
    status                           error
    ===============================  =====================================
    401, 403                         :class:`MetrikaAuthError`
    404, 405, 406, 415               :class:`MetrikaSettingsError`
    400 about the request            :class:`MetrikaSettingsError` (see its docstring)
    420, 429                         :class:`MetrikaQuotaError`
    408                              :class:`MetrikaTimeoutError` (not processed)
    other 4xx (400 about the file)   :class:`MetrikaBadRequestError`
    5xx                              :class:`MetrikaServerError`
    anything else (1xx/2xx/3xx)      :class:`MetrikaUnexpectedResponseError`
    ===============================  =====================================
    """
    status = int(status)
    types, messages, top = _parse_errors(body)
    error_type = types[0] if types else None
    if top:
        message = top
    elif messages:
        message = messages[0].split(": ", 1)[-1] if error_type else messages[0]
    else:
        message = _REASONS.get(status, "Unexpected HTTP status")
    kwargs = {"status": status, "error_type": error_type}
    header_wait = parse_retry_after(_header(headers, "Retry-After"), now)

    if status in (401, 403):
        return MetrikaAuthError(message, **kwargs)
    if status in (420, 429):
        wait = header_wait if header_wait is not None else _quota_retry_after(types, now)
        return MetrikaQuotaError(message, retry_after=wait, **kwargs)
    if status == 408:
        return MetrikaTimeoutError(message, maybe_accepted=False, **kwargs)
    if status in REQUEST_LEVEL_STATUSES or (
        status == 400 and _is_request_level(_error_items(body))
    ):
        return MetrikaSettingsError(message, errors=messages, **kwargs)
    if 400 <= status < 500:
        return MetrikaBadRequestError(message, errors=messages, **kwargs)
    if 500 <= status < 600:
        return MetrikaServerError(message, retry_after=header_wait, **kwargs)
    return MetrikaUnexpectedResponseError("Unexpected HTTP status %s" % status, **kwargs)
