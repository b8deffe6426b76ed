"""Tests for metrika_core.identifiers (docs/metrika-api.md sections 2.6, 5, TV9, TV12)."""

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metrika_core.identifiers import (
    InvalidIdentifier,
    md5_hex,
    normalize_client_id,
    normalize_email,
    normalize_phone,
    normalize_yclid,
)

NORMALIZERS = [normalize_client_id, normalize_yclid, normalize_phone, normalize_email]
EMPTY_VALUES = [None, "", " ", "\t\n", "\u00a0"]


# --- hashing (TV9) -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, digest",
    [
        ("mail@yandex.ru", "3c56ff8fef0f6c65b36b2d25720fe276"),
        ("79995551111", "f09f2c3d48f31e2a802944ade2e5aec5"),
        ("+79995551111", "ad213a35b7742698d9b368b16bed84b4"),
        ("79876543210", "5c5259938ed3e632bc5e3f94731090af"),
        ("example2@yandex.ru", "8d2b135ba9bd88fbfbd8ececb31196d1"),
    ],
)
def test_md5_hex_vectors(value, digest):
    assert md5_hex(value) == digest


def test_plus_changes_the_hash():
    assert md5_hex("+79995551111") != md5_hex("79995551111")


def test_normalize_then_hash_email():
    assert md5_hex(normalize_email("Mail@Yandex.RU ")) == "3c56ff8fef0f6c65b36b2d25720fe276"


def test_normalize_then_hash_phone():
    assert md5_hex(normalize_phone("8 (999) 555-11-11", "RU")) == "f09f2c3d48f31e2a802944ade2e5aec5"


# --- empty input ---------------------------------------------------------------------------


@pytest.mark.parametrize("normalizer", NORMALIZERS)
@pytest.mark.parametrize("value", EMPTY_VALUES)
def test_empty_gives_none(normalizer, value):
    assert normalizer(value) is None


# --- ClientID / yclid ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, expected",
    [
        ("16285296404593140", "16285296404593140"),  # 17 digits
        ("1628529640459314054", "1628529640459314054"),  # 19 digits, TV12
        ("16711067211040563817", "16711067211040563817"),  # 20 digits, > int64
        (" 1628529640459314054\n", "1628529640459314054"),
        ("12345", "12345"),  # the docs' getClientID example
        (1628529640459314054, "1628529640459314054"),
        (16711067211040563817, "16711067211040563817"),
    ],
)
def test_client_id_valid(value, expected):
    assert normalize_client_id(value) == expected


def test_client_id_above_int64_stays_exact():
    assert int(normalize_client_id("16711067211040563817")) > 2**63 - 1


@pytest.mark.parametrize(
    "value, reason",
    [
        ("167110672110405638170", "at most 20 digits"),  # 21 digits
        ("1628529640abc", "got letters"),
        ("16285296 40459314054", "space"),
        ("-1628529640459314054", "sign"),
        ("+1628529640459314054", "sign"),
        ("1628529640459314054.0", "decimal"),
        ("1.6711067211040564e+19", "decimal"),
        ("01628529640459314054", "never starts with 0"),
        ("0000", "never starts with 0"),
        ("0", "never starts with 0"),
        ("１２３", "digits only"),  # full-width digits are not ASCII digits
        ("1" * 10_000, "at most 20 digits"),
        (0, "positive"),
        (-5, "positive"),
        (10**20, "at most 20 digits"),
        (True, "text"),
        (1.5e18, "text"),
        (b"1628529640459314054", "text"),
        (["1628529640459314054"], "text"),
    ],
)
def test_client_id_invalid(value, reason):
    with pytest.raises(InvalidIdentifier, match=re.escape(reason)) as info:
        normalize_client_id(value)
    assert "ClientID" in str(info.value)


def test_client_id_message_example():
    with pytest.raises(InvalidIdentifier) as info:
        normalize_client_id("abc")
    assert str(info.value) == "A Metrica ClientID contains digits only; got letters."


@pytest.mark.parametrize(
    "value, expected",
    [
        ("1234567890123456789012345", "1234567890123456789012345"),  # 25 digits
        ("7234567890", "7234567890"),
        (" 4417638491637295610 ", "4417638491637295610"),
        (4417638491637295610, "4417638491637295610"),
    ],
)
def test_yclid_valid(value, expected):
    assert normalize_yclid(value) == expected


@pytest.mark.parametrize(
    "value, reason",
    [
        ("12345678901234567890123456", "at most 25 digits"),  # 26 digits
        (10**25, "at most 25 digits"),
        ("0123", "never starts with 0"),
        ("12a", "letters"),
        ("12 34", "space"),
        (False, "text"),
    ],
)
def test_yclid_invalid(value, reason):
    with pytest.raises(InvalidIdentifier, match=re.escape(reason)) as info:
        normalize_yclid(value)
    assert "yclid" in str(info.value)


