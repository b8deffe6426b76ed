"""What the Conversion Centre link serves, read from the database (the file itself is written by
metrika_core.formats.centre_link): the company a secret opens, the file's validators, and its
orders, batch by batch from one query.

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
from ..metrika_core.identifiers import (
    PHONE_RULES_VERSION,
    InvalidIdentifier,
    normalize_email,
    normalize_phone,
)

# Normalised e-mails, remembered by the process from one fetch to the next (phone numbers are
# remembered in the database: metrika.normalized.phone). A plain dict (a get or a set is
# atomic), emptied when it reaches _MEMO_MAX entries (about 250 bytes each), which bounds the
# memory it takes.
_MEMO_MAX = 200000
_EMAILS = {}
_PHONE_FIELDS = ("mobile", "phone")


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


def _phone_slots(env):
    """The order's phone numbers as SQL expressions, one per phone field: its customer's for a
    sale order, its lead's otherwise (19.0 has no ``mobile``)."""
    partner_fields = env["res.partner"]._fields
    lead_fields = env["crm.lead"]._fields
    slots = []
    for name in _PHONE_FIELDS:
        if name in partner_fields or name in lead_fields:
            slots.append(
                SQL(
                    "CASE WHEN sale.id IS NOT NULL THEN %s ELSE %s END",
                    SQL.identifier("partner", name) if name in partner_fields else SQL("NULL"),
                    SQL.identifier("lead", name) if name in lead_fields else SQL("NULL"),
                )
            )
    return slots


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


def iter_orders(env, company_id, now, region, fetch_rows=const.CENTRE_FETCH_ROWS):
    """The window's orders as SimpleOrder, by Metrica order id: one query read through a
    server-side cursor, ``fetch_rows`` at a time, so memory holds one batch whatever the number
    of orders.

    Each phone number's normalised form is read from metrika.normalized.phone; the numbers not
    found there are normalised and stored in the memo with one statement per batch, in the
    caller's transaction (the stream commits them with its fetch log)."""
    slots = _phone_slots(env)
    phone_columns = SQL("").join(
        SQL(", %s AS %s", slot, SQL.identifier(f"phone_{index}"))
        for index, slot in enumerate(slots)
    )
    # Per phone: the number as written, whether it is remembered, and its remembered form.
    memo_columns = SQL("").join(
        SQL(
            ", file.%s, %s IS NOT NULL, %s",
            SQL.identifier(f"phone_{index}"),
            SQL.identifier(f"memo_{index}", "raw"),
            SQL.identifier(f"memo_{index}", "normalized"),
        )
        for index in range(len(slots))
    )
    memo_joins = SQL(" ").join(
        SQL(
            "LEFT JOIN metrika_normalized_phone %s ON %s = file.%s AND %s = %s AND %s = %s",
            SQL.identifier(f"memo_{index}"),
            SQL.identifier(f"memo_{index}", "raw"),
            SQL.identifier(f"phone_{index}"),
            SQL.identifier(f"memo_{index}", "region"),
            _region_key(region),
            SQL.identifier(f"memo_{index}", "version"),
            PHONE_RULES_VERSION,
        )
        for index in range(len(slots))
    )
    query = SQL(
        "SELECT file.metrika_order_id, file.order_create_date, file.order_status, "
        "file.revenue, file.client_id, file.email%s FROM ("
        "SELECT DISTINCT ON (conversion.metrika_order_id) conversion.metrika_order_id, "
        "conversion.order_create_date, conversion.order_status, "
        # As text: Odoo reads numeric columns as floats.
        "ROUND(conversion.revenue, COALESCE(currency.decimal_places, 2))::text AS revenue, "
        "CASE WHEN sale.id IS NOT NULL THEN sale.metrika_client_id "
        "ELSE lead.metrika_client_id END AS client_id, "
        "CASE WHEN sale.id IS NOT NULL THEN partner.email ELSE lead.email_from END AS email"
        "%s FROM metrika_conversion conversion %s WHERE %s "
        "ORDER BY conversion.metrika_order_id, conversion.queued_sequence DESC, "
        "conversion.id DESC) file %s ORDER BY file.metrika_order_id",
        memo_columns,
        phone_columns,
        _JOINS,
        _window_where(company_id, now),
        memo_joins,
    )
    cr = env.cr
    # The whole window is read: planned for all its rows (hash joins, each table read once),
    # not for the first ones, as PostgreSQL plans a cursor by default.
    cr.execute("SET LOCAL cursor_tuple_fraction = 1.0")
    cr.execute(SQL("DECLARE metrika_centre_file NO SCROLL CURSOR FOR %s", query))
    emails = _EMAILS
    try:
        while True:
            cr.execute(SQL("FETCH %s FROM metrika_centre_file", fetch_rows))
            rows = cr.fetchall()
            if len(emails) > _MEMO_MAX:
                emails.clear()
            # The batch's numbers that were not remembered: {number as written: normalised
            # or ""}.
            normalized_now = {}
            for order_id, created, status, revenue, client_id, email, *phone_cells in rows:
                phones = []
                for index in range(0, len(phone_cells), 3):
                    raw, remembered, normalized = phone_cells[index : index + 3]
                    if not raw:
                        continue
                    if not remembered:
                        normalized = normalized_now.get(raw)
                        if normalized is None:
                            normalized = normalized_now[raw] = normalized_phone(raw, region)
                    if normalized:
                        phones.append(normalized)
                yield formats.SimpleOrder(
                    id=order_id,
                    create_date_time=created.replace(tzinfo=timezone.utc),
                    order_status=status,
                    client_ids=(client_id,) if client_id else (),
                    emails=_memo(emails, email, normalize_email),
                    phones=tuple(dict.fromkeys(phones)),
                    revenue=Decimal(revenue) if revenue and Decimal(revenue) else None,
                )
            if normalized_now:
                remember_phones(cr, region, normalized_now)
            if len(rows) < fetch_rows:
                break
    except GeneratorExit:
        # The reader stopped (a client that went away): the transaction is sound, the cursor
        # is closed for another file in it.
        cr.execute("CLOSE metrika_centre_file")
        raise
    cr.execute("CLOSE metrika_centre_file")


