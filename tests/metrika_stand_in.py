"""A local HTTP server that speaks (the parts we use of) the Yandex Metrica API.

Self-contained (standard library only) so that both test layers can load it by file path::

    with MetrikaStandIn() as api:                     # token "test-token", counter 12345
        client = MetrikaClient("test-token", 12345, base_url=api.url)
        client.upload_simple_orders(
            b"id,create_date_time,client_ids\\n1,2024-01-10 11:56:00,123\\n"
        )
        api.requests[-1].file                         # the bytes of the multipart part "file"

It listens on 127.0.0.1 only (an ephemeral port), in a background thread; each request is handled
in its own daemon thread. ``stop()`` returns quickly even while a ``slow`` answer is pending.

Endpoints (all need ``Authorization: OAuth <token>``; otherwise 401 ``unauthorized``; a counter
the stand-in does not know gives 404 ``not_found``)::

    GET  /management/v1/counter/{id}                                → {"counter": {...}}
    GET  /management/v1/counter/{id}/goals                          → {"goals": [...]}
    POST /management/v1/counter/{id}/offline_conversions/upload → {"uploading": {"id": N, …}}
    GET  /management/v1/counter/{id}/offline_conversions/uploadings → {"uploadings": [...]}
    GET  /management/v1/counter/{id}/offline_conversions/uploading/{uid}
    POST /cdp/api/v1/counter/{id}/data/simple_orders → {"uploading": {"uploading_id": ..., ...}}
    POST /cdp/api/v1/counter/{id}/data/{contacts|orders}/{csv|json}
    GET  /cdp/api/v1/counter/{id}/last_uploadings → {"uploadings": [...]} (newest first)
    GET  /cdp/api/v1/counter/{id}/schema/order_statuses             → {"order_statuses": [...]}
    POST /cdp/api/v1/counter/{id}/schema/order_statuses → {"success": true} (replaces the mapping)

What gives which answer (metrika-api.md §1–§2):

* **400** with Metrica's error body ``{"errors": [{"error_type", "message", "location"}], "code",
  "message"}`` for request-level problems: a missing/invalid query parameter (``merge_mode``,
  ``delimiter_type``, ``columns_mapping``, ``type``, ``comment`` > 255, ``limit``), no multipart
  part named ``file``, an empty file, a file that is not UTF-8 or starts with a BOM, a bad header
  row (unknown or duplicate column, ``create_date_time`` missing, no identifier column, a
  ``columns_mapping`` header that is not in the file, a required field not mapped), no data rows,
  invalid JSON (``invalid_json``) or a JSON body without the ``contacts``/``orders`` list.
  An offline file's own problems are 400 too: not exactly one of
  ``ClientId``/``Yclid``/``UserId``/``PurchaseId``, ``Target``/``DateTime`` missing, and a file
  none of whose rows passes (an empty identifier, ``DateTime`` not integer seconds or in the
  future, ``Price`` without a dot decimal, ``Currency`` not 3 letters…); rows that fail while others
  pass are refused one by one (below).
* **200 with** ``api_validation_status: "FAILED"`` and ``api_validation_errors`` for row-level
  format problems in a CDP file (simple orders, contacts, orders, CSV or JSON): wrong cell count,
  ``create_date_time`` not one of the §2.8 formats (or before 1970), a row without any identifier,
  an md5 that is not 32 lower-case hex chars, a phone with anything but digits, an e-mail not
  lower-case / without ``@`` and domain, spaces inside a multi-value cell, ``order_status`` that is
  neither ``IN_PROGRESS``/``PAID``/``CANCELLED``/``SPAM`` nor a goal-like id (``CANCELED`` is
  refused; with ``strict_goals=True`` the id must be a JS-event goal of the counter), a decimal
  with a comma, a bad ``goals``/``products`` cell, a currency that is not 3 upper-case letters,
  ``client_type`` other than ``CONTACT``. Failed uploads are listed by ``last_uploadings`` too.
* Detailed orders (metrika-api.md §2.3, §2.5) are stricter still: an ``order_status`` must be one
  of the four defaults, an id of the counter's status mapping (``schema/order_statuses``) or a
  JS-event goal of the counter; and an order's ``client_uniq_id`` must name a contact stored by
  an earlier contacts upload of the counter ("customer data must also be sent for orders to be
  processed"; contacts go first). Contacts and orders of passed uploads are kept per counter
  with ``SAVE`` semantics (``contacts``, ``detailed_orders``), and counted
  (``stored_contact_ids``, ``stored_detailed_order_ids``).

Offline uploadings over time (metrika-api.md §1.4; Yandex: "It can take up to 2 hours to process
the data", https://yandex.com/dev/metrika/en/management/openapi/offline_conversions/upload_1):

* Rows Metrica refuses are left out one by one: ``source_quantity`` counts the file's rows,
  ``line_quantity`` those that passed (a ``DateTime`` in the future or not in seconds, an empty or
  malformed identifier, a bad ``Target`` or ``Price``, a wrong cell count, and with
  ``strict_goals=True`` a ``Target`` that is not a JS-event goal of the counter). A file in which
  no row passes is answered 400 ``invalid_uploading``.
* An uploading is stored as ``offline_initial_status`` (``UPLOADED``, or ``PREPARED``) and, once
  ``offline_processing_delay`` seconds of the stand-in's clock have passed (``None``: never on its
  own), becomes ``PROCESSED`` when at least one row linked, else ``LINKAGE_FAILURE``. The counts
  come from the file: a row whose ``Target`` is not a goal of the counter is
  ``goal_not_found_quantity``, one whose identifier is not a known visitor
  (:meth:`MetrikaStandIn.add_visitor`; until one is added every identifier is known) is
  ``user_not_found_quantity``, the others ``linked_quantity``. :meth:`MetrikaStandIn.hold_offline`
  / :meth:`MetrikaStandIn.hold_next_offline` keep an uploading processing forever;
  :meth:`MetrikaStandIn.set_offline_status` moves one on by hand.
* The list ``GET …/uploadings?limit&offset`` (default limit 10000) pages like Metrica; its order is
  undocumented, so it is settable (``list_order`` ``"oldest"`` / ``"newest"``), and so is the
  largest page it gives (``max_page_size``), to make a client read several pages.

Failing on demand: :meth:`MetrikaStandIn.fail_next` (one request at a time),
:meth:`MetrikaStandIn.fail_randomly` (a share of them, before or after storing),
:meth:`MetrikaStandIn.outage` (everything 503). What was stored, and how many times, is counted
(:meth:`MetrikaStandIn.stats`), so a benchmark can count what was delivered and what twice.

A counter the stand-in does not know is answered 404 ``not_found``; one made inaccessible with
:meth:`MetrikaStandIn.deny_access` 403 ``access_denied``. A token's rights are checked before
anything else: reading needs ``metrika:read``, uploading ``metrika:offline_data`` or
``metrika:write`` (``token_scopes`` limits the main token's; 403 ``access_denied`` otherwise).

The same server plays Yandex OAuth too (``/authorize``, ``/device/code``, ``/token``): see
:class:`_YandexOAuthStandIn`.

As its own process (for benchmarks that run Odoo in another process)::

    python3 tests/metrika_stand_in.py --port 8765 --token T --counter 12345

prints its URL on one line and serves until killed (SIGTERM/SIGINT). Besides the Metrica routes it
answers a control path, outside them and never recorded or failed::

    POST /_stand_in/control   JSON {"reset": true, "outage": true|false,
                                    "fail_randomly": {"rate": 0.3, "seed": 1, "modes": [...],
                                                      "path": "..."} | null,
                                    "fail_next": {"kind": 503, "times": 1, ...},
                                    "offline_processing_delay": 5 | null, "list_order": "newest",
                                    "max_page_size": 2, "hold_next_offline": 1,
                                    "visitors": ["133591247640966458", ...]}
                              → {"ok": true}
    GET  /_stand_in/stats     → :meth:`MetrikaStandIn.stats` (``?rows=0`` leaves the row lists out)
"""

import argparse
import base64
import collections
import csv
import datetime
import hashlib
import http.server
import io
import json
import random
import re
import signal
import threading
import time
import urllib.parse
import uuid

HOST = "127.0.0.1"

DEFAULT_COUNTER_ID = 12345
DEFAULT_COUNTER = {
    "id": DEFAULT_COUNTER_ID,
    "name": "Test shop",
    "site": "shop.example",
    "site2": {"site": "shop.example", "domain": "shop.example"},
    "status": "Active",
    "type": "simple",
    "owner_login": "shop-owner",
    "permission": "own",
    "time_zone_name": "Europe/Moscow",
    "time_zone_offset": 180,
    "currency": 643,
}
DEFAULT_GOALS = (
    ("crm_qualified_lead", "CRM: qualified lead"),
    ("crm_deal_won", "CRM: deal won"),
)

MERGE_MODES = ("SAVE", "UPDATE", "APPEND")
DELIMITERS = {"COMMA": ",", "SEMICOLON": ";"}
ORDER_STATUS_TYPES = ("IN_PROGRESS", "PAID", "CANCELLED", "SPAM")
OFFLINE_ID_COLUMNS = {
    "ClientId": "CLIENT_ID",
    "Yclid": "YCLID",
    "UserId": "USER_ID",
    "PurchaseId": "PURCHASE_ID",
}
OFFLINE_TYPES = ("BASIC", "CALLS", "CHATS")

# Offline uploading statuses (metrika-api.md §1.4).
OFFLINE_PREPARED = "PREPARED"
OFFLINE_UPLOADED = "UPLOADED"
OFFLINE_PROCESSED = "PROCESSED"
OFFLINE_LINKAGE_FAILURE = "LINKAGE_FAILURE"
OFFLINE_FINAL_STATUSES = (OFFLINE_PROCESSED, OFFLINE_LINKAGE_FAILURE)
DEFAULT_PAGE_SIZE = 10000  # the list's default (and largest) limit, findAll_1
LIST_OLDEST_FIRST = "oldest"
LIST_NEWEST_FIRST = "newest"

# Where a random failure strikes: before storing (nothing stored) or after (stored, answer lost).
FAIL_BEFORE = "before"
FAIL_AFTER = "after"
_FAIL_BEFORE_KINDS = (503, 504, "drop")
_FAIL_AFTER_KINDS = ("drop", 504)
CONTROL_PREFIX = "/_stand_in/"

