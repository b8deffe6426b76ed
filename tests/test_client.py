"""MetrikaClient against the local Metrica stand-in, over real sockets (no patching of requests)."""

import datetime
import json
import logging
import pickle
import socket
import time
import traceback

import pytest

from metrika_core.client import USER_AGENT, MetrikaClient, is_valid_api_url
from metrika_core.client_cdp import MetrikaCdpClient
from metrika_core.errors import (
    DEFAULT_QUOTA_RETRY_AFTER,
    MetrikaAuthError,
    MetrikaBadRequestError,
    MetrikaError,
    MetrikaQuotaError,
    MetrikaServerError,
    MetrikaSettingsError,
    MetrikaTimeoutError,
    MetrikaTransportError,
    MetrikaUnexpectedResponseError,
    MetrikaValidationError,
    error_from_response,
    parse_retry_after,
    seconds_until_next_utc_midnight,
)
from metrika_core.retry import RetryPolicy
from metrika_stand_in import MetrikaStandIn

TOKEN = "test-token"
COUNTER = 12345
UTC = datetime.timezone.utc

SIMPLE_ORDERS = (
    b"id,create_date_time,client_uniq_id,client_ids,emails,phones,order_status,revenue,cost,"
    b"goals,currency\n"
    b's_ord1,10.01.2024 11:56,s_user1,,"mail@example.com,mail2@example.com",,PAID,200,150,'
    b'"oplata_cash:200,filial_1",\n'
    b"s_ord2,20.01.2024 11:59,,12345,mail3@example.com,,,200,150,,EUR\n"
    b",12.02.2024,,34456,,79876543210,SPAM,,,plohoy_lead,\n"
)
OFFLINE = (
    b"ClientId,Target,DateTime,Price,Currency\n"
    b"133591247640966458,GOAL1,1481718166,123.45,RUB\n"
    b"133591247640966458,GOAL2,1481718142,678.90,RUB\n"
)
CONTACTS = (
    b"ID,Name,Email,Age\n11,John J.,example@example.com,40\n42,Michael L.,somebody@example.com,24\n"
)
CONTACTS_MAPPING = {"uniq_id": "ID", "name": "Name", "emails": "Email", "age": "Age"}
ORDERS = (
    "ИД,ИД клиента,Тип клиента,Статус,Дата создания,Сумма,Цели\n"
    "100,11,CONTACT,paid,2020-06-11 12:30:00,43089.54,goal_action_id_1:1000\n"
    "101,42,CONTACT,paid,2019-10-11 09:10:00,109999,goal_action_id_2\n"
).encode()
ORDERS_MAPPING = {
    "id": "ИД",
    "client_uniq_id": "ИД клиента",
    "client_type": "Тип клиента",
    "order_status": "Статус",
    "create_date_time": "Дата создания",
    "revenue": "Сумма",
    "goals": "Цели",
}
STATUSES = [
    {"id": "new", "humanized": "New", "type": "IN_PROGRESS"},
    {
        "id": "delivery",
        "humanized": "Out for delivery",
        "type": "IN_PROGRESS",
        "goal_action_ids": ["dostavka"],
    },
    {"id": "success", "humanized": "Completed successfully", "type": "PAID"},
]


# The fixtures api, make_client and client live in conftest.py.


@pytest.fixture
def cdp_client(make_client):
    """A client with the detailed CRM flow's methods."""
    return make_client(client_class=MetrikaCdpClient)


def assert_clean_request(rec, token=TOKEN):
    """The token travels in the Authorization header and nowhere else."""
    assert rec.header("Authorization") == "OAuth %s" % token
    assert token not in rec.path
    assert token not in rec.raw_query
    assert "oauth_token" not in rec.query
    assert rec.header("User-Agent") == USER_AGENT


# ------------------------------------------------------------------ construction


@pytest.mark.parametrize("token", ["", "   ", None, 123])
def test_token_is_required(token):
    with pytest.raises(ValueError, match="token is required"):
        MetrikaClient(token, COUNTER)


@pytest.mark.parametrize("token", ["two words", "line\nbreak", "tab\there", "кириллица"])
def test_unsafe_token_is_refused_without_echoing_it(token):
    with pytest.raises(ValueError) as info:
        MetrikaClient(token, COUNTER)
    assert token not in str(info.value)


@pytest.mark.parametrize("counter_id, expected", [(12345, 12345), ("12345", 12345), (" 42 ", 42)])
def test_counter_id_accepts_ints_and_digit_strings(counter_id, expected):
    assert MetrikaClient(TOKEN, counter_id).counter_id == expected


@pytest.mark.parametrize("counter_id", [0, -5, "0", "abc", "12a", "", None, 1.5, True, "١٢٣"])
def test_counter_id_must_be_positive_int(counter_id):
    with pytest.raises(ValueError, match="counter_id"):
        MetrikaClient(TOKEN, counter_id)


def test_timeout_forms():
    assert MetrikaClient(TOKEN, 1).timeout == (5.0, 60.0)
    assert MetrikaClient(TOKEN, 1, timeout=7).timeout == (7.0, 7.0)
    assert MetrikaClient(TOKEN, 1, timeout=(1, 2.5)).timeout == (1.0, 2.5)
    for bad in (0, -1, (1, 0), (1, 2, 3), "5", None, (None, 5)):
        with pytest.raises(ValueError):
            MetrikaClient(TOKEN, 1, timeout=bad)


