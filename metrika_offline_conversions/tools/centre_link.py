"""What the Conversion Centre link serves, read from the database (the file itself is written by
metrika_core.formats.centre_link): the company a secret opens, the file's validators, and its
orders, page by page.

Each order of the sync log is served once, with the status of its latest conversion (the row
with the highest queue order carries the record's current status) and the identifiers its lead
or sale order has now.
"""

import hashlib
import hmac
from datetime import timezone
from decimal import Decimal

from odoo.tools import SQL

from .. import const
from ..metrika_core import formats
from ..metrika_core.formats import centre_link
from ..metrika_core.identifiers import InvalidIdentifier, normalize_email, normalize_phone

# Normalised identifiers, remembered by the process from one fetch to the next: normalising a
# phone number costs tens of microseconds, so the Centre's next poll (and a repeat customer)
# costs a look-up. Plain dicts (a get or a set is atomic); each is emptied when it reaches
# _MEMO_MAX entries (about 250 bytes each), which bounds the memory they take.
_MEMO_MAX = 200000
_EMAILS = {}
_PHONES = {}


def _digest(value):
    return hashlib.sha256(value.encode("utf-8")).digest()


def find_company(env, secret):
    """The company whose enabled link has ``secret``, or an empty recordset.

    Every enabled company's secret is compared, in constant time, on fixed-length digests: how
    long the comparison takes does not depend on how much of ``secret`` was right, nor on which
    company matched (no SQL lookup by the secret, no early exit)."""
    companies = env["res.company"].sudo().search([("metrika_centre_link_enabled", "=", True)])
    given = _digest(secret or "")
    found = env["res.company"].sudo()
    for company in companies:
        stored = company.metrika_centre_secret
        matches = hmac.compare_digest(given, _digest(stored or ""))
        if matches and stored:
            found = company
    return found


def company_time_zone(company):
    """The counter's time zone (read from Metrica when the API is used), else the company's."""
    company = company.sudo()
    return company.metrika_counter_time_zone or company.partner_id.tz or "UTC"


def _phone_columns(env, model, alias):
    names = [name for name in ("mobile", "phone") if name in env[model]._fields]
    return SQL(", ").join(SQL("%s.%s", SQL.identifier(alias), SQL.identifier(n)) for n in names)


def _window_where(company_id, now):
    start = centre_link.centre_window_start(now).replace(tzinfo=None)
    return SQL(
        "conversion.company_id = %s AND conversion.state != %s "
        "AND (conversion.sale_order_id IS NOT NULL OR conversion.lead_id IS NOT NULL) "
        "AND conversion.order_create_date >= %s AND conversion.order_create_date <= %s",
        company_id,
        const.STATE_CANCELLED,
        start,
        now.replace(tzinfo=None),
    )


_JOINS = SQL(
    "LEFT JOIN sale_order sale ON sale.id = conversion.sale_order_id "
    "LEFT JOIN res_partner partner ON partner.id = sale.partner_id "
    "LEFT JOIN crm_lead lead ON lead.id = conversion.lead_id "
    "LEFT JOIN res_currency currency ON currency.id = conversion.currency_id"
)


def file_validators(env, company_id, now):
    """(conversions in the window, newest change among them and their records, or None)."""
    env.flush_all()
    env.cr.execute(
        SQL(
            "SELECT COUNT(*), MAX(GREATEST("
            "conversion.write_date, sale.write_date, partner.write_date, lead.write_date)) "
            "FROM metrika_conversion conversion %s WHERE %s",
            _JOINS,
            _window_where(company_id, now),
        )
    )
    return env.cr.fetchone()


def iter_orders(env, company_id, now, region, page_rows=const.CENTRE_PAGE_ROWS):
    """The window's orders as SimpleOrder, read in keyset pages of ``page_rows`` (by Metrica
    order id): memory holds one page, whatever the number of orders."""
    sale_phones = _phone_columns(env, "res.partner", "partner")
    lead_phones = _phone_columns(env, "crm.lead", "lead")
    where = _window_where(company_id, now)

    def page_query(after):
        return SQL(
            "SELECT DISTINCT ON (conversion.metrika_order_id) conversion.metrika_order_id, "
            "conversion.order_create_date, conversion.order_status, "
            # As text: Odoo reads numeric columns as floats.
            "ROUND(conversion.revenue, COALESCE(currency.decimal_places, 2))::text, "
            "CASE WHEN sale.id IS NOT NULL THEN sale.metrika_client_id "
            "ELSE lead.metrika_client_id END, "
            "CASE WHEN sale.id IS NOT NULL THEN partner.email ELSE lead.email_from END, "
            "CASE WHEN sale.id IS NOT NULL THEN ARRAY[%s] ELSE ARRAY[%s] END "
            "FROM metrika_conversion conversion %s "
            "WHERE %s AND conversion.metrika_order_id > %s "
            "ORDER BY conversion.metrika_order_id, conversion.queued_sequence DESC, "
            "conversion.id DESC LIMIT %s",
            sale_phones,
            lead_phones,
            _JOINS,
            where,
            after,
            page_rows,
        )

    emails, phones = _EMAILS, _PHONES
    last = ""
    while True:
        env.cr.execute(page_query(last))
        rows = env.cr.fetchall()
        if not rows:
            return
        if len(emails) > _MEMO_MAX or len(phones) > _MEMO_MAX:
            emails.clear()
            phones.clear()
        for order_id, created, status, revenue, client_id, email, raw_phones in rows:
            yield formats.SimpleOrder(
                id=order_id,
                create_date_time=created.replace(tzinfo=timezone.utc),
                order_status=status,
                client_ids=(client_id,) if client_id else (),
                emails=_memo(emails, email, normalize_email),
                phones=tuple(
                    dict.fromkeys(
                        phone
                        for raw in raw_phones
                        if raw
                        for phone in _memo(phones, (raw, region), _phone)
                    )
                ),
                revenue=Decimal(revenue) if revenue and Decimal(revenue) else None,
            )
        last = rows[-1][0]
        if len(rows) < page_rows:
            return


def _phone(raw_and_region):
    return normalize_phone(*raw_and_region)


def _memo(memo, key, normalize):
    """(normalised value,) or () when ``key`` is empty or not a valid identifier."""
    if not key:
        return ()
    found = memo.get(key)
    if found is None:
        try:
            value = normalize(key)
        except InvalidIdentifier:
            value = None
        found = memo[key] = (value,) if value else ()
    return found
