"""The outbox: a business event of leads or sale orders becomes conversion rows in the user's
own transaction, with one statement per action, so that the sync log shows them the moment the
action commits, and the upload cron only ever reads the business records.
"""

import functools
import logging
import time
from datetime import datetime, timezone

from odoo import api, fields, models
from odoo.tools import SQL

from .. import const
from .metrika_conversion import EVENT_STATUS, QUEUED_SEQUENCE

_logger = logging.getLogger(__name__)

# Columns the enqueue INSERT writes. Odoo creates no database defaults (a field's ``default``
# lives in the ORM only): a column left out of the INSERT is NULL.
INSERT_COLUMNS = (
    "company_id",
    "sale_order_id",
    "lead_id",
    "record_name",
    "event",
    "order_status",
    "metrika_order_id",
    "order_create_date",
    "event_date",
    "revenue",
    "currency_id",
    "transport",
    "state",
    "failure_reason",
    "last_error",
    "next_attempt_at",
    "attempt_count",
)
# What a row being sent keeps when its event is reached again: it belongs to its upload until
# Metrica's answer settles it. It only takes the new queue order and date (see the senders).
KEPT_WHILE_SENDING = frozenset(INSERT_COLUMNS) - {"event_date"}
# What a row reached again loses: the outcome of its earlier upload.
CLEARED_WHEN_REQUEUED = ("metrika_result", "metrika_result_detail", "upload_id")
# Every column the statement writes, to invalidate in the cache of the rows it brought back.
WRITTEN_FIELDS = (
    *INSERT_COLUMNS,
    *CLEARED_WHEN_REQUEUED,
    "queued_sequence",
    "write_uid",
    "write_date",
)
# A lead's or an order's fields that count or list its conversions (not stored).
RECORD_CONVERSION_FIELDS = ("metrika_conversion_ids", "metrika_conversion_count")


@functools.lru_cache(maxsize=64)
def _enqueue_statement(field, row_count):
    """The text of the one statement that queues ``row_count`` rows of records linked by
    ``field`` (``sale_order_id`` or ``lead_id``).

    A (record, event) pair is queued once (the unique constraint decides, so concurrent
    transactions cannot queue it twice). When the pair is there already, the row is brought back
    only if another event of the record was queued after it (an order cancelled, then confirmed
    again), so that the row with the highest queue order always carries the record's current
    status; an event fired again with nothing in between (a second invoice paid, "Send now")
    changes nothing. A goal hit already sent or being sent is never brought back (Metrica would
    count it again: only a manager's Resend does that), nor is a row a manager cancelled.
    """
    column = SQL.identifier(field).code
    columns = ", ".join(SQL.identifier(name).code for name in INSERT_COLUMNS)
    placeholders = ", ".join(["%s"] * (4 + len(INSERT_COLUMNS)))
    row = f"({placeholders}, nextval('{QUEUED_SEQUENCE}'))"
    sending = f"conversion.state = '{const.STATE_SENDING}'"
    updates = [
        "queued_sequence = EXCLUDED.queued_sequence",
        "event_date = EXCLUDED.event_date",
        "write_uid = EXCLUDED.write_uid",
        "write_date = EXCLUDED.write_date",
    ]
    for name in INSERT_COLUMNS:
        if name in KEPT_WHILE_SENDING and name not in ("sale_order_id", "lead_id", "event"):
            updates.append(
                f"{name} = CASE WHEN {sending} THEN conversion.{name} ELSE EXCLUDED.{name} END"
            )
    updates += [
        f"{name} = CASE WHEN {sending} THEN conversion.{name} END" for name in CLEARED_WHEN_REQUEUED
    ]
    return (
        "INSERT INTO metrika_conversion AS conversion"
        f" (create_uid, create_date, write_uid, write_date, {columns}, queued_sequence)"
        f" VALUES {', '.join([row] * row_count)}"
        f" ON CONFLICT ({column}, event) DO UPDATE SET {', '.join(updates)}"
        f" WHERE conversion.state != '{const.STATE_CANCELLED}'"
        f" AND NOT (conversion.transport = '{const.TRANSPORT_OFFLINE}'"
        f" AND conversion.state IN ('{const.STATE_SENT}', '{const.STATE_SENDING}'))"
        " AND EXISTS (SELECT 1 FROM metrika_conversion later"
        f" WHERE later.{column} = conversion.{column} AND later.event != conversion.event"
        " AND later.queued_sequence > conversion.queued_sequence)"
        " RETURNING id"
    )


