"""Normalisation and hashing of the identifiers Metrica matches conversions by.

Every ``normalize_*`` function takes whatever a CRM field may hold and returns either ``None``
(nothing there: ``None``, ``""`` or whitespace only), the normalised value as ``str``, or raises
:class:`InvalidIdentifier` with a readable English reason. They never raise anything else.

* ClientID / yclid: ASCII digits only, kept as text (a ClientID can exceed int64), no leading zero.
  A positive ``int`` is accepted too; ``bool``, ``float``, ``bytes`` and the like are not.
* Phone: parsed and validated with ``phonenumbers``; returned as country code + number, digits
  only, no ``+`` (the form Metrica hashes). Letters are refused; a trailing extension
  (``ext. 12``, ``доб. 12``, ``x12``, ``#12``) is dropped. A leading ``00`` counts as ``+``.
  As the result has no ``+``, re-normalising it needs a ``+`` in front (or the right region).
* E-mail: trimmed, lower case, ASCII local part, internationalised domain turned into punycode
  (stdlib IDNA 2003 codec), every domain label non-empty and made of letters, digits and hyphens.

Yandex's rules: phones and e-mails before hashing,
https://yandex.com/dev/metrika/ru/data-import/hashing and
https://yandex.ru/dev/metrika/en/data-import/simple-orders-data; the ClientID,
https://yandex.ru/support/metrica/en/objects/get-client-id; the yclid,
https://yandex.com/support/metrica/en/data/get-yclid.
"""

import hashlib
import re

import phonenumbers

from .errors import MetrikaDataError

CLIENT_ID_MAX_DIGITS = 20
YCLID_MAX_DIGITS = 25
PHONE_MAX_CHARS = 64
EMAIL_MAX_CHARS = 254
EMAIL_LOCAL_MAX_CHARS = 64
DOMAIN_LABEL_MAX_CHARS = 63
_SHOWN_MAX_CHARS = 40
_ID_MAX_CHARS = 64  # anything longer is refused before looking at it
# The phonenumbers release (its numbering metadata) phone numbers are normalised with: a number
# normalised once is valid for this version only.
PHONE_RULES_VERSION = phonenumbers.__version__

_DIGITS_RE = re.compile(r"[0-9]+")
# "1.5", "1,0" or "1.6711067211040564e+19", as a spreadsheet may have turned an id into.
_DECIMAL_RE = re.compile(r"[0-9]*[.,][0-9]*(?:e[+-]?[0-9]+)?|[0-9]+e[+-]?[0-9]+", re.IGNORECASE)
# Characters people type between the digits of a phone number, including Unicode dashes.
_PHONE_CHARS_RE = re.compile(r"\+?[0-9\s().\-/\u2010-\u2015]*")
# A trailing extension ("ext. 12", "доб. 12", "x12", "#12"); Metrica wants the number alone.
_PHONE_EXTENSION_RE = re.compile(
    r"(?:\s*[,;]?\s*(?:ext\.?|extn\.?|extension|x|доб\.?|добавочный)\s*|\s*\#\s*)"
    r"[0-9]{1,7}\s*\#?\Z",
    re.IGNORECASE,
)
_EMAIL_LOCAL_RE = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.\-]+")
# IDNA treats the ideographic and full-width full stops as dots too.
_DOMAIN_DOT_RE = re.compile("[.\u3002\uff0e\uff61]")
# Any white space (for str patterns, \s is exactly str.isspace), found faster than char by char.
_SPACE_RE = re.compile(r"\s")
_DOMAIN_LABEL_RE = re.compile(r"[a-z0-9](?:[a-z0-9\-]*[a-z0-9])?")


class InvalidIdentifier(MetrikaDataError):
    """A value that cannot be used as the identifier it claims to be; the message says why.

    A :class:`~.errors.MetrikaDataError`, hence a ``ValueError``.
    """


def md5_hex(normalized_value):
    """MD5 of an already normalised identifier, as Metrica expects it: 32 lower-case hex chars."""
    return hashlib.md5(normalized_value.encode("utf-8")).hexdigest()


def normalize_client_id(value):
    """Return a Metrica ClientID (``_ym_uid``) as a digit string, or ``None`` if empty."""
    return _normalize_number_id(value, "Metrica ClientID", CLIENT_ID_MAX_DIGITS)