def test_base_url_is_normalised_and_checked():
    assert MetrikaClient(TOKEN, 1).base_url == "https://api-metrika.yandex.net"
    assert (
        MetrikaClient(TOKEN, 1, base_url="http://127.0.0.1:8080/").base_url
        == "http://127.0.0.1:8080"
    )
    for bad in ("api-metrika.yandex.net", "ftp://x", "", "http://a b"):
        with pytest.raises(ValueError):
            MetrikaClient(TOKEN, 1, base_url=bad)


def test_is_valid_api_url():
    for good in (
        "https://api-metrika.yandex.net",
        "http://127.0.0.1:8080/",
        "https://proxy.example.com/metrika/v1",
        "  https://api-metrika.yandex.net  ",
    ):
        assert is_valid_api_url(good) is True, good
    for bad in (
        "api-metrika.yandex.net",
        "ftp://x",
        "",
        "https://",
        "http://a b",
        "https://host/path?token=x",
        "https://host/#part",
        None,
        b"https://api-metrika.yandex.net",
    ):
        assert is_valid_api_url(bad) is False, bad


def test_max_retries_must_be_non_negative_int():
    for bad in (-1, 1.5, True, "2"):
        with pytest.raises(ValueError):
            MetrikaClient(TOKEN, 1, max_retries=bad)


def test_repr_redacts_token():
    client = MetrikaClient("y0_AgAAAAAsecret", 12345)
    text = repr(client)
    assert "y0_AgAAAAAsecret" not in text
    assert "12345" in text and "***" in text
    assert "y0_AgAAAAAsecret" not in str(client)


def test_uses_the_given_session_and_does_not_close_it(api):
    import requests

    session = requests.Session()
    with MetrikaClient(TOKEN, COUNTER, base_url=api.url, session=session) as client:
        assert client.session is session
        client.get_counter()
    assert session.get(api.url + "/nowhere").status_code == 401  # still usable
    session.close()


# ------------------------------------------------------------------ management API


def test_get_counter(api, client):
    counter = client.get_counter()
    assert counter["id"] == COUNTER
    assert counter["name"] == "Test shop"
    assert counter["time_zone_name"] == "Europe/Moscow"
    assert counter["time_zone_offset"] == 180
    rec = api.requests[-1]
    assert (rec.method, rec.path, rec.query) == ("GET", "/management/v1/counter/12345", {})
    assert_clean_request(rec)
    assert client.last_response_status == 200
    assert 0 <= client.last_elapsed < 5
    assert client.last_attempts == 1


def test_list_goals(api, client):
    goals = client.list_goals()
    assert [g["conditions"][0]["url"] for g in goals] == ["crm_qualified_lead", "crm_deal_won"]
    assert all(g["type"] == "action" for g in goals)
    rec = api.requests[-1]
    assert (rec.method, rec.path) == ("GET", "/management/v1/counter/12345/goals")
    assert_clean_request(rec)


def test_upload_offline_conversions(api, client):
    uploading = client.upload_offline_conversions(OFFLINE, comment="OdooBatch7")
    assert uploading["status"] == "UPLOADED"
    assert uploading["source_quantity"] == 2 and uploading["line_quantity"] == 2
    assert uploading["client_id_type"] == "CLIENT_ID"
    rec = api.requests[-1]
    assert (rec.method, rec.path) == (
        "POST",
        "/management/v1/counter/12345/offline_conversions/upload",
    )
    assert rec.query == {"type": "BASIC", "comment": "OdooBatch7"}
    assert rec.content_type.startswith("multipart/form-data")
    assert list(rec.parts) == ["file"]
    assert (rec.filename, rec.file_content_type, rec.file) == (
        "offline_conversions.csv",
        "text/csv",
        OFFLINE,
    )
    assert_clean_request(rec)


def test_offline_upload_without_comment_and_other_type(api, client):
    client.upload_offline_conversions(OFFLINE.decode(), upload_type="CALLS", filename="calls.csv")
    rec = api.requests[-1]
    assert rec.query == {"type": "CALLS"}
    assert rec.filename == "calls.csv" and rec.file == OFFLINE


def test_offline_upload_arguments_are_checked_locally(api, client):
    with pytest.raises(ValueError):
        client.upload_offline_conversions(OFFLINE, upload_type="WEIRD")
    with pytest.raises(ValueError):
        client.upload_offline_conversions(OFFLINE, comment="x" * 256)
    with pytest.raises(TypeError):
        client.upload_offline_conversions(12)
    assert api.requests == []


def test_offline_uploading_lookup(api, client):
    first = client.upload_offline_conversions(OFFLINE, comment="batch1")
    second = client.upload_offline_conversions(OFFLINE, comment="batch2")
    api.set_offline_status(second["id"], "PROCESSED", linked_quantity=2)

    one = client.get_offline_uploading(second["id"])
    assert one["status"] == "PROCESSED" and one["linked_quantity"] == 2
    rec = api.requests[-1]
    assert (
        rec.path == "/management/v1/counter/12345/offline_conversions/uploading/%d" % second["id"]
    )
    assert_clean_request(rec)

    listed = client.list_offline_uploadings()
    assert [u["id"] for u in listed] == [first["id"], second["id"]]
    rec = api.requests[-1]
    assert rec.path == "/management/v1/counter/12345/offline_conversions/uploadings"
    assert rec.query == {"limit": "10000", "offset": "0"}

    assert client.list_offline_uploadings(limit=1, offset=1)[0]["id"] == second["id"]
    assert client.find_offline_uploading("batch1")["id"] == first["id"]
    assert client.find_offline_uploading("nope") is None


