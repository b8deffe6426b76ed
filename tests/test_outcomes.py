"""Typed outcomes of an upload: offline uploadings polled until final, simple_orders verdicts."""

import pytest

from metrika_core.errors import MetrikaValidationError
from metrika_core.outcomes import (
    OFFLINE_FINAL_STATUSES,
    OFFLINE_LINKAGE_FAILURE,
    OFFLINE_PROCESSED,
    OFFLINE_STATUSES,
    OFFLINE_UPLOADED,
    VALIDATION_FAILED,
    VALIDATION_PASSED,
    offline_uploading_outcome,
    simple_orders_outcome,
)
from metrika_stand_in import MetrikaStandIn

UPLOADING = {
    "id": 12,
    "create_time": "2025-01-01T00:00:00Z",
    "source_quantity": 5,
    "line_quantity": 4,
    "comment": "OdooUpload12",
    "type": "BASIC",
    "client_id_type": "CLIENT_ID",
    "status": "PROCESSED",
    "goal_not_found_quantity": 1,
    "user_not_found_quantity": 2,
    "linked_quantity": 1,
}


class Clock:
    def __init__(self, now=1_700_000_000.0):
        self.now = now

    def __call__(self):
        return self.now


def test_statuses_are_the_documented_six_two_of_them_final():
    assert OFFLINE_STATUSES == (
        "PREPARED",
        "UPLOADED",
        "EXPORTED",
        "MATCHED",
        "PROCESSED",
        "LINKAGE_FAILURE",
    )
    assert OFFLINE_FINAL_STATUSES == ("PROCESSED", "LINKAGE_FAILURE")


def test_processed_outcome_with_every_count():
    outcome = offline_uploading_outcome(UPLOADING)
    assert (outcome.uploading_id, outcome.status, outcome.comment) == (
        12,
        "PROCESSED",
        "OdooUpload12",
    )
    assert outcome.is_final and outcome.succeeded
    assert (outcome.source_quantity, outcome.line_quantity, outcome.refused_quantity) == (5, 4, 1)
    assert (
        outcome.linked_quantity,
        outcome.goal_not_found_quantity,
        outcome.user_not_found_quantity,
    ) == (1, 1, 2)


@pytest.mark.parametrize(
    "status, final, succeeded",
    [
        ("PREPARED", False, False),
        ("UPLOADED", False, False),
        ("EXPORTED", False, False),
        ("MATCHED", False, False),
        ("PROCESSED", True, True),
        ("LINKAGE_FAILURE", True, False),
        ("linkage_failure", True, False),  # enum spelling varies between copies of the docs
        (" processed ", True, True),
        ("SOMETHING_NEW", False, False),
        (None, False, False),
    ],
)
def test_final_and_succeeded_by_status(status, final, succeeded):
    outcome = offline_uploading_outcome(dict(UPLOADING, status=status))
    assert (outcome.is_final, outcome.succeeded) == (final, succeeded)


def test_missing_or_odd_counts_are_none_not_zero():
    outcome = offline_uploading_outcome(
        {"id": 3, "status": "UPLOADED", "source_quantity": "7", "line_quantity": True}
    )
    assert outcome.source_quantity == 7
    assert outcome.line_quantity is None and outcome.refused_quantity is None
    assert outcome.linked_quantity is None and outcome.goal_not_found_quantity is None
    negative = offline_uploading_outcome(dict(UPLOADING, linked_quantity=-1, id="12"))
    assert negative.linked_quantity is None and negative.uploading_id is None
    with pytest.raises(TypeError):
        offline_uploading_outcome(["not", "a", "dict"])


def test_polling_the_stand_in_until_final(make_client):
    clock = Clock()
    with MetrikaStandIn(clock=clock, offline_processing_delay=3600) as api:
        api.add_visitor("101")
        client = make_client(base_url=api.url)
        answer = client.upload_offline_conversions(
            b"ClientId,Target,DateTime\n"
            b"101,crm_deal_won,1699990000\n"
            b"202,crm_deal_won,1699990000\n"
            b"101,crm_deal_won,1800000000\n",  # in the future: refused
            comment="OdooUpload1",
        )
        first = offline_uploading_outcome(answer)
        assert (first.status, first.is_final, first.refused_quantity) == (
            OFFLINE_UPLOADED,
            False,
            1,
        )
        clock.now += 3599
        assert not offline_uploading_outcome(
            client.get_offline_uploading(first.uploading_id)
        ).is_final
        clock.now += 1
        final = offline_uploading_outcome(client.get_offline_uploading(first.uploading_id))
        assert (final.status, final.succeeded) == (OFFLINE_PROCESSED, True)
        assert (final.linked_quantity, final.user_not_found_quantity) == (1, 1)
        unknown = client.upload_offline_conversions(b"ClientId,Target,DateTime\n9,crm_deal_won,1\n")
        clock.now += 3600
        failed = offline_uploading_outcome(client.get_offline_uploading(unknown["id"]))
        assert (failed.status, failed.is_final, failed.succeeded) == (
            OFFLINE_LINKAGE_FAILURE,
            True,
            False,
        )


def test_simple_orders_outcome_passed_and_failed(api, client):
    passed = simple_orders_outcome(
        client.upload_simple_orders(
            b"id,create_date_time,client_ids\n1,2024-01-10 11:56:00,123\n2,2024-01-10 11:56:00,4\n"
        )
    )
    assert passed.passed and not passed.failed
    assert (passed.api_validation_status, passed.elements_count, passed.errors) == (
        VALIDATION_PASSED,
        2,
        (),
    )
    assert passed.uploading_id == api.cdp_uploadings[12345][-1]["uploading_id"]
    with pytest.raises(MetrikaValidationError) as info:
        client.upload_simple_orders(b"id,create_date_time,client_ids\n1,2024-01-10 11:56:00,x\n")
    failed = simple_orders_outcome(info.value.uploading)
    assert failed.failed and not failed.passed
    assert failed.api_validation_status == VALIDATION_FAILED
    assert failed.elements_count == 0 and "ClientIDs must be digits" in failed.errors[0]


def test_simple_orders_outcome_of_sparse_answers():
    sparse = simple_orders_outcome({"api_validation_status": "passed", "uploading_id": 77})
    assert sparse.passed and sparse.uploading_id == "77" and sparse.elements_count is None
    odd = simple_orders_outcome({"api_validation_errors": "one error"})
    assert odd.api_validation_status == "" and not odd.passed and not odd.failed
    assert odd.errors == ("one error",)
    with pytest.raises(TypeError):
        simple_orders_outcome(None)