def normalize_yclid(value):
    """Return a Yandex Direct click id (``yclid``) as a digit string, or ``None`` if empty."""
    return _normalize_number_id(value, "Yandex Direct yclid", YCLID_MAX_DIGITS)


def normalize_phone(value, default_region=None):
    """Return a phone as digits with country code and no ``+`` (``"79995551111"``), or ``None``.

    ``default_region`` (ISO code such as ``"RU"``) is used for numbers written without ``+``
    or ``00``; without it such numbers are refused because their country is unknown.
    """
    text = _text_or_none(value, "phone number")
    if text is None:
        return None
    if len(text) > PHONE_MAX_CHARS:
        raise InvalidIdentifier(
            f"A phone number is at most {PHONE_MAX_CHARS} characters long; got {len(text)}."
        )
    extension = _PHONE_EXTENSION_RE.search(text)
    if extension and extension.start() > 0:
        text = text[: extension.start()].rstrip()
    if any(char.isalpha() for char in text):
        raise InvalidIdentifier(f"A phone number must not contain letters; got {_shown(text)}.")
    if not _PHONE_CHARS_RE.fullmatch(text):
        raise InvalidIdentifier(
            "A phone number may contain only digits, spaces, brackets, dashes, dots, slashes "
            f"and a leading '+'; got {_shown(text)}."
        )
    if text.startswith("00"):
        text = "+" + text[2:]
    region = default_region.strip().upper() if isinstance(default_region, str) else None
    if region not in phonenumbers.SUPPORTED_REGIONS:
        region = None
    if not text.startswith("+") and region is None:
        raise InvalidIdentifier(
            f"The country of the phone number {_shown(text)} is unknown: write it with '+' and "
            "the country code, or set a default country."
        )
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        why = _PARSE_ERRORS.get(exc.error_type, "unrecognised format")
        raise InvalidIdentifier(f"The phone number {_shown(text)} cannot be read: {why}.") from None
    reason = phonenumbers.is_possible_number_with_reason(number)
    if reason != phonenumbers.ValidationResult.IS_POSSIBLE:
        why = _POSSIBLE_ERRORS.get(reason, "wrong number of digits")
        raise InvalidIdentifier(f"The phone number {_shown(text)} is not possible: {why}.")
    if not phonenumbers.is_valid_number(number):
        raise InvalidIdentifier(
            f"The phone number {_shown(text)} is not a valid number for its country."
        )
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)[1:]


def normalize_email(value):
    """Return an e-mail address trimmed, lower case, with a punycode domain, or ``None``."""
    text = _text_or_none(value, "e-mail address")
    if text is None:
        return None
    if len(text) > EMAIL_MAX_CHARS:
        raise InvalidIdentifier(
            f"An e-mail address is at most {EMAIL_MAX_CHARS} characters long; got {len(text)}."
        )
    if _SPACE_RE.search(text):
        raise InvalidIdentifier(f"An e-mail address must not contain spaces; got {_shown(text)}.")
    if text.count("@") != 1:
        raise InvalidIdentifier(
            "An e-mail address must contain exactly one '@'; "
            f"got {text.count('@')} in {_shown(text)}."
        )
    local, domain = text.split("@")
    if not local:
        raise InvalidIdentifier(f"An e-mail address needs a name before '@'; got {_shown(text)}.")
    if not local.isascii():
        raise InvalidIdentifier(
            f"The name part of an e-mail address must use Latin characters; got {_shown(text)}."
        )
    if not _EMAIL_LOCAL_RE.fullmatch(local):
        raise InvalidIdentifier(
            "The name part of an e-mail address contains characters not allowed there; "
            f"got {_shown(text)}."
        )
    if len(local) > EMAIL_LOCAL_MAX_CHARS:
        raise InvalidIdentifier(
            "The name part of an e-mail address is at most "
            f"{EMAIL_LOCAL_MAX_CHARS} characters long; got {len(local)}."
        )
    return f"{local.lower()}@{_normalize_domain(domain, text)}"


