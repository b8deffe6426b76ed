"""The connection check against the stand-in: each failing check, and a clean bill of health."""

import pytest

from metrika_core.errors import MetrikaServerError
from metrika_core.health import (
    PROBLEM_COUNTER_ACCESS,
    PROBLEM_COUNTER_NOT_FOUND,
    PROBLEM_GOAL_KIND,
    PROBLEM_GOAL_UNKNOWN,
    PROBLEM_TIME_ZONE,
    PROBLEM_TOKEN,
    PROBLEM_UPLOAD_SCOPE,
    Problem,
    check_connection,
)

GOALS = ("crm_qualified_lead", "crm_deal_won")


def test_all_is_well_and_nothing_is_stored(api, client):
    report = check_connection(
        client, transport="offline_conversions", goals=GOALS, files_time_zone="Europe/Moscow"
    )
    assert report.ok, report.problems
    assert report.counter["id"] == 12345
    assert api.stats(rows=False)["offline"]["uploadings"] == 0
    probe = api.last_request("offline_conversions/upload")
    assert probe.status == 400 and probe.file is None


@pytest.mark.parametrize("transport", ["simple_orders", "offline_conversions"])
def test_a_refused_token(api, make_client, transport):  # noqa: ARG001 - the stand-in runs
    report = check_connection(make_client(token="revoked"), transport=transport)
    assert report.codes == [PROBLEM_TOKEN]
    assert report.counter is None


@pytest.mark.parametrize("transport", ["simple_orders", "offline_conversions"])
def test_a_token_without_the_upload_right(api, client, transport):
    api.token_scopes = {"metrika:read"}
    report = check_connection(client, transport=transport)
    assert report.codes == [PROBLEM_UPLOAD_SCOPE]


def test_a_token_that_cannot_read_the_counter(api, client):
    api.token_scopes = {"metrika:offline_data"}
    assert check_connection(client, transport="simple_orders").codes == [PROBLEM_COUNTER_ACCESS]


def test_an_unknown_counter(api, make_client):
    report = check_connection(make_client(counter_id=999), transport="simple_orders")
    assert report.codes == [PROBLEM_COUNTER_NOT_FOUND]


def test_a_time_zone_that_is_not_the_files_one(api, client):
    report = check_connection(client, transport="simple_orders", files_time_zone="Asia/Omsk")
    assert report.problems == [
        Problem(PROBLEM_TIME_ZONE, counter_time_zone="Europe/Moscow", files_time_zone="Asia/Omsk")
    ]


def test_goals_unknown_and_of_the_wrong_kind(api, client):
    api.add_goal(12345, "thank_you_page", name="Thank you", goal_type="url")
    report = check_connection(
        client,
        transport="offline_conversions",
        goals=("CRM: deal won", "Crm_Qualified_Lead", "thank_you_page", "crm_deal_won", ""),
    )
    assert report.problems == [
        Problem(PROBLEM_GOAL_UNKNOWN, goal="CRM: deal won", name="crm_deal_won"),
        Problem(PROBLEM_GOAL_UNKNOWN, goal="Crm_Qualified_Lead", name="crm_qualified_lead"),
        Problem(PROBLEM_GOAL_KIND, goal="thank_you_page", kind="url", name="Thank you"),
    ]


def test_goals_are_not_checked_for_crm_orders(api, client):
    report = check_connection(client, transport="simple_orders", goals=("missing",))
    assert report.ok
    assert api.last_request("/goals") is None


def test_an_outage_is_raised_not_reported(api, client):
    api.outage()
    with pytest.raises(MetrikaServerError):
        check_connection(client, transport="simple_orders")
