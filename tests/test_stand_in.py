"""The Metrica stand-in itself: routing, auth, validation verdicts, failures on demand, lifetime."""

import concurrent.futures
import contextlib
import importlib.util
import pathlib
import socket
import subprocess
import sys
import threading
import time

import pytest
import requests

from metrika_stand_in import DEFAULT_COUNTER_ID, MetrikaStandIn

TOKEN = "test-token"
AUTH = {"Authorization": "OAuth test-token"}
CDP = "/cdp/api/v1/counter/12345"
MGMT = "/management/v1/counter/12345"
OK_ORDERS = b"id,create_date_time,client_ids\n1,2024-01-10 11:56:00,123\n"


@pytest.fixture
def api():
    with MetrikaStandIn() as stand_in:
        yield stand_in


def post_file(api, path, data, params=None, name="file", filename="data.csv", headers=AUTH):
    return requests.post(
        api.url + path,
        params=params,
        files={name: (filename, data, "text/csv")},
        headers=headers,
        timeout=5,
    )


def simple_orders(api, data, **params):
    params.setdefault("merge_mode", "SAVE")
    return post_file(api, CDP + "/data/simple_orders", data, params=params)


def offline(api, data, **params):
    return post_file(api, MGMT + "/offline_conversions/upload", data, params=params)


def assert_error_body(response, status, error_type, text=None):
    assert response.status_code == status
    body = response.json()
    assert body["code"] == status
    assert body["errors"][0]["error_type"] == error_type
    assert body["message"] == body["errors"][0]["message"]
    if text:
        assert text in body["message"]


def assert_failed(response, text):
    assert response.status_code == 200
    uploading = response.json()["uploading"]
    assert uploading["api_validation_status"] == "FAILED"
    assert uploading["elements_count"] == 0
    joined = " | ".join(uploading["api_validation_errors"])
    assert text in joined, joined


# ------------------------------------------------------------------ lifecycle


def test_listens_on_loopback_only_and_reports_url():
    api = MetrikaStandIn().start()
    try:
        assert api._server.server_address[0] == "127.0.0.1"
        assert api.url == "http://127.0.0.1:%d" % api.port
        assert api.port > 0
    finally:
        api.stop()
    with pytest.raises(RuntimeError):
        api.url  # noqa: B018


def test_start_stop_are_idempotent_and_restartable():
    api = MetrikaStandIn()
    api.start()
    api.start()
    first = api.url
    api.stop()
    api.stop()
    api.start()
    assert first.startswith("http://127.0.0.1:")
    assert requests.get(api.url + MGMT, headers=AUTH, timeout=5).status_code == 200
    api.stop()


def test_stop_is_quick_with_a_slow_handler_pending():
    api = MetrikaStandIn().start()
    api.fail_next("slow", delay=30)
    errors = []

    def call():
        try:
            requests.get(api.url + MGMT, headers=AUTH, timeout=10)
        except requests.RequestException as err:
            errors.append(err)

    thread = threading.Thread(target=call)
    thread.start()
    deadline = time.monotonic() + 5
    while not api.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    api.stop()
    assert time.monotonic() - started < 1.0
    thread.join(5)
    assert not thread.is_alive()
    assert errors  # the pending request was dropped, not answered