def test_unknown_offline_uploading_is_404(client):
    with pytest.raises(MetrikaSettingsError) as info:
        client.get_offline_uploading(999)
    assert info.value.status == 404 and info.value.error_type == "not_found"
    assert info.value.retryable is False


# ------------------------------------------------------------------ CDP API


def test_upload_simple_orders(api, client):
    uploading = client.upload_simple_orders(SIMPLE_ORDERS)
    assert uploading["api_validation_status"] == "PASSED"
    assert uploading["elements_count"] == 3
    assert uploading["uploading_id"]
    rec = api.requests[-1]
    assert (rec.method, rec.path) == ("POST", "/cdp/api/v1/counter/12345/data/simple_orders")
    assert rec.query == {"merge_mode": "SAVE", "delimiter_type": "COMMA"}
    assert list(rec.parts) == ["file"]
    assert (rec.filename, rec.file_content_type, rec.file) == (
        "simple_orders.csv",
        "text/csv",
        SIMPLE_ORDERS,
    )
    assert_clean_request(rec)


def test_upload_simple_orders_options(api, client):
    data = (
        b"id;create_date_time;phones_md5;revenue\n"
        b"1;2024-01-10 11:56:00;f09f2c3d48f31e2a802944ade2e5aec5;10.5\n"
    )
    client.upload_simple_orders(
        data, merge_mode="UPDATE", delimiter_type="SEMICOLON", filename="x.csv"
    )
    rec = api.requests[-1]
    assert rec.query == {"merge_mode": "UPDATE", "delimiter_type": "SEMICOLON"}
    assert rec.filename == "x.csv"
    with pytest.raises(ValueError):
        client.upload_simple_orders(data, merge_mode="MERGE")
    with pytest.raises(ValueError):
        client.upload_simple_orders(data, delimiter_type="TAB")


def test_validation_failed_raises_with_errors(api, cdp_client):
    bad = (
        b"id,create_date_time,emails,revenue\n"
        b"1,2024-04-21T11:59:21Z,Mail@Example.com,10,5\n"
        b"2,21.04.2020,a@b.ru,1\n"
    )
    with pytest.raises(MetrikaValidationError) as info:
        cdp_client.upload_simple_orders(bad)
    err = info.value
    assert err.retryable is False
    assert err.status == 200
    assert err.uploading["api_validation_status"] == "FAILED"
    assert err.uploading_id == err.uploading["uploading_id"]
    assert err.errors and all(isinstance(e, str) for e in err.errors)
    assert any("line 2" in e for e in err.errors)
    assert "validation error" in str(err) and err.errors[0] in str(err)
    # the failed upload is in the history like any other
    assert cdp_client.find_cdp_uploading(err.uploading_id)["api_validation_status"] == "FAILED"


def test_upload_contacts_csv(api, cdp_client):
    uploading = cdp_client.upload_contacts(CONTACTS, columns_mapping=CONTACTS_MAPPING)
    assert uploading["api_validation_status"] == "PASSED" and uploading["elements_count"] == 2
    rec = api.requests[-1]
    assert (rec.method, rec.path) == ("POST", "/cdp/api/v1/counter/12345/data/contacts/csv")
    assert rec.query == {
        "merge_mode": "SAVE",
        "columns_mapping": '"uniq_id":"ID","name":"Name","emails":"Email","age":"Age"',
        "delimiter_type": "COMMA",
    }
    assert (rec.filename, rec.file_content_type, rec.file) == ("contacts.csv", "text/csv", CONTACTS)
    assert_clean_request(rec)


def test_upload_contacts_identity_mapping_from_header(api, cdp_client):
    data = b"uniq_id,name,phones\nc1,Ann,79995551111\n"
    cdp_client.upload_contacts(data, merge_mode="APPEND")
    assert (
        api.requests[-1].query["columns_mapping"]
        == '"uniq_id":"uniq_id","name":"name","phones":"phones"'
    )
    assert api.requests[-1].query["merge_mode"] == "APPEND"


def test_upload_contacts_json(api, cdp_client):
    contacts = [
        {
            "uniq_id": "J3QQ4",
            "name": "John Smith",
            "create_date_time": "2020-04-17 16:12:21",
            "client_ids": ["12345678910"],
            "emails": ["exampl1@example.com"],
            "phones": ["78005553535"],
        }
    ]
    uploading = cdp_client.upload_contacts(contacts, fmt="json")
    assert uploading["uploading_format"] == "JSON" and uploading["elements_count"] == 1
    rec = api.requests[-1]
    assert (rec.method, rec.path) == ("POST", "/cdp/api/v1/counter/12345/data/contacts/json")
    assert rec.query == {"merge_mode": "SAVE"}
    assert rec.content_type.startswith("application/json")
    assert rec.json == {"contacts": contacts}
    assert_clean_request(rec)

    raw = json.dumps({"contacts": contacts}).encode()
    cdp_client.upload_contacts(raw, fmt="json", merge_mode="UPDATE")
    rec = api.requests[-1]
    assert rec.body == raw and rec.content_type.startswith("application/json")
    assert rec.query == {"merge_mode": "UPDATE"}


