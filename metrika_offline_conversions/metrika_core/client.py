"""HTTP client for the Yandex Metrica Management and CDP ("CRM data") APIs.

:class:`MetrikaClient` holds what the addon uses: the counter, offline conversions and
``simple_orders``. The detailed CRM flow (contacts, orders, status mapping, CDP upload history)
is :class:`~.client_cdp.MetrikaCdpClient`, its subclass.

:meth:`MetrikaClient._request` is its only method that sends, through the package's one request
path (:func:`.transport.send`). Each public method returns the relevant part of Metrica's JSON
(a plain ``dict`` or ``list``); the status and duration of the last HTTP exchange are kept in
``last_response_status`` and ``last_elapsed`` (seconds), ``last_attempts`` counts the attempts of
the last call. A client instance is not meant to be shared between threads.

Retries. ``max_retries`` (default 0) enables in-process retries with :class:`~.retry.RetryPolicy`
and the injectable ``sleep``. They are applied

* to idempotent requests (all GETs, ``MetrikaCdpClient.set_order_statuses``) on every
  retryable error;
* to uploads (non-idempotent POSTs) only when the error proves that Metrica did not take the
  request (``maybe_accepted`` is false: quota 429/420, connection refused, connect timeout).

An upload that timed out on read, lost its connection or got a 5xx is *not* re-posted here: the
caller (the Odoo cron) first looks for it with :meth:`MetrikaClient.find_offline_uploadings`
(every page of the uploadings list, by the unique comment :func:`offline_upload_comment` builds)
and re-sends only when it is not there; a CDP upload can be looked for with
:meth:`~.client_cdp.MetrikaCdpClient.find_cdp_uploading`. A retry whose wait exceeds
``max_retry_sleep`` (e.g. a daily quota) is not slept through either: the error is raised for the
caller to reschedule.

The OAuth token is sent only in the ``Authorization: OAuth <token>`` header: never in a URL, a log
line, an error text or ``repr()``.
"""

import logging
import random
import re
import time

from .errors import (
    MetrikaBadRequestError,
    MetrikaConfigError,
    MetrikaError,
    MetrikaSettingsError,
    MetrikaUnexpectedResponseError,
    MetrikaValidationError,
    UploadCommentError,
    error_from_response,
)
from .outcomes import VALIDATION_FAILED
from .retry import RetryPolicy
from .transport import USER_AGENT, new_session, send

_logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api-metrika.yandex.net"
DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_READ_TIMEOUT = 60.0
DEFAULT_MAX_RETRY_SLEEP = 60.0

MERGE_MODES = ("SAVE", "UPDATE", "APPEND")
DELIMITER_TYPES = ("COMMA", "SEMICOLON")
OFFLINE_UPLOAD_TYPES = ("BASIC", "CALLS", "CHATS")
#: Longest ``comment`` of an offline upload (upload_1).
MAX_COMMENT_LENGTH = 255
#: Page size of the lost-answer look-up in the offline uploadings list (Metrica's default is
#: 10 000; smaller pages keep each answer small, and the look-up stops once all are found).
DEFAULT_LOOKUP_PAGE_SIZE = 1000
COMMENT_PREFIX = "OdooUpload"
# Marks an escaped character in a comment: "x" + 6 hex digits of its code point. "x" itself is
# escaped too, so two different references never give the same comment.
_COMMENT_ESCAPE = "x"

_TOKEN_RE = re.compile(r"^[\x21-\x7e]+$")  # printable ASCII without spaces: safe in a header
_COUNTER_RE = re.compile(r"^[0-9]+$")
_BASE_URL_RE = re.compile(r"^https?://[^\s/?#]+(/[^\s?#]*)?$")


def is_valid_api_url(url):
    """True for an API root the client accepts as ``base_url``: ``http(s)://host``, optionally a
    path, no query or fragment, no inner whitespace (surrounding whitespace is ignored)."""
    return isinstance(url, str) and _BASE_URL_RE.match(url.strip()) is not None


def is_allowed_comment_character(char):
    """Digits, Latin and Cyrillic letters: the characters Yandex lists for ``comment``.

    "Maximum 255 characters. Can contain digits as well as Latin and Cyrillic letters."
    (https://yandex.com/dev/metrika/en/management/openapi/offline_conversions/upload_1). Digits
    and Latin letters are taken as ASCII; Cyrillic letters are the letters of the Cyrillic block.
    """
    if char.isascii():
        return char.isalnum()
    return "\u0400" <= char <= "\u04ff" and char.isalpha()