def _normalize_domain(domain, text):
    if not domain:
        raise InvalidIdentifier(f"An e-mail address needs a domain after '@'; got {_shown(text)}.")
    labels = _DOMAIN_DOT_RE.split(domain)
    if len(labels) < 2:
        raise InvalidIdentifier(
            f"The domain of an e-mail address must contain a dot; got {_shown(text)}."
        )
    if not all(labels):
        raise InvalidIdentifier(
            "The domain of an e-mail address must not have empty parts (like '..' or a dot at "
            f"either end); got {_shown(text)}."
        )
    try:
        # The stdlib codec (IDNA 2003) passes ASCII through and maps/punycodes the rest;
        # the labels are checked below whatever the codec let through.
        ascii_domain = domain.lower().encode("idna").decode("ascii")
    except (UnicodeError, ValueError):
        raise InvalidIdentifier(
            f"The domain of the e-mail address {_shown(text)} is not a valid domain name."
        ) from None
    labels = ascii_domain.split(".")
    for label in labels:
        if len(label) > DOMAIN_LABEL_MAX_CHARS or not _DOMAIN_LABEL_RE.fullmatch(label):
            raise InvalidIdentifier(
                f"The domain of the e-mail address {_shown(text)} is not a valid domain name."
            )
    return ascii_domain


def _normalize_number_id(value, kind, max_digits):
    if isinstance(value, int) and not isinstance(value, bool):
        if value <= 0:
            got = "0" if value == 0 else "a negative number"
            raise InvalidIdentifier(f"A {kind} is a positive number; got {got}.")
        if value >= 10**max_digits:
            raise InvalidIdentifier(f"A {kind} has at most {max_digits} digits; got more.")
        return str(value)
    text = _text_or_none(value, kind)
    if text is None:
        return None
    if len(text) > _ID_MAX_CHARS:
        raise InvalidIdentifier(
            f"A {kind} has at most {max_digits} digits; got {len(text)} characters."
        )
    if not _DIGITS_RE.fullmatch(text):
        raise InvalidIdentifier(f"A {kind} contains digits only; got {_what_is_not_digit(text)}.")
    if len(text) > max_digits:
        raise InvalidIdentifier(f"A {kind} has at most {max_digits} digits; got {len(text)}.")
    if text[0] == "0":
        raise InvalidIdentifier(
            f"A {kind} never starts with 0; got {_shown(text)}, probably damaged or padded."
        )
    return text


def _what_is_not_digit(text):
    if any(char.isspace() for char in text):
        return "a space inside"
    if text[0] in "+-":
        return "a sign"
    if _DECIMAL_RE.fullmatch(text):
        return f"what looks like a decimal or scientific number ({_shown(text)})"
    if any(char.isalpha() for char in text):
        return "letters"
    return f"other characters ({_shown(text)})"


def _text_or_none(value, kind):
    """Strip a str value; ``None`` for empty input; refuse anything that is not text."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidIdentifier(f"A {kind} must be given as text; got {type(value).__name__}.")
    return value.strip() or None


def _shown(text):
    """Quote a value for a message, cut short so an enormous input is not echoed back."""
    if len(text) > _SHOWN_MAX_CHARS:
        return repr(text[:_SHOWN_MAX_CHARS]) + "…"
    return repr(text)


_PARSE_ERRORS = {
    phonenumbers.NumberParseException.INVALID_COUNTRY_CODE: "the country code is unknown",
    phonenumbers.NumberParseException.NOT_A_NUMBER: "it is not a phone number",
    phonenumbers.NumberParseException.TOO_SHORT_AFTER_IDD: (
        "too few digits after the international prefix"
    ),
    phonenumbers.NumberParseException.TOO_SHORT_NSN: "too few digits",
    phonenumbers.NumberParseException.TOO_LONG: "too many digits",
}
_POSSIBLE_ERRORS = {
    phonenumbers.ValidationResult.INVALID_COUNTRY_CODE: "the country code is unknown",
    phonenumbers.ValidationResult.TOO_SHORT: "too few digits",
    phonenumbers.ValidationResult.TOO_LONG: "too many digits",
    phonenumbers.ValidationResult.IS_POSSIBLE_LOCAL_ONLY: "it lacks an area code",
    phonenumbers.ValidationResult.INVALID_LENGTH: "wrong number of digits",
}
