"""Client of Yandex OAuth (Yandex ID): "Connect to Yandex" without pasting a token.

Two flows, both with the administrator's own OAuth application (its id and secret):

* the authorization-code flow with PKCE (RFC 7636, ``S256``): :func:`new_pkce_pair`,
  :func:`authorize_url` (the page the administrator is sent to), then
  :meth:`YandexOAuthClient.exchange_code` from the callback;
* the device-code flow, for servers Yandex cannot redirect to:
  :meth:`YandexOAuthClient.request_device_code` (a code the administrator types at Yandex's
  page), then :meth:`YandexOAuthClient.poll_device_token` until it is approved.

:meth:`YandexOAuthClient.refresh` exchanges the refresh token for a new pair before the token
expires. Requests and answers follow https://yandex.ru/dev/id/doc/en/codes/code-url,
…/codes/screen-code-oauth and …/tokens/refresh-client: form-encoded POSTs to ``/token`` and
``/device/code``, the application's id and secret in an ``Authorization: Basic`` header, errors
as ``{"error": ..., "error_description": ...}``.

:meth:`YandexOAuthClient._post` is the only method that sends, through the package's one
request path (:func:`.transport.send`). Secrets (the application's
secret, codes, verifiers, tokens) never appear in a URL, a log line, an error text or ``repr()``.
"""

import base64
import datetime
import hashlib
import logging
import secrets
import time
import urllib.parse

from .client import is_valid_api_url
from .errors import (
    MetrikaConfigError,
    MetrikaError,
    MetrikaTransportError,
    MetrikaUnexpectedResponseError,
)
from .transport import USER_AGENT, new_session, send

_logger = logging.getLogger(__name__)

DEFAULT_OAUTH_URL = "https://oauth.yandex.ru"
DEFAULT_TIMEOUT = (5.0, 30.0)
#: What the addon needs (metrika-api.md §3): read the counter and its goals, upload offline data.
METRIKA_SCOPES = ("metrika:read", "metrika:offline_data")

# Yandex OAuth's error codes (screen-code-oauth, refresh-client).
ERROR_PENDING = "authorization_pending"
ERROR_SLOW_DOWN = "slow_down"
ERROR_INVALID_GRANT = "invalid_grant"
ERROR_BAD_CODE = "bad_verification_code"
ERROR_INVALID_CLIENT = "invalid_client"
ERROR_UNAUTHORIZED_CLIENT = "unauthorized_client"


class YandexOAuthError(MetrikaError):
    """Yandex OAuth refused the request; ``error_type`` is its ``error`` code."""


class OAuthPendingError(YandexOAuthError):
    """Device flow: the code has not been approved at Yandex yet (``authorization_pending``,
    ``slow_down``). Ask again later."""

    retryable = True


class OAuthGrantError(YandexOAuthError):
    """The code, device code or refresh token is invalid, expired, used or revoked
    (``invalid_grant``, ``bad_verification_code``): the administrator must connect again."""


class OAuthClientError(YandexOAuthError):
    """The OAuth application is unknown, its secret is wrong, or it is blocked or awaiting
    moderation (``invalid_client``, ``unauthorized_client``)."""


_ERROR_CLASSES = {
    ERROR_PENDING: OAuthPendingError,
    ERROR_SLOW_DOWN: OAuthPendingError,
    ERROR_INVALID_GRANT: OAuthGrantError,
    ERROR_BAD_CODE: OAuthGrantError,
    ERROR_INVALID_CLIENT: OAuthClientError,
    ERROR_UNAUTHORIZED_CLIENT: OAuthClientError,
}


class OAuthTokens:
    """A token pair Yandex OAuth issued: ``access_token``, ``refresh_token`` (or ``None``),
    ``expires_at`` (aware UTC datetime, or ``None`` when Yandex gave no lifetime) and ``scope``
    (the rights granted, when Yandex says: only when fewer than asked)."""

    __slots__ = ("access_token", "refresh_token", "expires_at", "scope")

    def __init__(self, access_token, refresh_token=None, expires_at=None, scope=None):
        self.access_token = access_token
        self.refresh_token = refresh_token
        self.expires_at = expires_at
        self.scope = scope

    def __repr__(self):
        return "OAuthTokens(access_token='***', refresh_token=%s, expires_at=%r, scope=%r)" % (
            "'***'" if self.refresh_token else None,
            self.expires_at,
            self.scope,
        )