def _memo_lookup(raw, region):
    """The memo's row for the number ``raw`` (an SQL expression) in ``region``, made with
    this phonenumbers release: ``found`` (TRUE) and ``normalized``; no row if none."""
    return SQL(
        "SELECT TRUE AS found, memo.normalized FROM metrika_normalized_phone memo "
        "WHERE memo.raw = %s AND memo.region = %s AND memo.version = %s LIMIT 1",
        raw,
        _region_key(region),
        PHONE_RULES_VERSION,
    )


def _region_key(region):
    # The memo's region column: "" for no region (NULL would never match a join).
    return region or ""


def normalized_phone(raw, region):
    """``raw`` normalised for Metrica, or "" when it is empty or not a valid number."""
    try:
        return normalize_phone(raw, region or None) or ""
    except InvalidIdentifier:
        return ""


def remember_phones(cr, region, normalized):
    """Store ``normalized`` ({number as written: normalised form or ""}) in the memo, in one
    statement; a number another process stored meanwhile is kept as it is."""
    raws = list(normalized)
    cr.execute(
        SQL(
            "INSERT INTO metrika_normalized_phone (raw, region, normalized, version) "
            "SELECT raw, %s, normalized, %s "
            "FROM unnest(%s::varchar[], %s::varchar[]) AS given(raw, normalized) "
            "ON CONFLICT DO NOTHING",
            _region_key(region),
            PHONE_RULES_VERSION,
            raws,
            # NULL, Odoo's empty Char, for a number that is not valid.
            [normalized[raw] or None for raw in raws],
        )
    )


def unremembered_phones(env, company_id, now, region, after_id, limit):
    """The phone numbers (as written) that the memo does not have for ``region`` and this
    phonenumbers release, among those of the company's window's next ``limit`` conversions
    by id after ``after_id``: ``(the last conversion id read, or None when none is left,
    the numbers)``. Read in keyset pages, so a batch costs its conversions, not the window."""
    slots = _phone_slots(env)
    env.flush_all()
    env.cr.execute(
        SQL(
            "SELECT page.id, phones.raw, memo.found FROM ("
            "SELECT conversion.id%s FROM metrika_conversion conversion %s "
            "WHERE %s AND conversion.id > %s ORDER BY conversion.id LIMIT %s) page "
            "CROSS JOIN LATERAL (VALUES %s) AS phones(raw) "
            "LEFT JOIN LATERAL (%s) memo ON TRUE ORDER BY page.id",
            SQL("").join(
                SQL(", %s AS %s", slot, SQL.identifier(f"phone_{index}"))
                for index, slot in enumerate(slots)
            ),
            _JOINS,
            _window_where(company_id, now),
            after_id,
            limit,
            SQL(", ").join(
                SQL("(page.%s)", SQL.identifier(f"phone_{index}")) for index in range(len(slots))
            ),
            _memo_lookup(SQL("phones.raw"), region),
        )
    )
    rows = env.cr.fetchall()
    if not rows:
        return None, []
    raws = {raw: None for _id, raw, found in rows if raw and not found}
    return rows[-1][0], list(raws)


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