def test_loadable_by_file_path():
    path = pathlib.Path(__file__).with_name("metrika_stand_in.py")
    spec = importlib.util.spec_from_file_location("stand_in_by_path", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with module.MetrikaStandIn() as api:
        assert (
            requests.get(api.url + MGMT, headers=AUTH, timeout=5).json()["counter"]["id"] == 12345
        )


# ------------------------------------------------------------------ auth and routing


def test_auth_header_required(api):
    assert_error_body(requests.get(api.url + MGMT, timeout=5), 401, "unauthorized")
    wrong = {"Authorization": "OAuth other"}
    assert_error_body(requests.get(api.url + MGMT, headers=wrong, timeout=5), 401, "unauthorized")
    bearer = {"Authorization": "Bearer test-token"}
    assert_error_body(requests.get(api.url + MGMT, headers=bearer, timeout=5), 401, "unauthorized")
    in_url = requests.get(api.url + MGMT, params={"oauth_token": TOKEN}, timeout=5)
    assert_error_body(in_url, 401, "unauthorized")
    assert requests.get(api.url + MGMT, headers=AUTH, timeout=5).status_code == 200


def test_token_can_be_changed_to_simulate_revocation(api):
    api.token = "new-token"
    assert requests.get(api.url + MGMT, headers=AUTH, timeout=5).status_code == 401


def test_unknown_counter_is_404_and_a_denied_one_403(api):
    response = requests.get(api.url + "/management/v1/counter/999", headers=AUTH, timeout=5)
    assert_error_body(response, 404, "not_found", "Counter 999 not found")
    api.deny_access(DEFAULT_COUNTER_ID)
    assert_error_body(offline(api, b"ClientId,Target,DateTime\n1,G,1\n"), 403, "access_denied")
    assert api.offline_uploadings[DEFAULT_COUNTER_ID] == {}
    api.deny_access(DEFAULT_COUNTER_ID, denied=False)
    assert requests.get(api.url + MGMT, headers=AUTH, timeout=5).status_code == 200


def test_unknown_path_and_wrong_method(api):
    assert_error_body(requests.get(api.url + "/nope", headers=AUTH, timeout=5), 404, "not_found")
    assert requests.delete(api.url + MGMT, headers=AUTH, timeout=5).status_code == 405


def test_counters_and_goals(api):
    api.add_counter(
        777,
        name="Second",
        time_zone_name="Asia/Yekaterinburg",
        time_zone_offset=300,
        goals=["lead_ok"],
    )
    counter = requests.get(api.url + "/management/v1/counter/777", headers=AUTH, timeout=5).json()[
        "counter"
    ]
    assert counter == {
        "id": 777,
        "name": "Second",
        "site": "shop.example",
        "time_zone_name": "Asia/Yekaterinburg",
        "time_zone_offset": 300,
    }
    goals = requests.get(
        api.url + "/management/v1/counter/777/goals", headers=AUTH, timeout=5
    ).json()["goals"]
    assert [g["conditions"][0]["url"] for g in goals] == ["lead_ok"]
    assert api.action_goal_ids(777) == {"lead_ok"}


def test_custom_counters_argument():
    with MetrikaStandIn(counters={5: {"name": "Five"}}) as api:
        five = requests.get(api.url + "/management/v1/counter/5", headers=AUTH, timeout=5)
        assert five.json()["counter"]["name"] == "Five"
        assert requests.get(api.url + MGMT, headers=AUTH, timeout=5).status_code == 404
    with MetrikaStandIn(counters=[{"id": 6}]) as api:
        assert DEFAULT_COUNTER_ID not in api.counters and 6 in api.counters


def test_requests_are_recorded(api):
    post_file(
        api, CDP + "/data/simple_orders", OK_ORDERS, params={"merge_mode": "SAVE"}, filename="o.csv"
    )
    rec = api.requests[-1]
    assert rec.method == "POST" and rec.path == CDP + "/data/simple_orders"
    assert rec.query == {"merge_mode": "SAVE"}
    assert rec.header("authorization") == "OAuth test-token"
    assert (rec.file, rec.filename, rec.file_content_type) == (OK_ORDERS, "o.csv", "text/csv")
    assert rec.status == 200 and rec.counter_id == 12345
    assert api.last_request("simple_orders") is rec
    api.reset()
    assert api.requests == [] and api.cdp_uploadings[12345] == []


# ------------------------------------------------------------------ simple orders


def test_simple_orders_doc_sample_passes(api):
    data = (
        b"id,create_date_time,client_uniq_id,client_ids,emails,phones,order_status,revenue,cost,goals,currency\n"
        b's_ord1,10.01.2024 11:56,s_user1,,"mail@example.com,mail2@example.com",,PAID,200,150,'
        b'"oplata_cash:200,filial_1",\n'
        b"s_ord2,20.01.2024 11:59,,12345,mail3@example.com,,,200,150,,EUR\n"
        b",12.02.2024,,34456,,79876543210,SPAM,,,plohoy_lead,\n"
    )
    response = simple_orders(api, data, delimiter_type="COMMA")
    uploading = response.json()["uploading"]
    assert uploading["api_validation_status"] == "PASSED"
    assert uploading["elements_count"] == 3
    assert set(uploading) >= {
        "uploading_id",
        "datetime",
        "entity_type",
        "uploading_format",
        "uploading_source",
        "api_validation_errors",
    }


@pytest.mark.parametrize(
    "value",
    [
        "21.04.2020",
        "21.04.20",
        "2020-04-21",
        "21.04.2020 11:59:21",
        "21.04.2020 11:59",
        "21.04.20 11:59:21",
        "21.04.20 11:59",
        "2020-04-21 11:59:21",
        "2020-04-21 11:59",
    ],
)
def test_simple_orders_accepts_every_documented_date_format(api, value):
    data = b"id,create_date_time,phones\n1,%s,79995551111\n" % value.encode()
    assert simple_orders(api, data).json()["uploading"]["api_validation_status"] == "PASSED"


@pytest.mark.parametrize(
    "params, status, error_type, text",
    [
        ({"merge_mode": None}, 400, "missing_parameter", "merge_mode"),
        ({"merge_mode": "MERGE"}, 400, "invalid_parameter", "merge_mode"),
        ({"delimiter_type": "TAB"}, 400, "invalid_parameter", "delimiter_type"),
    ],
)
def test_simple_orders_request_parameters(api, params, status, error_type, text):
    query = {"merge_mode": "SAVE", **params}
    query = {k: v for k, v in query.items() if v is not None}
    response = post_file(api, CDP + "/data/simple_orders", OK_ORDERS, params=query)
    assert_error_body(response, status, error_type, text)


@pytest.mark.parametrize(
    "data, text",
    [
        (b"", "empty"),
        (b"\xef\xbb\xbf" + OK_ORDERS, "BOM"),
        ("id,create_date_time,client_ids\n1,2024-01-10,123\nж".encode("cp1251"), "UTF-8"),
        (b"id,client_ids\n1,123\n", "create_date_time"),
        (b"id,create_date_time,client_uniq_id\n1,2024-01-10,u1\n", "One of the columns"),
        (b"id,create_date_time,client_ids,colour\n1,2024-01-10,1,red\n", "Unknown column"),
        (b"id,create_date_time,client_ids,id\n1,2024-01-10,1,2\n", "Duplicate"),
        (b"id,create_date_time,client_ids\n", "no data rows"),
    ],
)
def test_simple_orders_file_level_problems_are_400(api, data, text):
    assert_error_body(simple_orders(api, data), 400, "invalid_uploading", text)


def test_simple_orders_file_part_must_be_named_file(api):
    response = post_file(
        api, CDP + "/data/simple_orders", OK_ORDERS, params={"merge_mode": "SAVE"}, name="data"
    )
    assert_error_body(response, 400, "invalid_uploading", "'file'")
    response = requests.post(
        api.url + CDP + "/data/simple_orders",
        params={"merge_mode": "SAVE"},
        data=OK_ORDERS,
        headers=AUTH,
        timeout=5,
    )
    assert_error_body(response, 400, "invalid_uploading", "multipart")


@pytest.mark.parametrize(
    "row, text",
    [
        (b"1,2024-04-21T11:59:21Z,123,,,,,", "create_date_time is not in a supported date format"),
        (b"1,21-04-2020,123,,,,,", "create_date_time is not in a supported date format"),
        (b"1,31.02.2024,123,,,,,", "not a valid date"),
        (b"1,01.01.1969,123,,,,,", "before 1970"),
        (b"1,,123,,,,,", "create_date_time is empty"),
        (b"1,2024-01-10,,,,,,", "no customer identifier"),
        (b"1,2024-01-10,12a,,,,,", "ClientIDs must be digits"),
        (b"1,2024-01-10,,Mail@Yandex.ru,,,,", "lower-case"),
        (b"1,2024-01-10,,mail.yandex.ru,,,,", "lower-case with @"),
        (b'1,2024-01-10,,"a@b.ru, c@d.ru",,,,', "no spaces"),
        (b"1,2024-01-10,,,+79995551111,,,", "digits only"),
        (b'1,2024-01-10,,,"8 (999) 555-11-11",,,', "digits only"),
        (b"1,2024-01-10,,,,3C56FF8FEF0F6C65B36B2D25720FE276,,", "32 lower-case hex"),
        (b"1,2024-01-10,,,,abc,,", "32 lower-case hex"),
        (b"1,2024-01-10,123,,,,CANCELED,", "use CANCELLED"),
        (b"1,2024-01-10,123,,,,bad/goal,", "order_status must be"),
        (b'1,2024-01-10,123,,,,,"200,50"', "decimal number with a dot"),
        (b"1,2024-01-10,123,,,,,1e3", "decimal number with a dot"),
        (b"1,2024-01-10,123,,,,", "expected 8 values"),
    ],
)
def test_simple_orders_row_problems_give_failed(api, row, text):
    header = b"id,create_date_time,client_ids,emails,phones,emails_md5,order_status,revenue\n"
    assert_failed(simple_orders(api, header + row + b"\n"), text)


def test_simple_orders_semicolon_decimal_comma_and_extras(api):
    header = b"id;create_date_time;phones_md5;revenue;currency;goals\n"
    data = header + b"1;2024-01-10;f09f2c3d48f31e2a802944ade2e5aec5;200,50;rub;g1:1,5\n"
    response = simple_orders(api, data, delimiter_type="SEMICOLON")
    assert_failed(response, "revenue must be a decimal number with a dot")
    assert_failed(response, "currency must be a 3-letter")
    ok = header + b"1;2024-01-10;f09f2c3d48f31e2a802944ade2e5aec5;200.50;RUB;g1:1.5,g2\n"
    uploading = simple_orders(api, ok, delimiter_type="SEMICOLON").json()["uploading"]
    assert uploading["api_validation_status"] == "PASSED"


def test_order_status_values(api):
    header = b"id,create_date_time,client_ids,order_status\n"
    for status in (
        b"IN_PROGRESS",
        b"PAID",
        b"CANCELLED",
        b"SPAM",
        b"crm_deal_won",
        b"some_js_goal",
        b"",
    ):
        response = simple_orders(api, header + b"1,2024-01-10,1," + status + b"\n")
        assert response.json()["uploading"]["api_validation_status"] == "PASSED", status


def test_strict_goals_requires_a_counter_goal():
    with MetrikaStandIn(strict_goals=True) as api:
        header = b"id,create_date_time,client_ids,order_status\n"
        ok = simple_orders(api, header + b"1,2024-01-10,1,crm_deal_won\n")
        assert ok.json()["uploading"]["api_validation_status"] == "PASSED"
        assert_failed(
            simple_orders(api, header + b"1,2024-01-10,1,unknown_goal\n"), "not a JS-event goal"
        )


# ------------------------------------------------------------------ offline conversions


def test_offline_doc_sample_passes_and_is_listed(api):
    data = (
        b"ClientId,Target,DateTime,Price,Currency\n133591247640966458,GOAL1,1481718166,123.45,RUB\n"
    )
    uploading = offline(api, data, comment="odoo", type="BASIC").json()["uploading"]
    assert uploading["status"] == "UPLOADED" and uploading["source_quantity"] == 1
    assert uploading["comment"] == "odoo" and uploading["type"] == "BASIC"
    one = requests.get(
        api.url + MGMT + "/offline_conversions/uploading/%d" % uploading["id"],
        headers=AUTH,
        timeout=5,
    )
    assert one.json()["uploading"] == uploading
    listed = requests.get(
        api.url + MGMT + "/offline_conversions/uploadings", headers=AUTH, timeout=5
    )
    assert listed.json()["uploadings"] == [uploading]
    assert api.set_offline_status(uploading["id"], "LINKAGE_FAILURE")["status"] == "LINKAGE_FAILURE"


@pytest.mark.parametrize(
    "column, value",
    [("Yclid", b"6754821930114400255"), ("UserId", b"u-42"), ("PurchaseId", b"S00042")],
)
def test_offline_other_identifiers(api, column, value):
    data = column.encode() + b",Target,DateTime\n" + value + b",crm_paid,1735689600\n"
    uploading = offline(api, data).json()["uploading"]
    assert (
        uploading["client_id_type"]
        == {"Yclid": "YCLID", "UserId": "USER_ID", "PurchaseId": "PURCHASE_ID"}[column]
    )


@pytest.mark.parametrize(
    "data, text",
    [
        (b"Target,DateTime\nG,1481718166\n", "Exactly one identifier column"),
        (b"ClientId,Yclid,Target,DateTime\n1,2,G,1481718166\n", "Exactly one identifier column"),
        (b"ClientId,DateTime\n1,1481718166\n", "Target"),
        (b"ClientId,Target\n1,G\n", "DateTime"),
        (b"ClientId,Target,DateTime,Colour\n1,G,1481718166,red\n", "Unknown column"),
        (b"PurchaseId,Target,DateTime\nS00042,crm_paid\n", "expected 3 values"),
        (b"ClientId,Target,DateTime\n,G,1481718166\n", "ClientId is empty"),
        (b"ClientId,Target,DateTime\n12x,G,1481718166\n", "must be digits"),
        (b"ClientId,Target,DateTime\n1,G,2024-01-10 10:00:00\n", "Unix timestamp"),
        (b"ClientId,Target,DateTime\n1,G,1481718166000\n", "Unix timestamp"),
        (b"ClientId,Target,DateTime\n1,G,9999999999\n", "in the future"),
        (b'ClientId,Target,DateTime,Price\n1,G,1481718166,"12,5"\n', "Price"),
        (b"ClientId,Target,DateTime,Price,Currency\n1,G,1481718166,12.5,RUBL\n", "Currency"),
        (b"ClientId,Target,DateTime\n1,goal name?,1481718166\n", "Target"),
        (b"\xef\xbb\xbfClientId,Target,DateTime\n1,G,1481718166\n", "BOM"),
        (b"", "empty"),
    ],
)
def test_offline_problems_are_400(api, data, text):
    assert_error_body(offline(api, data), 400, "invalid_uploading", text)


def test_offline_parameters(api):
    ok = b"ClientId,Target,DateTime\n1,G,1481718166\n"
    assert_error_body(offline(api, ok, type="OTHER"), 400, "invalid_parameter", "type")
    assert_error_body(offline(api, ok, comment="x" * 256), 400, "invalid_parameter", "comment")
    assert_error_body(
        offline(api, ok, client_id_type="YCLID"), 400, "invalid_parameter", "client_id_type"
    )
    assert offline(api, ok, client_id_type="CLIENT_ID").status_code == 200


def test_offline_future_check_uses_the_clock():
    with MetrikaStandIn(clock=lambda: 1_000_000_000) as api:
        response = offline(api, b"ClientId,Target,DateTime\n1,G,1481718166\n")
        assert_error_body(response, 400, "invalid_uploading", "in the future")


def test_unknown_offline_uploading_is_404(api):
    response = requests.get(
        api.url + MGMT + "/offline_conversions/uploading/5", headers=AUTH, timeout=5
    )
    assert_error_body(response, 404, "not_found")


# ------------------------------------------------------------------ contacts and orders


def test_contacts_csv_mapping_rules(api):
    path = CDP + "/data/contacts/csv"
    data = b"ID,Name,Email\n11,John,example@example.com\n"
    good = {
        "merge_mode": "SAVE",
        "columns_mapping": '"uniq_id":"ID","name":"Name","emails":"Email"',
    }
    assert (
        post_file(api, path, data, params=good).json()["uploading"]["api_validation_status"]
        == "PASSED"
    )
    missing = {"merge_mode": "SAVE"}
    assert_error_body(
        post_file(api, path, data, params=missing), 400, "missing_parameter", "columns_mapping"
    )
    garbled = {"merge_mode": "SAVE", "columns_mapping": "uniq_id=ID"}
    assert_error_body(
        post_file(api, path, data, params=garbled), 400, "invalid_parameter", "columns_mapping"
    )
    absent = {"merge_mode": "SAVE", "columns_mapping": '"uniq_id":"ID","emails":"E-mail"'}
    assert_error_body(post_file(api, path, data, params=absent), 400, "invalid_uploading", "E-mail")
    no_uniq = {"merge_mode": "SAVE", "columns_mapping": '"name":"Name"'}
    assert_error_body(
        post_file(api, path, data, params=no_uniq), 400, "invalid_parameter", "uniq_id"
    )
    bad_rows = b"ID,Name,Email\n,John,Example@example.com\n"
    assert_failed(post_file(api, path, bad_rows, params=good), "uniq_id is empty")


def test_orders_csv_rules(api):
    path = CDP + "/data/orders/csv"
    mapping = (
        '"id":"id","client_uniq_id":"cid","client_type":"type","order_status":"status",'
        '"create_date_time":"created","products":"products"'
    )
    params = {"merge_mode": "SAVE", "columns_mapping": mapping, "delimiter_type": "SEMICOLON"}
    api.order_statuses[DEFAULT_COUNTER_ID] = [{"id": "paid", "type": "PAID"}]
    api.contacts[DEFAULT_COUNTER_ID]["11"] = {"uniq_id": "11"}
    header = b"id;cid;type;status;created;products\n"
    ok = header + b"1;11;CONTACT;paid;2020-06-11 12:30:00;Laptop TGDD12:1,Laptop TGD123:2\n"
    assert (
        post_file(api, path, ok, params=params).json()["uploading"]["api_validation_status"]
        == "PASSED"
    )
    bad = header + b"1;11;COMPANY;paid;2020-06-11T12:30;Laptop\n"
    response = post_file(api, path, bad, params=params)
    assert_failed(response, "client_type must be CONTACT")
    assert_failed(response, "create_date_time is not in a supported date format")
    assert_failed(response, "products")
    params["columns_mapping"] = '"id":"id"'
    assert_error_body(
        post_file(api, path, ok, params=params), 400, "invalid_parameter", "client_uniq_id"
    )


def test_json_uploads(api):
    path = CDP + "/data/contacts/json"
    good = {
        "contacts": [
            {"uniq_id": "a", "emails": ["x@y.ru"], "create_date_time": "2020-04-17 16:12:21"}
        ]
    }
    response = requests.post(
        api.url + path, params={"merge_mode": "SAVE"}, json=good, headers=AUTH, timeout=5
    )
    uploading = response.json()["uploading"]
    assert (
        uploading["api_validation_status"] == "PASSED" and uploading["uploading_format"] == "JSON"
    )
    assert api.requests[-1].json == good

    broken = requests.post(
        api.url + path,
        params={"merge_mode": "SAVE"},
        data=b"{nope",
        headers={**AUTH, "Content-Type": "application/json"},
        timeout=5,
    )
    assert_error_body(broken, 400, "invalid_json")
    wrong_key = requests.post(
        api.url + path, params={"merge_mode": "SAVE"}, json={"orders": []}, headers=AUTH, timeout=5
    )
    assert_error_body(wrong_key, 400, "invalid_json", "contacts")
    as_form = requests.post(
        api.url + path, params={"merge_mode": "SAVE"}, data={"a": "b"}, headers=AUTH, timeout=5
    )
    assert_error_body(as_form, 400, "invalid_parameter", "application/json")

    bad = {
        "contacts": [
            {"uniq_id": "", "phones": ["+7999"], "create_date_time": "2020-04-17T16:12:21Z"}
        ]
    }
    response = requests.post(
        api.url + path, params={"merge_mode": "SAVE"}, json=bad, headers=AUTH, timeout=5
    )
    assert_failed(response, "contacts[0]: uniq_id is required")
    assert_failed(response, "phones")
    assert_failed(response, "create_date_time")


def test_order_statuses_endpoint(api):
    path = api.url + CDP + "/schema/order_statuses"
    statuses = [{"id": "new", "type": "IN_PROGRESS", "humanized": "New", "goal_action_ids": ["g"]}]
    assert requests.post(
        path, json={"order_statuses": statuses}, headers=AUTH, timeout=5
    ).json() == {"success": True}
    got = requests.get(path, headers=AUTH, timeout=5).json()["order_statuses"]
    assert got[0]["id"] == "new" and got[0]["type"] == "IN_PROGRESS"
    for bad in (
        [{"id": "new", "type": "DONE"}],
        [{"id": "", "type": "PAID"}],
        [{"id": "a", "type": "PAID", "goal_action_ids": "dostavka"}],
        [{"id": "a", "type": "PAID"}, {"id": "a", "type": "SPAM"}],
    ):
        response = requests.post(path, json={"order_statuses": bad}, headers=AUTH, timeout=5)
        assert_error_body(response, 400, "invalid_parameter")
    # the mapping is replaced as a whole
    requests.post(
        path, json={"order_statuses": [{"id": "x", "type": "SPAM"}]}, headers=AUTH, timeout=5
    )
    assert [
        s["id"] for s in requests.get(path, headers=AUTH, timeout=5).json()["order_statuses"]
    ] == ["x"]


def test_last_uploadings(api):
    for _ in range(3):
        simple_orders(api, OK_ORDERS)
    simple_orders(api, b"id,create_date_time,client_ids\n1,bad,1\n")
    url = api.url + CDP + "/last_uploadings"
    items = requests.get(
        url, params={"limit": 10, "source": "API"}, headers=AUTH, timeout=5
    ).json()["uploadings"]
    assert [u["api_validation_status"] for u in items] == ["FAILED", "PASSED", "PASSED", "PASSED"]
    assert (
        len(requests.get(url, params={"limit": 2}, headers=AUTH, timeout=5).json()["uploadings"])
        == 2
    )
    future = requests.get(
        url, params={"datetime_offset": "2999-01-01T00:00:00.000Z"}, headers=AUTH, timeout=5
    )
    assert len(future.json()["uploadings"]) == 4
    past = requests.get(
        url, params={"datetime_offset": "2000-01-01T00:00:00.000Z"}, headers=AUTH, timeout=5
    )
    assert past.json()["uploadings"] == []
    assert_error_body(
        requests.get(url, params={"limit": 0}, headers=AUTH, timeout=5), 400, "invalid_parameter"
    )
    assert_error_body(
        requests.get(url, params={"limit": 1001}, headers=AUTH, timeout=5), 400, "invalid_parameter"
    )


# ------------------------------------------------------------------ failures on demand


@pytest.mark.parametrize(
    "status, error_type",
    [
        (400, "invalid_parameter"),
        (401, "unauthorized"),
        (403, "access_denied"),
        (429, "quota_requests_by_ip"),
        (420, "quota_requests_by_ip"),
        (503, "backend_error"),
        (504, "timeout"),
    ],
)
def test_fail_next_json_errors(api, status, error_type):
    api.fail_next(status)
    assert_error_body(requests.get(api.url + MGMT, headers=AUTH, timeout=5), status, error_type)
    assert requests.get(api.url + MGMT, headers=AUTH, timeout=5).status_code == 200


@pytest.mark.parametrize("status", [500, 502])
def test_fail_next_html_errors(api, status):
    api.fail_next(status)
    response = requests.get(api.url + MGMT, headers=AUTH, timeout=5)
    assert response.status_code == status
    assert response.headers["Content-Type"].startswith("text/html")


def test_fail_next_options(api):
    api.fail_next(429, times=2, error_type="quota_requests_by_uid", retry_after=30, path="/goals")
    assert (
        requests.get(api.url + MGMT, headers=AUTH, timeout=5).status_code == 200
    )  # path does not match
    for _ in range(2):
        response = requests.get(api.url + MGMT + "/goals", headers=AUTH, timeout=5)
        assert_error_body(response, 429, "quota_requests_by_uid", "daily")
        assert response.headers["Retry-After"] == "30"
    assert requests.get(api.url + MGMT + "/goals", headers=AUTH, timeout=5).status_code == 200
    api.fail_next(503, method="POST")
    assert requests.get(api.url + MGMT, headers=AUTH, timeout=5).status_code == 200
    assert simple_orders(api, OK_ORDERS).status_code == 503
    api.fail_next(200, body={"odd": True})
    assert requests.get(api.url + MGMT, headers=AUTH, timeout=5).json() == {"odd": True}
    api.fail_next("garbage")
    garbage = requests.get(api.url + MGMT, headers=AUTH, timeout=5)
    assert garbage.status_code == 200 and garbage.headers["Content-Type"].startswith("text/html")
    assert api.pending_failures() == 0
    with pytest.raises(ValueError):
        api.fail_next("explode")


def test_fail_next_drop(api):
    api.fail_next("drop")
    with pytest.raises(requests.ConnectionError):
        requests.get(api.url + MGMT, headers=AUTH, timeout=5)
    assert api.requests[-1].status is None and api.requests[-1].failure == "drop"
    api.fail_next("drop", accept=True)
    with pytest.raises(requests.ConnectionError):
        simple_orders(api, OK_ORDERS)
    assert len(api.cdp_uploadings[12345]) == 1  # processed, answer lost


def test_fail_next_slow(api):
    api.fail_next("slow", delay=0.4)
    with pytest.raises(requests.ReadTimeout):
        requests.post(
            api.url + CDP + "/data/simple_orders",
            params={"merge_mode": "SAVE"},
            files={"file": ("d.csv", OK_ORDERS)},
            headers=AUTH,
            timeout=(1, 0.2),
        )
    assert api.wait_idle(5)
    assert api.cdp_uploadings[12345] == []  # not accepted
    api.fail_next("slow", delay=0.2)
    response = requests.get(api.url + MGMT, headers=AUTH, timeout=5)
    assert_error_body(response, 504, "timeout")
    api.fail_next("slow", delay=0.2, accept=True)
    assert requests.get(api.url + MGMT, headers=AUTH, timeout=5).status_code == 200


def test_concurrent_uploads_are_consistent(api):
    data = b"ClientId,Target,DateTime\n1,G,1481718166\n"

    def upload(i):
        return offline(api, data, comment="c%d" % i).json()["uploading"]["id"]

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        ids = list(pool.map(upload, range(40)))
    assert sorted(ids) == list(range(1, 41))
    assert len(api.requests) == 40
    assert len(api.offline_uploadings[12345]) == 40


def test_never_binds_beyond_loopback():
    api = MetrikaStandIn().start()
    try:
        host, port = api._server.server_address
        assert host == "127.0.0.1"
        # a non-loopback address of this machine (if any) must not answer on that port
        try:
            other = socket.gethostbyname(socket.gethostname())
        except OSError:
            other = None
        if other and not other.startswith("127."):
            with socket.socket() as sock:
                sock.settimeout(0.5)
                assert sock.connect_ex((other, port)) != 0
    finally:
        api.stop()


# ------------------------------------------------------------------ issue 8: Metrica over time


class Clock:
    """A clock the test moves by hand (epoch seconds)."""

    def __init__(self, now=1_700_000_000.0):
        self.now = now

    def __call__(self):
        return self.now


def offline_file(*rows, column="ClientId"):
    lines = ["%s,Target,DateTime" % column] + [",".join(map(str, row)) for row in rows]
    return ("\n".join(lines) + "\n").encode()


def list_uploadings(api, **params):
    response = requests.get(
        api.url + MGMT + "/offline_conversions/uploadings", params=params, headers=AUTH, timeout=5
    )
    assert response.status_code == 200, response.text
    return [u["id"] for u in response.json()["uploadings"]]


def get_uploading(api, uploading_id):
    response = requests.get(
        api.url + MGMT + "/offline_conversions/uploading/%d" % uploading_id, headers=AUTH, timeout=5
    )
    assert response.status_code == 200, response.text
    return response.json()["uploading"]


def test_uploadings_list_pages_with_limit_offset_and_a_maximum_page(api):
    ids = [
        offline(api, offline_file((1, "G", 1)), comment="c%d" % i).json()["uploading"]["id"]
        for i in range(5)
    ]
    assert list_uploadings(api) == ids  # default limit 10000, oldest first
    assert list_uploadings(api, limit=2, offset=1) == ids[1:3]
    assert list_uploadings(api, limit=10, offset=5) == []
    api.max_page_size = 2
    assert list_uploadings(api) == ids[:2]  # a page never exceeds the maximum
    assert list_uploadings(api, offset=4) == ids[4:]
    assert list_uploadings(api, limit=1, offset=0) == ids[:1]
    api.list_order = "newest"
    assert list_uploadings(api, offset=0) == ids[::-1][:2]
    assert list_uploadings(api, offset=2) == ids[::-1][2:4]
    too_big = requests.get(
        api.url + MGMT + "/offline_conversions/uploadings",
        params={"limit": 10001},
        headers=AUTH,
        timeout=5,
    )
    assert_error_body(too_big, 400, "invalid_parameter", "limit")


def test_offline_rows_refused_one_by_one_are_left_out_of_line_quantity():
    clock = Clock()
    with MetrikaStandIn(clock=clock, strict_goals=True) as api:
        data = offline_file(
            (11, "crm_deal_won", int(clock.now) - 60),
            (12, "crm_deal_won", int(clock.now) + 1),  # in the future
            (13, "no_such_goal", int(clock.now) - 60),  # not a goal of the counter
            (14, "crm_deal_won", int(clock.now)),  # now is not in the future
        )
        uploading = offline(api, data).json()["uploading"]
        assert (uploading["source_quantity"], uploading["line_quantity"]) == (4, 2)
        stats = api.stats()
        assert sorted(row[0] for row in stats["offline"]["rows"]) == ["11", "14"]
        # a file none of whose rows passes is refused as a whole
        refused = offline(api, offline_file((12, "crm_deal_won", int(clock.now) + 1)))
        assert_error_body(refused, 400, "invalid_uploading", "in the future")
        assert api.stats()["offline"]["uploadings"] == 1


def test_offline_uploadings_are_processed_after_the_delay_with_counts_from_the_file():
    clock = Clock()
    with MetrikaStandIn(clock=clock, offline_processing_delay=60) as api:
        api.add_visitor("101")
        api.add_visitor("102")
        stamp = int(clock.now) - 3600
        partial = offline(
            api,
            offline_file(
                (101, "crm_deal_won", stamp),
                (102, "crm_qualified_lead", stamp),
                (999, "crm_deal_won", stamp),  # not a visitor the counter knows
                (101, "unknown_goal", stamp),  # not a goal of the counter
            ),
        ).json()["uploading"]
        unknown = offline(api, offline_file((998, "crm_deal_won", stamp))).json()["uploading"]
        assert partial["status"] == unknown["status"] == "UPLOADED"
        clock.now += 59.9
        assert get_uploading(api, partial["id"])["status"] == "UPLOADED"
        clock.now += 0.1
        processed = get_uploading(api, partial["id"])
        assert processed["status"] == "PROCESSED"
        assert (
            processed["linked_quantity"],
            processed["user_not_found_quantity"],
            processed["goal_not_found_quantity"],
        ) == (2, 1, 1)
        # the list moves uploadings on too
        listed = requests.get(
            api.url + MGMT + "/offline_conversions/uploadings", headers=AUTH, timeout=5
        ).json()["uploadings"]
        assert [u["status"] for u in listed] == ["PROCESSED", "LINKAGE_FAILURE"]
        assert listed[1]["user_not_found_quantity"] == 1 and listed[1]["linked_quantity"] == 0


def test_every_identifier_is_a_visitor_until_one_is_added_and_prepared_can_be_the_start():
    clock = Clock()
    with MetrikaStandIn(
        clock=clock, offline_processing_delay=0, offline_initial_status="PREPARED"
    ) as api:
        answer = offline(api, offline_file((5, "crm_deal_won", 1))).json()["uploading"]
        assert answer["status"] == "PREPARED"
        one = get_uploading(api, answer["id"])
        assert (one["status"], one["linked_quantity"]) == ("PROCESSED", 1)


def test_held_uploadings_stay_processing_and_set_offline_status_computes_counts():
    clock = Clock()
    with MetrikaStandIn(clock=clock, offline_processing_delay=1) as api:
        api.hold_next_offline()
        held = offline(api, offline_file((1, "crm_deal_won", 1))).json()["uploading"]
        free = offline(api, offline_file((2, "crm_deal_won", 1))).json()["uploading"]
        later = offline(api, offline_file((3, "crm_deal_won", 1))).json()["uploading"]
        api.hold_offline(later["id"])
        clock.now += 10**6
        assert get_uploading(api, held["id"])["status"] == "UPLOADED"
        assert get_uploading(api, later["id"])["status"] == "UPLOADED"
        assert get_uploading(api, free["id"])["status"] == "PROCESSED"
        api.hold_offline(later["id"], held=False)
        assert get_uploading(api, later["id"])["status"] == "PROCESSED"
        api.add_visitor("7")  # from now on "1" is not a known visitor
        moved = api.set_offline_status(held["id"], "LINKAGE_FAILURE")
        assert moved["user_not_found_quantity"] == 1 and moved["linked_quantity"] == 0
        assert (
            api.set_offline_status(held["id"], "PROCESSED", linked_quantity=5)["linked_quantity"]
            == 5
        )
        with pytest.raises(KeyError):
            api.set_offline_status(999)


@pytest.mark.parametrize("upload", ["offline", "simple_orders"])
@pytest.mark.parametrize(
    "kind, kw",
    [("drop", {"accept": True}), (504, {"accept": True}), ("slow", {"accept": True, "delay": 0.4})],
)
def test_answer_lost_after_storing_for_both_methods(api, upload, kind, kw):
    api.fail_next(kind, path="/upload" if upload == "offline" else "simple_orders", **kw)
    try:
        response = requests.post(
            api.url
            + (
                MGMT + "/offline_conversions/upload"
                if upload == "offline"
                else CDP + "/data/simple_orders"
            ),
            params={"merge_mode": "SAVE"} if upload == "simple_orders" else None,
            files={
                "file": ("d.csv", offline_file((1, "G", 1)) if upload == "offline" else OK_ORDERS)
            },
            headers=AUTH,
            timeout=(1, 0.2),
        )
    except (requests.ConnectionError, requests.ReadTimeout):
        response = None
    assert response is None or response.status_code == 504
    assert api.wait_idle(5)
    stats = api.stats()
    if upload == "offline":
        assert stats["offline"]["rows"] == [["1", "G", "1", 1]]
    else:
        assert stats["simple_orders"]["ids"] == {"1": 1}


def test_quota_by_counter_and_by_uid_are_playable(api):
    api.fail_next(429, error_type="quota_requests_by_counter_id")
    response = offline(api, offline_file((1, "G", 1)))
    assert_error_body(response, 429, "quota_requests_by_counter_id", "counter")
    assert api.offline_uploadings[DEFAULT_COUNTER_ID] == {}


def test_outage_answers_everything_503_until_switched_off(api):
    api.outage()
    assert_error_body(requests.get(api.url + MGMT, headers=AUTH, timeout=5), 503, "backend_error")
    assert_error_body(simple_orders(api, OK_ORDERS), 503, "backend_error")
    assert api.cdp_uploadings[DEFAULT_COUNTER_ID] == [] and api.stats()["outage"] is True
    assert api.requests[-1].failure == "outage"
    api.outage(False)
    assert simple_orders(api, OK_ORDERS).status_code == 200


def test_fail_randomly_before_stores_nothing_and_after_stores_and_loses_the_answer(api):
    api.fail_randomly(1.0, seed=3, modes=("before",))
    outcomes = set()
    for _ in range(12):
        try:
            outcomes.add(simple_orders(api, OK_ORDERS).status_code)
        except requests.ConnectionError:
            outcomes.add("drop")
    assert outcomes == {503, 504, "drop"}
    assert api.stats()["simple_orders"]["rows_stored"] == 0
    api.fail_randomly(1.0, seed=3, modes=("after",))
    outcomes = set()
    for _ in range(8):
        try:
            outcomes.add(simple_orders(api, OK_ORDERS).status_code)
        except requests.ConnectionError:
            outcomes.add("drop")
    assert outcomes == {504, "drop"}
    stats = api.stats()
    assert stats["simple_orders"]["ids"] == {"1": 8} and stats["simple_orders"]["repeats"] == 7
    assert stats["random_failures"] == {"before": 12, "after": 8}
    api.fail_randomly(0)
    assert simple_orders(api, OK_ORDERS).status_code == 200


def test_fail_randomly_rate_seed_and_path(api):
    def run():
        api.reset()
        api.fail_randomly(0.3, seed=42, path="/upload")
        answers = []
        for i in range(60):
            try:
                answers.append(offline(api, offline_file((i, "G", 1))).status_code)
            except requests.ConnectionError:
                answers.append("drop")
        return answers

    first = run()
    assert first == run()  # the seed makes the sequence repeatable
    failed = sum(answer != 200 for answer in first)
    assert 8 <= failed <= 30  # about 30 % of 60
    stats = api.stats()
    assert failed == sum(stats["random_failures"].values())
    # after-storing failures stored their rows: delivered = answered 200 + failed after storing
    assert stats["offline"]["rows_distinct"] == first.count(200) + stats["random_failures"]["after"]
    assert requests.get(api.url + MGMT, headers=AUTH, timeout=5).status_code == 200  # not /upload
    with pytest.raises(ValueError):
        api.fail_randomly(1.5)
    with pytest.raises(ValueError):
        api.fail_randomly(0.5, modes=("sideways",))


def test_stats_count_each_stored_offline_row_and_order_id(api):
    for _ in range(2):
        offline(api, offline_file((1, "crm_deal_won", 10), (2, "crm_deal_won", 10)))
    offline(api, offline_file((1, "crm_deal_won", 11)))
    simple_orders(
        api, b"id,create_date_time,client_ids\nA,2024-01-10 11:56:00,1\nB,2024-01-10 11:56:00,2\n"
    )
    simple_orders(api, b"id,create_date_time,client_ids\nA,2024-01-10 11:56:00,1\n")
    simple_orders(api, b"id,create_date_time,client_ids\nC,2024-01-10 11:56:00,x\n")  # FAILED
    stats = api.stats()
    assert sorted(stats["offline"]["rows"]) == [
        ["1", "crm_deal_won", "10", 2],
        ["1", "crm_deal_won", "11", 1],
        ["2", "crm_deal_won", "10", 2],
    ]
    assert (stats["offline"]["rows_stored"], stats["offline"]["duplicate_rows"]) == (5, 2)
    assert stats["simple_orders"]["ids"] == {"A": 2, "B": 1}
    assert stats["simple_orders"]["uploadings"] == 3
    assert "rows" not in api.stats(rows=False)["offline"]
    api.reset()
    assert api.stats()["offline"]["rows_stored"] == 0 and api.stats()["simple_orders"]["ids"] == {}


def test_control_path_drives_the_stand_in_and_stays_out_of_the_metrica_routes(api):
    control = api.url + "/_stand_in/control"
    assert requests.post(control, json={"outage": True}, timeout=5).json() == {"ok": True}
    assert simple_orders(api, OK_ORDERS).status_code == 503
    requests.post(control, json={"outage": False, "max_page_size": 1, "visitors": ["5"]}, timeout=5)
    assert api.max_page_size == 1 and api.visitors[DEFAULT_COUNTER_ID] == {"5"}
    requests.post(
        control, json={"fail_next": {"kind": 429, "error_type": "quota_requests_by_uid"}}, timeout=5
    )
    assert simple_orders(api, OK_ORDERS).status_code == 429
    requests.post(
        control, json={"fail_randomly": {"rate": 1, "seed": 1, "modes": ["after"]}}, timeout=5
    )
    with contextlib.suppress(requests.ConnectionError):  # the answer is dropped on purpose
        simple_orders(api, OK_ORDERS)
    stats = requests.get(api.url + "/_stand_in/stats", timeout=5).json()
    assert stats["simple_orders"]["ids"] == {"1": 1} and stats["random_failures"]["after"] == 1
    assert stats["requests"] == 3  # control requests are not recorded
    assert (
        "ids"
        not in requests.get(api.url + "/_stand_in/stats?rows=0", timeout=5).json()["simple_orders"]
    )
    requests.post(control, json={"fail_randomly": None, "reset": True}, timeout=5)
    assert api.requests == [] and simple_orders(api, OK_ORDERS).status_code == 200
    assert requests.post(control, data=b"nope", timeout=5).status_code == 400
    assert requests.post(control, json={"fail_randomly": {"rate": 7}}, timeout=5).status_code == 400
    assert requests.get(api.url + "/_stand_in/other", timeout=5).status_code == 404


def test_random_faults_under_concurrency_count_consistently(api):
    api.fail_randomly(0.5, seed=7)

    def upload(i):
        try:
            return offline(api, offline_file((i, "G", 1))).status_code
        except requests.ConnectionError:
            return "drop"

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(upload, range(80)))
    assert api.wait_idle(5)
    stats = api.stats()
    stored = sum(u["line_quantity"] for u in api.offline_uploadings[DEFAULT_COUNTER_ID].values())
    assert stats["offline"]["rows_stored"] == stored == stats["offline"]["rows_distinct"]
    assert stored == answers.count(200) + stats["random_failures"]["after"]
    assert len(api.requests) == 80