def test_upload_orders_csv_and_json(api, cdp_client):
    # Orders need their contacts, and their statuses mapped, first (metrika-api.md §2.3, §2.5).
    cdp_client.upload_contacts(CONTACTS, columns_mapping=CONTACTS_MAPPING)
    cdp_client.upload_contacts([{"uniq_id": "J3QQ4"}], fmt="json")
    cdp_client.set_order_statuses([{"id": "paid", "type": "PAID"}])
    uploading = cdp_client.upload_orders(ORDERS, columns_mapping=ORDERS_MAPPING)
    assert uploading["api_validation_status"] == "PASSED"
    rec = api.requests[-1]
    assert rec.path == "/cdp/api/v1/counter/12345/data/orders/csv"
    assert rec.query["columns_mapping"].startswith('"id":"ИД","client_uniq_id":"ИД клиента"')
    assert rec.file == ORDERS and rec.filename == "orders.csv"

    order = {
        "id": "704",
        "client_uniq_id": "J3QQ4",
        "client_type": "CONTACT",
        "order_status": "IN_PROGRESS",
        "create_date_time": "2022-09-21 09:48:23",
        "revenue": 5000,
        "goals": [{"goal_action_id": "goal_id1", "price": 123.5}],
        "products": {"pear": 10},
    }
    cdp_client.upload_orders({"orders": [order]}, fmt="json")
    rec = api.requests[-1]
    assert rec.path == "/cdp/api/v1/counter/12345/data/orders/json"
    assert rec.json == {"orders": [order]}


def test_order_json_validation_failure(cdp_client):
    with pytest.raises(MetrikaValidationError) as info:
        cdp_client.upload_orders(
            [{"id": "1", "client_type": "COMPANY", "order_status": "PAID"}], fmt="json"
        )
    assert any("client_uniq_id" in e for e in info.value.errors)
    assert any("client_type" in e for e in info.value.errors)


def test_order_statuses_roundtrip(api, cdp_client):
    assert cdp_client.get_order_statuses() == []
    rec = api.requests[-1]
    assert (rec.method, rec.path) == ("GET", "/cdp/api/v1/counter/12345/schema/order_statuses")

    assert cdp_client.set_order_statuses(STATUSES) is True
    rec = api.requests[-1]
    assert (rec.method, rec.path) == ("POST", "/cdp/api/v1/counter/12345/schema/order_statuses")
    assert rec.json == {"order_statuses": STATUSES}
    assert rec.content_type.startswith("application/json")
    assert_clean_request(rec)
    assert [s["id"] for s in cdp_client.get_order_statuses()] == ["new", "delivery", "success"]

    raw = json.dumps({"order_statuses": STATUSES[:1]}).encode()
    assert cdp_client.set_order_statuses(raw) is True
    assert api.requests[-1].body == raw
    assert cdp_client.set_order_statuses({"order_statuses": STATUSES[1:]}) is True
    assert [s["id"] for s in cdp_client.get_order_statuses()] == ["delivery", "success"]


def test_invalid_order_status_mapping_is_400(cdp_client):
    with pytest.raises(MetrikaBadRequestError) as info:
        cdp_client.set_order_statuses([{"id": "x y", "type": "PAID"}])
    assert info.value.status == 400 and info.value.error_type == "invalid_parameter"


def test_last_uploadings_and_find(api, cdp_client):
    first = cdp_client.upload_simple_orders(SIMPLE_ORDERS)
    second = cdp_client.upload_contacts(CONTACTS, columns_mapping=CONTACTS_MAPPING)
    items = cdp_client.last_uploadings()
    assert [u["uploading_id"] for u in items] == [second["uploading_id"], first["uploading_id"]]
    rec = api.requests[-1]
    assert (rec.method, rec.path) == ("GET", "/cdp/api/v1/counter/12345/last_uploadings")
    assert rec.query == {"limit": "10", "source": "API"}
    assert_clean_request(rec)

    cdp_client.last_uploadings(
        limit=5, datetime_offset=datetime.datetime(2020, 2, 10, 10, 0, tzinfo=UTC)
    )
    assert api.requests[-1].query == {
        "limit": "5",
        "datetime_offset": "2020-02-10T10:00:00.000Z",
        "source": "API",
    }
    assert cdp_client.last_uploadings(datetime_offset="2000-01-01T00:00:00Z") == []

    assert cdp_client.find_cdp_uploading(first["uploading_id"]) == first
    assert cdp_client.find_cdp_uploading("missing") is None
    with pytest.raises(ValueError):
        cdp_client.last_uploadings(limit=0)
    with pytest.raises(ValueError):
        cdp_client.find_cdp_uploading()


# ------------------------------------------------------------------ HTTP errors


def test_wrong_token_is_auth_error(make_client):
    client = make_client(token="wrong-token")
    with pytest.raises(MetrikaAuthError) as info:
        client.get_counter()
    err = info.value
    assert (err.status, err.error_type, err.retryable) == (401, "unauthorized", False)
    assert "wrong-token" not in str(err) and "wrong-token" not in repr(err)


def test_unknown_counter_is_not_found(make_client):
    client = make_client(counter_id=999)
    with pytest.raises(MetrikaSettingsError) as info:
        client.upload_simple_orders(SIMPLE_ORDERS)
    assert (info.value.status, info.value.error_type) == (404, "not_found")


def test_counter_without_access_is_access_denied(api, make_client):
    api.deny_access(12345)
    with pytest.raises(MetrikaAuthError) as info:
        make_client().upload_simple_orders(SIMPLE_ORDERS)
    assert (info.value.status, info.value.error_type) == (403, "access_denied")


def test_invalid_token_403_keeps_error_type(api, client):
    api.fail_next(403, error_type="invalid_token", message="Invalid oauth_token")
    with pytest.raises(MetrikaAuthError) as info:
        client.get_counter()
    assert info.value.error_type == "invalid_token"
    assert str(info.value) == "HTTP 403 invalid_token: Invalid oauth_token"