class MetrikaConversion(models.Model):
    _inherit = "metrika.conversion"

    @api.model
    def _metrika_enqueue(self, records, event, event_dates=None):
        """Queue ``event`` for every record of ``records`` (sale orders or leads); return the
        rows written or brought back.

        One statement for all the records (see ``_enqueue_statement``), in the caller's
        transaction: the rows commit or roll back with the business change. Never raises into
        the user's action: a record that cannot be prepared gets an ``error`` row that says why.
        ``event_dates`` (``{record id: datetime}``) dates events that happened earlier (the
        upgrade's migration); by default an event happens now.
        """
        records = records.sudo().browse(dict.fromkeys(records.ids))
        rows = []
        for record in records:
            try:
                values = record._metrika_conversion_values(event)
            except Exception as err:  # noqa: BLE001 - a salesperson's action must go through
                _logger.exception("Metrica: cannot prepare %s of %s", event, record)
                values = self._metrika_failed_values(record, event, err)
            if values:
                if event_dates:
                    values["event_date"] = event_dates[record.id]
                rows.append(values)
        if not rows:
            return self.browse()
        field = records._metrika_conversion_field
        # Whole seconds, like every Odoo datetime: the cron compares with fields.Datetime.now(),
        # which is truncated, so a row queued earlier in the same second is still due.
        now = self.env.cr.now().replace(microsecond=0)
        head = (self.env.uid, now, self.env.uid, now)
        params = []
        for row in rows:
            row.setdefault("next_attempt_at", now)
            row.setdefault("event_date", now)
            row["attempt_count"] = 0
            params += head
            params += (
                None if row.get(column) is False else row.get(column) for column in INSERT_COLUMNS
            )
        # The statement reads the table (the rows already there): this transaction's own
        # pending writes to it go first. Only this table: flushing everything would run the
        # pending writes and recomputations of the user's action here, query by query.
        self.flush_model()
        self.env.cr.execute(SQL(_enqueue_statement(field, len(rows)), *params))
        written = self.browse(row_id for (row_id,) in self.env.cr.fetchall())
        if written:
            # Rows brought back by SQL: their cached values are out of date, and so are the
            # records' counts and lists of their conversions.
            written.invalidate_recordset(WRITTEN_FIELDS, flush=False)
            records.invalidate_recordset(RECORD_CONVERSION_FIELDS, flush=False)
            self._metrika_trigger_upload()
        return written

    @api.model
    def _metrika_failed_values(self, record, event, err):
        """An ``error`` row saying why ``record`` could not be prepared, with as much of its
        description as can still be read; None (logged) when not even that can be built."""
        failure = {
            "state": const.STATE_ERROR,
            "failure_reason": const.REASON_INVALID_DATA,
            "last_error": self.env._("This conversion could not be prepared: %s", err),
        }
        record = record.sudo()
        try:
            company = record._metrika_company()
            if not company.metrika_enabled:
                return None
            try:
                values = record._metrika_conversion_base_values(event)
            except Exception:  # noqa: BLE001 - fall back to what cannot fail
                values = {
                    "company_id": company.id,
                    record._metrika_conversion_field: record.id,
                    "record_name": record.display_name,
                    "event": event,
                    "order_status": EVENT_STATUS[event],
                    "transport": company.metrika_transport,
                }
            return {**values, **failure}
        except Exception:  # noqa: BLE001
            _logger.exception("Metrica: %s of %s is lost", event, record)
            return None

    @api.model
    def _metrika_restate_lost_leads(self, leads):
        """Lost leads' cancellations not sent yet take the status their lost reason gives
        (spam or cancelled): Odoo's Lost wizard archives a lead before it sets the reason."""
        pending = self.sudo().search(
            [
                ("lead_id", "in", leads.ids),
                ("event", "=", const.EVENT_CANCELLED),
                ("state", "=", const.STATE_PENDING),
            ]
        )
        for row in pending:
            status = row.lead_id._metrika_order_status(const.EVENT_CANCELLED)
            if row.order_status != status:
                row.write({"order_status": status})

    # ------------------------------------------------------------------
    # Waking the upload
    # ------------------------------------------------------------------

    @api.model
    def _metrika_trigger_upload(self):
        """Wake the upload cron when this transaction commits (see _metrika_trigger_slot)."""
        precommit = self.env.cr.precommit
        if precommit.data.get("metrika_trigger_upload"):
            return
        precommit.data["metrika_trigger_upload"] = True
        env = self.env
        precommit.add(lambda: env["metrika.conversion"]._metrika_trigger_slot())

    @api.model
    def _metrika_trigger_slot(self):
        """The first transaction of a time slot in this process wakes the cron at once, and
        again at the end of the slot for the transactions that commit while it runs: one pair of
        triggers per slot and process, instead of a trigger row per confirmed order."""
        slot = -(-int(time.time()) // const.TRIGGER_SLOT_SECONDS) * const.TRIGGER_SLOT_SECONDS
        key = (self.env.cr.dbname, slot)
        if key in _TRIGGERED_SLOTS:
            return
        cron = self.env.ref(const.CRON_XMLID, raise_if_not_found=False)
        if not cron:
            return
        slot_end = datetime.fromtimestamp(slot, timezone.utc).replace(tzinfo=None)
        cron.sudo()._trigger(at=[fields.Datetime.now(), slot_end])
        # Remembered only once committed: a rolled-back trigger does not count.
        self.env.cr.postcommit.add(lambda: _remember_slot(key))


# (database, slot end) of the upload triggers this process has committed; see _metrika_trigger_slot.
_TRIGGERED_SLOTS = set()


def _remember_slot(key):
    _TRIGGERED_SLOTS.add(key)
    # Older slots are of no use any more; keep the set small.
    for old in [item for item in _TRIGGERED_SLOTS if item[1] < key[1]]:
        _TRIGGERED_SLOTS.discard(old)