def test_runs_as_its_own_process_until_killed():
    script = pathlib.Path(__file__).resolve().parent / "metrika_stand_in.py"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, str(script), "--port", str(port), "--token", "T", "--counter", "777"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        url = proc.stdout.readline().strip()
        assert url == "http://127.0.0.1:%d" % port
        auth = {"Authorization": "OAuth T"}
        counter = requests.get(url + "/management/v1/counter/777", headers=auth, timeout=5)
        assert counter.json()["counter"]["id"] == 777
        goals = requests.get(url + "/management/v1/counter/777/goals", headers=auth, timeout=5)
        assert {g["conditions"][0]["url"] for g in goals.json()["goals"]} == {
            "crm_qualified_lead",
            "crm_deal_won",
        }
        assert requests.get(url + MGMT, headers=auth, timeout=5).status_code == 404
        requests.post(url + "/_stand_in/control", json={"outage": True}, timeout=5)
        assert (
            requests.get(url + "/management/v1/counter/777", headers=auth, timeout=5).status_code
            == 503
        )
        assert requests.get(url + "/_stand_in/stats", timeout=5).json()["outage"] is True
        proc.terminate()
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()


# ------------------------------------------------------------------ detailed flow: strict parts


def upload_contacts(api, data):
    params = {
        "merge_mode": "SAVE",
        "columns_mapping": '"uniq_id":"uniq_id","client_ids":"client_ids"',
    }
    return post_file(api, CDP + "/data/contacts/csv", data, params=params)