def test_bad_request_carries_metrica_messages(client):
    future = int(time.time()) + 3600
    data = b"ClientId,Target,DateTime,Price\n123,GOAL1,%d,1,5\n456,GOAL1,%d,12\n" % (future, future)
    with pytest.raises(MetrikaBadRequestError) as info:
        client.upload_offline_conversions(data)
    err = info.value
    assert (err.status, err.error_type, err.retryable) == (400, "invalid_uploading", False)
    assert err.errors and err.errors[0].startswith("invalid_uploading: ")
    assert "DateTime is in the future" in err.errors[0]
    assert "line 3" in err.message


def test_bad_request_with_several_errors_and_location(api, client):
    body = {
        "errors": [
            {
                "error_type": "invalid_parameter",
                "message": "bad merge_mode",
                "location": "merge_mode",
            },
            {"error_type": "missing_parameter", "message": "no file"},
        ],
        "code": 400,
        "message": "bad merge_mode",
    }
    api.fail_next(400, body=body, headers={"Content-Type": "application/json"})
    with pytest.raises(MetrikaSettingsError) as info:  # about the request: a query parameter
        client.get_counter()
    err = info.value
    assert err.errors == [
        "invalid_parameter: bad merge_mode (at merge_mode)",
        "missing_parameter: no file",
    ]
    assert err.error_type == "invalid_parameter"
    assert "missing_parameter: no file" in str(err)


@pytest.mark.parametrize("status", [409, 413])
def test_other_4xx_are_bad_requests(api, client, status):
    api.fail_next(status)
    with pytest.raises(MetrikaBadRequestError) as info:
        client.list_goals()
    assert info.value.status == status and not info.value.retryable


@pytest.mark.parametrize("status", [429, 420])
def test_quota_by_ip(api, client, status):
    api.fail_next(status)  # quota_requests_by_ip by default
    with pytest.raises(MetrikaQuotaError) as info:
        client.get_counter()
    err = info.value
    assert (err.status, err.error_type, err.retryable) == (status, "quota_requests_by_ip", True)
    assert err.retry_after == 1.0
    assert "retry after 1 s" in str(err)


def test_daily_quota_waits_until_utc_midnight(api, make_client):
    now = datetime.datetime(2025, 3, 4, 22, 30, 15, tzinfo=UTC)
    client = make_client(clock=lambda: now)
    api.fail_next(429, error_type="quota_requests_by_uid")
    with pytest.raises(MetrikaQuotaError) as info:
        client.upload_simple_orders(SIMPLE_ORDERS)
    assert info.value.retry_after == 3600 + 29 * 60 + 45
    assert info.value.error_type == "quota_requests_by_uid"


def test_parallel_and_unknown_quotas(api, client):
    api.fail_next(429, error_type="quota_parallel_requests")
    with pytest.raises(MetrikaQuotaError) as info:
        client.get_counter()
    assert info.value.retry_after == 2.0
    api.fail_next(429, error_type="quota_of_a_kind_not_documented")
    with pytest.raises(MetrikaQuotaError) as info:
        client.get_counter()
    assert info.value.retry_after == DEFAULT_QUOTA_RETRY_AFTER


def test_quota_retry_after_header_wins(api, client):
    api.fail_next(429, error_type="quota_requests_by_uid", retry_after=17)
    with pytest.raises(MetrikaQuotaError) as info:
        client.get_counter()
    assert info.value.retry_after == 17.0


@pytest.mark.parametrize(
    "status, error_type", [(500, None), (502, None), (503, "backend_error"), (504, "timeout")]
)
def test_server_errors(api, client, status, error_type):
    api.fail_next(status)
    with pytest.raises(MetrikaServerError) as info:
        client.get_counter()
    err = info.value
    assert (err.status, err.error_type, err.retryable, err.retry_after) == (
        status,
        error_type,
        True,
        None,
    )
    assert err.maybe_accepted is True
    assert "<html" not in str(err)  # an HTML error page is not pasted into the message


def test_server_error_retry_after_header(api, client):
    api.fail_next(503, retry_after=7)
    with pytest.raises(MetrikaServerError) as info:
        client.get_counter()
    assert info.value.retry_after == 7.0


def test_read_timeout(api, make_client):
    client = make_client(timeout=(1.0, 0.3))
    api.fail_next("slow", delay=1.0)
    started = time.monotonic()
    with pytest.raises(MetrikaTimeoutError) as info:
        client.upload_simple_orders(SIMPLE_ORDERS)
    assert time.monotonic() - started < 0.9
    err = info.value
    assert isinstance(err, MetrikaTransportError)
    assert err.retryable is True and err.maybe_accepted is True and err.status is None
    assert "may have been accepted" in str(err)
    assert client.last_response_status is None and client.last_elapsed >= 0.3


def test_timed_out_upload_found_in_history(api, make_client):
    client = make_client(client_class=MetrikaCdpClient, timeout=(1.0, 0.3))
    since = datetime.datetime.now(UTC)
    api.fail_next("slow", delay=0.6, accept=True)
    with pytest.raises(MetrikaTimeoutError):
        client.upload_simple_orders(SIMPLE_ORDERS)
    assert api.wait_idle(5)
    found = client.find_cdp_uploading(since=since, elements_count=3)
    assert found is not None and found["api_validation_status"] == "PASSED"
    assert client.find_cdp_uploading(since=since, elements_count=99) is None


