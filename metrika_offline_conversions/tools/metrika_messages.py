"""What a Metrica error means for the queue and for the user: one table, read top to bottom.

Each row is (error class, the conversions' failure reason, the text shown to the user). The
first row whose class matches wins, so subclasses come before their bases.
"""

from odoo.tools.translate import LazyTranslate

from .. import const
from ..metrika_core import errors as metrika_errors

_lt = LazyTranslate(__name__)

TOKEN_PERMISSIONS = "metrika:read + metrika:offline_data (or metrika:write)"

# Why a goal-based conversion is skipped when its record has no click to link it to: said by
# the goal-based sender, and meant for the queue too (a row queued without one is skipped at
# once). Translate with ``env._(NO_CLIENT_ID_OR_YCLID)``.
NO_CLIENT_ID_OR_YCLID = _lt(
    "Goal-based conversions need a ClientID or a yclid; this record has neither."
)

ERROR_TABLE = (
    (
        metrika_errors.MetrikaAuthError,
        const.REASON_AUTH,
        _lt(
            "Yandex Metrica refused the access (HTTP %(status)s: %(detail)s). Check the counter "
            "ID, and paste a new OAuth token of an account that may edit this counter, with the "
            "permissions %(permissions)s."
        ),
    ),
    (
        metrika_errors.MetrikaSettingsError,
        const.REASON_SETTINGS,
        _lt(
            "Yandex Metrica cannot serve these settings (HTTP %(status)s: %(detail)s). Check the "
            "counter ID in Settings and that the token's account may use this counter, with the "
            "permissions %(permissions)s."
        ),
    ),
    (
        metrika_errors.MetrikaValidationError,
        const.REASON_REFUSED,
        _lt("Yandex Metrica rejected the file: %(detail)s"),
    ),
    (
        metrika_errors.MetrikaBadRequestError,
        const.REASON_BAD_REQUEST,
        _lt("Yandex Metrica rejected the request (HTTP %(status)s): %(detail)s"),
    ),
    (
        metrika_errors.MetrikaQuotaError,
        const.REASON_QUOTA,
        _lt(
            "Yandex Metrica's request quota is used up (%(detail)s); sending resumes in "
            "%(seconds)s seconds."
        ),
    ),
    (
        metrika_errors.MetrikaServerError,
        const.REASON_SERVER,
        _lt(
            "Yandex Metrica is not available right now (HTTP %(status)s); sending will be retried."
        ),
    ),
    (
        metrika_errors.MetrikaTimeoutError,
        const.REASON_NETWORK,
        _lt("Yandex Metrica did not answer in time; sending will be retried."),
    ),
    (
        metrika_errors.MetrikaTransportError,
        const.REASON_NETWORK,
        _lt("Yandex Metrica could not be reached (%(detail)s); sending will be retried."),
    ),
    (
        metrika_errors.MetrikaError,
        const.REASON_UNEXPECTED,
        _lt("Yandex Metrica answered unexpectedly: %(detail)s"),
    ),
)


def _row(error):
    for error_class, reason, text in ERROR_TABLE:
        if isinstance(error, error_class):
            return reason, text
    raise TypeError("not a Metrica error: %r" % (error,))


def error_reason(error):
    """The failure reason of the conversions that ``error`` kept from Metrica."""
    return _row(error)[0]


def error_text(env, error):
    """What ``error`` means, in the user's language, with Metrica's own words."""
    detail = "; ".join(getattr(error, "errors", None) or ()) or error.message or ""
    text = _row(error)[1]._translate(env.lang or "en_US")
    return text % {
        "status": error.status or "-",
        "detail": detail,
        "seconds": int(getattr(error, "retry_after", None) or 0),
        "permissions": TOKEN_PERMISSIONS,
    }