def check_upload_comment(comment):
    """``comment`` if Metrica allows it as an offline upload comment, else raise
    :class:`~.errors.UploadCommentError` (1 to 255 digits, Latin and Cyrillic letters)."""
    if not isinstance(comment, str) or not comment:
        raise UploadCommentError("The upload comment must be a non-empty string")
    if len(comment) > MAX_COMMENT_LENGTH:
        raise UploadCommentError(
            "The upload comment must be at most %d characters, got %d"
            % (MAX_COMMENT_LENGTH, len(comment))
        )
    refused = sorted({char for char in comment if not is_allowed_comment_character(char)})
    if refused:
        raise UploadCommentError(
            "The upload comment may contain only digits, Latin and Cyrillic letters, not %s"
            % ", ".join(repr(char) for char in refused)
        )
    return comment


def offline_upload_comment(reference):
    """A unique upload comment made of allowed characters only: ``OdooUpload<reference>``.

    ``reference`` (an int or a string, e.g. the upload's id or reference) keeps its digits and
    Latin/Cyrillic letters; every other character, and the escape letter ``x`` itself, becomes
    ``x`` + 6 hex digits of its code point (``"42"`` → ``OdooUpload42``, ``"a-1"`` →
    ``OdooUploadax00002d1``), so different references always give different comments.

    :raise UploadCommentError: an empty reference, or a comment longer than 255 characters
    """
    if isinstance(reference, bool) or not isinstance(reference, (int, str)):
        raise UploadCommentError("The upload reference must be an int or a string")
    text = str(reference)
    if not text:
        raise UploadCommentError("The upload reference must not be empty")
    escaped = "".join(
        char
        if char != _COMMENT_ESCAPE and is_allowed_comment_character(char)
        else "%s%06x" % (_COMMENT_ESCAPE, ord(char))
        for char in text
    )
    return check_upload_comment(COMMENT_PREFIX + escaped)


def _check_choice(name, value, choices):
    if value not in choices:
        raise ValueError("%s must be one of %s" % (name, ", ".join(choices)))
    return value


def _as_bytes(data, what="data"):
    if isinstance(data, bytes):
        return data
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    if isinstance(data, str):
        return data.encode("utf-8")
    raise TypeError("%s must be bytes or str" % what)


def _newness(uploading):
    return (str(uploading.get("create_time") or ""), uploading.get("id") or 0)