def upload_orders(api, data):
    mapping = (
        '"id":"id","client_uniq_id":"client_uniq_id","client_type":"client_type",'
        '"order_status":"order_status","create_date_time":"create_date_time"'
    )
    params = {"merge_mode": "SAVE", "columns_mapping": mapping}
    return post_file(api, CDP + "/data/orders/csv", data, params=params)


ORDER_HEADER = b"id,client_uniq_id,client_type,order_status,create_date_time\n"


def test_detailed_orders_need_their_contact_first(api):
    order = ORDER_HEADER + b"1,c1,CONTACT,PAID,2024-01-10 11:56:00\n"
    assert_failed(upload_orders(api, order), "no contact with this uniq_id")
    assert api.detailed_orders[DEFAULT_COUNTER_ID] == {}, "FAILED: nothing stored"

    passed = upload_contacts(api, b'uniq_id,client_ids\nc1,"123,456"\n')
    assert passed.json()["uploading"]["api_validation_status"] == "PASSED"
    assert api.contacts[DEFAULT_COUNTER_ID]["c1"]["client_ids"] == ["123", "456"]
    assert upload_orders(api, order).json()["uploading"]["api_validation_status"] == "PASSED"
    assert upload_orders(api, order).json()["uploading"]["entity_subtype"] == "ORDERS"
    stats = api.stats()["detailed"]
    assert stats["orders_distinct"] == 1 and stats["order_repeats"] == 1
    assert stats["contacts_distinct"] == 1


def test_detailed_order_status_is_a_default_a_mapped_id_or_a_goal(api):
    upload_contacts(api, b"uniq_id,client_ids\nc1,123\n")
    unmapped = ORDER_HEADER + b"1,c1,CONTACT,odoo_paid,2024-01-10 11:56:00\n"
    assert_failed(upload_orders(api, unmapped), "order_status odoo_paid is neither")
    api.order_statuses[DEFAULT_COUNTER_ID] = [{"id": "odoo_paid", "type": "PAID"}]
    assert upload_orders(api, unmapped).json()["uploading"]["api_validation_status"] == "PASSED"
    goal = ORDER_HEADER + b"2,c1,CONTACT,crm_deal_won,2024-01-10 11:56:00\n"
    assert upload_orders(api, goal).json()["uploading"]["api_validation_status"] == "PASSED"