def test_lost_cdp_upload_is_told_from_others_by_subtype_and_known_ids(api, make_client):
    client = make_client(client_class=MetrikaCdpClient, timeout=(1.0, 0.3))
    since = datetime.datetime.now(UTC)
    known = client.upload_contacts(b"uniq_id\na\nb\nc\n", columns_mapping={"uniq_id": "uniq_id"})
    api.fail_next("slow", delay=0.6, accept=True)
    with pytest.raises(MetrikaTimeoutError):
        client.upload_simple_orders(SIMPLE_ORDERS)
    assert api.wait_idle(5)
    lost = client.find_cdp_uploading(since=since, elements_count=3, entity_subtype="SIMPLE_ORDERS")
    assert lost is not None and lost["uploading_id"] != known["uploading_id"]
    assert lost["entity_subtype"] == "SIMPLE_ORDERS"
    contacts = client.find_cdp_uploading(since=since, elements_count=3, entity_subtype="CONTACTS")
    assert contacts["uploading_id"] == known["uploading_id"]
    assert (
        client.find_cdp_uploading(
            since=since,
            elements_count=3,
            entity_subtype="CONTACTS",
            exclude_ids=[known["uploading_id"]],
        )
        is None
    ), "an upload already accounted for is never taken for the lost one"


def test_timed_out_offline_upload_found_by_comment(api, make_client):
    client = make_client(timeout=(1.0, 0.3))
    api.fail_next("slow", delay=0.6, accept=True)
    with pytest.raises(MetrikaTimeoutError):
        client.upload_offline_conversions(OFFLINE, comment="batch42")
    assert api.wait_idle(5)
    assert client.find_offline_uploading("batch42")["source_quantity"] == 2


def test_slow_without_accept_stores_nothing(api, make_client):
    client = make_client(timeout=(1.0, 0.3))
    api.fail_next("slow", delay=0.5)
    with pytest.raises(MetrikaTimeoutError):
        client.upload_offline_conversions(OFFLINE, comment="lost")
    assert api.wait_idle(5)
    assert client.find_offline_uploading("lost") is None


def test_dropped_connection_is_transport_error(api, client):
    api.fail_next("drop")
    with pytest.raises(MetrikaTransportError) as info:
        client.get_counter()
    err = info.value
    assert not isinstance(err, MetrikaTimeoutError)
    assert err.retryable is True and err.maybe_accepted is True
    assert "requests.ConnectionError" in str(err)


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_connection_refused_was_never_sent():
    client = MetrikaClient(
        TOKEN, COUNTER, base_url="http://127.0.0.1:%d" % _free_port(), timeout=(0.5, 0.5)
    )
    with pytest.raises(MetrikaTransportError) as info:
        client.upload_offline_conversions(OFFLINE)
    assert info.value.retryable is True and info.value.maybe_accepted is False
    assert "Could not connect" in str(info.value)


def test_non_json_200_is_unexpected(api, client):
    api.fail_next("garbage")
    with pytest.raises(MetrikaUnexpectedResponseError) as info:
        client.get_counter()
    assert info.value.status == 200 and info.value.retryable is False
    assert "not JSON" in str(info.value)


def test_json_of_the_wrong_shape_is_unexpected(api, cdp_client):
    api.fail_next(200, body={"something": "else"})
    with pytest.raises(MetrikaUnexpectedResponseError, match="'counter'"):
        cdp_client.get_counter()
    api.fail_next(200, body={"success": False})
    with pytest.raises(MetrikaUnexpectedResponseError):
        cdp_client.set_order_statuses(STATUSES)


def test_redirect_is_unexpected(api, client):
    api.fail_next(302, body=b"", headers={"Location": "http://127.0.0.1:1/elsewhere"})
    with pytest.raises(MetrikaUnexpectedResponseError) as info:
        client.get_counter()
    assert info.value.status == 302 and not info.value.retryable


# ------------------------------------------------------------------ in-process retries


def test_retries_idempotent_get_after_503(api, make_client):
    sleeps = []
    client = make_client(max_retries=3, sleep=sleeps.append, rng=lambda: 0.5)
    api.fail_next(503, times=2)
    assert client.get_counter()["id"] == COUNTER
    assert sleeps == [2.0, 4.0]
    assert client.last_attempts == 3
    assert [r.status for r in api.requests] == [503, 503, 200]


def test_retries_use_jitter_from_rng_and_custom_policy(api, make_client):
    sleeps = []
    policy = RetryPolicy(base_delay=0.5, multiplier=3, jitter=0.2)
    client = make_client(max_retries=2, retry_policy=policy, sleep=sleeps.append, rng=lambda: 0.0)
    api.fail_next(500, times=2)
    client.list_goals()
    assert sleeps == [pytest.approx(0.4), pytest.approx(1.2)]


def test_retries_stop_after_max_retries(api, make_client):
    sleeps = []
    client = make_client(max_retries=1, sleep=sleeps.append, rng=lambda: 0.5)
    api.fail_next(503, times=5)
    with pytest.raises(MetrikaServerError):
        client.get_counter()
    assert sleeps == [2.0]
    assert len(api.requests) == 2


def test_no_retries_by_default(api, make_client):
    sleeps = []
    client = make_client(sleep=sleeps.append)
    api.fail_next(503)
    with pytest.raises(MetrikaServerError):
        client.get_counter()
    assert sleeps == [] and len(api.requests) == 1


