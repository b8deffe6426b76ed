"""What Metrica did with an upload, read from its ``uploading`` answers into typed outcomes.

A 200 answer only means "file received" (metrika-api.md §0, item 4):

* an offline-conversions uploading moves through statuses until it is ``PROCESSED`` or
  ``LINKAGE_FAILURE``; poll it with :meth:`~.client.MetrikaClient.get_offline_uploading` and read
  each answer with :func:`offline_uploading_outcome`. Statuses and fields:
  https://yandex.com/dev/metrika/en/management/openapi/offline_conversions/findById_1 ("It can
  take up to 2 hours to process the data": .../offline_conversions/upload_1);
* a ``simple_orders`` upload carries its verdict at once, ``api_validation_status`` ``PASSED`` or
  ``FAILED``: https://yandex.com/dev/metrika/en/management/openapi/schema/uploadSimpleOrders;
  read it with :func:`simple_orders_outcome`.
"""

from dataclasses import dataclass

__all__ = [
    "OFFLINE_PREPARED",
    "OFFLINE_UPLOADED",
    "OFFLINE_EXPORTED",
    "OFFLINE_MATCHED",
    "OFFLINE_PROCESSED",
    "OFFLINE_LINKAGE_FAILURE",
    "OFFLINE_STATUSES",
    "OFFLINE_FINAL_STATUSES",
    "VALIDATION_PASSED",
    "VALIDATION_FAILED",
    "OfflineUploadingOutcome",
    "SimpleOrdersOutcome",
    "offline_uploading_outcome",
    "simple_orders_outcome",
]

OFFLINE_PREPARED = "PREPARED"  # upload prepared
OFFLINE_UPLOADED = "UPLOADED"  # file accepted
OFFLINE_EXPORTED = "EXPORTED"
OFFLINE_MATCHED = "MATCHED"  # identifiers matched
OFFLINE_PROCESSED = "PROCESSED"  # processed: final, success
OFFLINE_LINKAGE_FAILURE = "LINKAGE_FAILURE"  # no row could be linked to a visit: final, failure
OFFLINE_STATUSES = (
    OFFLINE_PREPARED,
    OFFLINE_UPLOADED,
    OFFLINE_EXPORTED,
    OFFLINE_MATCHED,
    OFFLINE_PROCESSED,
    OFFLINE_LINKAGE_FAILURE,
)
OFFLINE_FINAL_STATUSES = (OFFLINE_PROCESSED, OFFLINE_LINKAGE_FAILURE)

VALIDATION_PASSED = "PASSED"
VALIDATION_FAILED = "FAILED"


def _count(uploading, name):
    """A non-negative int count of the answer, or ``None`` when Metrica did not give it (older
    copies of the API lack ``goal_not_found_quantity`` and ``user_not_found_quantity``)."""
    value = uploading.get(name)
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    return value if isinstance(value, int) and value >= 0 else None


@dataclass(frozen=True, slots=True)
class OfflineUploadingOutcome:
    """One offline-conversions uploading as Metrica last reported it.

    ``status`` is upper-cased (copies of the docs spell enums in both cases); a status this
    module does not know is kept as given and counts as not final. Counts are ``None`` when the
    answer did not carry them.
    """

    uploading_id: int | None
    status: str
    comment: str | None
    source_quantity: int | None  # rows in the file
    line_quantity: int | None  # rows that passed validation
    linked_quantity: int | None  # rows linked to a visit
    goal_not_found_quantity: int | None
    user_not_found_quantity: int | None

    @property
    def is_final(self):
        """Metrica will not change it any more (``PROCESSED`` or ``LINKAGE_FAILURE``)."""
        return self.status in OFFLINE_FINAL_STATUSES

    @property
    def succeeded(self):
        """Processed successfully (``PROCESSED``); rows may still have failed to link."""
        return self.status == OFFLINE_PROCESSED

    @property
    def refused_quantity(self):
        """Rows of the file that did not pass validation (``None`` if a count is missing)."""
        if self.source_quantity is None or self.line_quantity is None:
            return None
        return max(self.source_quantity - self.line_quantity, 0)


def offline_uploading_outcome(uploading):
    """:class:`OfflineUploadingOutcome` of an ``uploading`` dict (the upload's answer, one item
    of the list, or :meth:`~.client.MetrikaClient.get_offline_uploading`)."""
    if not isinstance(uploading, dict):
        raise TypeError("uploading must be the dict Metrica answered")
    raw_id = uploading.get("id")
    status = uploading.get("status")
    return OfflineUploadingOutcome(
        uploading_id=raw_id if isinstance(raw_id, int) and not isinstance(raw_id, bool) else None,
        status=status.strip().upper() if isinstance(status, str) else "",
        comment=uploading.get("comment") if isinstance(uploading.get("comment"), str) else None,
        source_quantity=_count(uploading, "source_quantity"),
        line_quantity=_count(uploading, "line_quantity"),
        linked_quantity=_count(uploading, "linked_quantity"),
        goal_not_found_quantity=_count(uploading, "goal_not_found_quantity"),
        user_not_found_quantity=_count(uploading, "user_not_found_quantity"),
    )


@dataclass(frozen=True, slots=True)
class SimpleOrdersOutcome:
    """The verdict of a ``simple_orders`` (or other CDP) upload.

    ``elements_count`` is the number of rows Metrica took, when it says so; ``errors`` its
    ``api_validation_errors``.
    """

    uploading_id: str | None
    api_validation_status: str
    elements_count: int | None
    errors: tuple

    @property
    def passed(self):
        return self.api_validation_status == VALIDATION_PASSED

    @property
    def failed(self):
        return self.api_validation_status == VALIDATION_FAILED


def simple_orders_outcome(uploading):
    """:class:`SimpleOrdersOutcome` of the ``uploading`` dict of a CDP upload's answer (also of
    :attr:`~.errors.MetrikaValidationError.uploading`)."""
    if not isinstance(uploading, dict):
        raise TypeError("uploading must be the dict Metrica answered")
    status = uploading.get("api_validation_status")
    errors = uploading.get("api_validation_errors") or ()
    if not isinstance(errors, (list, tuple)):
        errors = (errors,)
    raw_id = uploading.get("uploading_id")
    return SimpleOrdersOutcome(
        uploading_id=None if raw_id is None else str(raw_id),
        api_validation_status=status.strip().upper() if isinstance(status, str) else "",
        elements_count=_count(uploading, "elements_count"),
        errors=tuple(str(e) for e in errors),
    )
