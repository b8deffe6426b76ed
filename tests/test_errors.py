"""Which error an answer becomes (settings vs file, pausing), daily quota waits at their edges, and
the local data-error vocabulary."""

import datetime
import inspect
import pickle

import pytest

from metrika_core import errors as errors_module
from metrika_core.client import MetrikaClient
from metrika_core.errors import (
    DEFAULT_QUOTA_RETRY_AFTER,
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
    error_from_response,
)
from metrika_core.formats import UploadDataError
from metrika_core.identifiers import InvalidIdentifier, normalize_client_id

UTC = datetime.timezone.utc


def body(*errors):
    items = [dict(zip(("error_type", "message", "location"), e, strict=False)) for e in errors]
    return {"errors": items, "code": 400, "message": items[0]["message"] if items else "x"}


# ------------------------------------------------------------------ pauses_sending


def test_every_error_class_says_whether_it_pauses_sending():
    classes = [
        cls
        for _name, cls in inspect.getmembers(errors_module, inspect.isclass)
        if issubclass(cls, MetrikaError)
    ]
    assert len(classes) == 11
    pausing = {cls for cls in classes if cls.pauses_sending}
    assert pausing == {MetrikaAuthError, MetrikaSettingsError}
    assert all(isinstance(cls.pauses_sending, bool) for cls in classes)


def test_settings_error_is_final_never_accepted_and_keeps_metricas_errors():
    err = error_from_response(400, body(("invalid_parameter", "bad merge_mode", "merge_mode")), {})
    assert type(err) is MetrikaSettingsError and isinstance(err, MetrikaRejectedError)
    assert (err.retryable, err.maybe_accepted, err.pauses_sending) == (False, False, True)
    assert err.errors == ["invalid_parameter: bad merge_mode (at merge_mode)"]
    assert str(err) == (
        "HTTP 400 invalid_parameter: bad merge_mode"
        " [invalid_parameter: bad merge_mode (at merge_mode)]"
    )
    again = pickle.loads(pickle.dumps(err))
    assert type(again) is MetrikaSettingsError and again.errors == err.errors


# ------------------------------------------------------------------ the settings / file split


@pytest.mark.parametrize(
    "status, answer, expected",
    [
        (404, body(("not_found", "Counter 9 not found")), MetrikaSettingsError),
        (404, None, MetrikaSettingsError),
        (405, None, MetrikaSettingsError),
        (406, body(("not_acceptable", "Unsupported format")), MetrikaSettingsError),
        (415, None, MetrikaSettingsError),
        (400, body(("invalid_parameter", "bad", "merge_mode")), MetrikaSettingsError),
        (400, body(("invalid_parameter", "bad", "query.comment")), MetrikaSettingsError),
        (400, body(("invalid_parameter", "bad", "Delimiter_Type")), MetrikaSettingsError),
        (400, body(("invalid_parameter", "bad", "limit")), MetrikaSettingsError),
        (400, body(("missing_parameter", "merge_mode is required")), MetrikaSettingsError),
        (
            400,
            body(("invalid_uploading", "line 3: bad"), ("missing_parameter", "no type")),
            MetrikaSettingsError,
        ),
        # about the content: this upload only
        (400, body(("invalid_parameter", "bad value")), MetrikaBadRequestError),
        (400, body(("invalid_parameter", "bad", "order_statuses[0]")), MetrikaBadRequestError),
        (
            400,
            body(("invalid_parameter", "bad", "order_statuses[0].type")),
            MetrikaBadRequestError,
        ),
        (400, body(("invalid_parameter", "bad", "path:counterId")), MetrikaSettingsError),
        (400, body(("invalid_parameter", "bad", "colour")), MetrikaBadRequestError),
        (400, body(("invalid_parameter", "bad", "file")), MetrikaBadRequestError),
        (400, body(("invalid_uploading", "DateTime is in the future")), MetrikaBadRequestError),
        (400, body(("invalid_json", "not JSON")), MetrikaBadRequestError),
        (400, body(("limit_exceeded", "too big")), MetrikaBadRequestError),
        (400, None, MetrikaBadRequestError),
        (400, {"errors": "not a list"}, MetrikaBadRequestError),
        (409, body(("conflict", "Data inconsistency")), MetrikaBadRequestError),
        (413, None, MetrikaBadRequestError),
        # unchanged neighbours
        (401, body(("unauthorized", "who?")), MetrikaAuthError),
        (403, body(("access_denied", "Access is denied")), MetrikaAuthError),
        (403, body(("invalid_token", "Invalid oauth_token")), MetrikaAuthError),
        (408, None, MetrikaTimeoutError),
        (503, body(("backend_error", "later")), MetrikaServerError),
    ],
)
def test_settings_faults_and_file_faults_are_told_apart(status, answer, expected):
    err = error_from_response(status, answer, {})
    assert type(err) is expected
    assert err.status == status


def test_counter_not_found_through_the_client_pauses(make_client):
    with pytest.raises(MetrikaSettingsError) as info:
        make_client(counter_id=54321).list_offline_uploadings()
    assert (info.value.status, info.value.error_type) == (404, "not_found")
    assert info.value.pauses_sending


def test_a_query_parameter_400_through_the_client_pauses(api, make_client):
    api.fail_next(400, error_type="invalid_parameter", message="bad type", location="type")
    with pytest.raises(MetrikaSettingsError):
        make_client().upload_offline_conversions(b"ClientId,Target,DateTime\n1,G,1\n")
    api.fail_next(400, error_type="invalid_uploading", message="bad file")
    with pytest.raises(MetrikaBadRequestError) as info:
        make_client().upload_offline_conversions(b"ClientId,Target,DateTime\n1,G,1\n")
    assert not info.value.pauses_sending