def test_non_retryable_errors_are_not_retried(api, make_client):
    sleeps = []
    client = make_client(max_retries=3, sleep=sleeps.append)
    api.fail_next(400)
    with pytest.raises(MetrikaBadRequestError):
        client.get_counter()
    api.fail_next(401)
    with pytest.raises(MetrikaAuthError):
        client.get_counter()
    with pytest.raises(MetrikaValidationError):
        client.upload_simple_orders(b"id,create_date_time,phones\n1,bad-date,123\n")
    assert sleeps == []
    assert len(api.requests) == 3


def test_upload_is_not_reposted_when_it_may_have_been_accepted(api, make_client):
    sleeps = []
    client = make_client(max_retries=3, sleep=sleeps.append)
    api.fail_next(503)
    with pytest.raises(MetrikaServerError):
        client.upload_simple_orders(SIMPLE_ORDERS)
    api.fail_next("drop", accept=True)
    with pytest.raises(MetrikaTransportError):
        client.upload_offline_conversions(OFFLINE, comment="once")
    assert sleeps == []
    assert len(api.requests) == 2
    assert client.find_offline_uploading("once") is not None  # the caller's check before re-sending


def test_upload_is_retried_after_quota(api, make_client):
    sleeps = []
    client = make_client(max_retries=2, sleep=sleeps.append, rng=lambda: 0.5)
    api.fail_next(429, error_type="quota_parallel_requests")
    uploading = client.upload_simple_orders(SIMPLE_ORDERS)
    assert uploading["api_validation_status"] == "PASSED"
    assert sleeps == [2.0]  # backoff 2 s >= the 2 s the quota implies
    assert len(api.cdp_uploadings[COUNTER]) == 1


def test_upload_is_retried_when_connection_was_refused(make_client):
    sleeps = []
    dead = "http://127.0.0.1:%d" % _free_port()
    client = make_client(
        base_url=dead, max_retries=2, sleep=sleeps.append, rng=lambda: 0.5, timeout=0.5
    )
    with pytest.raises(MetrikaTransportError):
        client.upload_simple_orders(SIMPLE_ORDERS)
    assert sleeps == [2.0, 4.0]
    assert client.last_attempts == 3


def test_set_order_statuses_is_retried(api, make_client):
    sleeps = []
    client = make_client(
        client_class=MetrikaCdpClient, max_retries=1, sleep=sleeps.append, rng=lambda: 0.5
    )
    api.fail_next(502)
    assert client.set_order_statuses(STATUSES) is True
    assert sleeps == [2.0]


def test_long_waits_are_left_to_the_caller(api, make_client):
    sleeps = []
    noon = datetime.datetime(2025, 1, 1, 12, tzinfo=UTC)
    client = make_client(max_retries=3, sleep=sleeps.append, clock=lambda: noon)
    api.fail_next(429, error_type="quota_requests_by_uid")
    with pytest.raises(MetrikaQuotaError) as info:
        client.get_counter()
    assert info.value.retry_after == 12 * 3600
    assert sleeps == [] and len(api.requests) == 1


def test_timeout_on_get_is_retried(api, make_client):
    sleeps = []
    client = make_client(timeout=(1.0, 0.3), max_retries=1, sleep=sleeps.append, rng=lambda: 0.5)
    api.fail_next("slow", delay=0.6)
    assert client.get_counter()["id"] == COUNTER
    assert sleeps == [2.0]


# ------------------------------------------------------------------ error_from_response


def test_error_from_response_mapping():
    assert isinstance(error_from_response(401, None, {}), MetrikaAuthError)
    assert isinstance(error_from_response(403, None, {}), MetrikaAuthError)
    assert isinstance(error_from_response(400, None, {}), MetrikaBadRequestError)
    assert isinstance(error_from_response(413, None, {}), MetrikaBadRequestError)
    assert isinstance(error_from_response(429, None, {}), MetrikaQuotaError)
    assert isinstance(error_from_response(420, None, {}), MetrikaQuotaError)
    assert isinstance(error_from_response(500, None, {}), MetrikaServerError)
    assert isinstance(error_from_response(599, None, {}), MetrikaServerError)
    timeout = error_from_response(408, None, {})
    assert isinstance(timeout, MetrikaTimeoutError) and timeout.maybe_accepted is False
    for status in (200, 301, 100, 600):
        assert isinstance(error_from_response(status, None, {}), MetrikaUnexpectedResponseError)
    assert error_from_response(429, None, {}).retry_after == DEFAULT_QUOTA_RETRY_AFTER
    assert error_from_response(503, None, {"retry-after": "3"}).retry_after == 3.0


def test_error_messages_are_readable():
    body = {
        "errors": [{"error_type": "invalid_uploading", "message": "Bad file"}],
        "code": 400,
        "message": "Bad file",
    }
    err = error_from_response(400, body, {})
    assert str(err) == "HTTP 400 invalid_uploading: Bad file"
    assert (
        repr(err)
        == "MetrikaBadRequestError(status=400, error_type='invalid_uploading', message='Bad file')"
    )
    assert str(error_from_response(502, None, {})) == "HTTP 502: Bad gateway"


