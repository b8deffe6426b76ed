"""The Metrica identifiers a visitor or a message brings along, and the rules for keeping them.

Every capture point (website forms, shop carts, portal signature and payment, incoming e-mail)
goes through here, so the rules are the same everywhere:

* values are validated with ``metrika_core``; junk (a malformed cookie, a forged field) is
  dropped quietly and never raises into a form or a checkout;
* only public and portal visitors are read, never an employee's browser (a salesperson or a
  shop manager carries their own ``_ym_uid``);
* where the website asks for cookie consent, only after the visitor accepted optional cookies;
* an identifier a record already has is never replaced.

A request that carries no identifier costs no query: the cookies are looked at first.
"""

import re

from odoo.tools import html2plaintext

from ..metrika_core.identifiers import InvalidIdentifier, normalize_client_id, normalize_yclid

# The cookie the Metrica tag keeps the visitor's ClientID in.
CLIENT_ID_COOKIE = "_ym_uid"
# Our first-party cookie remembering the Direct click a visitor landed with.
YCLID_COOKIE = "metrika_yclid"
YCLID_PARAM = "yclid"
# Yandex suggests keeping the click for 90 days.
YCLID_COOKIE_MAX_AGE = 90 * 24 * 3600
# What a website form posts when the page's tag answered getClientID.
CLIENT_ID_FIELD = "metrika_client_id"
YCLID_FIELD = "metrika_yclid"
IDENTIFIER_FIELDS = (CLIENT_ID_FIELD, YCLID_FIELD)

# "ClientID: 1628529640459314054" or "yclid = 6754821930114400255", one per line, in any case;
# the list markers and emphasis a mail client or a form service may add are allowed around.
_TEXT_LINE = re.compile(
    r"^[\s>*_\-]*(?P<name>client\s*id|_ym_uid|yclid)[\s*_]*[:=][\s*_]*(?P<value>[0-9]+)[\s*_]*$",
    re.IGNORECASE | re.MULTILINE,
)


def clean_client_id(value):
    """The ClientID in ``value`` normalised, or None for anything that is not one."""
    return _clean(normalize_client_id, value)


def clean_yclid(value):
    """The yclid in ``value`` normalised, or None for anything that is not one."""
    return _clean(normalize_yclid, value)


def _clean(normalize, value):
    if not isinstance(value, str):
        return None
    try:
        return normalize(value)
    except InvalidIdentifier:
        return None


def is_visitor(env):
    """True for the public user and portal users: the people whose identifiers we want."""
    user = env.user
    # _is_public() reads the groups cache: a public visitor's request costs no query here.
    return bool(user) and (user._is_public() or user.share)


def consents_to_optional_cookies(env):
    """The website's consent rule (always True where no website asks for consent)."""
    return env["ir.http"]._is_allowed_cookie("optional")


def request_identifiers(request, client_id=None, yclid=None):
    """The identifiers ``request`` brings, as record values; empty when the rules say no.

    ``client_id`` and ``yclid`` are values the page submitted (the tag's getClientID answer);
    valid ones win over the cookies. The yclid is taken from the address, then from our cookie.
    """
    httprequest = request and getattr(request, "httprequest", None)
    if httprequest is None:
        return {}
    cookies = httprequest.cookies
    found = {}
    client_id = clean_client_id(client_id) or clean_client_id(cookies.get(CLIENT_ID_COOKIE))
    if client_id:
        found[CLIENT_ID_FIELD] = client_id
    yclid = (
        clean_yclid(yclid)
        or clean_yclid(httprequest.args.get(YCLID_PARAM))
        or clean_yclid(cookies.get(YCLID_COOKIE))
    )
    if yclid:
        found[YCLID_FIELD] = yclid
    # The cheap checks first: most requests stop above without touching the database.
    if not found or not is_visitor(request.env) or not consents_to_optional_cookies(request.env):
        return {}
    return found


def text_identifiers(text):
    """Identifiers written as ``ClientID: <digits>`` / ``yclid: <digits>`` lines in a text.

    HTML (an e-mail body) is turned into text first. The first valid line of each kind wins.
    """
    if not text or not isinstance(text, str):
        return {}
    if "<" in text:
        text = html2plaintext(text)
    found = {}
    for match in _TEXT_LINE.finditer(text):
        is_yclid = match["name"].lower() == "yclid"
        field = YCLID_FIELD if is_yclid else CLIENT_ID_FIELD
        if field in found:
            continue
        value = (clean_yclid if is_yclid else clean_client_id)(match["value"])
        if value:
            found[field] = value
    return found


def missing_values(record, identifiers):
    """The part of ``identifiers`` that ``record`` lacks: what it has is never overwritten."""
    return {field: value for field, value in identifiers.items() if not record[field]}


def fill_missing(records, identifiers):
    """Write the identifiers each record lacks; writes nothing (and queries nothing) otherwise."""
    if not identifiers:
        return
    for record in records:
        values = missing_values(record, identifiers)
        if values:
            record.write(values)