class DeviceCode:
    """What ``/device/code`` answered: the ``device_code`` (secret, for polling), the
    ``user_code`` the administrator types at ``verification_url``, the polling ``interval``
    (seconds) and ``expires_at`` (aware UTC datetime)."""

    __slots__ = ("device_code", "user_code", "verification_url", "interval", "expires_at")

    def __init__(self, device_code, user_code, verification_url, interval, expires_at):
        self.device_code = device_code
        self.user_code = user_code
        self.verification_url = verification_url
        self.interval = interval
        self.expires_at = expires_at

    def __repr__(self):
        return "DeviceCode(device_code='***', user_code=%r, verification_url=%r)" % (
            self.user_code,
            self.verification_url,
        )


def new_pkce_pair():
    """``(code_verifier, code_challenge)`` for PKCE ``S256``: a random verifier of 86 URL-safe
    characters (RFC 7636 allows 43 to 128) and the unpadded base64url SHA-256 of it."""
    verifier = secrets.token_urlsafe(64)
    return verifier, pkce_challenge(verifier)


def pkce_challenge(verifier):
    """The ``S256`` code challenge of ``verifier``."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def new_state():
    """An unguessable ``state`` for the authorization request (binds the callback to it)."""
    return secrets.token_urlsafe(32)


def authorize_url(base_url, client_id, *, redirect_uri, state, code_challenge):
    """The Yandex OAuth page that asks the administrator to allow access (``response_type=code``
    with PKCE ``S256``). Holds no secret: the verifier stays on the server. No ``scope`` is
    asked: the token gets the rights chosen when the application was registered, and the
    connection check tells whether they are enough."""
    query = urllib.parse.urlencode(
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "state": state,
            "code_challenge": code_challenge,
            "code_challenge_method": "S256",
        }
    )
    return "%s/authorize?%s" % (_check_base_url(base_url), query)


def _check_base_url(base_url):
    if not is_valid_api_url(base_url):
        raise MetrikaConfigError("The Yandex OAuth address must be an http(s) URL")
    return base_url.strip().rstrip("/")


def _utc_now():
    return datetime.datetime.now(datetime.timezone.utc)


class YandexOAuthClient:
    """Requests to Yandex OAuth on behalf of one OAuth application.

    :param client_id: the application's id
    :param client_secret: the application's secret (sent only in the ``Authorization`` header)
    :param base_url: ``https://oauth.yandex.ru`` by default (a local stand-in in tests)
    :param timeout: ``(connect, read)`` seconds
    :param session: a ``requests.Session`` (the client closes only one it created)
    :param clock: returns the current aware UTC datetime (expiry computations)
    :raise MetrikaConfigError: missing id or secret, or a bad address
    """

    def __init__(
        self,
        client_id,
        client_secret,
        *,
        base_url=DEFAULT_OAUTH_URL,
        timeout=DEFAULT_TIMEOUT,
        session=None,
        clock=_utc_now,
    ):
        if not isinstance(client_id, str) or not client_id.strip():
            raise MetrikaConfigError("The OAuth application's id is required")
        if not isinstance(client_secret, str) or not client_secret.strip():
            raise MetrikaConfigError("The OAuth application's secret is required")
        self.client_id = client_id.strip()
        self._secret = client_secret.strip()
        self.base_url = _check_base_url(base_url)
        self.timeout = timeout
        self._clock = clock
        self._own_session = session is None
        self.session = session if session is not None else new_session()

    def __repr__(self):
        return "YandexOAuthClient(client_id=%r, base_url=%r, client_secret='***')" % (
            self.client_id,
            self.base_url,
        )

    def close(self):
        if self._own_session:
            self.session.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    # ---------------------------------------------------------------- the flows

    def exchange_code(self, code, *, code_verifier, redirect_uri=None):
        """``grant_type=authorization_code``: the code from the callback, with the PKCE
        verifier kept on the server → :class:`OAuthTokens`."""
        data = {"grant_type": "authorization_code", "code": code, "code_verifier": code_verifier}
        if redirect_uri:
            data["redirect_uri"] = redirect_uri
        return self._tokens(self._post("/token", data, secrets_in_data=(code, code_verifier)))

    def request_device_code(self):
        """``POST /device/code`` → :class:`DeviceCode`."""
        body = self._post("/device/code", {"client_id": self.client_id}, with_auth=False)
        try:
            interval = int(body.get("interval") or 5)
            lifetime = int(body["expires_in"])
            device = DeviceCode(
                str(body["device_code"]),
                str(body["user_code"]),
                str(body["verification_url"]),
                interval,
                self._clock() + datetime.timedelta(seconds=lifetime),
            )
        except (KeyError, TypeError, ValueError):
            raise MetrikaUnexpectedResponseError(
                "Yandex OAuth's device code answer lacks a field", status=200
            ) from None
        return device

    def poll_device_token(self, device_code):
        """``grant_type=device_code`` once → :class:`OAuthTokens`.

        :raise OAuthPendingError: not approved yet (ask again after the interval)
        :raise OAuthGrantError: the code expired or was refused
        """
        data = {"grant_type": "device_code", "code": device_code}
        return self._tokens(self._post("/token", data, secrets_in_data=(device_code,)))

    def refresh(self, refresh_token):
        """``grant_type=refresh_token`` → a new :class:`OAuthTokens` (the access token may be
        the same one, with a new lifetime).

        :raise OAuthGrantError: the refresh token expired or was revoked
        """
        data = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        return self._tokens(self._post("/token", data, secrets_in_data=(refresh_token,)))

    # ---------------------------------------------------------------- plumbing

    def _tokens(self, body):
        access_token = body.get("access_token")
        if not isinstance(access_token, str) or not access_token:
            raise MetrikaUnexpectedResponseError(
                "Yandex OAuth's answer has no access token", status=200
            )
        expires_at = None
        if isinstance(body.get("expires_in"), (int, float)) and body["expires_in"] > 0:
            seconds = min(body["expires_in"], 10 * 365 * 24 * 3600)
            expires_at = self._clock() + datetime.timedelta(seconds=seconds)
        return OAuthTokens(
            access_token,
            body.get("refresh_token") or None,
            expires_at,
            body.get("scope") or None,
        )

    def _post(self, path, data, *, with_auth=True, secrets_in_data=()):
        """POST a form to Yandex OAuth and return its JSON answer; raise a typed error for
        anything else. The secret goes only in the ``Authorization: Basic`` header."""
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if with_auth:
            pair = ("%s:%s" % (self.client_id, self._secret)).encode("utf-8")
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        started = time.monotonic()
        try:
            answer = send(
                self.session,
                "POST",
                self.base_url + path,
                service="Yandex OAuth",
                headers=headers,
                timeout=self.timeout,
                data=data,
            )
        except MetrikaError as error:
            for secret in (self._secret, *secrets_in_data):
                error.redact(secret)
            raise
        _logger.debug(
            "Yandex OAuth POST %s -> HTTP %s in %.3f s",
            path,
            answer.status,
            time.monotonic() - started,
        )
        if 200 <= answer.status < 300 and isinstance(answer.body, dict):
            return answer.body
        error = self._error(answer.status, answer.body)
        for secret in (self._secret, *secrets_in_data):
            error.redact(secret)
        raise error

    @staticmethod
    def _error(status, body):
        if isinstance(body, dict) and isinstance(body.get("error"), str):
            code = body["error"]
            message = str(body.get("error_description") or code)[:500]
            error_class = _ERROR_CLASSES.get(code, YandexOAuthError)
            return error_class(message, status=status, error_type=code)
        if status >= 500:
            return MetrikaTransportError(
                "Yandex OAuth is not available (HTTP %s)" % status, status=status
            )
        return MetrikaUnexpectedResponseError(
            "Yandex OAuth answered HTTP %s without an error code" % status, status=status
        )
