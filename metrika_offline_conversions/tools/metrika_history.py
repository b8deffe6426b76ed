"""History sent at connection: a company's orders and leads that Metrica can still link, each
with the events its current status implies, dated when they happened.

Only (record, event) pairs the sync log does not have yet are planned: the preview counts what
will be new, and doing it twice queues nothing twice.
"""

from collections import namedtuple
from datetime import timedelta

from odoo import fields
from odoo.tools import SQL

from .. import const

# The order events are queued in: a record's last row carries its current status.
LIFE_CYCLE = (const.EVENT_IN_PROGRESS, const.EVENT_PAID, const.EVENT_CANCELLED)

Planned = namedtuple("Planned", "record event date")


def history_plan(env, company):
    """[Planned] of ``company``: new pairs only, that Metrica can still link, life cycle first."""
    company = company.sudo()
    if not company.metrika_enabled:
        return []
    now = fields.Datetime.now()
    since = now - timedelta(days=const.HISTORY_LOOKBACK_DAYS)
    planned = []
    orders = (
        env["sale.order"]
        .sudo()
        .search([("company_id", "=", company.id), ("create_date", ">=", since)], order="id")
    )
    for order in orders:
        planned += [Planned(order, event, date) for event, date in _order_events(order, company)]
    if company.metrika_send_leads:
        leads = (
            env["crm.lead"]
            .sudo()
            .with_context(active_test=False)
            .search([("company_id", "=", company.id), ("create_date", ">=", since)], order="id")
        )
        for lead in leads:
            planned += [Planned(lead, event, date) for event, date in _lead_events(lead)]
    planned = [item for item in planned if item.record._metrika_sends(item.event, company)]
    planned = _new_only(env, planned)
    linkable = _linkable_test(env, company, planned, now)
    planned = [item for item in planned if linkable(item)]
    planned.sort(key=lambda item: LIFE_CYCLE.index(item.event))
    return planned


def queue_history(env, planned):
    """Queue ``planned`` (see history_plan), event after event; return the rows written."""
    Conversion = env["metrika.conversion"]
    written = Conversion.browse()
    for event in LIFE_CYCLE:
        for model in ("sale.order", "crm.lead"):
            items = [item for item in planned if item.event == event and item.record._name == model]
            if items:
                records = env[model].sudo().browse([item.record.id for item in items])
                dates = {item.record.id: item.date for item in items}
                written |= Conversion._metrika_enqueue(records, event, event_dates=dates)
    return written


def has_identifier(record, company):
    """Whether the upload method has something to link ``record`` by."""
    if company.metrika_transport == const.TRANSPORT_OFFLINE:
        return bool(record.metrika_client_id or record.metrika_yclid)
    return record.metrika_attribution != const.ATTRIBUTION_NONE


def _order_events(order, company):
    """(event, date) of what an order's current state implies, as sending would have queued
    it: the quotation when orders count when created, the confirmation, the payment; a
    cancellation only where quotations count (otherwise nothing tells whether Metrica would ever
    have heard of the order: it is not sent as cancelled, see sale_order.py)."""
    created_mode = company.metrika_order_event == const.ORDER_EVENT_CREATED
    website_order = "website_id" in order._fields and bool(order.website_id)
    if order.state == "sale":
        events = [
            (const.EVENT_IN_PROGRESS, order.create_date if created_mode else order.date_order)
        ]
        if order._metrika_is_paid():
            events.append((const.EVENT_PAID, _paid_date(order)))
        return events
    if not created_mode or website_order:
        return []
    if order.state in ("draft", "sent"):
        return [(const.EVENT_IN_PROGRESS, order.create_date)]
    if order.state == "cancel":
        return [
            (const.EVENT_IN_PROGRESS, order.create_date),
            # Odoo keeps no cancellation date: the order's last change is the closest.
            (const.EVENT_CANCELLED, order.write_date),
        ]
    return []


def _paid_date(order):
    """When the order was paid: its last captured transaction or paid invoice (an invoice's last
    change is when its payment state changed); its last change if neither tells."""
    dates = [
        tx.last_state_change
        for tx in order.transaction_ids
        if tx.state == "done" and tx.operation != "validation" and tx.last_state_change
    ]
    dates += [
        move.write_date
        for move in order.invoice_ids
        if move.state == "posted" and move.move_type == "out_invoice"
    ]
    return max(dates, default=order.write_date)


def _lead_events(lead):
    events = [(const.EVENT_IN_PROGRESS, lead.create_date)]
    outcome = lead._metrika_outcome()
    # Odoo sets the closing date when a lead is won or lost.
    closed = lead.date_closed or lead.write_date
    if outcome == const.LEAD_WON:
        events.append((const.EVENT_PAID, closed))
    elif outcome == const.LEAD_LOST:
        events.append((const.EVENT_CANCELLED, closed))
    return events


def _new_only(env, planned):
    """The planned pairs the sync log does not hold yet (in any state)."""
    known = set()
    for model, column in (("sale.order", "sale_order_id"), ("crm.lead", "lead_id")):
        ids = list({item.record.id for item in planned if item.record._name == model})
        if not ids:
            continue
        env["metrika.conversion"].flush_model([column, "event"])
        env.cr.execute(
            SQL(
                "SELECT %s, event FROM metrika_conversion WHERE %s = ANY(%s)",
                SQL.identifier(column),
                SQL.identifier(column),
                ids,
            )
        )
        known.update((model, record_id, event) for record_id, event in env.cr.fetchall())
    return [
        item for item in planned if (item.record._name, item.record.id, item.event) not in known
    ]


def _linkable_test(env, company, planned, now):
    """A test of whether Metrica still takes a planned event (the windows the senders apply)."""
    if company.metrika_transport == const.TRANSPORT_OFFLINE:
        # Goal-based: the visit precedes the conversion, at most 21 days before processing.
        limit = now - timedelta(days=const.OFFLINE_VISIT_WINDOW_DAYS)
        return lambda item: bool(item.date) and item.date >= limit
    # CRM orders: a new order links within 21 days of its creation; one Metrica has (a row of it
    # was sent) takes updates for 111 days.
    references = {item.record: item.record._metrika_order_reference() for item in planned}
    env["metrika.conversion"].flush_model(["metrika_order_id", "sent_at"])
    env.cr.execute(
        SQL(
            "SELECT DISTINCT metrika_order_id FROM metrika_conversion "
            "WHERE sent_at IS NOT NULL AND metrika_order_id = ANY(%s)",
            list({order_id for order_id, _created in references.values()}),
        )
    )
    known = {order_id for (order_id,) in env.cr.fetchall()}
    link_limit = now - timedelta(days=const.CRM_NEW_ORDER_LINK_DAYS)
    update_limit = now - timedelta(days=const.CRM_LINKED_ORDER_UPDATE_DAYS)

    def linkable(item):
        order_id, created = references[item.record]
        return created >= (update_limit if order_id in known else link_limit)

    return linkable
