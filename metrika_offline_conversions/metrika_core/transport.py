"""The one request path of metrika_core: every request to Yandex (the Metrica API in
:mod:`.client`, Yandex OAuth in :mod:`.oauth`) is sent by :func:`send`.

The only module of the package that imports ``requests``. A request has an explicit timeout and
follows no redirect; a failure without an answer becomes a typed, retryable-or-not error
(:func:`transport_error`) whose text holds no header (tokens and secrets travel only in the
``Authorization`` header). The callers turn the answer into their own results and errors.
"""

import json
from collections import namedtuple

import requests

from .errors import MetrikaTimeoutError, MetrikaTransportError

USER_AGENT = "metrika-offline-conversions/18.0 (+python-requests/%s)" % requests.__version__

# The connection could not be opened: the request never left.
_NOT_CONNECTED = ("NewConnectionError", "ConnectTimeoutError", "NameResolutionError")

#: An HTTP answer: its status, headers and body decoded from JSON (``None`` when the body is
#: empty or not JSON).
Answer = namedtuple("Answer", "status headers body")


def new_session():
    return requests.Session()


def send(session, method, url, *, service, headers, timeout, params=None, data=None, **body):
    """Send one request and return its :class:`Answer`, whatever its status.

    :param session: a ``requests.Session``
    :param service: the service's name for error texts (``"Metrica"``, ``"Yandex OAuth"``)
    :param headers: every header of the request (``Authorization`` included)
    :param timeout: seconds, or ``(connect, read)`` seconds; required
    :param params: query parameters (``None`` values are dropped)
    :param data: a form (``dict``) or raw bytes
    :param body: ``files=`` (multipart) or ``json=``, as ``requests`` takes them
    :raise MetrikaTransportError: no answer (:class:`MetrikaTimeoutError` for a timeout)
    """
    if params:
        params = {key: value for key, value in params.items() if value is not None}
    try:
        response = session.request(
            method,
            url,
            params=params or None,
            data=data,
            headers=headers,
            timeout=timeout,
            allow_redirects=False,
            **body,
        )
        content = response.content
    except requests.RequestException as err:
        raise transport_error(err, service) from None
    try:
        decoded = json.loads(content.decode("utf-8")) if content else None
    except (UnicodeDecodeError, ValueError):
        decoded = None
    return Answer(response.status_code, response.headers, decoded)


def transport_error(err, service):
    """A ``requests`` exception as our error: retryable unless the request itself is wrong,
    ``maybe_accepted`` unless it provably never left. The URL holds no secret, and headers are
    never in the text."""
    name = "requests.%s" % type(err).__name__
    reason = err.args[0] if err.args else None
    never_sent = isinstance(err, requests.ConnectTimeout) or any(
        cls.__name__ in _NOT_CONNECTED for cls in type(getattr(reason, "reason", reason)).__mro__
    )
    detail = "%s: %s" % (name, err)
    if isinstance(err, requests.Timeout):
        if never_sent:
            text = "Timed out connecting to %s; the request was not sent (%s)" % (service, detail)
        else:
            text = "Timed out waiting for %s; the request may have been accepted (%s)" % (
                service,
                detail,
            )
        return MetrikaTimeoutError(text, maybe_accepted=not never_sent)
    if isinstance(err, requests.exceptions.SSLError):
        return MetrikaTransportError(
            "TLS error talking to %s (%s)" % (service, detail),
            retryable=False,
            maybe_accepted=False,
        )
    if isinstance(
        err,
        (
            requests.exceptions.InvalidURL,
            requests.exceptions.MissingSchema,
            requests.exceptions.InvalidSchema,
            requests.exceptions.InvalidHeader,
        ),
    ):
        return MetrikaTransportError(
            "Invalid request (%s)" % name, retryable=False, maybe_accepted=False
        )
    if never_sent:
        return MetrikaTransportError(
            "Could not connect to %s (%s)" % (service, detail), maybe_accepted=False
        )
    return MetrikaTransportError("Connection to %s failed (%s)" % (service, detail))
