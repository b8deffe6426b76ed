import functools
import logging
import time
from datetime import datetime, timedelta, timezone

import psycopg2.errors

from odoo import _, api, fields, models
from odoo.exceptions import AccessError
from odoo.tools import SQL

from .. import const
from ..metrika_core import formats
from ..tools.metrika_sender import UploadRun

_logger = logging.getLogger(__name__)

ORDER_STATUS_SELECTION = [
    (formats.IN_PROGRESS, "In progress"),
    (formats.PAID, "Paid"),
    (formats.CANCELLED, "Cancelled"),
    (formats.SPAM, "Spam"),
]
EVENT_STATUS = {
    const.EVENT_IN_PROGRESS: formats.IN_PROGRESS,
    const.EVENT_PAID: formats.PAID,
    const.EVENT_CANCELLED: formats.CANCELLED,
}
STATE_SELECTION = [
    (const.STATE_PENDING, "Pending"),
    (const.STATE_SENDING, "Sending"),
    (const.STATE_SENT, "Sent"),
    (const.STATE_ERROR, "Error"),
    (const.STATE_SKIPPED, "Skipped"),
    (const.STATE_CANCELLED, "Cancelled"),
]
FAILURE_REASON_SELECTION = [
    (const.REASON_NO_IDENTIFIER, "No identifier"),
    (const.REASON_NO_GOAL, "No goal set"),
    (const.REASON_LINK_WINDOW, "Too late to link a new order"),
    (const.REASON_UPDATE_WINDOW, "Too late to update the order"),
    (const.REASON_VISIT_WINDOW, "Visit too old"),
    (const.REASON_RECORD_DELETED, "Record deleted"),
    (const.REASON_INVALID_DATA, "Invalid data"),
    (const.REASON_SETTINGS, "Settings to fix"),
    (const.REASON_AUTH, "Access refused"),
    (const.REASON_BAD_REQUEST, "Rejected by Metrica"),
    (const.REASON_REFUSED, "Refused by Metrica"),
    (const.REASON_QUOTA, "Quota exceeded"),
    (const.REASON_SERVER, "Metrica unavailable"),
    (const.REASON_NETWORK, "Network error"),
    (const.REASON_UNEXPECTED, "Unexpected answer"),
]
RESULT_SELECTION = [
    (const.RESULT_ACCEPTED, "Accepted"),
    (const.RESULT_PROCESSING, "Being processed"),
    (const.RESULT_LINKED, "Linked"),
    (const.RESULT_PARTLY_LINKED, "Partly linked"),
    (const.RESULT_NOT_LINKED, "Not linked"),
    (const.RESULT_PARTLY_REFUSED, "File partly refused"),
    (const.RESULT_UNCONFIRMED, "Not confirmed"),
]
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
# The enqueue INSERT up to its rows, and one row's placeholders: built once, they run on every
# confirmation. Flat placeholders, so psycopg2 adapts each value in C (a tuple parameter goes
# through its Python adapter).
INSERT_INTO = SQL(
    "INSERT INTO metrika_conversion AS conversion"
    " (create_uid, create_date, write_uid, write_date, %s) VALUES",
    SQL(", ").join(SQL.identifier(column) for column in INSERT_COLUMNS),
)
INSERT_ROW = "(%s)" % ", ".join(["%s"] * (4 + len(INSERT_COLUMNS)))


@functools.lru_cache(maxsize=64)
def _insert_statement(field, row_count):
    """The enqueue INSERT of ``row_count`` rows of records linked by ``field``, as the text of
    an SQL object: composed once, not on every confirmation."""
    column = SQL.identifier(field).code  # sale_order_id or lead_id, quoted
    rows = ", ".join([INSERT_ROW] * row_count)
    return (
        f"{INSERT_INTO.code} {rows} ON CONFLICT ({column}, event) DO NOTHING RETURNING id, {column}"
    )


# Where a transaction keeps the records it queued events of (see transaction_queue), and the
# models whose flags to flush at commit.
QUEUE_KEY = "metrika_conversion_queue"
QUEUED_MODELS_KEY = "metrika_conversion_queued_models"
# The records' field that holds the events queued and not yet written as rows, and the models
# that have it.
QUEUED_EVENTS_FIELD = "metrika_queued_events"
QUEUED_MODELS = ("sale.order", "crm.lead")


def transaction_queue(cr):
    """``{(model, id): its metrika_queued_events before this transaction}`` of the records this
    transaction queued events of. Kept with the postcommit callbacks' data, which goes with the
    transaction (after COMMIT, or on ROLLBACK), not with the precommit's, which a flushing
    savepoint clears as well."""
    return cr.postcommit.data.setdefault(QUEUE_KEY, {})