def test_daily_quota_with_naive_epoch_and_callable_clocks():
    midnight_minus_10 = datetime.datetime(2025, 6, 30, 23, 59, 50)
    body = {
        "errors": [{"error_type": "quota_requests_by_uid", "message": "daily"}],
        "code": 429,
        "message": "daily",
    }
    assert error_from_response(429, body, {}, now=midnight_minus_10).retry_after == 10
    epoch = midnight_minus_10.replace(tzinfo=UTC).timestamp()
    assert error_from_response(429, body, {}, now=epoch).retry_after == 10
    assert error_from_response(429, body, {}, now=lambda: epoch).retry_after == 10
    msk = datetime.timezone(datetime.timedelta(hours=3))
    assert (
        error_from_response(
            429, body, {}, now=datetime.datetime(2025, 7, 1, 2, 0, tzinfo=msk)
        ).retry_after
        == 3600
    )
    assert seconds_until_next_utc_midnight(datetime.datetime(2025, 1, 1, 0, 0, tzinfo=UTC)) == 86400
    grants = {"errors": [{"error_type": "quota_grants_requests", "message": "hourly"}]}
    assert (
        error_from_response(429, grants, {}, now=datetime.datetime(2025, 1, 1, 10, 45)).retry_after
        == 900
    )


def test_parse_retry_after():
    now = datetime.datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
    assert parse_retry_after("120", now) == 120.0
    assert parse_retry_after("Wed, 01 Jan 2025 12:05:00 GMT", now) == 300.0
    assert parse_retry_after("Wed, 01 Jan 2025 11:00:00 GMT", now) == 0.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after("", now) is None
    assert parse_retry_after("1e12", now) == 7 * 24 * 3600.0


def test_errors_pickle():
    err = error_from_response(
        429, {"errors": [{"error_type": "quota_requests_by_ip", "message": "m"}]}, {}
    )
    clone = pickle.loads(pickle.dumps(err))
    assert type(clone) is MetrikaQuotaError
    assert (clone.status, clone.error_type, clone.retry_after) == (429, "quota_requests_by_ip", 1.0)
    assert str(clone) == str(err)
    verr = MetrikaValidationError("v", errors=["e"], uploading={"uploading_id": "u"})
    assert pickle.loads(pickle.dumps(verr)).uploading_id == "u"


# ------------------------------------------------------------------ the token never leaks


SECRET = "y0_AgAAAAB-SECRET-token_1234567890"


def _chain_text(err):
    texts = ["".join(traceback.format_exception(err)), str(err), repr(err)]
    seen = set()
    node = err
    while node is not None and id(node) not in seen:
        seen.add(id(node))
        texts += [str(node), repr(node), repr(getattr(node, "args", ""))]
        node = node.__cause__ or node.__context__
    return "\n".join(texts)


def test_token_never_in_errors_or_logs(caplog):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="urllib3")
    caplog.set_level(logging.DEBUG, logger="metrika_core")
    raised = []
    with MetrikaStandIn(token=SECRET) as api:
        sleeps = []
        client = MetrikaClient(
            SECRET,
            COUNTER,
            base_url=api.url,
            timeout=(1.0, 0.3),
            max_retries=1,
            sleep=sleeps.append,
            rng=lambda: 0.5,
        )
        wrong = MetrikaClient(SECRET + "x", COUNTER, base_url=api.url, timeout=(1.0, 0.3))
        other = MetrikaClient(SECRET, 999, base_url=api.url, timeout=(1.0, 0.3))
        dead = MetrikaClient(
            SECRET, COUNTER, base_url="http://127.0.0.1:%d" % _free_port(), timeout=0.3
        )
        scenarios = [
            (wrong.get_counter, None),
            (other.list_goals, None),
            (lambda: client.upload_offline_conversions(b"ClientId,Target\n1,G\n"), None),
            (
                client.get_counter,
                (400, {"message": "token %s is odd" % SECRET}),
            ),  # an echoing server
            (
                client.get_counter,
                (429, {"error_type": "quota_requests_by_uid"}),
            ),  # too long to sleep
            (client.get_counter, (420, {"times": 2})),
            (client.get_counter, (500, {"times": 2})),
            (client.get_counter, (503, {"times": 2, "retry_after": 0})),
            (client.get_counter, ("slow", {"delay": 0.5, "times": 2})),
            (client.get_counter, ("drop", {"times": 2})),
            (client.get_counter, ("garbage", {})),
            (
                lambda: client.upload_simple_orders(b"id,create_date_time,emails\n1,x,Bad@Mail\n"),
                None,
            ),
            (dead.get_counter, None),
        ]
        for call, failure in scenarios:
            if failure:
                kind, kw = failure
                kw = dict(kw)
                api.fail_next(kind, kw.pop("times", 1), **kw)
            with pytest.raises(MetrikaError) as info:
                call()
            raised.append(info.value)
        assert api.wait_idle(5)
        assert api.pending_failures() == 0
        for rec in api.requests:
            assert SECRET not in rec.path and SECRET not in rec.raw_query
        for c in (client, wrong, other, dead):
            assert SECRET not in repr(c)
            c.close()
    assert len(raised) == len(scenarios)
    assert {type(e) for e in raised} >= {
        MetrikaAuthError,
        MetrikaBadRequestError,
        MetrikaQuotaError,
        MetrikaServerError,
        MetrikaTimeoutError,
        MetrikaTransportError,
        MetrikaUnexpectedResponseError,
        MetrikaValidationError,
    }
    for err in raised:
        assert SECRET not in _chain_text(err)
    assert "***" in str(raised[3])  # the echoed token was redacted
    log_text = caplog.text + "\n".join(str(r.args) for r in caplog.records)
    assert "127.0.0.1" in log_text  # urllib3 debug logging was really captured
    assert "/management/v1/counter/12345" in log_text
    assert SECRET not in log_text