# ------------------------------------------------------------------ quota waits at their edges


@pytest.mark.parametrize("quota", ["quota_requests_by_counter_id", "quota_requests_by_uid"])
@pytest.mark.parametrize(
    "now, wait",
    [
        (datetime.datetime(2025, 3, 4, 23, 59, 59, tzinfo=UTC), 1.0),
        (datetime.datetime(2025, 3, 4, 23, 59, 59, 500000, tzinfo=UTC), 0.5),
        (datetime.datetime(2025, 3, 5, 0, 0, 0, tzinfo=UTC), 86400.0),
        (datetime.datetime(2025, 3, 5, 0, 0, 1, tzinfo=UTC), 86399.0),
        (datetime.datetime(2025, 3, 5, 12, 0, tzinfo=UTC), 43200.0),
        # 00:00 UTC is 03:00 in Moscow: the wall time of the caller does not matter
        (
            datetime.datetime(
                2025, 3, 5, 2, 59, 59, tzinfo=datetime.timezone(datetime.timedelta(hours=3))
            ),
            1.0,
        ),
        (datetime.datetime(2024, 12, 31, 23, 0, tzinfo=UTC), 3600.0),  # year end
        (datetime.datetime(2024, 2, 28, 23, 30, tzinfo=UTC), 1800.0),  # leap day next
    ],
)
def test_daily_quotas_wait_until_the_next_utc_midnight(quota, now, wait):
    err = error_from_response(429, body((quota, "Quota exceeded")), {}, now=now)
    assert type(err) is MetrikaQuotaError and err.retryable and not err.pauses_sending
    assert err.retry_after == pytest.approx(wait)


@pytest.mark.parametrize("quota", ["quota_grants_requests", "quota_delegate_requests"])
def test_hourly_quotas_wait_until_the_next_hour(quota):
    at = datetime.datetime(2025, 3, 4, 10, 59, 59, tzinfo=UTC)
    assert error_from_response(429, body((quota, "q")), {}, now=at).retry_after == 1.0
    at = datetime.datetime(2025, 3, 4, 10, 0, 0, tzinfo=UTC)
    assert error_from_response(420, body((quota, "q")), {}, now=at).retry_after == 3600.0


def test_other_quotas_keep_their_own_waits_and_the_header_wins():
    at = datetime.datetime(2025, 3, 4, 12, 0, tzinfo=UTC)
    assert (
        error_from_response(429, body(("quota_requests_by_ip", "q")), {}, now=at).retry_after == 1
    )
    parallel = error_from_response(429, body(("quota_parallel_requests", "q")), {}, now=at)
    assert parallel.retry_after == 2
    unknown = error_from_response(429, body(("quota_new_kind", "q")), {}, now=at)
    assert unknown.retry_after == DEFAULT_QUOTA_RETRY_AFTER
    daily = body(("quota_requests_by_counter_id", "q"))
    assert error_from_response(429, daily, {"Retry-After": "120"}, now=at).retry_after == 120
    # several quotas at once: the longest wait
    both = body(("quota_requests_by_ip", "q"), ("quota_requests_by_counter_id", "q"))
    assert error_from_response(429, both, {}, now=at).retry_after == 43200


def test_per_counter_daily_quota_through_the_client(api, make_client):
    now = datetime.datetime(2025, 3, 4, 21, 15, tzinfo=UTC)
    api.fail_next(429, error_type="quota_requests_by_counter_id")
    with pytest.raises(MetrikaQuotaError) as info:
        make_client(clock=lambda: now).upload_simple_orders(
            b"id,create_date_time,client_ids\n1,2024-01-10 11:56:00,123\n"
        )
    assert info.value.retry_after == 2 * 3600 + 45 * 60
    assert info.value.error_type == "quota_requests_by_counter_id"


# ------------------------------------------------------------------ local data errors


def test_local_errors_share_one_value_error_base_outside_the_request_errors():
    for cls in (MetrikaConfigError, UploadCommentError, UploadDataError, InvalidIdentifier):
        assert issubclass(cls, MetrikaDataError) and issubclass(cls, ValueError)
        assert not issubclass(cls, MetrikaError)
    assert not issubclass(MetrikaDataError, MetrikaError)
    with pytest.raises(MetrikaDataError):
        normalize_client_id("not digits")


@pytest.mark.parametrize(
    "kwargs, text",
    [
        ({"token": ""}, "token is required"),
        ({"token": "secret with space"}, "characters not allowed"),
        ({"counter_id": "12a"}, "counter_id"),
        ({"counter_id": 0}, "counter_id"),
        ({"counter_id": True}, "counter_id"),
        ({"base_url": "ftp://example"}, "base_url"),
        ({"timeout": -1}, "timeouts"),
        ({"timeout": (1, 2, 3)}, "timeout"),
        ({"max_retries": -1}, "max_retries"),
    ],
)
def test_client_settings_errors_are_config_errors_without_the_token(kwargs, text):
    arguments = {"token": "secret-token", "counter_id": 1, **kwargs}
    with pytest.raises(MetrikaConfigError, match=text) as info:
        MetrikaClient(arguments.pop("token"), arguments.pop("counter_id"), **arguments)
    assert "secret" not in str(info.value)


def test_other_errors_do_not_pause():
    for err in (
        MetrikaBadRequestError("x"),
        MetrikaValidationError("x"),
        MetrikaQuotaError("x"),
        MetrikaServerError("x"),
        MetrikaTransportError("x"),
        MetrikaTimeoutError("x"),
        MetrikaUnexpectedResponseError("x"),
    ):
        assert err.pauses_sending is False
    assert MetrikaValidationError("x", errors=["a"]).errors == ["a"]
