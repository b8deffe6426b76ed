"""The Metrica stand-in itself: routing, auth, validation verdicts, failures on demand, lifetime."""

import concurrent.futures
import importlib.util
import pathlib
import socket
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


def test_unknown_counter_is_403(api):
    response = requests.get(api.url + "/management/v1/counter/999", headers=AUTH, timeout=5)
    assert_error_body(response, 403, "access_denied")


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
        assert requests.get(api.url + MGMT, headers=AUTH, timeout=5).status_code == 403
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
