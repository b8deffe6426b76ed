"""One sender per upload method, and the registry the upload run picks them from.

A new upload method is a module beside these, with an ``UploadSender`` subclass whose ``method``
is the method's value in ``const``, and one line in ``SENDERS``.
"""

from .base import PreparedFile, UploadSender
from .cdp_detailed import CdpDetailedSender
from .offline_conversions import OfflineConversionsSender
from .simple_orders import SimpleOrdersSender

# Upload method → the class that sends it.
SENDERS = {
    sender.method: sender
    for sender in (
        SimpleOrdersSender,
        OfflineConversionsSender,
        CdpDetailedSender,
    )
}

__all__ = [
    "SENDERS",
    "CdpDetailedSender",
    "OfflineConversionsSender",
    "PreparedFile",
    "SimpleOrdersSender",
    "UploadSender",
]