class MetrikaClient:
    """Client of one Metrica counter.

    :param token: OAuth token (scopes ``metrika:offline_data`` + ``metrika:read``, or
        ``metrika:write``)
    :param counter_id: counter (tag) id, a positive int or a string of digits
    :param base_url: API root, ``https://api-metrika.yandex.net`` by default
    :param timeout: ``(connect, read)`` seconds, or one number used for both
    :param session: a ``requests.Session`` to use (the client closes only a session it created)
    :param max_retries: in-process retries after the first attempt (see the module docstring)
    :param retry_policy: :class:`~.retry.RetryPolicy`; a default one when ``None``
    :param sleep: called with the seconds to wait between in-process retries
    :param rng: jitter source for the policy (``random.random``)
    :param clock: returns the current time (aware ``datetime`` or epoch seconds); used for the
        daily-quota wait. ``None`` = the real UTC clock
    :param max_retry_sleep: longest wait slept in-process; a longer one raises instead
    :raise MetrikaConfigError: (a ``ValueError``) empty/unsafe token, bad counter id, timeout,
        retry count or base URL
    """

    def __init__(
        self,
        token,
        counter_id,
        *,
        base_url=DEFAULT_BASE_URL,
        timeout=(DEFAULT_CONNECT_TIMEOUT, DEFAULT_READ_TIMEOUT),
        session=None,
        max_retries=0,
        retry_policy=None,
        sleep=time.sleep,
        rng=random.random,
        clock=None,
        max_retry_sleep=DEFAULT_MAX_RETRY_SLEEP,
    ):
        if not isinstance(token, str) or not token.strip():
            raise MetrikaConfigError("A Metrica OAuth token is required")
        token = token.strip()
        if not _TOKEN_RE.match(token):
            # Never echo the value: it is a secret.
            raise MetrikaConfigError(
                "The Metrica OAuth token contains characters not allowed in a token"
            )
        self._token = token
        self.counter_id = self._check_counter_id(counter_id)
        if not is_valid_api_url(base_url):
            raise MetrikaConfigError("base_url must be an http(s) URL")
        self.base_url = base_url.strip().rstrip("/")
        self.timeout = self._check_timeout(timeout)
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise MetrikaConfigError("max_retries must be a non-negative integer")
        self.max_retries = max_retries
        self.retry_policy = retry_policy if retry_policy is not None else RetryPolicy()
        self._sleep = sleep
        self._rng = rng
        self._clock = clock
        self.max_retry_sleep = float(max_retry_sleep)
        self._own_session = session is None
        self.session = session if session is not None else new_session()
        self.last_response_status = None
        self.last_elapsed = None
        self.last_attempts = 0

    # ---------------------------------------------------------------- plumbing

    @staticmethod
    def _check_counter_id(counter_id):
        if isinstance(counter_id, bool):
            raise MetrikaConfigError("counter_id must be a positive integer")
        if isinstance(counter_id, str):
            counter_id = counter_id.strip()
            if not _COUNTER_RE.match(counter_id):
                raise MetrikaConfigError("counter_id must be a positive integer")
            counter_id = int(counter_id)
        if not isinstance(counter_id, int) or counter_id <= 0:
            raise MetrikaConfigError("counter_id must be a positive integer")
        return counter_id

    @staticmethod
    def _check_timeout(timeout):
        if isinstance(timeout, (tuple, list)):
            if len(timeout) != 2:
                raise MetrikaConfigError("timeout must be a number or a (connect, read) pair")
            values = tuple(timeout)
        else:
            values = (timeout, timeout)
        checked = []
        for value in values:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise MetrikaConfigError("timeouts must be positive numbers of seconds")
            checked.append(float(value))
        return tuple(checked)

    def __repr__(self):
        return "MetrikaClient(counter_id=%r, base_url=%r, token='***')" % (
            self.counter_id,
            self.base_url,
        )

    def close(self):
        """Close the HTTP session if this client created it."""
        if self._own_session:
            self.session.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def _headers(self, extra=None):
        headers = {
            "Authorization": "OAuth " + self._token,
            "User-Agent": USER_AGENT,
            "Accept": "application/json",
        }
        if extra:
            headers.update(extra)
        return headers

    def _request(
        self, method, path, *, params=None, files=None, json_body=None, data=None, idempotent=None
    ):
        """Send one API request (with in-process retries if enabled) and return the parsed JSON.

        :param method: ``GET`` / ``POST`` / …
        :param path: path below ``base_url``, starting with ``/``
        :param params: query parameters (``None`` values are dropped)
        :param files: ``requests`` multipart files mapping
        :param json_body: object sent as JSON
        :param data: raw JSON bytes sent with ``Content-Type: application/json``
        :param idempotent: may be re-sent after any retryable error (default: GET only)
        :return: the decoded JSON body of a 2xx answer
        :raise MetrikaError: one of its subclasses for every other outcome
        """
        if idempotent is None:
            idempotent = method.upper() == "GET"
        attempt = 0
        while True:
            attempt += 1
            self.last_attempts = attempt
            try:
                return self._send_once(
                    method, path, params=params, files=files, json_body=json_body, data=data
                )
            except MetrikaError as err:
                err.redact(self._token)
                if attempt > self.max_retries or not self.retry_policy.should_retry(attempt, err):
                    raise
                if not idempotent and err.maybe_accepted:
                    _logger.warning(
                        "Metrika %s %s failed (%s), not re-sent: it may have been accepted",
                        method,
                        path,
                        type(err).__name__,
                    )
                    raise
                delay = self.retry_policy.delay_for(attempt, err, rng=self._rng)
                if delay > self.max_retry_sleep:
                    _logger.warning(
                        "Metrika %s %s failed (%s); retry needs %.0f s, left to the caller",
                        method,
                        path,
                        type(err).__name__,
                        delay,
                    )
                    raise
                _logger.warning(
                    "Metrika %s %s failed (%s, status %s, %s), retry %d/%d in %.2f s",
                    method,
                    path,
                    type(err).__name__,
                    err.status,
                    err.error_type or "-",
                    attempt,
                    self.max_retries,
                    delay,
                )
                self._sleep(delay)

    def _send_once(self, method, path, *, params=None, files=None, json_body=None, data=None):
        extra = None
        if data is not None:
            extra = {"Content-Type": "application/json; charset=utf-8"}
        self.last_response_status = None
        started = time.monotonic()
        try:
            answer = send(
                self.session,
                method,
                self.base_url + path,
                service="Metrica",
                headers=self._headers(extra),
                timeout=self.timeout,
                params=params,
                data=data,
                files=files,
                json=json_body,
            )
        except MetrikaError as err:
            self.last_elapsed = time.monotonic() - started
            _logger.debug(
                "Metrika %s %s: no answer after %.3f s (%s)",
                method,
                path,
                self.last_elapsed,
                type(err).__name__,
            )
            raise
        self.last_elapsed = time.monotonic() - started
        status = self.last_response_status = answer.status
        _logger.debug("Metrika %s %s -> HTTP %s in %.3f s", method, path, status, self.last_elapsed)
        if 200 <= status < 300:
            if answer.body is None:
                raise MetrikaUnexpectedResponseError(
                    "Metrica answered HTTP %s with a body that is not JSON (%s)"
                    % (status, answer.headers.get("Content-Type", "no content type")),
                    status=status,
                )
            return answer.body
        raise error_from_response(status, answer.body, answer.headers, now=self._now())

    def _now(self):
        return self._clock() if self._clock is not None else None

    @staticmethod
    def _field(body, key, kind):
        if not isinstance(body, dict) or not isinstance(body.get(key), kind):
            raise MetrikaUnexpectedResponseError(
                "Metrica's answer has no %r %s" % (key, "list" if kind is list else "object"),
                status=200,
            )
        return body[key]

    def _uploading(self, body):
        uploading = self._field(body, "uploading", dict)
        if uploading.get("api_validation_status") == VALIDATION_FAILED:
            errors = uploading.get("api_validation_errors") or []
            if not isinstance(errors, list):
                errors = [errors]
            raise MetrikaValidationError(
                "Metrica rejected upload %s: %d validation error(s)"
                % (uploading.get("uploading_id") or "?", len(errors)),
                errors=errors,
                uploading=uploading,
            ).redact(self._token)
        return uploading

    @property
    def _counter_path(self):
        return "/management/v1/counter/%d" % self.counter_id

    @property
    def _cdp_path(self):
        return "/cdp/api/v1/counter/%d" % self.counter_id

    # ---------------------------------------------------------------- management API

    def get_counter(self):
        """``GET /management/v1/counter/{id}`` → the ``counter`` dict (``name``, ``site``,
        ``time_zone_name``, ``time_zone_offset`` …)."""
        return self._field(self._request("GET", self._counter_path), "counter", dict)

    def list_goals(self):
        """``GET /management/v1/counter/{id}/goals`` → list of goal dicts."""
        return self._field(self._request("GET", self._counter_path + "/goals"), "goals", list)

    def upload_offline_conversions(
        self, data, *, comment=None, upload_type="BASIC", filename="offline_conversions.csv"
    ):
        """``POST …/offline_conversions/upload?type=…&comment=…`` (multipart part ``file``).

        :param data: the CSV (bytes, or str encoded as UTF-8)
        :param comment: 1–255 digits, Latin and Cyrillic letters (build it with
            :func:`offline_upload_comment`); a unique batch reference here lets
            :meth:`find_offline_uploadings` find the upload after a lost answer
        :return: the ``uploading`` dict (``id``, ``status``, ``source_quantity``,
            ``line_quantity`` …); :func:`~.outcomes.offline_uploading_outcome` reads it
        :raise UploadCommentError: (a ``ValueError``) a comment Metrica does not allow; nothing sent
        """
        _check_choice("upload_type", upload_type, OFFLINE_UPLOAD_TYPES)
        if comment is not None:
            check_upload_comment(comment)
        files = {"file": (filename, _as_bytes(data), "text/csv")}
        params = {"type": upload_type, "comment": comment}
        body = self._request(
            "POST", self._counter_path + "/offline_conversions/upload", params=params, files=files
        )
        return self._field(body, "uploading", dict)

    def get_offline_uploading(self, uploading_id):
        """``GET …/offline_conversions/uploading/{id}`` → the ``uploading`` dict."""
        path = "%s/offline_conversions/uploading/%d" % (self._counter_path, int(uploading_id))
        return self._field(self._request("GET", path), "uploading", dict)

    def list_offline_uploadings(self, limit=10000, offset=0):
        """``GET …/offline_conversions/uploadings?limit&offset`` → list of uploading dicts."""
        params = {"limit": int(limit), "offset": int(offset)}
        body = self._request(
            "GET", self._counter_path + "/offline_conversions/uploadings", params=params
        )
        return self._field(body, "uploadings", list)

    def find_offline_uploadings(self, comments, *, page_size=DEFAULT_LOOKUP_PAGE_SIZE):
        """``{comment: uploading dict}`` for those of ``comments`` Metrica has uploadings for.

        Offline conversions have no idempotency key: each upload carries a unique comment
        (:func:`offline_upload_comment`), and after a lost answer this tells which of them Metrica
        stored before anything is re-sent. The list is read once, page by page
        (``limit=page_size``, ``offset`` advancing by what each page held), until every comment
        is found or a page is empty. Its order is undocumented
        (https://yandex.com/dev/metrika/en/management/openapi/offline_conversions/findAll_1) and
        a page may hold fewer items than asked without being the last, so nothing here depends
        on either: matching is local. A comment found twice on the pages read keeps its newest
        uploading (by ``create_time``, then ``id``); either way Metrica stored that upload. A page
        that brings no uploading not already seen also ends the look-up (a server that ignored
        ``offset`` would otherwise loop forever).

        :param comments: the comments looked for (empty ones are ignored)
        :param page_size: ``limit`` of each list request (positive int)
        :return: ``{comment: uploading dict}``; a comment Metrica has no uploading for is absent
        """
        if isinstance(page_size, bool) or not isinstance(page_size, int) or page_size < 1:
            raise ValueError("page_size must be a positive integer")
        if isinstance(comments, str):  # one comment would be looked for letter by letter
            raise TypeError("comments must be a collection of comments, not one string")
        wanted = {comment for comment in comments if comment}
        found = {}
        seen_ids = set()
        offset = 0
        while wanted - set(found):
            page = self.list_offline_uploadings(limit=page_size, offset=offset)
            new_ids = {u.get("id") for u in page if isinstance(u, dict)} - seen_ids
            if not page or not new_ids:
                break
            seen_ids |= new_ids
            offset += len(page)
            for uploading in page:
                comment = uploading.get("comment") if isinstance(uploading, dict) else None
                if comment in wanted and (
                    comment not in found or _newness(uploading) > _newness(found[comment])
                ):
                    found[comment] = uploading
        return found

    def find_offline_uploading(self, comment, *, page_size=DEFAULT_LOOKUP_PAGE_SIZE, limit=None):
        """The offline uploading whose ``comment`` equals ``comment``, or ``None``
        (:meth:`find_offline_uploadings` for one comment; every page is read as needed).

        ``limit`` is the former name of ``page_size``, kept for existing callers; it no longer
        caps how much of the list is read.
        """
        if limit is not None:
            page_size = limit
        return self.find_offline_uploadings([comment], page_size=page_size).get(comment)

    # ---------------------------------------------------------------- connection check

    def probe_upload_access(self, transport):
        """Whether the token may upload with ``transport`` (``"simple_orders"`` or
        ``"offline_conversions"``), learnt without storing anything: the upload request is sent
        without its file. Metrica checks the token's rights (``metrika:offline_data`` or
        ``metrika:write``) before the request's content, so a token without them gets 403,
        one with them 400 for the missing file. Yandex publishes no endpoint that lists a
        token's scopes (https://yandex.ru/dev/id/doc/en/concepts/ya-oauth-intro: the rights are
        encrypted in the token).

        :return: ``True`` (the refusal was about the missing file, or there was none)
        :raise MetrikaAuthError: 401/403: the token may not upload to this counter
        :raise MetrikaError: any other failure (network, quota, 5xx…)
        """
        path = {
            "simple_orders": self._cdp_path + "/data/simple_orders",
            "offline_conversions": self._counter_path + "/offline_conversions/upload",
        }[transport]
        try:
            self._request("POST", path)
        except (MetrikaBadRequestError, MetrikaSettingsError) as err:
            if err.status != 400:
                raise
        return True

    # ---------------------------------------------------------------- CDP API, simple orders

    def upload_simple_orders(
        self, data, *, merge_mode="SAVE", delimiter_type="COMMA", filename="simple_orders.csv"
    ):
        """``POST /cdp/api/v1/counter/{id}/data/simple_orders?merge_mode&delimiter_type``
        (multipart part ``file``).

        :return: the ``uploading`` dict (``uploading_id``, ``api_validation_status`` …)
        :raise MetrikaValidationError: when Metrica answers ``api_validation_status == "FAILED"``
        """
        _check_choice("merge_mode", merge_mode, MERGE_MODES)
        _check_choice("delimiter_type", delimiter_type, DELIMITER_TYPES)
        files = {"file": (filename, _as_bytes(data), "text/csv")}
        params = {"merge_mode": merge_mode, "delimiter_type": delimiter_type}
        path = self._cdp_path + "/data/simple_orders"
        return self._uploading(self._request("POST", path, params=params, files=files))