# --- phones --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, region, expected",
    [
        ("8 (999) 555-11-11", "RU", "79995551111"),
        ("+7 999 555-11-11", None, "79995551111"),
        ("+7 999 555-11-11", "RU", "79995551111"),
        ("+7(999)5551111", None, "79995551111"),
        ("7 999 555 11 11", "RU", "79995551111"),
        ("79995551111", "RU", "79995551111"),
        ("89995551111", "ru", "79995551111"),
        ("8-999-555-11-11", "RU", "79995551111"),
        ("+7 999 555\u201311\u201311", None, "79995551111"),  # en dashes
        ("  +7 495 123-45-67  ", None, "74951234567"),  # Moscow landline
        ("8 800 555 35 35", "RU", "78005553535"),
        ("0079995551111", None, "79995551111"),  # 00 international prefix
        ("+7 999 555-11-11 ext. 123", None, "79995551111"),
        ("8 999 555 11 11 доб. 12", "RU", "79995551111"),
        ("+7 999 555-11-11 x12", None, "79995551111"),
        ("+7 999 555-11-11 #12", None, "79995551111"),
        ("+49 151 23456789", None, "4915123456789"),  # German mobile
        ("+49 30 12345678", None, "493012345678"),  # Berlin
        ("0049 151 23456789", "RU", "4915123456789"),
        ("+1 (212) 555-0123", None, "12125550123"),  # US
        ("+44 7911 123456", None, "447911123456"),  # UK mobile
        ("+44 20 7946 0958", None, "442079460958"),  # London
        ("+375 29 123-45-67", None, "375291234567"),  # Belarus
        ("+7 701 123 4567", None, "77011234567"),  # Kazakhstan 7 7xx
        ("8 701 123 4567", "KZ", "77011234567"),
        ("030 12345678", "DE", "493012345678"),
    ],
)
def test_phone_valid(value, region, expected):
    assert normalize_phone(value, region) == expected


@pytest.mark.parametrize(
    "value, region, reason",
    [
        ("8 (999) 555-11-11", None, "country"),
        ("79995551111", None, "country"),
        ("8 (999) 555-11-11", "XX", "country"),  # unknown region code behaves like none
        ("8 (999) 555-11-11", 7, "country"),
        ("+7 999 CALL-NOW", None, "letters"),
        ("+7 999 555-11-11 mobile", None, "letters"),
        ("1-800-FLOWERS", "US", "letters"),  # vanity numbers are refused too
        ("тел. +7 999 555-11-11", None, "letters"),
        ("+7 999 555 11", None, "not possible"),
        ("+7 999", None, "too few digits"),
        ("+7 999 555-11-11-11", None, "not possible"),
        ("+7 000 000-00-00", None, "not a valid number"),
        ("+999 123 456 789", None, "country code"),
        ("+", None, "not a phone number"),
        ("+()", None, "not a phone number"),
        ("7 999 + 555 11 11", "RU", "leading '+'"),
        ("+7 999 555-11-11!", None, "only digits"),
        ("+7\x00999 555-11-11", None, "only digits"),
        ("+7" + "9" * 70, None, "at most 64"),
        (79995551111, "RU", "text"),
        (b"+79995551111", None, "text"),
    ],
)
def test_phone_invalid(value, region, reason):
    with pytest.raises(InvalidIdentifier, match=re.escape(reason)) as info:
        normalize_phone(value, region)
    assert "phone" in str(info.value)


# --- e-mails -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, expected",
    [
        ("mail@yandex.ru", "mail@yandex.ru"),
        ("  Mail@Yandex.RU \n", "mail@yandex.ru"),
        ("IVAN.PETROV+crm@Example.COM", "ivan.petrov+crm@example.com"),
        ("ivan@пример.рф", "ivan@xn--e1afmkfd.xn--p1ai"),
        ("ivan@ПРИМЕР.РФ", "ivan@xn--e1afmkfd.xn--p1ai"),
        ("ivan@xn--e1afmkfd.xn--p1ai", "ivan@xn--e1afmkfd.xn--p1ai"),
        ("a_b-c@sub.mail-host.co.uk", "a_b-c@sub.mail-host.co.uk"),
    ],
)
def test_email_valid(value, expected):
    assert normalize_email(value) == expected