SIMPLE_ORDER_COLUMNS = (
    "id",
    "create_date_time",
    "client_uniq_id",
    "client_ids",
    "emails",
    "phones",
    "emails_md5",
    "phones_md5",
    "order_status",
    "revenue",
    "cost",
    "goals",
    "currency",
    "update_date_time",
    "finish_date_time",
)
IDENTIFIER_FIELDS = ("client_ids", "emails", "phones", "emails_md5", "phones_md5")
CONTACT_FIELDS = (
    "uniq_id",
    "name",
    "create_date_time",
    "update_date_time",
    "client_ids",
    "emails",
    "phones",
    "emails_md5",
    "phones_md5",
    "birth_date",
    "user_ids",
    "company_uniq_id",
    "user_comment",
)
ORDER_FIELDS = (
    "id",
    "client_uniq_id",
    "client_type",
    "create_date_time",
    "update_date_time",
    "finish_date_time",
    "order_status",
    "revenue",
    "cost",
    "products",
    "goals",
    "currency",
)
REQUIRED_FIELDS = {
    "contacts": ("uniq_id",),
    "orders": ("id", "client_uniq_id", "client_type", "create_date_time", "order_status"),
}

_CSV_DATE_FORMATS = (
    (r"\d{2}\.\d{2}\.\d{4}", "%d.%m.%Y"),
    (r"\d{2}\.\d{2}\.\d{2}", "%d.%m.%y"),
    (r"\d{4}-\d{2}-\d{2}", "%Y-%m-%d"),
    (r"\d{2}\.\d{2}\.\d{4} \d{2}:\d{2}:\d{2}", "%d.%m.%Y %H:%M:%S"),
    (r"\d{2}\.\d{2}\.\d{4} \d{2}:\d{2}", "%d.%m.%Y %H:%M"),
    (r"\d{2}\.\d{2}\.\d{2} \d{2}:\d{2}:\d{2}", "%d.%m.%y %H:%M:%S"),
    (r"\d{2}\.\d{2}\.\d{2} \d{2}:\d{2}", "%d.%m.%y %H:%M"),
    (r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", "%Y-%m-%d %H:%M:%S"),
    (r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}", "%Y-%m-%d %H:%M"),
)
_JSON_DATE_FORMATS = (
    (r"\d{4}-\d{2}-\d{2}", "%Y-%m-%d"),
    (r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", "%Y-%m-%d %H:%M:%S"),
)
_DECIMAL_RE = re.compile(r"^-?\d+(\.\d+)?$")
_MD5_RE = re.compile(r"^[0-9a-f]{32}$")
_PHONE_RE = re.compile(r"^\d{7,15}$")
_EMAIL_RE = re.compile(r"^[a-z0-9._%+\-]+@[a-z0-9\-]+(\.[a-z0-9\-]+)*\.[a-z]{2,}$")
_CLIENT_ID_RE = re.compile(r"^\d{1,20}$")
_GOAL_ID_RE = re.compile(r'^[^\s/\\&#?="]+$')
_STATUS_ID_RE = re.compile(r"^[\w\-:]{1,255}$")
_ATTRIBUTE_RE = re.compile(r"^[\w\-:]{1,255}$")
_CURRENCY_RE = re.compile(r"^[A-Z]{3}$")
_MAPPING_PAIR_RE = re.compile(r'"([^"]+)":"([^"]+)"')

_REASONS = {
    400: ("invalid_parameter", "Invalid request"),
    401: ("unauthorized", "Unauthorized"),
    403: ("access_denied", "Access is denied"),
    404: ("not_found", "Entity not found"),
    405: ("invalid_parameter", "Method not allowed"),
    406: ("not_acceptable", "Not acceptable"),
    409: ("conflict", "Conflict"),
    420: ("quota_requests_by_ip", "Quota exceeded"),
    429: ("quota_requests_by_ip", "Quota exceeded"),
    503: ("backend_error", "Service temporarily unavailable, try later"),
    504: ("timeout", "Request timed out"),
}
_QUOTA_MESSAGES = {
    "quota_requests_by_ip": "Quota exceeded: too many requests per second from this IP",
    "quota_requests_by_uid": "Quota exceeded: daily requests limit for this user",
    "quota_parallel_requests": "Quota exceeded: too many parallel requests",
    "quota_requests_by_counter_id": "Quota exceeded: requests limit for this counter",
}
_HTML_ERRORS = {500: "Internal Server Error", 502: "Bad Gateway"}


class RecordedRequest:
    """One request the stand-in received.

    ``query`` maps each parameter to its (last) value; ``headers`` keeps the received names;
    ``file`` / ``filename`` / ``file_content_type`` describe the multipart part named ``file``;
    ``parts`` all multipart parts by name; ``json`` the parsed JSON body; ``status`` the answer's
    HTTP status (``None`` while pending or when the connection was dropped).
    """

    def __init__(self, method, raw_path, headers, body):
        split = urllib.parse.urlsplit(raw_path)
        self.method = method
        self.path = split.path
        self.raw_query = split.query
        self.query_list = urllib.parse.parse_qsl(split.query, keep_blank_values=True)
        self.query = dict(self.query_list)
        self.headers = headers
        self.body = body
        self.parts = {}
        self.file = None
        self.filename = None
        self.file_content_type = None
        self.json = None
        self.json_error = None
        self.status = None
        self.counter_id = None
        self.failure = None

    def header(self, name, default=None):
        lowered = name.lower()
        for key, value in self.headers.items():
            if key.lower() == lowered:
                return value
        return default

    @property
    def content_type(self):
        return self.header("Content-Type", "")

    def __repr__(self):
        return "RecordedRequest(%s %s, status=%r)" % (self.method, self.path, self.status)


class _RequestError(Exception):
    def __init__(self, status, error_type, message, location=None):
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message
        self.location = location


class _Failure:
    def __init__(self, kind, times, kw):
        self.kind = kind
        self.remaining = times
        self.kw = kw
        self.path = kw.pop("path", None)
        self.method = kw.pop("method", None)

    def matches(self, method, path):
        if self.method and self.method.upper() != method:
            return False
        return not self.path or self.path in path


def error_body(status, error_type, message, location=None):
    """Metrica's error body shape (metrika-api.md §4.1)."""
    error = {"error_type": error_type, "message": message}
    if location:
        error["location"] = location
    return {"errors": [error], "code": status, "message": message}


def _iso(epoch):
    return datetime.datetime.fromtimestamp(int(epoch), datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )


def _parse_iso(value):
    try:
        parsed = datetime.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except (AttributeError, ValueError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.timezone.utc)
    return parsed


def _check_date(value, formats):
    """None when ``value`` is one of ``formats`` (and not before 1970), else the reason."""
    for pattern, fmt in formats:
        if re.fullmatch(pattern, value):
            try:
                parsed = datetime.datetime.strptime(value, fmt)
            except ValueError:
                return "is not a valid date"
            if parsed.year < 1970:
                return "is before 1970-01-01"
            return None
    return "is not in a supported date format"


def _parse_multipart(content_type, body):
    match = re.search(r'boundary="?([^";]+)"?', content_type, re.I)
    if not match:
        raise _RequestError(400, "invalid_uploading", "Multipart boundary is missing")
    boundary = b"--" + match.group(1).encode("latin-1")
    parts = {}
    for chunk in body.split(boundary)[1:]:
        if chunk.startswith(b"--"):
            break
        if chunk.startswith(b"\r\n"):
            chunk = chunk[2:]
        head, sep, content = chunk.partition(b"\r\n\r\n")
        if not sep:
            continue
        if content.endswith(b"\r\n"):
            content = content[:-2]
        headers = {}
        for line in head.decode("utf-8", "replace").split("\r\n"):
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        disposition = headers.get("content-disposition", "")
        name = re.search(r'(?:^|;)\s*name="([^"]*)"', disposition)
        filename = re.search(r'(?:^|;)\s*filename="([^"]*)"', disposition)
        if name:
            parts[name.group(1)] = (
                filename.group(1) if filename else None,
                headers.get("content-type"),
                content,
            )
    return parts


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # one request per connection: nothing lingers after stop()
    server_version = "MetrikaStandIn/1.0"
    sys_version = ""
    stand_in = None  # set on the per-instance subclass

    def log_message(self, format, *args):  # noqa: A002 - silence stderr access logs
        pass

    def _handle(self):
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        body = self.rfile.read(length) if length > 0 else b""
        self.stand_in._dispatch(self, body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

    def send_answer(self, status, payload, headers=None):
        if isinstance(payload, (dict, list)):
            data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
            content_type = "application/json; charset=utf-8"
        else:
            data = payload if isinstance(payload, bytes) else str(payload).encode("utf-8")
            content_type = "text/html; charset=utf-8"
        extra = dict(headers or {})
        content_type = extra.pop("Content-Type", content_type)
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for name, value in extra.items():
                self.send_header(name, str(value))
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()
        except OSError:  # the client gave up (timeout) or went away
            pass


# -------------------------------------------------------------------- Yandex OAuth
#
# The same server also plays Yandex OAuth (https://yandex.ru/dev/id/doc/en/codes/code-url,
# …/codes/screen-code-oauth, …/tokens/refresh-client), strictly: the authorization page, the
# device flow and the token endpoint; the tokens it issues are then accepted by the Metrica
# routes with the rights of the application that got them.

OAUTH_PATHS = ("/authorize", "/token", "/device/code", "/device")
OAUTH_CODE_SECONDS = 600  # "The lifetime of this code is 10 minutes"
OAUTH_DEVICE_INTERVAL = 5
#: Every right the addon may need; a token without ``metrika:read`` cannot read the counter, one
#: without ``metrika:offline_data`` (or ``metrika:write``) cannot upload.
ALL_SCOPES = frozenset({"metrika:read", "metrika:write", "metrika:offline_data"})
UPLOAD_SCOPES = frozenset({"metrika:offline_data", "metrika:write"})


def _pkce_s256(verifier):
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class _YandexOAuthStandIn:
    """Yandex OAuth, on the stand-in's own address (``api.url`` is the OAuth base URL too).

    * ``GET /authorize?response_type=code&client_id&redirect_uri&state&code_challenge
      &code_challenge_method=S256``: the "Yandex" page. The administrator approves at once
      (``oauth_approve``, default ``True``): 302 to ``redirect_uri?code=…&state=…``; refused:
      ``?error=access_denied&state=…``. An unknown application or a redirect address it did not
      register is a 400 page, never a redirect; ``code_challenge_method`` must be ``S256``.
    * ``POST /device/code`` (``client_id``) → ``device_code``, ``user_code``,
      ``verification_url`` (``<url>/device``), ``interval``, ``expires_in``;
      :meth:`approve_device` plays the administrator typing the user code.
    * ``POST /token``, the application's id and secret in ``Authorization: Basic`` (or the
      body): ``grant_type=authorization_code`` (``code``, ``code_verifier`` checked against the
      challenge with S256, ``redirect_uri`` as given to ``/authorize``; a code is single-use),
      ``device_code`` (``code``: ``authorization_pending`` until approved, then once),
      ``refresh_token`` (a new pair; the old refresh token is spent; a revoked one is
      ``invalid_grant``, see :meth:`revoke_refresh_token`). Errors are 400
      ``{"error", "error_description"}`` with Yandex's codes.

    Issued access tokens are accepted by the Metrica routes with the application's ``scopes``.
    """

    def _init_oauth(self):
        self.oauth_clients = {}  # client id -> {"secret", "redirect_uris", "scopes"}
        self.oauth_approve = True
        self.oauth_token_lifetime = 365 * 24 * 3600
        self.oauth_codes = {}  # code -> {"client_id", "redirect_uri", "challenge", "used", ...}
        self.device_codes = {}  # device code -> {"client_id", "user_code", "approved", ...}
        self.issued_tokens = {}  # access token -> set of scopes
        self.refresh_tokens = {}  # refresh token -> {"client_id", "revoked"}
        #: Scopes of the main ``token`` (``None``: every right).
        self.token_scopes = None

    def add_oauth_client(self, client_id, secret, redirect_uris=(), scopes=ALL_SCOPES):
        """Register an OAuth application; ``redirect_uris`` empty: any address is accepted."""
        with self._lock:
            self.oauth_clients[client_id] = {
                "secret": secret,
                "redirect_uris": tuple(redirect_uris),
                "scopes": frozenset(scopes),
            }

    def approve_device(self, user_code):
        """The administrator typed ``user_code`` at the verification page and allowed access."""
        with self._lock:
            for device in self.device_codes.values():
                if device["user_code"] == user_code:
                    device["approved"] = True
                    return
        raise KeyError(user_code)

    def revoke_refresh_token(self, refresh_token):
        """The user revoked the access (or changed their password): the refresh token is dead."""
        with self._lock:
            self.refresh_tokens[refresh_token]["revoked"] = True

    def _scopes_of(self, auth):
        """The rights of an ``Authorization`` header's token, or ``None`` if it is unknown."""
        if auth == "OAuth %s" % self.token:
            return ALL_SCOPES if self.token_scopes is None else frozenset(self.token_scopes)
        if auth and auth.startswith("OAuth "):
            return self.issued_tokens.get(auth[len("OAuth ") :])
        return None

    def _oauth_route(self, rec):
        if rec.path == "/authorize" and rec.method == "GET":
            return self._oauth_authorize(rec)
        if rec.path == "/device" and rec.method == "GET":
            return 200, b"<html><body><h1>Device authorization</h1></body></html>", None
        form = dict(urllib.parse.parse_qsl(rec.body.decode("utf-8", "replace")))
        if rec.method != "POST":
            return self._oauth_error("invalid_request", "POST only")
        if rec.path == "/device/code":
            return self._oauth_device_code(form)
        return self._oauth_token(rec, form)

    @staticmethod
    def _oauth_error(code, description, status=400):
        return status, {"error": code, "error_description": description}, None

    def _oauth_authorize(self, rec):
        query = rec.query
        client = self.oauth_clients.get(query.get("client_id"))
        redirect_uri = query.get("redirect_uri") or ""
        if query.get("response_type") != "code" or client is None:
            return 400, b"<html><body>Unknown application</body></html>", None
        if client["redirect_uris"] and redirect_uri not in client["redirect_uris"]:
            return 400, b"<html><body>redirect_uri mismatch</body></html>", None
        if query.get("code_challenge") and query.get("code_challenge_method") != "S256":
            return 400, b"<html><body>Only S256 is supported</body></html>", None
        back = {"state": query.get("state", "")}
        if self.oauth_approve:
            code = "%07d" % random.randrange(10**7)
            while code in self.oauth_codes:
                code = "%07d" % random.randrange(10**7)
            self.oauth_codes[code] = {
                "client_id": query["client_id"],
                "redirect_uri": redirect_uri,
                "challenge": query.get("code_challenge"),
                "used": False,
                "expires": self.clock() + OAUTH_CODE_SECONDS,
            }
            back["code"] = code
        else:
            back["error"] = "access_denied"
        separator = "&" if "?" in redirect_uri else "?"
        location = redirect_uri + separator + urllib.parse.urlencode(back)
        return 302, b"", {"Location": location}

    def _oauth_device_code(self, form):
        if form.get("client_id") not in self.oauth_clients:
            return self._oauth_error("invalid_client", "Client not found")
        device_code = uuid.uuid4().hex
        user_code = "%07d" % random.randrange(10**7)
        self.device_codes[device_code] = {
            "client_id": form["client_id"],
            "user_code": user_code,
            "approved": False,
            "used": False,
            "expires": self.clock() + OAUTH_CODE_SECONDS,
        }
        answer = {
            "device_code": device_code,
            "user_code": user_code,
            "verification_url": self.url + "/device",
            "interval": OAUTH_DEVICE_INTERVAL,
            "expires_in": OAUTH_CODE_SECONDS,
        }
        return 200, answer, None

    def _oauth_client_of(self, rec, form):
        auth = rec.header("Authorization") or ""
        client_id, secret = form.get("client_id"), form.get("client_secret")
        if auth.startswith("Basic "):
            try:
                client_id, _sep, secret = (
                    base64.b64decode(auth[len("Basic ") :]).decode("utf-8").partition(":")
                )
            except (ValueError, UnicodeDecodeError):
                return None
        client = self.oauth_clients.get(client_id)
        if client is None or client["secret"] != secret:
            return None
        return client_id

    def _oauth_token(self, rec, form):
        if rec.path != "/token":
            return 404, {"error": "not_found"}, None
        client_id = self._oauth_client_of(rec, form)
        if client_id is None:
            return self._oauth_error("invalid_client", "Wrong client id or secret")
        grant = form.get("grant_type")
        now = self.clock()
        if grant == "authorization_code":
            entry = self.oauth_codes.get(form.get("code", ""))
            if entry is None or entry["used"] or entry["expires"] < now:
                return self._oauth_error("invalid_grant", "Code has expired or is invalid")
            entry["used"] = True  # single-use, whatever follows
            if entry["client_id"] != client_id:
                return self._oauth_error("invalid_grant", "Code was issued to another client")
            if entry["redirect_uri"] and form.get("redirect_uri") != entry["redirect_uri"]:
                return self._oauth_error("invalid_grant", "redirect_uri mismatch")
            if (
                entry["challenge"]
                and _pkce_s256(form.get("code_verifier", "")) != entry["challenge"]
            ):
                return self._oauth_error("invalid_grant", "Code verifier is invalid")
            return 200, self._issue_tokens(client_id), None
        if grant == "device_code":
            entry = self.device_codes.get(form.get("code", ""))
            if entry is None or entry["used"] or entry["expires"] < now:
                return self._oauth_error("invalid_grant", "Code has expired or is invalid")
            if entry["client_id"] != client_id:
                return self._oauth_error("invalid_grant", "Code was issued to another client")
            if not entry["approved"]:
                return self._oauth_error("authorization_pending", "User has not yet authorized")
            entry["used"] = True
            return 200, self._issue_tokens(client_id), None
        if grant == "refresh_token":
            entry = self.refresh_tokens.get(form.get("refresh_token", ""))
            if entry is None or entry["revoked"] or entry["client_id"] != client_id:
                return self._oauth_error("invalid_grant", "Refresh token is invalid or revoked")
            entry["revoked"] = True  # spent: the answer carries a new one
            return 200, self._issue_tokens(client_id), None
        return self._oauth_error("unsupported_grant_type", "Unsupported grant type")

    def _issue_tokens(self, client_id):
        access_token = "y0_" + uuid.uuid4().hex
        refresh_token = "1:" + uuid.uuid4().hex
        self.issued_tokens[access_token] = self.oauth_clients[client_id]["scopes"]
        self.refresh_tokens[refresh_token] = {"client_id": client_id, "revoked": False}
        return {
            "token_type": "bearer",
            "access_token": access_token,
            "expires_in": self.oauth_token_lifetime,
            "refresh_token": refresh_token,
        }


class MetrikaStandIn(_YandexOAuthStandIn):
    """The Metrica API on ``http://127.0.0.1:<free port>``.

    :param token: the only OAuth token accepted (``Authorization: OAuth <token>``)
    :param counters: ``{id: counter dict}`` or a list of counter dicts; default one counter 12345
        ("Test shop", Europe/Moscow, +180) with two JS-event goals
    :param clock: returns epoch seconds; used for ``DateTime`` "not in the future" and timestamps
    :param strict_goals: a goal-like ``order_status`` must be a JS-event goal of the counter, and
        an offline row whose ``Target`` is not one is refused
    :param port: the port to listen on (``0``: a free one)
    :param list_order: order of the offline uploadings list, ``"oldest"`` or ``"newest"`` first
    :param max_page_size: the most uploadings one list request returns, whatever its ``limit``
    :param offline_processing_delay: seconds (of ``clock``) after which a stored offline uploading
        is processed; ``None``: only :meth:`set_offline_status` moves it on
    :param offline_initial_status: ``UPLOADED`` (default) or ``PREPARED``

    Attributes for tests: ``url``, ``requests`` (list of :class:`RecordedRequest`), ``counters``,
    ``goals`` (per counter), ``order_statuses`` (per counter), ``offline_uploadings`` and
    ``cdp_uploadings`` (per counter; keys starting with ``_`` are the stand-in's own and never
    answered), ``token`` (change it to simulate a revoked token), ``visitors`` (per counter),
    ``denied_counters``, ``stored_offline_rows`` / ``stored_order_ids`` (Counters of what was
    stored, see :meth:`stats`), ``random_failures`` (Counter of injected random failures), and
    the keyword arguments above (settable while running).
    """

    def __init__(
        self,
        token="test-token",
        counters=None,
        *,
        clock=time.time,
        strict_goals=False,
        port=0,
        list_order=LIST_OLDEST_FIRST,
        max_page_size=DEFAULT_PAGE_SIZE,
        offline_processing_delay=None,
        offline_initial_status=OFFLINE_UPLOADED,
    ):
        self.token = token
        self.clock = clock
        self.strict_goals = strict_goals
        self.requested_port = int(port)
        self.list_order = list_order
        self.max_page_size = max_page_size
        self.offline_processing_delay = offline_processing_delay
        self.offline_initial_status = offline_initial_status
        self.denied_counters = set()
        self.visitors = {}  # counter id -> set of known identifiers; absent: every one known
        self._held_next_offline = 0
        self._outage = False
        self._random_failure = None
        self._rng = random.Random()
        self.random_failures = collections.Counter()  # FAIL_BEFORE / FAIL_AFTER -> times
        # (identifier, Target, DateTime) -> times stored, and simple_orders id -> times stored
        self.stored_offline_rows = collections.Counter()
        self.stored_order_ids = collections.Counter()
        # Detailed flow: (counter, uniq_id) and (counter, order id) -> times stored, and per
        # counter what is stored now ({uniq_id: {field: value}}, {order id: {field: value}}).
        self.stored_contact_ids = collections.Counter()
        self.stored_detailed_order_ids = collections.Counter()
        self.contacts = {}
        self.detailed_orders = {}
        self._lock = threading.RLock()
        self._idle = threading.Condition(self._lock)
        self._in_flight = 0
        self._stopping = threading.Event()
        self._server = None
        self._thread = None
        self._next_offline_id = 1
        self._seq = 0
        self.requests = []
        self._failures = []
        self.counters = {}
        self.goals = {}
        self.order_statuses = {}
        self.offline_uploadings = {}
        self.cdp_uploadings = {}
        self._init_oauth()
        if counters is None:
            self.add_counter(**DEFAULT_COUNTER)
            for identifier, name in DEFAULT_GOALS:
                self.add_goal(DEFAULT_COUNTER_ID, identifier, name)
        elif isinstance(counters, dict):
            for key, counter in counters.items():
                self.add_counter(**dict(counter, id=counter.get("id", key)))
        else:
            for counter in counters:
                self.add_counter(**dict(counter))

    # ---------------------------------------------------------------- lifecycle

    def start(self):
        if self._server is not None:
            return self
        self._stopping.clear()
        handler = type("MetrikaStandInHandler", (_Handler,), {"stand_in": self})
        server = http.server.ThreadingHTTPServer((HOST, self.requested_port), handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.01},
            name="metrika-stand-in",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self):
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()  # wakes pending "slow" handlers, which then drop their connection
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        self._server = None
        self._thread = None
        with self._idle:
            self._idle.wait_for(lambda: self._in_flight == 0, timeout=2)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()

    @property
    def port(self):
        if self._server is None:
            raise RuntimeError("the stand-in is not running")
        return self._server.server_address[1]

    @property
    def url(self):
        return "http://%s:%d" % (HOST, self.port)

    def wait_idle(self, timeout=5.0):
        """Block until no request is being handled (e.g. a ``slow`` one finishing); True if idle."""
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout=timeout)

    # ---------------------------------------------------------------- set-up helpers

    def add_counter(
        self,
        id,
        name="Test shop",
        site="shop.example",
        time_zone_name="Europe/Moscow",  # noqa: A002
        time_zone_offset=180,
        goals=None,
        **extra,
    ):
        counter_id = int(id)
        counter = {
            "id": counter_id,
            "name": name,
            "site": site,
            "time_zone_name": time_zone_name,
            "time_zone_offset": time_zone_offset,
        }
        counter.update((k, v) for k, v in extra.items() if k not in counter)
        with self._lock:
            self.counters[counter_id] = counter
            self.goals.setdefault(counter_id, [])
            self.order_statuses.setdefault(counter_id, [])
            self.contacts.setdefault(counter_id, {})
            self.detailed_orders.setdefault(counter_id, {})
            self.offline_uploadings.setdefault(counter_id, {})
            self.cdp_uploadings.setdefault(counter_id, [])
            for goal in goals or ():
                if isinstance(goal, dict):
                    self.goals[counter_id].append(dict(goal))
                else:
                    self.add_goal(counter_id, goal)
        return counter

    def add_goal(self, counter_id, identifier, name=None, goal_type="action"):
        """Add a goal; for ``action`` (JS event) goals ``identifier`` is the condition's value."""
        with self._lock:
            goals = self.goals.setdefault(int(counter_id), [])
            goal = {
                "id": 1000 + sum(len(g) for g in self.goals.values()),
                "name": name or identifier,
                "type": goal_type,
                "is_retargeting": 0,
                "conditions": [{"type": "exact", "url": identifier}],
            }
            goals.append(goal)
        return goal

    def action_goal_ids(self, counter_id):
        with self._lock:
            return {
                cond.get("url")
                for goal in self.goals.get(int(counter_id), [])
                if goal.get("type") == "action"
                for cond in goal.get("conditions", [])
            }

    def add_visitor(self, identifier, counter_id=DEFAULT_COUNTER_ID):
        """Make ``identifier`` (a ClientId, Yclid, UserId or PurchaseId) a known visitor.

        Until the first one is added, every identifier of the counter counts as known; from then
        on, offline rows with other identifiers are ``user_not_found_quantity`` when processed.
        """
        with self._lock:
            self.visitors.setdefault(int(counter_id), set()).add(str(identifier))

    def deny_access(self, counter_id, denied=True):
        """Answer every request for ``counter_id`` 403 ``access_denied`` (the token's user has no
        access to it), or stop doing so with ``denied=False``."""
        with self._lock:
            if denied:
                self.denied_counters.add(int(counter_id))
            else:
                self.denied_counters.discard(int(counter_id))

    def _find_offline(self, uploading_id, counter_id=None):
        for cid, uploadings in self.offline_uploadings.items():
            if counter_id not in (None, cid):
                continue
            uploading = uploadings.get(int(uploading_id))
            if uploading is not None:
                return uploading
        raise KeyError(uploading_id)

    def set_offline_status(self, uploading_id, status=OFFLINE_PROCESSED, counter_id=None, **fields):
        """Move an offline uploading on (e.g. ``PROCESSED`` with ``linked_quantity=…``).

        A final status without the count fields gets the counts computed from the file (see the
        module docstring); a final status set here is never changed by the processing delay.
        """
        with self._lock:
            uploading = self._find_offline(uploading_id, counter_id)
            if status in OFFLINE_FINAL_STATUSES:
                for name, value in self._linkage_counts(uploading).items():
                    fields.setdefault(name, value)
            uploading["status"] = status
            uploading.update(fields)
            return _public(uploading)

    def hold_offline(self, uploading_id, counter_id=None, held=True):
        """Keep an offline uploading processing forever (``held=False`` lets it go on again)."""
        with self._lock:
            self._find_offline(uploading_id, counter_id)["_held"] = bool(held)

    def hold_next_offline(self, times=1):
        """Keep the next ``times`` stored offline uploadings processing forever."""
        with self._lock:
            self._held_next_offline += int(times)

    def reset(self):
        """Forget recorded requests, pending and random failures, the outage, uploadings, status
        mappings and the stored-row counts.

        Counters, goals, visitors, denied counters, the settings (order, page size, delay), the
        token and the port are kept.
        """
        with self._lock:
            self.requests.clear()
            self._failures.clear()
            self._held_next_offline = 0
            self._outage = False
            self._random_failure = None
            self.random_failures.clear()
            self.stored_offline_rows.clear()
            self.stored_order_ids.clear()
            self.stored_contact_ids.clear()
            self.stored_detailed_order_ids.clear()
            for cid in self.counters:
                self.order_statuses[cid] = []
                self.contacts[cid] = {}
                self.detailed_orders[cid] = {}
                self.offline_uploadings[cid] = {}
                self.cdp_uploadings[cid] = []

    def outage(self, on=True):
        """While on, every Metrica request is answered 503 ``backend_error`` (nothing stored)."""
        with self._lock:
            self._outage = bool(on)

    def fail_randomly(self, rate, seed=None, modes=(FAIL_BEFORE, FAIL_AFTER), path=None):
        """Fail each matching request with probability ``rate`` (``0`` or ``None`` stops it).

        A failing request picks one of ``modes`` at random: ``"before"`` answers 503, 504 or drops
        the connection without storing anything; ``"after"`` stores the request first, then drops
        the connection or answers 504 (the answer is lost). ``seed`` makes the sequence
        repeatable; ``path`` (substring) restricts the failures to some requests.
        :meth:`fail_next` failures come first; ``random_failures`` counts what was injected.
        """
        modes = tuple(modes)
        if not rate:
            with self._lock:
                self._random_failure = None
            return
        if not 0 < float(rate) <= 1:
            raise ValueError("rate must be between 0 and 1")
        if not modes or any(mode not in (FAIL_BEFORE, FAIL_AFTER) for mode in modes):
            raise ValueError("modes must be %r and/or %r" % (FAIL_BEFORE, FAIL_AFTER))
        with self._lock:
            self._rng = random.Random(seed)
            self._random_failure = (float(rate), modes, path)

    def stats(self, rows=True):
        """What the stand-in stored, as JSON-ready data (also ``GET /_stand_in/stats``).

        ``offline``: uploadings, ``rows_stored`` (every stored row), ``rows_distinct`` (distinct
        (identifier, Target, DateTime)), ``duplicate_rows`` (stored more than once, the extra
        times), ``rows`` (``[identifier, Target, DateTime, times]``). ``simple_orders``: the same
        for order ids of passed uploads (``ids``: ``{id: times}``; ``repeats`` are harmless with
        ``SAVE`` but counted). ``requests``: all Metrica requests; ``random_failures``: injected.
        """
        with self._lock:
            offline_stored = sum(self.stored_offline_rows.values())
            orders_stored = sum(self.stored_order_ids.values())
            result = {
                "requests": len(self.requests),
                "outage": self._outage,
                "random_failures": {
                    FAIL_BEFORE: self.random_failures[FAIL_BEFORE],
                    FAIL_AFTER: self.random_failures[FAIL_AFTER],
                },
                "offline": {
                    "uploadings": sum(len(u) for u in self.offline_uploadings.values()),
                    "rows_stored": offline_stored,
                    "rows_distinct": len(self.stored_offline_rows),
                    "duplicate_rows": offline_stored - len(self.stored_offline_rows),
                },
                "simple_orders": {
                    "uploadings": sum(
                        1
                        for uploadings in self.cdp_uploadings.values()
                        for u in uploadings
                        if u["entity_subtype"] == "SIMPLE_ORDERS"
                    ),
                    "rows_stored": orders_stored,
                    "ids_distinct": len(self.stored_order_ids),
                    "repeats": orders_stored - len(self.stored_order_ids),
                },
            }
            contacts_stored = sum(self.stored_contact_ids.values())
            detailed_stored = sum(self.stored_detailed_order_ids.values())
            result["detailed"] = {
                "contacts_stored": contacts_stored,
                "contacts_distinct": len(self.stored_contact_ids),
                "orders_stored": detailed_stored,
                "orders_distinct": len(self.stored_detailed_order_ids),
                "order_repeats": detailed_stored - len(self.stored_detailed_order_ids),
            }
            if rows:
                result["offline"]["rows"] = [
                    [identifier, target, stamp, times]
                    for (identifier, target, stamp), times in self.stored_offline_rows.items()
                ]
                result["simple_orders"]["ids"] = dict(self.stored_order_ids)
            return result

    def fail_next(self, kind, times=1, **kw):
        """Make the next ``times`` matching requests fail.

        ``kind``:

        * an HTTP status (400, 401, 403, 404, 409, 420, 429, 500, 502, 503, 504 …) answered with a
          realistic body: Metrica's JSON error body (``error_type=``, ``message=`` override the
          defaults; 429/420 default to ``quota_requests_by_ip``, pass
          ``error_type="quota_requests_by_uid"`` for the daily quota), except 500/502 which answer
          an nginx-like HTML page. ``retry_after=`` adds a ``Retry-After`` header; ``body=``
          (bytes/str/dict) and ``headers=`` replace the answer entirely; 200 with ``body=`` is
          allowed.
        * ``"garbage"``: 200 with an HTML body (not JSON).
        * ``"slow"``: wait ``delay=`` seconds (default 1.0) before answering. With ``accept=True``
          the request is then processed normally (stored, as if Metrica accepted it although the
          client timed out); otherwise it is not processed and answered 504 ``timeout``.
        * ``"drop"``: close the connection without any answer; ``accept=True`` processes the request
          first (accepted, but the answer is lost).
        * An HTTP status with ``accept=True``: the request is processed (stored) first, then
          answered with that status (e.g. 504: stored, but the client sees a timeout).

        ``path=`` (substring) and ``method=`` restrict which requests the failure applies to.
        """
        if not (isinstance(kind, int) or kind in ("slow", "drop", "garbage")):
            raise ValueError("unknown failure kind %r" % (kind,))
        with self._lock:
            self._failures.append(_Failure(kind, times, dict(kw)))

    def pending_failures(self):
        with self._lock:
            return sum(f.remaining for f in self._failures)

    def last_request(self, path_contains=None):
        with self._lock:
            for rec in reversed(self.requests):
                if path_contains is None or path_contains in rec.path:
                    return rec
        return None

    # ---------------------------------------------------------------- dispatch

    def _take_failure(self, method, path):
        for failure in self._failures:
            if failure.remaining > 0 and failure.matches(method, path):
                failure.remaining -= 1
                if failure.remaining <= 0:
                    self._failures.remove(failure)
                return failure
        return None

    def _take_random_failure(self, path):
        if self._random_failure is None:
            return None
        rate, modes, only_path = self._random_failure
        if (only_path and only_path not in path) or self._rng.random() >= rate:
            return None
        mode = self._rng.choice(modes)
        self.random_failures[mode] += 1
        if mode == FAIL_BEFORE:
            return _Failure(self._rng.choice(_FAIL_BEFORE_KINDS), 1, {})
        return _Failure(self._rng.choice(_FAIL_AFTER_KINDS), 1, {"accept": True})

    def _dispatch(self, handler, body):
        rec = RecordedRequest(handler.command, handler.path, dict(handler.headers.items()), body)
        self._parse_body(rec)
        if rec.path.startswith(CONTROL_PREFIX):
            status, payload = self._control(rec)
            handler.send_answer(status, payload)
            return
        with self._lock:
            self._in_flight += 1
            self.requests.append(rec)
            if self._outage:
                failure = _Failure(503, 1, {})
                failure.kind = "outage"
            else:
                failure = self._take_failure(rec.method, rec.path) or self._take_random_failure(
                    rec.path
                )
            rec.failure = failure.kind if failure else None
        try:
            answer = self._answer(rec, failure)
            if answer is None:  # dropped: no bytes at all
                handler.close_connection = True
                return
            status, payload, headers = answer
            rec.status = status
            handler.send_answer(status, payload, headers)
        finally:
            with self._idle:
                self._in_flight -= 1
                self._idle.notify_all()

    def _control(self, rec):
        """The control path (benchmarks in another process drive the stand-in through it)."""
        if rec.method == "GET" and rec.path == CONTROL_PREFIX + "stats":
            return 200, self.stats(rows=rec.query.get("rows", "1") not in ("0", "false"))
        if rec.method != "POST" or rec.path != CONTROL_PREFIX + "control":
            return 404, {"ok": False, "error": "unknown control path"}
        if not isinstance(rec.json, dict):
            return 400, {"ok": False, "error": "the body must be a JSON object"}
        commands = rec.json
        try:
            if commands.get("reset"):
                self.reset()
            if "outage" in commands:
                self.outage(bool(commands["outage"]))
            if "fail_randomly" in commands:
                options = commands["fail_randomly"] or {"rate": 0}
                if "modes" in options:
                    options = dict(options, modes=tuple(options["modes"]))
                self.fail_randomly(**options)
            if commands.get("fail_next"):
                options = dict(commands["fail_next"])
                self.fail_next(options.pop("kind"), **options)
            if "hold_next_offline" in commands:
                self.hold_next_offline(int(commands["hold_next_offline"]))
            for identifier in commands.get("visitors") or ():
                self.add_visitor(identifier, commands.get("counter_id", DEFAULT_COUNTER_ID))
            with self._lock:
                for name in ("offline_processing_delay", "list_order", "max_page_size"):
                    if name in commands:
                        setattr(self, name, commands[name])
        except (KeyError, TypeError, ValueError) as err:
            return 400, {"ok": False, "error": "%s: %s" % (type(err).__name__, err)}
        return 200, {"ok": True}

    def _parse_body(self, rec):
        content_type = rec.content_type.lower()
        if content_type.startswith("multipart/form-data"):
            try:
                rec.parts = _parse_multipart(rec.content_type, rec.body)
            except _RequestError:
                rec.parts = {}
            if "file" in rec.parts:
                rec.filename, rec.file_content_type, rec.file = rec.parts["file"]
        elif content_type.startswith("application/json") or (rec.body[:1] in (b"{", b"[")):
            try:
                rec.json = json.loads(rec.body.decode("utf-8"))
            except (UnicodeDecodeError, ValueError) as err:
                rec.json_error = str(err)

    def _answer(self, rec, failure):
        if failure is None:
            return self._route(rec)
        kind, kw = failure.kind, failure.kw
        if kind == "drop":
            if kw.get("accept"):
                self._route(rec)
            return None
        if kind == "slow":
            if self._stopping.wait(float(kw.get("delay", 1.0))):
                return None  # shutting down: give up without an answer
            if kw.get("accept"):
                return self._route(rec)
            return 504, error_body(504, "timeout", "Request timed out"), None
        if kind == "garbage":
            return (
                200,
                kw.get("body", b"<html><body>Service is temporarily unavailable</body></html>"),
                None,
            )
        if kind == "outage":
            return 503, error_body(503, "backend_error", _REASONS[503][1]), None
        if kw.get("accept"):
            self._route(rec)  # stored; the answer below replaces Metrica's
        return self._failure_answer(int(kind), kw)

    @staticmethod
    def _failure_answer(status, kw):
        headers = dict(kw.get("headers") or {})
        if kw.get("retry_after") is not None:
            headers["Retry-After"] = kw["retry_after"]
        if "body" in kw:
            return status, kw["body"], headers
        if status in _HTML_ERRORS and "error_type" not in kw:
            text = "%d %s" % (status, _HTML_ERRORS[status])
            page = (
                "<html><head><title>%s</title></head><body><h1>%s</h1><hr>nginx</body></html>"
                % (text, text)
            )
            return status, page, headers
        fallback = ("backend_error" if status >= 500 else "invalid_parameter", "Error")
        default_type, default_message = _REASONS.get(status, fallback)
        error_type = kw.get("error_type", default_type)
        message = kw.get("message") or _QUOTA_MESSAGES.get(error_type, default_message)
        return status, error_body(status, error_type, message, kw.get("location")), headers

    # ---------------------------------------------------------------- routing

    _ROUTES = (
        ("GET", re.compile(r"^/management/v1/counter/(\d+)$"), "_get_counter"),
        ("GET", re.compile(r"^/management/v1/counter/(\d+)/goals$"), "_get_goals"),
        (
            "POST",
            re.compile(r"^/management/v1/counter/(\d+)/offline_conversions/upload$"),
            "_post_offline",
        ),
        (
            "GET",
            re.compile(r"^/management/v1/counter/(\d+)/offline_conversions/uploadings$"),
            "_get_offline_list",
        ),
        (
            "GET",
            re.compile(r"^/management/v1/counter/(\d+)/offline_conversions/uploading/(\d+)$"),
            "_get_offline_one",
        ),
        (
            "POST",
            re.compile(r"^/cdp/api/v1/counter/(\d+)/data/simple_orders$"),
            "_post_simple_orders",
        ),
        (
            "POST",
            re.compile(r"^/cdp/api/v1/counter/(\d+)/data/(contacts|orders)/(csv|json)$"),
            "_post_cdp_detailed",
        ),
        ("GET", re.compile(r"^/cdp/api/v1/counter/(\d+)/last_uploadings$"), "_get_last_uploadings"),
        (
            "GET",
            re.compile(r"^/cdp/api/v1/counter/(\d+)/schema/order_statuses$"),
            "_get_order_statuses",
        ),
        (
            "POST",
            re.compile(r"^/cdp/api/v1/counter/(\d+)/schema/order_statuses$"),
            "_post_order_statuses",
        ),
    )

    def _route(self, rec):
        try:
            return self._route_checked(rec)
        except _RequestError as err:
            return (
                err.status,
                error_body(err.status, err.error_type, err.message, err.location),
                None,
            )

    def _route_checked(self, rec):
        if rec.path in OAUTH_PATHS:
            with self._lock:
                return self._oauth_route(rec)
        scopes = self._scopes_of(rec.header("Authorization"))
        if "oauth_token" in rec.query or scopes is None:
            raise _RequestError(401, "unauthorized", "Unauthorized")
        path_known = False
        for method, pattern, name in self._ROUTES:
            match = pattern.match(rec.path)
            if not match:
                continue
            path_known = True
            if method != rec.method:
                continue
            needed = {"metrika:read"} if method == "GET" else UPLOAD_SCOPES
            if not scopes & needed:
                raise _RequestError(
                    403, "access_denied", "The token has none of the rights %s" % sorted(needed)
                )
            counter_id = int(match.group(1))
            rec.counter_id = counter_id
            with self._lock:
                if counter_id in self.denied_counters:
                    raise _RequestError(403, "access_denied", "Access is denied")
                if counter_id not in self.counters:
                    raise _RequestError(404, "not_found", "Counter %d not found" % counter_id)
                result = getattr(self, name)(rec, counter_id, *match.groups()[1:])
            if len(result) == 2:
                return result[0], result[1], None
            return result
        if path_known:
            raise _RequestError(
                405, "invalid_parameter", "Method %s is not allowed here" % rec.method
            )
        raise _RequestError(404, "not_found", "Entity not found")

    # management ---------------------------------------------------------

    def _get_counter(self, rec, cid):
        return 200, {"counter": dict(self.counters[cid])}

    def _get_goals(self, rec, cid):
        return 200, {"goals": [dict(g) for g in self.goals.get(cid, [])]}

    def _post_offline(self, rec, cid):
        upload_type = rec.query.get("type", "BASIC")
        if upload_type not in OFFLINE_TYPES:
            raise _RequestError(
                400,
                "invalid_parameter",
                "type must be one of %s" % ", ".join(OFFLINE_TYPES),
                "type",
            )
        comment = rec.query.get("comment")
        if comment is not None and len(comment) > 255:
            raise _RequestError(
                400, "invalid_parameter", "comment is longer than 255 characters", "comment"
            )
        text = self._file_text(rec)
        header, rows = _read_csv(text, ",")
        id_columns = [c for c in header if c in OFFLINE_ID_COLUMNS]
        known = set(OFFLINE_ID_COLUMNS) | {"Target", "DateTime", "Price", "Currency"}
        unknown = [c for c in header if c not in known]
        if unknown:
            raise _RequestError(
                400, "invalid_uploading", "Unknown column(s): %s" % ", ".join(unknown)
            )
        if len(set(header)) != len(header):
            raise _RequestError(400, "invalid_uploading", "Duplicate column names in the header")
        if len(id_columns) != 1:
            raise _RequestError(
                400,
                "invalid_uploading",
                "Exactly one identifier column (ClientId, Yclid, UserId or PurchaseId) is "
                "required, got %d" % len(id_columns),
            )
        for column in ("Target", "DateTime"):
            if column not in header:
                raise _RequestError(
                    400, "invalid_uploading", "Required column %s is missing" % column
                )
        legacy = rec.query.get("client_id_type")
        id_column = id_columns[0]
        if legacy is not None and legacy.upper() != OFFLINE_ID_COLUMNS[id_column]:
            raise _RequestError(
                400,
                "invalid_parameter",
                "client_id_type does not match the %s column" % id_column,
                "client_id_type",
            )
        if not rows:
            raise _RequestError(400, "invalid_uploading", "The file has no data rows")
        now = self.clock()
        goals = self.action_goal_ids(cid) if self.strict_goals else None
        problems, accepted = [], []
        for line, row in rows:
            reasons = _offline_row_problems(header, row, id_column, now, goals)
            if reasons:
                problems.extend("line %d: %s" % (line, reason) for reason in reasons)
            else:
                values = dict(zip(header, row, strict=True))
                accepted.append((values[id_column], values["Target"], values["DateTime"]))
        if not accepted:
            raise _RequestError(400, "invalid_uploading", "; ".join(problems[:20]))
        held = self._held_next_offline > 0
        if held:
            self._held_next_offline -= 1
        uploading = {
            "id": self._next_offline_id,
            "create_time": _iso(now),
            "source_quantity": len(rows),
            "line_quantity": len(accepted),
            "comment": comment,
            "type": upload_type,
            "client_id_type": OFFLINE_ID_COLUMNS[id_column],
            "status": self.offline_initial_status,
            "goal_not_found_quantity": 0,
            "user_not_found_quantity": 0,
            "linked_quantity": 0,
            "_counter_id": cid,
            "_stored_at": now,
            "_rows": accepted,
            "_refused": problems,
            "_held": held,
        }
        self._next_offline_id += 1
        self.offline_uploadings[cid][uploading["id"]] = uploading
        self.stored_offline_rows.update(accepted)
        return 200, {"uploading": _public(uploading)}

    def _linkage_counts(self, uploading):
        """The counts Metrica reports once it processed the uploading's accepted rows."""
        cid = uploading.get("_counter_id")
        goals = self.action_goal_ids(cid) if cid is not None else set()
        visitors = self.visitors.get(cid)
        counts = {"linked_quantity": 0, "goal_not_found_quantity": 0, "user_not_found_quantity": 0}
        for identifier, target, _stamp in uploading.get("_rows", ()):
            if target not in goals:
                counts["goal_not_found_quantity"] += 1
            elif visitors is not None and identifier not in visitors:
                counts["user_not_found_quantity"] += 1
            else:
                counts["linked_quantity"] += 1
        return counts

    def _advance_offline(self, uploading):
        """Process the uploading if its delay has passed (called whenever it is read)."""
        delay = self.offline_processing_delay
        if (
            delay is None
            or uploading.get("_held")
            or "_stored_at" not in uploading
            or uploading["status"] in OFFLINE_FINAL_STATUSES
            or self.clock() < uploading["_stored_at"] + delay
        ):
            return
        counts = self._linkage_counts(uploading)
        uploading.update(counts)
        uploading["status"] = (
            OFFLINE_PROCESSED if counts["linked_quantity"] else OFFLINE_LINKAGE_FAILURE
        )

    def _get_offline_list(self, rec, cid):
        limit = _int_param(rec, "limit", DEFAULT_PAGE_SIZE, 1, DEFAULT_PAGE_SIZE)
        offset = _int_param(rec, "offset", 0, 0, None)
        limit = min(limit, int(self.max_page_size))
        items = sorted(
            self.offline_uploadings[cid].values(),
            key=lambda u: u["id"],
            reverse=self.list_order == LIST_NEWEST_FIRST,
        )
        if rec.query.get("type"):
            items = [u for u in items if u["type"] == rec.query["type"]]
        page = items[offset : offset + limit]
        for uploading in page:
            self._advance_offline(uploading)
        return 200, {"uploadings": [_public(u) for u in page]}

    def _get_offline_one(self, rec, cid, uploading_id):
        uploading = self.offline_uploadings[cid].get(int(uploading_id))
        if uploading is None:
            raise _RequestError(404, "not_found", "Uploading %s not found" % uploading_id)
        self._advance_offline(uploading)
        return 200, {"uploading": _public(uploading)}

    # CDP ----------------------------------------------------------------

    def _merge_mode(self, rec):
        merge_mode = rec.query.get("merge_mode")
        if merge_mode is None:
            raise _RequestError(400, "missing_parameter", "merge_mode is required", "merge_mode")
        if merge_mode not in MERGE_MODES:
            raise _RequestError(
                400, "invalid_parameter", "merge_mode must be SAVE, UPDATE or APPEND", "merge_mode"
            )
        return merge_mode

    @staticmethod
    def _delimiter(rec):
        delimiter_type = rec.query.get("delimiter_type", "COMMA")
        if delimiter_type not in DELIMITERS:
            raise _RequestError(
                400,
                "invalid_parameter",
                "delimiter_type must be COMMA or SEMICOLON",
                "delimiter_type",
            )
        return DELIMITERS[delimiter_type]

    @staticmethod
    def _file_text(rec):
        if not rec.content_type.lower().startswith("multipart/form-data"):
            raise _RequestError(
                400, "invalid_uploading", "Expected multipart/form-data with a part named 'file'"
            )
        if rec.file is None:
            raise _RequestError(
                400, "invalid_uploading", "Multipart part 'file' is missing", "file"
            )
        data = rec.file
        if not data.strip():
            raise _RequestError(400, "invalid_uploading", "The file is empty", "file")
        if data.startswith(b"\xef\xbb\xbf"):
            raise _RequestError(
                400, "invalid_uploading", "The file starts with a UTF-8 BOM", "file"
            )
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise _RequestError(
                400, "invalid_uploading", "The file is not valid UTF-8", "file"
            ) from None

    def _post_simple_orders(self, rec, cid):
        self._merge_mode(rec)
        delimiter = self._delimiter(rec)
        text = self._file_text(rec)
        header, rows = _read_csv(text, delimiter)
        _check_header(header, SIMPLE_ORDER_COLUMNS)
        if "create_date_time" not in header:
            raise _RequestError(
                400, "invalid_uploading", "Required column create_date_time is missing"
            )
        if not any(f in header for f in IDENTIFIER_FIELDS):
            raise _RequestError(
                400,
                "invalid_uploading",
                "One of the columns %s is required" % ", ".join(IDENTIFIER_FIELDS),
            )
        if not rows:
            raise _RequestError(400, "invalid_uploading", "The file has no data rows")
        errors = []
        goals = self.action_goal_ids(cid) if self.strict_goals else None
        for line, row in rows:
            if len(row) != len(header):
                errors.append("line %d: expected %d values, got %d" % (line, len(header), len(row)))
                continue
            values = dict(zip(header, row, strict=True))
            errors.extend(
                "line %d: %s" % (line, p) for p in _check_order_row(values, goals, "simple")
            )
        if not errors and "id" in header:  # FAILED means nothing was loaded
            column = header.index("id")
            self.stored_order_ids.update(row[column] for _line, row in rows)
        return self._store_cdp(cid, "SIMPLE_ORDERS", "CSV", len(rows), errors)

    def _post_cdp_detailed(self, rec, cid, kind, fmt):
        self._merge_mode(rec)
        goals = self.action_goal_ids(cid) if self.strict_goals else None
        errors = []
        if fmt == "json":
            return self._post_cdp_detailed_json(rec, cid, kind, goals)
        delimiter = self._delimiter(rec)
        raw_mapping = rec.query.get("columns_mapping")
        if not raw_mapping:
            raise _RequestError(
                400, "missing_parameter", "columns_mapping is required", "columns_mapping"
            )
        mapping = _parse_mapping(
            raw_mapping, CONTACT_FIELDS if kind == "contacts" else ORDER_FIELDS
        )
        missing = [f for f in REQUIRED_FIELDS[kind] if f not in mapping]
        if missing:
            raise _RequestError(
                400,
                "invalid_parameter",
                "columns_mapping lacks %s" % ", ".join(missing),
                "columns_mapping",
            )
        text = self._file_text(rec)
        header, rows = _read_csv(text, delimiter)
        if len(set(header)) != len(header):
            raise _RequestError(400, "invalid_uploading", "Duplicate column names in the header")
        absent = [h for h in mapping.values() if h not in header]
        if absent:
            raise _RequestError(
                400,
                "invalid_uploading",
                "Column(s) from columns_mapping not found in the file: %s" % ", ".join(absent),
            )
        if not rows:
            raise _RequestError(400, "invalid_uploading", "The file has no data rows")
        stored = []
        for line, row in rows:
            if len(row) != len(header):
                errors.append("line %d: expected %d values, got %d" % (line, len(header), len(row)))
                continue
            cells = dict(zip(header, row, strict=True))
            values = {system: cells[column] for system, column in mapping.items()}
            if kind == "contacts":
                problems = _check_contact_row(values)
            else:
                problems = _check_order_row(values, goals, "orders")
                problems += self._detailed_order_problems(cid, values)
            errors.extend("line %d: %s" % (line, p) for p in problems)
            stored.append(
                {
                    field: _split_multi(value) if field in IDENTIFIER_FIELDS else value
                    for field, value in values.items()
                    if value != ""
                }
            )
        if not errors:  # FAILED means nothing was loaded
            self._keep_detailed(cid, kind, stored)
        return self._store_cdp(cid, kind.upper(), "CSV", len(rows), errors)

    def _post_cdp_detailed_json(self, rec, cid, kind, goals):
        errors = []
        if not rec.content_type.lower().startswith("application/json"):
            raise _RequestError(400, "invalid_parameter", "Content-Type must be application/json")
        if rec.json_error is not None or rec.json is None:
            raise _RequestError(400, "invalid_json", "The body is not valid JSON")
        items = rec.json.get(kind) if isinstance(rec.json, dict) else None
        if not isinstance(items, list):
            raise _RequestError(
                400, "invalid_json", "The body must be an object with a %r list" % kind
            )
        if not items:
            raise _RequestError(400, "invalid_uploading", "The %r list is empty" % kind)
        stored = []
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                errors.append("%s[%d]: must be an object" % (kind, index))
                continue
            problems = _check_json_item(kind, item, goals)
            if kind == "orders":
                problems += self._detailed_order_problems(cid, item)
            errors.extend("%s[%d]: %s" % (kind, index, p) for p in problems)
            stored.append(item)
        if not errors:
            self._keep_detailed(cid, kind, stored)
        return self._store_cdp(cid, kind.upper(), "JSON", len(items), errors)

    def _detailed_order_problems(self, cid, values):
        """What the detailed flow adds to an order's checks: its status is a default, a mapped
        id or a JS-event goal; its contact was uploaded before it."""
        problems = []
        status = values.get("order_status")
        if (
            isinstance(status, str)
            and status
            and status not in ORDER_STATUS_TYPES
            and status not in {mapped["id"] for mapped in self.order_statuses[cid]}
            and status not in self.action_goal_ids(cid)
        ):
            problems.append(
                "order_status %s is neither a default status, nor in the counter's status "
                "mapping, nor a JS-event goal of the counter" % status
            )
        client = values.get("client_uniq_id")
        if isinstance(client, str) and client and client not in self.contacts[cid]:
            problems.append(
                "client_uniq_id %s: no contact with this uniq_id was uploaded (contacts go "
                "before the orders that need them)" % client
            )
        return problems

    def _keep_detailed(self, cid, kind, items):
        """Store a passed upload's contacts or orders (SAVE: each replaces the stored one)."""
        key = "uniq_id" if kind == "contacts" else "id"
        stored = self.contacts[cid] if kind == "contacts" else self.detailed_orders[cid]
        counter = self.stored_contact_ids if kind == "contacts" else self.stored_detailed_order_ids
        for item in items:
            stored[str(item[key])] = dict(item)
            counter[(cid, str(item[key]))] += 1

    def _store_cdp(self, cid, subtype, uploading_format, count, errors):
        self._seq += 1
        failed = bool(errors)
        uploading = {
            "uploading_id": uuid.uuid4().hex,
            "datetime": _iso(self.clock()),
            "api_validation_status": "FAILED" if failed else "PASSED",
            "elements_count": 0 if failed else count,
            "entity_type": "SYSTEM",
            "entity_subtype": subtype,
            "uploading_format": uploading_format,
            "uploading_source": "API",
            "api_validation_errors": errors[:100],
            "uploading_title": None,
            "_seq": self._seq,
        }
        self.cdp_uploadings[cid].append(uploading)
        return 200, {"uploading": _public(uploading)}

    def _get_last_uploadings(self, rec, cid):
        limit = _int_param(rec, "limit", 10, 1, 1000)
        items = sorted(self.cdp_uploadings[cid], key=lambda u: u["_seq"], reverse=True)
        offset = rec.query.get("datetime_offset")
        if offset:
            bound = _parse_iso(offset)
            if bound is None:
                raise _RequestError(
                    400,
                    "invalid_parameter",
                    "datetime_offset is not a date-time",
                    "datetime_offset",
                )
            items = [u for u in items if _parse_iso(u["datetime"]) < bound]
        source = rec.query.get("source")
        if source:
            items = [u for u in items if u["uploading_source"] == source]
        return 200, {"uploadings": [_public(u) for u in items[:limit]]}

    def _get_order_statuses(self, rec, cid):
        return 200, {"order_statuses": [dict(s) for s in self.order_statuses[cid]]}

    def _post_order_statuses(self, rec, cid):
        if rec.json_error is not None or not isinstance(rec.json, dict):
            raise _RequestError(400, "invalid_json", "The body is not a JSON object")
        statuses = rec.json.get("order_statuses")
        if not isinstance(statuses, list):
            raise _RequestError(400, "invalid_json", "order_statuses must be a list")
        seen = set()
        for index, status in enumerate(statuses):
            where = "order_statuses[%d]" % index
            if not isinstance(status, dict):
                raise _RequestError(400, "invalid_parameter", "must be an object", where)
            if not isinstance(status.get("id"), str) or not _STATUS_ID_RE.match(status["id"]):
                raise _RequestError(
                    400, "invalid_parameter", "id must match ^[\\w-:]+$ (1-255 chars)", where
                )
            if status["id"] in seen:
                raise _RequestError(
                    400, "invalid_parameter", "duplicate id %s" % status["id"], where
                )
            seen.add(status["id"])
            if status.get("type") not in ORDER_STATUS_TYPES:
                reason = "type must be one of %s" % ", ".join(ORDER_STATUS_TYPES)
                raise _RequestError(400, "invalid_parameter", reason, where)
            humanized = status.get("humanized")
            if humanized is not None and (not isinstance(humanized, str) or len(humanized) > 4096):
                raise _RequestError(
                    400,
                    "invalid_parameter",
                    "humanized must be a string of at most 4096 chars",
                    where,
                )
            goal_ids = status.get("goal_action_ids", [])
            if (
                not isinstance(goal_ids, list)
                or len(goal_ids) > 10
                or not all(isinstance(g, str) for g in goal_ids)
            ):
                reason = "goal_action_ids must be a list of at most 10 strings"
                raise _RequestError(400, "invalid_parameter", reason, where)
        self.order_statuses[cid] = [dict(s, order_status_source="API") for s in statuses]
        return 200, {"success": True}


# -------------------------------------------------------------------- validation helpers


def _public(uploading):
    return {k: v for k, v in uploading.items() if not k.startswith("_")}


def _offline_row_problems(header, row, id_column, now, goals):
    """Why Metrica would refuse one offline-conversion row (empty list: it passes)."""
    if len(row) != len(header):
        return ["expected %d values, got %d" % (len(header), len(row))]
    values = dict(zip(header, row, strict=True))
    problems = []
    ident = values[id_column]
    if not ident:
        problems.append("%s is empty" % id_column)
    elif id_column in ("ClientId", "Yclid") and not _CLIENT_ID_RE.match(ident):
        problems.append("%s must be digits" % id_column)
    target = values["Target"]
    if not target or not _GOAL_ID_RE.match(target):
        problems.append("Target must be a goal identifier")
    elif goals is not None and target not in goals:
        problems.append("Target %s is not a JS-event goal of the counter" % target)
    stamp = values["DateTime"]
    if not re.fullmatch(r"\d{1,11}", stamp or ""):
        problems.append("DateTime must be a Unix timestamp in seconds")
    elif int(stamp) > now:
        problems.append("DateTime is in the future")
    price = values.get("Price", "")
    if price and not _DECIMAL_RE.match(price):
        problems.append("Price must be a decimal number with a dot")
    currency = values.get("Currency", "")
    if currency and not re.fullmatch(r"[A-Za-z]{3}", currency):
        problems.append("Currency must be a 3-letter ISO 4217 code")
    return problems


def _int_param(rec, name, default, low, high):
    raw = rec.query.get(name)
    if raw is None or raw == "":
        return default
    if not re.fullmatch(r"\d+", raw):
        raise _RequestError(400, "invalid_parameter", "%s must be an integer" % name, name)
    value = int(raw)
    if value < low or (high is not None and value > high):
        raise _RequestError(400, "invalid_parameter", "%s is out of range" % name, name)
    return value


def _read_csv(text, delimiter):
    """(header, [(line number, row)]) without blank lines; raises 400 on an unusable header."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = None
    rows = []
    try:
        for row in reader:
            if not row or all(not cell.strip() for cell in row):
                continue
            if header is None:
                header = row
            else:
                rows.append((reader.line_num, row))
    except csv.Error as err:
        raise _RequestError(400, "invalid_uploading", "CSV error: %s" % err) from None
    if not header:
        raise _RequestError(400, "invalid_uploading", "The file has no header row")
    if any(not h.strip() for h in header) or any(h != h.strip() for h in header):
        raise _RequestError(
            400, "invalid_uploading", "Empty or space-padded column name in the header"
        )
    return header, rows


def _check_header(header, allowed):
    if len(set(header)) != len(header):
        raise _RequestError(400, "invalid_uploading", "Duplicate column names in the header")
    unknown = [h for h in header if h not in allowed]
    if unknown:
        raise _RequestError(400, "invalid_uploading", "Unknown column(s): %s" % ", ".join(unknown))


def _parse_mapping(raw, known_fields):
    pairs = _MAPPING_PAIR_RE.findall(raw)
    rebuilt = ",".join('"%s":"%s"' % pair for pair in pairs)
    if not pairs or rebuilt != raw.strip():
        raise _RequestError(
            400,
            "invalid_parameter",
            'columns_mapping must be "system_name":"Column",... pairs',
            "columns_mapping",
        )
    mapping = {}
    for system, column in pairs:
        if system in mapping:
            raise _RequestError(
                400, "invalid_parameter", "%s is mapped twice" % system, "columns_mapping"
            )
        if system not in known_fields and not _ATTRIBUTE_RE.match(system):
            raise _RequestError(
                400, "invalid_parameter", "unknown field %s" % system, "columns_mapping"
            )
        mapping[system] = column
    return mapping


def _split_multi(value):
    return value.split(",") if value else []


def _check_identifier_values(field, items):
    """Problems of one identifier field given as a list of string items."""
    problems = []
    checks = {
        "client_ids": (_CLIENT_ID_RE, "ClientIDs must be digits"),
        "emails": (_EMAIL_RE, "e-mails must be lower-case with @ and a domain"),
        "phones": (_PHONE_RE, "phones must be digits only, with the country code"),
        "emails_md5": (_MD5_RE, "MD5 hashes must be 32 lower-case hex characters"),
        "phones_md5": (_MD5_RE, "MD5 hashes must be 32 lower-case hex characters"),
    }
    pattern, reason = checks[field]
    for item in items:
        if item != item.strip():
            problems.append("%s: no spaces allowed between values" % field)
        elif not pattern.match(item):
            problems.append("%s: %s" % (field, reason))
    return problems


def _check_status(status, goals, detailed):
    if status in ORDER_STATUS_TYPES:
        return None
    if status.upper() == "CANCELED":
        return "order_status %s is not valid (use CANCELLED)" % status
    if not _GOAL_ID_RE.match(status):
        return "order_status must be IN_PROGRESS, PAID, CANCELLED, SPAM or a goal identifier"
    if goals is not None and not detailed and status not in goals:
        return "order_status %s is not a JS-event goal of the counter" % status
    return None


def _check_goal_items(items):
    problems = []
    for item in items:
        goal, _, price = item.partition(":")
        if not goal or not _GOAL_ID_RE.match(goal):
            problems.append("goals: bad goal identifier")
        if price and not _DECIMAL_RE.match(price):
            problems.append("goals: price must be a decimal with a dot")
    return problems


def _check_order_row(values, goals, flavour):  # noqa: C901 - one flat check per column
    """Problems of one CSV order row (simple orders or detailed orders, by system field)."""
    problems = []
    if flavour == "simple":
        created = values.get("create_date_time", "")
        if not created:
            problems.append("create_date_time is empty")
        if not any(values.get(f) for f in IDENTIFIER_FIELDS):
            problems.append(
                "no customer identifier (client_ids, emails, phones, emails_md5, phones_md5)"
            )
    else:
        for field in REQUIRED_FIELDS["orders"]:
            if not values.get(field):
                problems.append("%s is empty" % field)
        if values.get("client_type") and values["client_type"] != "CONTACT":
            problems.append("client_type must be CONTACT")
    for field in ("create_date_time", "update_date_time", "finish_date_time"):
        if values.get(field):
            reason = _check_date(values[field], _CSV_DATE_FORMATS)
            if reason:
                problems.append("%s %s" % (field, reason))
    for field in IDENTIFIER_FIELDS:
        if values.get(field):
            problems.extend(_check_identifier_values(field, _split_multi(values[field])))
    if values.get("order_status"):
        reason = _check_status(values["order_status"], goals, flavour != "simple")
        if reason:
            problems.append(reason)
    for field in ("revenue", "cost"):
        if values.get(field) and not _DECIMAL_RE.match(values[field]):
            problems.append("%s must be a decimal number with a dot" % field)
    if values.get("goals"):
        problems.extend(_check_goal_items(_split_multi(values["goals"])))
    if values.get("products"):
        for item in _split_multi(values["products"]):
            name, sep, qty = item.rpartition(":")
            if not sep or not name or not re.fullmatch(r"\d+", qty):
                problems.append("products: items must be product:quantity")
    if values.get("currency") and not _CURRENCY_RE.match(values["currency"]):
        problems.append("currency must be a 3-letter ISO 4217 code")
    return problems


def _check_contact_row(values):
    problems = []
    if not values.get("uniq_id"):
        problems.append("uniq_id is empty")
    for field in ("create_date_time", "update_date_time"):
        if values.get(field):
            reason = _check_date(values[field], _CSV_DATE_FORMATS)
            if reason:
                problems.append("%s %s" % (field, reason))
    if values.get("birth_date"):
        reason = _check_date(values["birth_date"], _CSV_DATE_FORMATS[:3])
        if reason:
            problems.append("birth_date %s" % reason)
    for field in IDENTIFIER_FIELDS:
        if values.get(field):
            problems.extend(_check_identifier_values(field, _split_multi(values[field])))
    return problems


def _is_number(value):
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return True
    return isinstance(value, str) and bool(_DECIMAL_RE.match(value))


def _is_goal_item(goal):
    return (
        isinstance(goal, dict)
        and isinstance(goal.get("goal_action_id"), str)
        and bool(_GOAL_ID_RE.match(goal["goal_action_id"]))
        and (goal.get("price") is None or _is_number(goal["price"]))
    )


def _check_json_item(kind, item, goals):  # noqa: C901 - one flat check per field
    problems = []
    for field in REQUIRED_FIELDS[kind]:
        if item.get(field) in (None, ""):
            problems.append("%s is required" % field)
    dates = ("create_date_time", "update_date_time") + (
        ("finish_date_time",) if kind == "orders" else ()
    )
    for field in dates:
        value = item.get(field)
        if value is not None:
            reason = (
                _check_date(value, _JSON_DATE_FORMATS)
                if isinstance(value, str)
                else "is not a string"
            )
            if reason:
                problems.append("%s %s" % (field, reason))
    for field in IDENTIFIER_FIELDS:
        values = item.get(field)
        if values is None:
            continue
        if not isinstance(values, list):
            problems.append("%s must be a list" % field)
            continue
        problems.extend(_check_identifier_values(field, [str(v) for v in values]))
    if kind == "orders":
        if item.get("client_type") not in (None, "", "CONTACT"):
            problems.append("client_type must be CONTACT")
        status = item.get("order_status")
        if isinstance(status, str) and status:
            reason = _check_status(status, goals, True)
            if reason:
                problems.append(reason)
        for field in ("revenue", "cost"):
            if item.get(field) is not None and not _is_number(item[field]):
                problems.append("%s must be a number" % field)
        goal_list = item.get("goals")
        if goal_list is not None:
            if not isinstance(goal_list, list) or not all(_is_goal_item(g) for g in goal_list):
                problems.append('goals must be a list of {"goal_action_id", "price"}')
        products = item.get("products")
        if products is not None and (
            not isinstance(products, dict) or not all(_is_number(q) for q in products.values())
        ):
            problems.append("products must map product ids to quantities")
        currency = item.get("currency")
        if currency not in (None, "") and not (
            isinstance(currency, str) and _CURRENCY_RE.match(currency)
        ):
            problems.append("currency must be a 3-letter ISO 4217 code")
    return problems


# -------------------------------------------------------------------- as its own process


def main(argv=None):
    """Serve the stand-in until SIGTERM/SIGINT; print its URL on the first line of stdout."""
    parser = argparse.ArgumentParser(description="A local stand-in for the Yandex Metrica API.")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: a free one)")
    parser.add_argument("--token", default="test-token", help="the OAuth token accepted")
    parser.add_argument(
        "--counter",
        type=int,
        action="append",
        help="a counter id to serve (repeatable; default %d)" % DEFAULT_COUNTER_ID,
    )
    parser.add_argument(
        "--goal",
        action="append",
        help="JS-event goal identifier of every counter (repeatable; default: %s)"
        % ", ".join(identifier for identifier, _name in DEFAULT_GOALS),
    )
    parser.add_argument("--strict-goals", action="store_true")
    parser.add_argument(
        "--oauth-client",
        action="append",
        metavar="ID:SECRET",
        help="an OAuth application the stand-in's Yandex OAuth knows (repeatable)",
    )
    parser.add_argument(
        "--processing-delay",
        type=float,
        default=None,
        help="seconds until an offline uploading is processed (default: never on its own)",
    )
    parser.add_argument("--list-order", choices=(LIST_OLDEST_FIRST, LIST_NEWEST_FIRST))
    parser.add_argument("--max-page-size", type=int, default=DEFAULT_PAGE_SIZE)
    args = parser.parse_args(argv)
    goals = args.goal or [identifier for identifier, _name in DEFAULT_GOALS]
    counters = [
        dict(DEFAULT_COUNTER, id=counter_id, goals=goals)
        for counter_id in (args.counter or [DEFAULT_COUNTER_ID])
    ]
    api = MetrikaStandIn(
        token=args.token,
        counters=counters,
        strict_goals=args.strict_goals,
        port=args.port,
        list_order=args.list_order or LIST_OLDEST_FIRST,
        max_page_size=args.max_page_size,
        offline_processing_delay=args.processing_delay,
    )
    for pair in args.oauth_client or ():
        client_id, _sep, secret = pair.partition(":")
        api.add_oauth_client(client_id, secret)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_args: stop.set())
    api.start()
    print(api.url, flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        api.stop()


if __name__ == "__main__":
    main()