def format_queued_events(queued):
    """``{event: "YYYY-MM-DD HH:MM:SS"}`` as the text of ``metrika_queued_events``."""
    return ",".join(f"{event}={when}" for event, when in queued.items()) or False


def parse_queued_events(text):
    """The ``{event: datetime}`` of a ``metrika_queued_events`` text; what cannot be read (edited
    by hand) is left out."""
    queued = {}
    for item in (text or "").split(","):
        event, _sep, when = item.partition("=")
        try:
            when = fields.Datetime.to_datetime(when)
        except ValueError:
            continue
        if event in EVENT_STATUS and when:
            queued[event] = when
    return queued


# A lead's or an order's fields that count or list its conversions (not stored).
RECORD_CONVERSION_FIELDS = ("metrika_conversion_ids", "metrika_conversion_count")


class MetrikaConversion(models.Model):
    _name = "metrika.conversion"
    _description = "Yandex Metrica conversion"
    _order = "id desc"
    _rec_name = "record_name"

    # No single-column indexes on company_id and state: the partial index of init() serves the
    # cron, and every index costs the INSERT made while a salesperson confirms an order.
    company_id = fields.Many2one("res.company", required=True, readonly=True)
    sale_order_id = fields.Many2one(
        "sale.order", string="Sale order", readonly=True, ondelete="set null"
    )
    lead_id = fields.Many2one("crm.lead", readonly=True, ondelete="set null")
    record_name = fields.Char(string="Record", readonly=True)
    event = fields.Selection(
        [
            (const.EVENT_IN_PROGRESS, "Created"),
            (const.EVENT_PAID, "Paid or won"),
            (const.EVENT_CANCELLED, "Cancelled or lost"),
        ],
        required=True,
        readonly=True,
    )
    order_status = fields.Selection(
        ORDER_STATUS_SELECTION, string="Metrica status", required=True, readonly=True
    )
    metrika_order_id = fields.Char(string="Metrica order ID", readonly=True, index=True)
    order_create_date = fields.Datetime(string="Order created on", readonly=True)
    event_date = fields.Datetime(string="Event date", readonly=True)
    revenue = fields.Monetary(readonly=True)
    currency_id = fields.Many2one("res.currency", readonly=True)
    transport = fields.Selection(
        const.TRANSPORT_SELECTION, string="Upload method", required=True, readonly=True
    )
    state = fields.Selection(
        STATE_SELECTION, default=const.STATE_PENDING, required=True, readonly=True
    )
    failure_reason = fields.Selection(FAILURE_REASON_SELECTION, readonly=True)
    last_error = fields.Text(readonly=True)
    attempt_count = fields.Integer(readonly=True, default=0)
    next_attempt_at = fields.Datetime(
        string="Next attempt", readonly=True, default=fields.Datetime.now
    )
    sent_at = fields.Datetime(string="Sent on", readonly=True)
    metrika_goal = fields.Char(
        string="Goal", readonly=True, help="The goal of the goal-based conversion sent."
    )
    metrika_result = fields.Selection(
        RESULT_SELECTION,
        string="What Metrica did",
        readonly=True,
        help="Sent is not counted: what Metrica answered for the file of this conversion.",
    )
    metrika_result_detail = fields.Char(string="Metrica's report", readonly=True)
    window_closes_at = fields.Datetime(
        string="Metrica takes it until",
        readonly=True,
        help="After this date Metrica no longer links (or updates) this conversion.",
    )
    at_risk = fields.Boolean(
        string="At risk",
        compute="_compute_at_risk",
        search="_search_at_risk",
        help="Still waiting, and Metrica's window for it closes within a few days.",
    )
    # Partial index: rows being sent are few, and rows queued without one cost the INSERT nothing.
    upload_id = fields.Many2one(
        "metrika.upload",
        string="Current upload",
        readonly=True,
        ondelete="set null",
        index="btree_not_null",
    )
    upload_ids = fields.Many2many(
        "metrika.upload",
        "metrika_conversion_metrika_upload_rel",
        "conversion_id",
        "upload_id",
        string="Uploads",
        readonly=True,
    )

    _sql_constraints = [
        (
            "sale_order_event_unique",
            "UNIQUE(sale_order_id, event)",
            "A sale order is queued at most once per event.",
        ),
        ("lead_event_unique", "UNIQUE(lead_id, event)", "A lead is queued at most once per event."),
    ]

    def init(self):
        # The cron's queries on a large queue stay on a small partial index, in the order the
        # batches are taken (see _metrika_lock_due_batch). It replaces an index by id.
        self.env.cr.execute(
            SQL(
                "DROP INDEX IF EXISTS metrika_conversion_pending_index; "
                "CREATE INDEX IF NOT EXISTS metrika_conversion_due_index "
                "ON metrika_conversion (company_id, transport, next_attempt_at, id) "
                "WHERE state = 'pending'"
            )
        )

    def _compute_at_risk(self):
        limit = fields.Datetime.now() + timedelta(days=const.AT_RISK_DAYS)
        for conversion in self:
            conversion.at_risk = bool(
                conversion.state in (const.STATE_PENDING, const.STATE_ERROR)
                and conversion.window_closes_at
                and conversion.window_closes_at <= limit
            )

    def _search_at_risk(self, operator, value):
        if operator not in ("=", "!=") or not isinstance(value, bool):
            raise NotImplementedError(_("Search at-risk conversions with = True or = False."))
        domain = [
            ("state", "in", (const.STATE_PENDING, const.STATE_ERROR)),
            ("window_closes_at", "<=", fields.Datetime.now() + timedelta(days=const.AT_RISK_DAYS)),
        ]
        return domain if (operator == "=") == value else ["!", "&", *domain]

    # ------------------------------------------------------------------
    # Enqueueing (runs inside the salesperson's transaction)
    # ------------------------------------------------------------------

    @api.model
    def _metrika_enqueue(self, records, event):
        """Queue ``event`` for every record of ``records`` (sale orders or leads).

        The event and its time go into the record's own ``metrika_queued_events``, so they reach
        the database in the UPDATE the user's action makes of the record anyway, in the same
        transaction: queueing adds no statement to confirming an order. The rows are written
        from there by the upload cron (``_metrika_write_flagged``), or at once when this
        transaction reads the queue (``_search``, ``flush_model``). Idempotent per record and
        event (a unique constraint decides), and never raises into the user's action: a record
        that cannot be prepared gets an ``error`` row that says why. When a record went back to
        an event it had already reached (an order cancelled, then confirmed again), that event's
        row is queued again, so Metrica ends with the record's current status.
        """
        records = records.sudo().filtered(lambda record: record._metrika_company().metrika_enabled)
        if not records:
            return
        now = fields.Datetime.to_string(self.env.cr.now().replace(microsecond=0))
        queue = transaction_queue(self.env.cr)
        precommit = self.env.cr.precommit
        queued_models = precommit.data.get(QUEUED_MODELS_KEY)
        if queued_models is None:
            queued_models = precommit.data[QUEUED_MODELS_KEY] = set()
            env = self.env
            precommit.add(lambda: env["metrika.conversion"]._metrika_commit_queue())
        queued_models.add(records._name)
        # The field's own write: the value goes to the cache and the record's next UPDATE, with
        # none of write()'s work (access checks, tracking, the last-modified date of an order
        # that is only being paid).
        field = records._fields[QUEUED_EVENTS_FIELD]
        for record in records:
            text = record[QUEUED_EVENTS_FIELD]
            # What was queued before this transaction (see the mixin's unlink).
            queue.setdefault((record._name, record.id), text)
            queued = parse_queued_events(text)
            queued[event] = now
            field.write(record, format_queued_events(queued))
        self._metrika_trigger_upload()

    @api.model
    def _metrika_commit_queue(self):
        # A payment queues "paid" while the ORM flushes (payment_state is recomputed then): the
        # flag may be set after its model was flushed, and must not be lost at COMMIT.
        for model in self.env.cr.precommit.data.pop(QUEUED_MODELS_KEY, ()):
            self.env[model].flush_model([QUEUED_EVENTS_FIELD])

    @api.model
    def _metrika_flush_queue(self):
        """Write the conversions this transaction queued; return the rows created or re-queued."""
        queue = self.env.cr.postcommit.data.pop(QUEUE_KEY, None)
        if not queue:
            return self.browse()
        grouped = {}
        for model, record_id in queue:
            grouped.setdefault(model, []).append(record_id)
        written = self.browse()
        for model, record_ids in grouped.items():
            # Records deleted since they were queued left the queue then (see the mixin's unlink).
            # As superuser: see the mixin's _metrika_conversion_base_values.
            written |= self._metrika_write_queued(self.env[model].sudo().browse(record_ids))
        return written

    @api.model
    def _metrika_write_queued(self, records):
        """Write the rows of the events ``records`` have queued, and clear their flags."""
        dates_by_event = {}
        for record in records:
            for event, when in parse_queued_events(record[QUEUED_EVENTS_FIELD]).items():
                dates_by_event.setdefault(event, {})[record.id] = when
        records._fields[QUEUED_EVENTS_FIELD].write(records, False)
        written = self.browse()
        for event in EVENT_STATUS:  # in the order a record reaches them
            event_dates = dates_by_event.get(event)
            if event_dates:
                written |= self._metrika_write_rows(records.browse(event_dates), event, event_dates)
        return written

    @api.model
    def _metrika_write_flagged(self, limit):
        """The cron's first step: write the rows of up to ``limit`` records per model whose
        events were queued in committed transactions; return how many records were written.

        The records are locked (FOR NO KEY UPDATE, which does not hold up the foreign key checks
        of conversions being queued meanwhile); those a user's transaction is updating are
        skipped, to be taken by the next call, with the event that transaction adds.
        """
        self._metrika_flush_all()
        count = 0
        for model in QUEUED_MODELS:
            records = self.env[model].sudo()
            rows = self._metrika_execute_locking(
                SQL(
                    "SELECT id FROM %s WHERE %s IS NOT NULL ORDER BY id LIMIT %s "
                    "FOR NO KEY UPDATE SKIP LOCKED",
                    SQL.identifier(records._table),
                    SQL.identifier(QUEUED_EVENTS_FIELD),
                    limit,
                )
            )
            if rows:
                flagged = records.browse(record_id for (record_id,) in rows)
                self._metrika_write_queued(flagged)
                flagged.flush_recordset([QUEUED_EVENTS_FIELD])
                count += len(flagged)
        return count

    @api.model
    def _metrika_flush_all(self):
        """Before raw SQL on the queue: write what this transaction queued (``flush_all`` alone
        does not, the queue being no ORM data), then every pending ORM write."""
        self._metrika_flush_queue()
        self.env.flush_all()

    def _search(self, domain, offset=0, limit=None, order=None):
        self._metrika_flush_queue()
        return super()._search(domain, offset=offset, limit=limit, order=order)

    def flush_model(self, fnames=None):
        self._metrika_flush_queue()
        return super().flush_model(fnames)

    @api.model
    def _metrika_write_rows(self, records, event, event_dates):
        """Write the rows of ``event`` for ``records``, reached at ``event_dates`` (by id)."""
        rows = []
        for record in records:
            try:
                values = record._metrika_conversion_values(event)
            except Exception as err:  # noqa: BLE001 - a salesperson's action must go through
                _logger.exception("Metrica: cannot prepare %s of %s", event, record)
                values = self._metrika_failed_values(record, event, err)
            if values:
                values["event_date"] = event_dates[record.id]
                rows.append(values)
        if not rows:
            return self.browse()
        queued = self._metrika_insert(records._metrika_conversion_field, rows)
        if queued:
            # Their cached values no longer count the new rows. Neither field is stored, and
            # the rows were written by SQL: only the records' cache of the two is out of date
            # (invalidate_recordset would also flush and drop the conversions' whole cache of
            # the inverse field).
            cache = self.env.cache
            cache.invalidate(
                [(records._fields[fname], records._ids) for fname in RECORD_CONVERSION_FIELDS]
            )
            self._metrika_trigger_upload()
        return queued

    @api.model
    def _metrika_failed_values(self, record, event, err):
        """An ``error`` row saying why ``record`` could not be prepared, with as much of its
        description as can still be read; None (logged) when not even that can be built."""
        failure = {
            "state": const.STATE_ERROR,
            "failure_reason": const.REASON_INVALID_DATA,
            "last_error": _("This conversion could not be prepared: %s", err),
        }
        record = record.sudo()
        try:
            company = record.company_id or self.env.company
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
    def _metrika_insert(self, field, rows):
        """Write ``rows`` (conversions of records linked by ``field``); return the rows written.

        One plain INSERT that skips the (record, event) pairs already queued: the usual case,
        and the cheapest statement for a confirmation to wait on. Only when some pairs were
        there already, a second statement brings back those whose event was reached again.
        """
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
        # Only this table is written here: flushing everything would run the pending writes
        # and recomputations of the user's action here, query by query. (The queue itself is
        # being written: the override's own flush of it finds it empty.)
        self.flush_model()
        self.env.cr.execute(SQL(_insert_statement(field, len(rows)), *params))
        written = self.env.cr.fetchall()
        if len(written) < len(rows):
            inserted = {record_id for _row_id, record_id in written}
            again = [row for row in rows if row[field] not in inserted]
            written += self._metrika_requeue(field, again, now)
        return self.browse(row_id for row_id, _record_id in written)

    @api.model
    def _metrika_requeue(self, field, rows, now):
        """Bring back the rows of ``rows`` (already queued) whose event was reached again.

        A row comes back when it is no longer pending and another event of its record happened
        after it: an order cancelled and then confirmed again must end "in progress" at
        Metrica, not "cancelled". Returns (id, record id) of the rows brought back.
        """
        values = [
            (
                row[field],
                row["event"],
                row["event_date"],
                None if row.get("revenue") is False else row.get("revenue"),
                row["order_status"],
                row["next_attempt_at"],
            )
            for row in rows
            if row.get("state") == const.STATE_PENDING
        ]
        if not values:
            return []
        self.env.cr.execute(
            SQL(
                """UPDATE metrika_conversion AS conversion
                  SET state = 'pending', event_date = again.event_date,
                      revenue = again.revenue::numeric, order_status = again.order_status,
                      next_attempt_at = again.next_attempt_at, attempt_count = 0,
                      failure_reason = NULL, last_error = NULL,
                      write_uid = %(uid)s, write_date = %(now)s
                 FROM (VALUES %(values)s)
                      AS again(record_id, event, event_date, revenue, order_status, next_attempt_at)
                WHERE conversion.%(field)s = again.record_id
                  AND conversion.event = again.event
                  AND conversion.state IN ('sent', 'skipped', 'error')
                  -- Reached again since the row was written: the cron may find a flag that
                  -- was written out already (set again by a transaction that had read it).
                  AND conversion.event_date < again.event_date
                  -- A goal hit reaches Metrica at most once (a manager's Resend aside): goal
                  -- hits have no order to update, a second one would be counted again.
                  AND NOT (conversion.state = 'sent' AND conversion.transport = %(offline)s)
                  AND EXISTS (
                      SELECT 1 FROM metrika_conversion later
                       WHERE later.%(field)s = conversion.%(field)s
                         AND later.event != conversion.event
                         AND later.event_date > conversion.event_date)
            RETURNING conversion.id, conversion.%(field)s""",
                uid=self.env.uid,
                now=now,
                offline=const.TRANSPORT_OFFLINE,
                values=SQL(", ").join(SQL("%s", row) for row in values),
                field=SQL.identifier(field),
            )
        )
        requeued = self.env.cr.fetchall()
        self.browse(row_id for row_id, _record_id in requeued).invalidate_recordset()
        return requeued

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
        triggers per slot and process, instead of one per confirmed order."""
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

    @api.model
    def _metrika_trigger_at(self, when):
        """Wake the cron at ``when`` (a retry or a check that falls due), unless a trigger for
        about that time is already waiting (Odoo's triggers are precise to a minute anyway)."""
        cron = self.env.ref(const.CRON_XMLID, raise_if_not_found=False)
        if not cron:
            return
        self.env.cr.execute(
            SQL(
                "SELECT 1 FROM ir_cron_trigger WHERE cron_id = %s AND call_at > %s "
                "AND call_at <= %s LIMIT 1",
                cron.id,
                max(fields.Datetime.now(), when - timedelta(seconds=30)),
                when,
            )
        )
        if not self.env.cr.fetchone():
            cron.sudo()._trigger(at=when)

    # ------------------------------------------------------------------
    # Operator actions
    # ------------------------------------------------------------------

    def _check_manager(self):
        """Managers change conversions through these actions only: they have no write access.

        The actions write as superuser, so the manager must at least be allowed to read the rows
        (the multi-company rule), not just hold ids of another company's conversions.
        """
        if not self.env.user.has_group("metrika_offline_conversions.group_metrika_manager"):
            raise AccessError(_("Only Yandex Metrica managers may resend conversions."))
        self.check_access("read")

    def action_resend(self):
        """Send these conversions again at the next upload, whatever happened to them before."""
        self._check_manager()
        self._metrika_reset_to_pending()
        return True

    @api.model
    def _metrika_retry_skipped(self, domain, contact_only=False):
        """Rows of ``domain`` skipped for want of an identifier go back to the queue.

        With ``contact_only`` (a phone or an e-mail arrived, no ClientID or yclid), only CRM
        orders rows: goal-based conversions need a click. Rows still without an identifier at
        the next upload are skipped again.
        """
        domain = [
            *domain,
            ("state", "=", const.STATE_SKIPPED),
            ("failure_reason", "=", const.REASON_NO_IDENTIFIER),
        ]
        if contact_only:
            domain.append(("transport", "=", const.TRANSPORT_SIMPLE_ORDERS))
        self.sudo().search(domain)._metrika_reset_to_pending()

    def _metrika_reset_to_pending(self):
        # A row being sent stays with its upload: it is settled by what Metrica did with it.
        rows = self.filtered(lambda conversion: conversion.state != const.STATE_SENDING)
        if not rows:
            return
        rows.sudo().write(
            {
                "state": const.STATE_PENDING,
                "failure_reason": False,
                "last_error": False,
                "metrika_result": False,
                "metrika_result_detail": False,
                "upload_id": False,
                "next_attempt_at": fields.Datetime.now(),
                "attempt_count": 0,
            }
        )
        rows._metrika_trigger_upload()

    def action_cancel(self):
        self._check_manager()
        # A row being sent (or already sent) is for Metrica to settle, not for a manager.
        self.filtered(
            lambda c: c.state not in (const.STATE_SENT, const.STATE_SENDING)
        ).sudo().write(
            {
                "state": const.STATE_CANCELLED,
            }
        )
        return True

    @api.model
    def _metrika_wake_companies(self, companies):
        """Rows of ``companies`` that wait for their settings or access become due now.

        For ``res.company.write`` when the connection settings change: without it, rows
        postponed for incomplete settings wait up to an hour after the fix.
        """
        if not companies:
            return
        now = fields.Datetime.now()
        self._metrika_flush_all()
        self.env.cr.execute(
            SQL(
                "UPDATE metrika_conversion SET next_attempt_at = %s "
                "WHERE company_id = ANY(%s) AND state = 'pending' "
                "AND failure_reason IN %s AND next_attempt_at > %s",
                now,
                companies.ids,
                const.WAITING_FOR_ADMIN_REASONS,
                now,
            )
        )
        if self.env.cr.rowcount:
            self.invalidate_model(["next_attempt_at"])
            self._metrika_trigger_upload()

    # ------------------------------------------------------------------
    # Upload (cron)
    # ------------------------------------------------------------------

    @api.model
    def _cron_upload(self):
        """One step of the upload: write the rows of the events queued on records (up to a
        batch of records), or else settle open uploads, poll and send one batch (UploadRun).

        Odoo's scheduler calls it again at once while ``_notify_progress`` reports work left
        (up to ten times a run, committing after each call), and the cron is triggered for the
        next retry or check that falls due.
        """
        written = self._metrika_write_flagged(const.MAX_BATCH_SIZE)
        if written:
            # The rows are committed before anything is sent: the next call sends them.
            self.env["ir.cron"]._notify_progress(done=written, remaining=written)
            return written
        done = UploadRun(self.env).run()
        # The scheduler only needs to know whether to call again: a large queue is not counted
        # whole after every batch.
        remaining = self._metrika_due_count(limit=const.MAX_BATCH_SIZE) if done else 0
        self.env["ir.cron"]._notify_progress(done=done, remaining=remaining)
        if not remaining:
            # The last call of the run: wake the cron for what falls due later.
            self._metrika_schedule_next()
        return done

    @api.model
    def _metrika_schedule_next(self):
        """Trigger the cron when the earliest retry, settlement or status check falls due."""
        now = fields.Datetime.now()
        self._metrika_flush_all()
        self.env.cr.execute(
            SQL(
                """SELECT MIN(at) FROM (
                       SELECT MIN(next_attempt_at) AS at FROM metrika_conversion
                        WHERE state = 'pending' AND next_attempt_at > %(now)s
                       UNION ALL
                       SELECT MIN(settle_after) FROM metrika_upload
                        WHERE state IN %(open)s AND settle_after > %(now)s
                       UNION ALL
                       SELECT MIN(next_poll_at) FROM metrika_upload
                        WHERE next_poll_at > %(now)s) AS due""",
                now=now,
                open=const.UPLOAD_OPEN_STATES,
            )
        )
        when = self.env.cr.fetchone()[0]
        if when:
            self._metrika_trigger_at(when)

    def _metrika_due_where(self):
        return SQL(
            "conversion.state = 'pending' AND conversion.next_attempt_at <= %s "
            "AND company.metrika_enabled AND NOT COALESCE(company.metrika_paused, FALSE)",
            fields.Datetime.now(),
        )

    @api.model
    def _metrika_due_groups(self):
        self._metrika_flush_all()
        # One probe per company and upload method (the due condition leaves out the companies
        # that do not send), each stopping at its first due row on the due index: a large
        # queue is not read whole on every call of the cron.
        # (LATERAL ... LIMIT 1, because PostgreSQL plans an EXISTS on a large queue as a hash
        # of every pending row; ordered as the index is, so that rows waiting for a later retry
        # are not read either.)
        self.env.cr.execute(
            SQL(
                "SELECT company.id, method.transport "
                "FROM res_company company CROSS JOIN (VALUES %s) AS method(transport) "
                "CROSS JOIN LATERAL (SELECT 1 FROM metrika_conversion conversion "
                "WHERE conversion.company_id = company.id "
                "AND conversion.transport = method.transport AND %s "
                "ORDER BY conversion.next_attempt_at LIMIT 1) AS due "
                "ORDER BY 1, 2",
                SQL(", ").join(SQL("(%s)", method) for method, _label in const.TRANSPORT_SELECTION),
                self._metrika_due_where(),
            )
        )
        companies = self.env["res.company"].sudo()
        return [
            (companies.browse(company_id), transport)
            for company_id, transport in self.env.cr.fetchall()
        ]

    @api.model
    def _metrika_due_count(self, limit=None):
        """How many conversions are due now (counting no further than ``limit``)."""
        self._metrika_flush_all()
        self.env.cr.execute(
            SQL(
                "SELECT COUNT(*) FROM (SELECT 1 FROM metrika_conversion conversion "
                "JOIN res_company company ON company.id = conversion.company_id WHERE %s%s) due",
                self._metrika_due_where(),
                SQL(" LIMIT %s", limit) if limit else SQL(),
            )
        )
        return self.env.cr.fetchone()[0]

    @api.model
    def _metrika_lock_due_batch(self, company, transport):
        """Take and lock the next batch; rows another worker holds are skipped, not waited for.

        The rows due first go first, in the order of the due index: ordered by id, PostgreSQL
        walked the primary key through every row already sent when its statistics were older
        than the drain of a large queue (a batch took 70 ms instead of 2 at 100,000 rows).
        """
        rows = self._metrika_execute_locking(
            SQL(
                "SELECT id FROM metrika_conversion "
                "WHERE company_id = %s AND transport = %s AND state = 'pending' "
                "AND next_attempt_at <= %s "
                "ORDER BY next_attempt_at, id LIMIT %s FOR UPDATE SKIP LOCKED",
                company.id,
                transport,
                fields.Datetime.now(),
                company.metrika_batch_size or const.DEFAULT_BATCH_SIZE,
            )
        )
        return self.sudo().browse(row_id for (row_id,) in rows)

    @api.model
    def _metrika_execute_locking(self, query):
        """Run a row-locking query; ``[]`` when a concurrent run changed those rows meanwhile.

        Odoo's transactions are REPEATABLE READ: a row that another worker updated and committed
        after this transaction's snapshot cannot be locked here ("could not serialize access").
        That worker has settled the row, so there is nothing for us to take now; the next call
        (a fresh snapshot) will see the queue as it is.
        """
        self._metrika_flush_all()
        try:
            with self.env.cr.savepoint(flush=False):
                self.env.cr.execute(query, log_exceptions=False)
                return self.env.cr.fetchall()
        except (psycopg2.errors.SerializationFailure, psycopg2.errors.LockNotAvailable):
            _logger.info(
                "Metrica: conversions were changed by a concurrent upload; left to the next run"
            )
            return []

    @api.model
    def _metrika_postpone_due(self, company, transport, reason, message, when):
        """The rest of the company's due rows wait until ``when`` too (Metrica, the network or
        the quota refuses every request for now); the failed batch already waits."""
        rows = self._metrika_execute_locking(
            SQL(
                "SELECT id FROM metrika_conversion "
                "WHERE company_id = %s AND transport = %s AND state = 'pending' "
                "AND next_attempt_at <= %s FOR UPDATE SKIP LOCKED",
                company.id,
                transport,
                fields.Datetime.now(),
            )
        )
        waiting = self.sudo().browse(row_id for (row_id,) in rows)
        waiting._metrika_update(
            [
                SQL("failure_reason = %s", reason),
                SQL("last_error = %s", message),
                SQL("next_attempt_at = %s", when),
            ]
        )
        waiting._metrika_note_window()

    def _metrika_record(self):
        self.ensure_one()
        return self.sale_order_id or self.lead_id

    # ------------------------------------------------------------------
    # State changes (set-based, so a batch costs the same queries whatever its size)
    # ------------------------------------------------------------------

    def _metrika_update(self, assignments):
        if not self:
            return
        self._metrika_flush_all()
        self.env.cr.execute(
            SQL(
                "UPDATE metrika_conversion SET %s, write_date = %s, write_uid = %s "
                "WHERE id = ANY(%s)",
                SQL(", ").join(assignments),
                fields.Datetime.now(),
                self.env.uid,
                self.ids,
            )
        )
        self.invalidate_recordset()

    def _metrika_mark_sending(self, upload):
        """Part of ``upload``, committed before its request: no other run takes them. One
        statement marks them and lists them among the upload's conversions."""
        if not self:
            return
        self._metrika_flush_all()
        self.env.cr.execute(
            SQL(
                """WITH marked AS (
                       UPDATE metrika_conversion
                          SET state = %(sending)s, upload_id = %(upload)s,
                              metrika_result = NULL, metrika_result_detail = NULL,
                              write_date = %(now)s, write_uid = %(uid)s
                        WHERE id = ANY(%(ids)s)
                    RETURNING id)
                   INSERT INTO metrika_conversion_metrika_upload_rel (upload_id, conversion_id)
                   SELECT %(upload)s, id FROM marked
                   ON CONFLICT DO NOTHING""",
                sending=const.STATE_SENDING,
                upload=upload.id,
                now=fields.Datetime.now(),
                uid=self.env.uid,
                ids=self.ids,
            )
        )
        self.invalidate_recordset()
        upload.invalidate_recordset(["conversion_ids"])

    def _metrika_mark_sent(self, result, detail=None):
        self._metrika_update(
            [
                SQL("state = %s", const.STATE_SENT),
                SQL("sent_at = %s", fields.Datetime.now()),
                SQL("failure_reason = NULL"),
                SQL("last_error = NULL"),
                SQL("metrika_result = %s", result),
                SQL("metrika_result_detail = %s", detail),
                SQL("attempt_count = COALESCE(attempt_count, 0) + 1"),
            ]
        )

    def _metrika_mark_result(self, result, detail):
        """What Metrica did with the file of these sent conversions, once it says."""
        self._metrika_update(
            [SQL("metrika_result = %s", result), SQL("metrika_result_detail = %s", detail)]
        )

    def _metrika_mark_final(self, state, reason, message, attempted=False):
        """Settle rows that will not be retried by themselves; ``message=None`` keeps theirs."""
        assignments = [
            SQL("state = %s", state),
            SQL("failure_reason = %s", reason),
            SQL("upload_id = NULL"),
            SQL("last_error = %s", message)
            if message is not None
            else SQL("last_error = last_error"),
        ]
        if attempted:
            assignments.append(SQL("attempt_count = COALESCE(attempt_count, 0) + 1"))
        self._metrika_update(assignments)
        if state == const.STATE_ERROR:
            self._metrika_note_window()

    def _metrika_mark_retry(self, reason, message, when):
        """A failed attempt: back to the queue until ``when``."""
        self._metrika_update(
            [
                SQL("state = %s", const.STATE_PENDING),
                SQL("upload_id = NULL"),
                SQL("failure_reason = %s", reason),
                SQL("last_error = %s", message),
                SQL("attempt_count = COALESCE(attempt_count, 0) + 1"),
                SQL("next_attempt_at = %s", when),
            ]
        )
        self._metrika_note_window()

    def _metrika_mark_waiting(self, reason, message, hours=0):
        """Not the rows' fault (settings, access): they wait, attempts untouched, until an
        administrator fixes it (the fix wakes them) or ``hours`` have passed."""
        assignments = [
            SQL("state = %s", const.STATE_PENDING),
            SQL("upload_id = NULL"),
            SQL("failure_reason = %s", reason),
            SQL("last_error = %s", message),
        ]
        if hours:
            assignments.append(
                SQL("next_attempt_at = %s", fields.Datetime.now() + timedelta(hours=hours))
            )
        self._metrika_update(assignments)
        self._metrika_note_window()

    def _metrika_mark_waiting_on_upload(self, reason, message):
        """Their upload's answer was lost: they stay with it until Metrica says whether it
        stored the file."""
        self._metrika_update([SQL("failure_reason = %s", reason), SQL("last_error = %s", message)])

    def _metrika_mark_pending_again(self):
        """Their upload was not stored (or is harmless to repeat): they go out again now."""
        self._metrika_update(
            [
                SQL("state = %s", const.STATE_PENDING),
                SQL("upload_id = NULL"),
                SQL("next_attempt_at = %s", fields.Datetime.now()),
            ]
        )

    def _metrika_note_goal(self, goals):
        """The goal each goal-based conversion is sent with (a goal hit is one per goal)."""
        for event, goal in goals.items():
            rows = self.filtered(lambda c, event=event: c.event == event)
            rows._metrika_update([SQL("metrika_goal = %s", goal or None)])

    def _metrika_note_window(self):
        """Until when Metrica takes each of these rows, after the rules in const.py."""
        if not self:
            return
        self.env.cr.execute(
            SQL(
                """UPDATE metrika_conversion AS conversion
                      SET window_closes_at = CASE
                          WHEN conversion.transport = %(offline)s
                              THEN conversion.event_date + %(visit)s * INTERVAL '1 day'
                          WHEN EXISTS (
                              SELECT 1 FROM metrika_conversion sent
                               WHERE sent.metrika_order_id = conversion.metrika_order_id
                                 AND sent.sent_at IS NOT NULL)
                              THEN conversion.order_create_date + %(update)s * INTERVAL '1 day'
                          ELSE conversion.order_create_date + %(link)s * INTERVAL '1 day'
                      END
                    WHERE conversion.id = ANY(%(ids)s)""",
                offline=const.TRANSPORT_OFFLINE,
                visit=const.OFFLINE_VISIT_WINDOW_DAYS,
                update=const.CRM_LINKED_ORDER_UPDATE_DAYS,
                link=const.CRM_NEW_ORDER_LINK_DAYS,
                ids=self.ids,
            )
        )
        self.invalidate_recordset(["window_closes_at"])


# (database, slot end) of the upload triggers this process has committed; see _metrika_trigger_slot.
_TRIGGERED_SLOTS = set()


def _remember_slot(key):
    _TRIGGERED_SLOTS.add(key)
    # Older slots are of no use any more; keep the set small.
    for old in [item for item in _TRIGGERED_SLOTS if item[1] < key[1]]:
        _TRIGGERED_SLOTS.discard(old)
