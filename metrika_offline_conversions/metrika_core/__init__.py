"""Framework-free Yandex Metrica client, identifier normalisers and upload-file builders.

Nothing in this package imports Odoo: it is used by the addon and tested on its own. The modules
are ``identifiers`` (normalise and hash ClientID, yclid, phone, e-mail), ``formats`` (the upload
files), ``client`` (the only code that speaks HTTP), ``errors`` and ``retry``.
"""

from .client import MetrikaClient
from .errors import (
    MetrikaAuthError,
    MetrikaBadRequestError,
    MetrikaError,
    MetrikaQuotaError,
    MetrikaServerError,
    MetrikaTimeoutError,
    MetrikaTransportError,
    MetrikaUnexpectedResponseError,
    MetrikaValidationError,
)
from .identifiers import (
    InvalidIdentifier,
    md5_hex,
    normalize_client_id,
    normalize_email,
    normalize_phone,
    normalize_yclid,
)
from .retry import RetryPolicy

__all__ = [
    "InvalidIdentifier",
    "MetrikaAuthError",
    "MetrikaBadRequestError",
    "MetrikaClient",
    "MetrikaError",
    "MetrikaQuotaError",
    "MetrikaServerError",
    "MetrikaTimeoutError",
    "MetrikaTransportError",
    "MetrikaUnexpectedResponseError",
    "MetrikaValidationError",
    "RetryPolicy",
    "md5_hex",
    "normalize_client_id",
    "normalize_email",
    "normalize_phone",
    "normalize_yclid",
]
