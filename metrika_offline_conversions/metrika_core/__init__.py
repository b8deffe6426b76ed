"""Framework-free Yandex Metrica client, identifier normalisers and upload-file builders.

Nothing in this package imports Odoo: it is used by the addon and tested on its own. The modules
are ``identifiers`` (normalise and hash ClientID, yclid, phone, e-mail), ``formats`` (the upload
files), ``client`` (the only code that speaks HTTP), ``outcomes`` (what Metrica did with an
upload), ``errors`` and ``retry``. ``client_cdp`` and ``formats.cdp_detailed`` hold the detailed
CRM flow (contacts, orders, status mapping).
"""

from .client import MetrikaClient, check_upload_comment, offline_upload_comment
from .errors import (
    MetrikaAuthError,
    MetrikaBadRequestError,
    MetrikaConfigError,
    MetrikaDataError,
    MetrikaError,
    MetrikaQuotaError,
    MetrikaRejectedError,
    MetrikaServerError,
    MetrikaSettingsError,
    MetrikaTimeoutError,
    MetrikaTransportError,
    MetrikaUnexpectedResponseError,
    MetrikaValidationError,
    UploadCommentError,
)
from .formats import (
    BuiltFile,
    UploadDataError,
    build_offline_conversions_file,
    build_simple_orders_file,
)
from .identifiers import (
    InvalidIdentifier,
    md5_hex,
    normalize_client_id,
    normalize_email,
    normalize_phone,
    normalize_yclid,
)
from .outcomes import (
    OfflineUploadingOutcome,
    SimpleOrdersOutcome,
    offline_uploading_outcome,
    simple_orders_outcome,
)
from .retry import RetryPolicy

__all__ = [
    "BuiltFile",
    "InvalidIdentifier",
    "MetrikaAuthError",
    "MetrikaBadRequestError",
    "MetrikaClient",
    "MetrikaConfigError",
    "MetrikaDataError",
    "MetrikaError",
    "MetrikaQuotaError",
    "MetrikaRejectedError",
    "MetrikaServerError",
    "MetrikaSettingsError",
    "MetrikaTimeoutError",
    "MetrikaTransportError",
    "MetrikaUnexpectedResponseError",
    "MetrikaValidationError",
    "OfflineUploadingOutcome",
    "RetryPolicy",
    "SimpleOrdersOutcome",
    "UploadCommentError",
    "UploadDataError",
    "build_offline_conversions_file",
    "build_simple_orders_file",
    "check_upload_comment",
    "md5_hex",
    "normalize_client_id",
    "normalize_email",
    "normalize_phone",
    "normalize_yclid",
    "offline_upload_comment",
    "offline_uploading_outcome",
    "simple_orders_outcome",
]