@pytest.mark.parametrize(
    "value, reason",
    [
        ("Иван@пример.рф", "Latin"),
        ("ivan", "exactly one '@'"),
        ("ivan@", "domain after '@'"),
        ("@yandex.ru", "name before '@'"),
        ("a@b@yandex.ru", "exactly one '@'"),
        ("ivan@localhost", "must contain a dot"),
        ("ivan@yandex..ru", "empty parts"),
        ("ivan@.yandex.ru", "empty parts"),
        ("ivan@yandex.ru.", "empty parts"),
        ("iv an@yandex.ru", "spaces"),
        ("ivan@yan dex.ru", "spaces"),
        ("Ivan <ivan@yandex.ru>", "spaces"),
        ("<ivan@yandex.ru>", "not allowed"),
        ("ivan@yan_dex.ru", "not a valid domain"),
        ("ivan@-yandex.ru", "not a valid domain"),
        ("ivan@yandex.ru\x00", "not a valid domain"),
        ("ivan@" + "a" * 64 + ".ru", "not a valid domain"),
        ("a" * 65 + "@yandex.ru", "at most 64"),
        ("a@" + "b" * 300 + ".ru", "at most 254"),
        ("ivan@\ud800.ru", "not a valid domain"),
        (b"mail@yandex.ru", "text"),
        (42, "text"),
    ],
)
def test_email_invalid(value, reason):
    with pytest.raises(InvalidIdentifier, match=re.escape(reason)) as info:
        normalize_email(value)
    assert "e-mail" in str(info.value)


# --- error class and messages --------------------------------------------------------------


def test_invalid_identifier_is_value_error():
    assert issubclass(InvalidIdentifier, ValueError)


@pytest.mark.parametrize("normalizer", NORMALIZERS)
@pytest.mark.parametrize("value", ["x" * 1_000_000, "@" * 200 + "1" * 1000, "+7" + "q" * 50])
def test_messages_do_not_echo_huge_input(normalizer, value):
    with pytest.raises(InvalidIdentifier) as info:
        normalizer(value)
    message = str(info.value)
    assert message and message[0].isupper() and message.endswith(".")
    assert len(message) < 300


# --- properties ----------------------------------------------------------------------------

ANY_VALUE = st.one_of(
    st.text(),
    st.text(alphabet="0123456789 +-()", max_size=30),
    st.text(alphabet="abcXYZ.@-_ пример", max_size=30),
    st.binary(),
    st.integers(),
    st.none(),
    st.booleans(),
    st.floats(),
    st.lists(st.integers(), max_size=3),
)
CLIENT_ID_RE = re.compile(r"[1-9][0-9]{0,19}")
YCLID_RE = re.compile(r"[1-9][0-9]{0,24}")
PHONE_RE = re.compile(r"[1-9][0-9]{3,16}")


def _outcome(normalizer, *args):
    """Call a normaliser; anything but None, str or InvalidIdentifier fails the test."""
    try:
        result = normalizer(*args)
    except InvalidIdentifier as exc:
        assert str(exc)
        return None
    assert result is None or isinstance(result, str)
    return result


@settings(max_examples=300, deadline=None)
@given(ANY_VALUE)
def test_client_id_property(value):
    result = _outcome(normalize_client_id, value)
    if result is not None:
        assert CLIENT_ID_RE.fullmatch(result)
        assert normalize_client_id(result) == result


@settings(max_examples=200, deadline=None)
@given(st.one_of(ANY_VALUE, st.integers(min_value=1, max_value=10**21).map(str)))
def test_yclid_property(value):
    result = _outcome(normalize_yclid, value)
    if result is not None:
        assert YCLID_RE.fullmatch(result)
        assert normalize_yclid(result) == result


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        ANY_VALUE,
        st.from_regex(r"\A(\+7|8|00)[ (]?9[0-9]{2}[) -]?[0-9]{3}-?[0-9]{2}-?[0-9]{2}\Z"),
    ),
    st.sampled_from([None, "RU", "DE", "US", "by", "XX", ""]),
)
def test_phone_property(value, region):
    result = _outcome(normalize_phone, value, region)
    if result is not None:
        assert PHONE_RE.fullmatch(result)
        assert normalize_phone("+" + result) == result
        assert normalize_phone("+" + result, region) == result


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        ANY_VALUE,
        st.emails(),
        st.builds(
            "{}@{}.{}".format,
            st.text(min_size=1, max_size=10),
            st.text(min_size=1, max_size=10),
            st.sampled_from(["ru", "рф", "COM", "", "xn--p1ai"]),
        ),
    )
)
def test_email_property(value):
    result = _outcome(normalize_email, value)
    if result is not None:
        assert result.isascii() and result == result.lower()
        assert result.count("@") == 1
        assert normalize_email(result) == result
        assert len(md5_hex(result)) == 32


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=1, max_value=10**20 - 1))
def test_client_id_int_and_str_agree(number):
    assert normalize_client_id(number) == normalize_client_id(str(number)) == str(number)
