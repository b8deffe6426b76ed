"""Lost-answer look-up through every page of the uploadings list, and the upload comment."""

import pytest

from metrika_core.client import (
    COMMENT_PREFIX,
    MAX_COMMENT_LENGTH,
    check_upload_comment,
    is_allowed_comment_character,
    offline_upload_comment,
)
from metrika_core.errors import MetrikaError, UploadCommentError

OFFLINE = b"ClientId,Target,DateTime\n133591247640966458,crm_deal_won,1481718166\n"


def upload_many(client, count):
    return {
        "OdooUpload%d" % n: client.upload_offline_conversions(OFFLINE, comment="OdooUpload%d" % n)[
            "id"
        ]
        for n in range(1, count + 1)
    }


def list_requests(api):
    return [
        (int(rec.query.get("limit", 0)), int(rec.query.get("offset", 0)))
        for rec in api.requests
        if rec.path.endswith("/offline_conversions/uploadings")
    ]


@pytest.mark.parametrize("order", ["oldest", "newest"])
def test_lost_answers_found_on_any_page_whatever_the_order(api, client, order):
    ids = upload_many(client, 7)
    api.max_page_size = 2  # the server gives fewer than asked: not the end of the list
    api.list_order = order
    found = client.find_offline_uploadings(["OdooUpload1", "OdooUpload7", "OdooUpload4"])
    assert {comment: u["id"] for comment, u in found.items()} == {
        "OdooUpload1": ids["OdooUpload1"],
        "OdooUpload7": ids["OdooUpload7"],
        "OdooUpload4": ids["OdooUpload4"],
    }
    pages = list_requests(api)
    assert pages[0] == (1000, 0) and all(limit == 1000 for limit, _ in pages)
    assert [offset for _, offset in pages] == [0, 2, 4, 6][: len(pages)]
    assert len(pages) == 4  # the last wanted comment is on the fourth page either way


def test_lookup_stops_as_soon_as_everything_is_found(api, client):
    upload_many(client, 6)
    api.max_page_size = 2
    found = client.find_offline_uploadings(["OdooUpload2"], page_size=2)
    assert list(found) == ["OdooUpload2"]
    assert list_requests(api) == [(2, 0)]


def test_lookup_reads_to_the_end_for_a_comment_metrica_never_stored(api, client):
    upload_many(client, 5)
    found = client.find_offline_uploadings(["OdooUpload3", "OdooUpload99"], page_size=2)
    assert list(found) == ["OdooUpload3"]
    assert list_requests(api) == [(2, 0), (2, 2), (2, 4), (2, 5)]  # until an empty page
    assert client.find_offline_uploadings([]) == {}


def test_lookup_on_an_empty_list_and_the_thin_wrapper(api, client):
    assert client.find_offline_uploading("OdooUpload1") is None
    assert list_requests(api) == [(1000, 0)]
    ids = upload_many(client, 3)
    api.max_page_size = 1
    assert client.find_offline_uploading("OdooUpload3", page_size=1)["id"] == ids["OdooUpload3"]
    api.requests.clear()
    assert client.find_offline_uploading("OdooUpload3", limit=1)["id"] == ids["OdooUpload3"]
    assert len(list_requests(api)) == 3  # the former limit is now the page size, not a cap


def test_a_comment_found_twice_on_a_page_keeps_its_newest_uploading(api, client):
    older = client.upload_offline_conversions(OFFLINE, comment="OdooUploadTwice")
    newer = client.upload_offline_conversions(OFFLINE, comment="OdooUploadTwice")
    for order in ("oldest", "newest"):
        api.list_order = order
        found = client.find_offline_uploadings(["OdooUploadTwice"], page_size=10)
        assert found["OdooUploadTwice"]["id"] == newer["id"] != older["id"]
    # one page at a time, the look-up stops at the first page that has it: either is stored
    found = client.find_offline_uploadings(["OdooUploadTwice"], page_size=1)
    assert found["OdooUploadTwice"]["id"] == newer["id"]  # "newest" order: the newer first


def test_a_server_ignoring_offset_does_not_loop_forever(api, client):
    page = {"uploadings": [{"id": 1, "comment": "OdooUploadOther"}]}
    api.fail_next(200, body=page, times=5, path="/uploadings")
    assert client.find_offline_uploadings(["OdooUploadMissing"], page_size=1) == {}
    assert len(list_requests(api)) == 2  # the second page brought nothing new


def test_page_size_must_be_positive_and_comments_a_collection(api, client):
    for bad in (0, -1, 1.5, True, "10"):
        with pytest.raises(ValueError):
            client.find_offline_uploadings(["OdooUpload1"], page_size=bad)
    with pytest.raises(TypeError):
        client.find_offline_uploadings("OdooUpload1")
    assert api.requests == []


