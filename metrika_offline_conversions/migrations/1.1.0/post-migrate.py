"""1.1.0: conversions are queued as rows in the user's transaction, no longer as a flag on the
order or lead (``metrika_queued_events``) that the upload cron wrote out later.

The flags left at the upgrade (events queued and not yet written out) become rows, dated when
they were queued, in the order they were queued; then the column goes. The settings alerts
still open take their own activity type.
"""

import logging

from odoo import SUPERUSER_ID, api, fields
from odoo.tools import SQL

from odoo.addons.metrika_offline_conversions import const

_logger = logging.getLogger(__name__)

FLAG_COLUMN = "metrika_queued_events"
FLAGGED_MODELS = ("sale.order", "crm.lead")
# The order a record reaches its events in, for events a flag dates to the same second.
LIFE_CYCLE = (const.EVENT_IN_PROGRESS, const.EVENT_PAID, const.EVENT_CANCELLED)


def parse_flag(text):
    """``[(datetime, event)]`` of a flag's text (``"in_progress=2026-12-02 13:00:00,..."``);
    what cannot be read is left out."""
    queued = []
    for item in (text or "").split(","):
        event, _sep, when = item.partition("=")
        try:
            when = fields.Datetime.to_datetime(when)
        except ValueError:
            continue
        if event and when:
            queued.append((when, event))
    return queued


def current_event(record):
    """The event of the status ``record`` has now, where the life cycle alone does not tell it
    (a cancelled order, a lead lost or open again)."""
    if record._name == "crm.lead":
        return {const.LEAD_WON: const.EVENT_PAID, const.LEAD_LOST: const.EVENT_CANCELLED}.get(
            record._metrika_outcome(), const.EVENT_IN_PROGRESS
        )
    return const.EVENT_CANCELLED if record.state == "cancel" else None


def write_out_flags(env):
    """Queue the events of every flag left, oldest first; return how many were queued."""
    Conversion = env["metrika.conversion"]
    count = 0
    for model in FLAGGED_MODELS:
        records = env[model].sudo().with_context(active_test=False)
        table = records._table
        env.cr.execute(
            SQL(
                "SELECT 1 FROM information_schema.columns "
                "WHERE table_name = %s AND column_name = %s",
                table,
                FLAG_COLUMN,
            )
        )
        if not env.cr.fetchone():
            continue
        env.cr.execute(
            SQL(
                "SELECT id, %s FROM %s WHERE %s IS NOT NULL",
                SQL.identifier(FLAG_COLUMN),
                SQL.identifier(table),
                SQL.identifier(FLAG_COLUMN),
            )
        )
        flags = dict(env.cr.fetchall())
        current = {record.id: current_event(record) for record in records.browse(flags)}
        events = sorted(
            (when, event == current[record_id], LIFE_CYCLE.index(event), event, record_id)
            for record_id, text in flags.items()
            for when, event in parse_flag(text)
            if event in LIFE_CYCLE
        )
        # One at a time, in the order they happened: the queue order then says which status a
        # record has now (an order cancelled after it was confirmed ends cancelled). A flag keeps
        # one time per event, to the second: of events at the same time, the one the record is
        # in now came last.
        for when, _current, _rank, event, record_id in events:
            Conversion._metrika_enqueue(records.browse(record_id), event, {record_id: when})
            count += 1
        env.cr.execute(
            SQL(
                "ALTER TABLE %s DROP COLUMN IF EXISTS %s",
                SQL.identifier(table),
                SQL.identifier(FLAG_COLUMN),
            )
        )
    return count


def number_existing_rows(env):
    """Rows written before 1.1.0 have no queue order yet: number them as their events
    happened, and continue the sequence after them."""
    env.cr.execute(
        SQL(
            """UPDATE metrika_conversion AS conversion SET queued_sequence = numbered.position
                 FROM (SELECT id, row_number() OVER (ORDER BY event_date, id) AS position
                         FROM metrika_conversion WHERE queued_sequence IS NULL) AS numbered
                WHERE conversion.id = numbered.id"""
        )
    )
    env.cr.execute(
        SQL(
            "SELECT setval('metrika_conversion_queued_sequence', "
            "GREATEST((SELECT MAX(queued_sequence) FROM metrika_conversion), 1))"
        )
    )


def move_old_alerts(env):
    """1.0 alerted administrators with To-Do activities on uploads, found by their summary;
    1.1 finds them by their own activity type: the open ones take it, so that a fix closes them."""
    alert_type = env.ref(const.SETTINGS_ALERT_ACTIVITY_TYPE)
    todo = env.ref("mail.mail_activity_data_todo", raise_if_not_found=False)
    if not todo:
        return
    env["mail.activity"].search(
        [("res_model", "=", "metrika.upload"), ("activity_type_id", "=", todo.id)]
    ).write({"activity_type_id": alert_type.id})


def migrate(cr, version):
    if not version:
        return
    env = api.Environment(cr, SUPERUSER_ID, {})
    number_existing_rows(env)
    count = write_out_flags(env)
    move_old_alerts(env)
    _logger.info("Metrica: %s events queued on orders and leads written as conversions", count)