# ------------------------------------------------------------------ comments


@pytest.mark.parametrize(
    "char, allowed",
    [
        ("0", True),
        ("9", True),
        ("a", True),
        ("Z", True),
        ("Ж", True),
        ("ё", True),
        ("Ё", True),
        ("ї", True),  # a Cyrillic letter beyond the Russian alphabet
        (" ", False),
        ("-", False),
        ("_", False),
        ("é", False),  # Latin with a diacritic: not listed
        ("١", False),  # an Arabic-Indic digit
        ("҂", False),  # in the Cyrillic block, but not a letter
        ("\n", False),
    ],
)
def test_allowed_comment_characters(char, allowed):
    assert is_allowed_comment_character(char) is allowed


def test_offline_upload_comment_keeps_allowed_characters_and_escapes_the_rest():
    assert offline_upload_comment(42) == "OdooUpload42"
    assert offline_upload_comment("42") == "OdooUpload42"
    assert offline_upload_comment("Заказ7") == "OdooUploadЗаказ7"
    assert offline_upload_comment("a-1") == "OdooUploadax00002d1"
    assert offline_upload_comment("x") == "OdooUploadx000078"
    assert offline_upload_comment("batch 9") == "OdooUploadbatchx0000209"
    for reference in (42, "a-1", "x", "batch 9", "Заказ7", "😀"):
        assert check_upload_comment(offline_upload_comment(reference))


def test_different_references_never_share_a_comment():
    references = ["a-1", "a1", "ax00002d1", "a 1", "a_1", "x", "xx", "x000078", "", "1", 1]
    references.remove("")
    comments = [offline_upload_comment(reference) for reference in references]
    assert len(set(comments)) == len(references) - 1  # only 1 and "1" are the same reference
    assert offline_upload_comment(1) == offline_upload_comment("1")


def test_offline_upload_comment_length_boundary_and_bad_references():
    longest = "9" * (MAX_COMMENT_LENGTH - len(COMMENT_PREFIX))
    assert len(offline_upload_comment(longest)) == MAX_COMMENT_LENGTH
    with pytest.raises(UploadCommentError, match="at most 255"):
        offline_upload_comment(longest + "9")
    for bad in ("", None, True, 1.5, b"42"):
        with pytest.raises(UploadCommentError):
            offline_upload_comment(bad)


def test_check_upload_comment_at_its_boundaries():
    assert check_upload_comment("a" * 255) == "a" * 255
    with pytest.raises(UploadCommentError, match="at most 255"):
        check_upload_comment("a" * 256)
    with pytest.raises(UploadCommentError, match="non-empty"):
        check_upload_comment("")
    with pytest.raises(UploadCommentError, match="' '"):
        check_upload_comment("Odoo upload 12")
    with pytest.raises(ValueError):  # a ValueError subclass, for existing handlers
        check_upload_comment("Odoo-12")


def test_upload_refuses_a_comment_metrica_does_not_allow_before_sending(api, client):
    with pytest.raises(UploadCommentError):
        client.upload_offline_conversions(OFFLINE, comment="Odoo upload 12")
    with pytest.raises(UploadCommentError):
        client.upload_offline_conversions(OFFLINE, comment="")
    assert api.requests == []
    uploading = client.upload_offline_conversions(OFFLINE, comment=offline_upload_comment(12))
    assert uploading["comment"] == "OdooUpload12"
    assert api.requests[-1].query["comment"] == "OdooUpload12"
    assert client.upload_offline_conversions(OFFLINE)["comment"] is None


# ------------------------------------------------------------------ the lost answer, end to end


@pytest.mark.parametrize("kind", ["drop", 504])
def test_an_upload_whose_answer_was_lost_is_found_on_a_later_page(api, client, kind):
    upload_many(client, 4)
    comment = offline_upload_comment(5)
    api.fail_next(kind, accept=True, path="/offline_conversions/upload")
    with pytest.raises(MetrikaError) as info:
        client.upload_offline_conversions(OFFLINE, comment=comment)
    assert info.value.maybe_accepted and info.value.retryable
    api.max_page_size = 2
    api.list_order = "oldest"
    found = client.find_offline_uploadings([comment, offline_upload_comment(6)])
    assert list(found) == [comment] and found[comment]["line_quantity"] == 1
    assert [offset for _, offset in list_requests(api)] == [0, 2, 4, 5]
    assert api.stats()["offline"]["rows_stored"] == 5  # stored once: nothing to send again
