import csv
import io
import logging
import threading
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import psycopg2.errors

from odoo import _, api, fields, models
from odoo.exceptions import AccessError
from odoo.tools import SQL

from .. import const
from ..metrika_core import errors as metrika_errors
from ..metrika_core import formats
from ..metrika_core.retry import RetryPolicy

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
RETRY_POLICY = RetryPolicy()
# Where a transaction keeps what it queued until the rows are written (see _metrika_enqueue).
QUEUE_KEY = "metrika_conversion_queue"


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
    lead_id = fields.Many2one("crm.lead", string="Lead", readonly=True, ondelete="set null")
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
        [
            (const.TRANSPORT_SIMPLE_ORDERS, "CRM orders (simplified)"),
            (const.TRANSPORT_OFFLINE, "Goal-based offline conversions"),
        ],
        required=True,
        readonly=True,
    )
    state = fields.Selection(
        [
            (const.STATE_PENDING, "Pending"),
            (const.STATE_SENT, "Sent"),
            (const.STATE_ERROR, "Error"),
            (const.STATE_SKIPPED, "Skipped"),
            (const.STATE_CANCELLED, "Cancelled"),
        ],
        default=const.STATE_PENDING,
        required=True,
        readonly=True,
    )
    failure_reason = fields.Selection(
        [
            ("no_identifier", "No identifier"),
            ("no_goal", "No goal set"),
            ("too_old", "Too old"),
            ("record_deleted", "Record deleted"),
            ("invalid_data", "Invalid data"),
            ("settings", "Settings incomplete"),
            ("auth", "Access refused"),
            ("bad_request", "Rejected by Metrica"),
            ("quota", "Quota exceeded"),
            ("server", "Metrica unavailable"),
            ("network", "Network error"),
            ("unexpected", "Unexpected answer"),
        ],
        readonly=True,
    )
    last_error = fields.Text(readonly=True)
    attempt_count = fields.Integer(readonly=True, default=0)
    next_attempt_at = fields.Datetime(
        string="Next attempt", readonly=True, default=fields.Datetime.now
    )
    sent_at = fields.Datetime(string="Sent on", readonly=True)
    unconfirmed_upload_id = fields.Many2one(
        "metrika.upload",
        string="Upload to confirm",
        readonly=True,
        ondelete="set null",
        help="A goal-based upload whose answer was lost (timeout, dropped connection, server "
        "error): Metrica may have stored it, so it is looked up before these rows are sent "
        "again.",
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
        # The cron's only query on a large queue: keep it on a small partial index.
        self.env.cr.execute(
            SQL(
                "CREATE INDEX IF NOT EXISTS metrika_conversion_pending_index "
                "ON metrika_conversion (company_id, transport, id) WHERE state = 'pending'"
            )
        )

    # ------------------------------------------------------------------
    # Enqueueing (runs inside the salesperson's transaction)
    # ------------------------------------------------------------------

    @api.model
    def _metrika_enqueue(self, records, event):
        """Queue ``event`` for every record of ``records`` (sale orders or leads).

        The rows are written in the same transaction, at the latest when it commits and before
        anything reads the queue (``_search``, ``flush_model``): one INSERT for all an action
        queued, instead of work inside every confirmation. Idempotent per record and event (a
        unique constraint decides, so concurrent transactions cannot queue twice), and never
        raises into the user's action: a record that cannot be prepared gets an ``error`` row
        that says why. When a record went back to an event it had already reached (an order
        cancelled, then confirmed again), that event's row is queued again, so Metrica ends
        with the record's current status.
        """
        if not records:
            return
        precommit = self.env.cr.precommit
        queue = precommit.data.get(QUEUE_KEY)
        if queue is None:
            queue = precommit.data[QUEUE_KEY] = {}
            env = self.env
            precommit.add(lambda: env["metrika.conversion"]._metrika_flush_queue())
        for record in records:
            queue.setdefault((record._name, record.id, event), True)

    @api.model
    def _metrika_flush_queue(self):
        """Write the conversions this transaction queued; return the rows created or re-queued."""
        queue = self.env.cr.precommit.data.pop(QUEUE_KEY, None)
        if not queue:
            return self.browse()
        grouped = {}
        for model, record_id, event in queue:
            grouped.setdefault((model, event), []).append(record_id)
        written = self.browse()
        for (model, event), record_ids in grouped.items():
            # Records deleted since they were queued left the queue then (see the mixin's unlink).
            # As superuser: see the mixin's _metrika_conversion_base_values.
            written |= self._metrika_write_rows(self.env[model].sudo().browse(record_ids), event)
        return written

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
    def _metrika_write_rows(self, records, event):
        rows = []
        for record in records:
            try:
                values = record._metrika_conversion_values(event)
            except Exception as err:  # noqa: BLE001 - a salesperson's action must go through
                _logger.exception("Metrica: cannot prepare %s of %s", event, record)
                values = self._metrika_failed_values(record, event, err)
            if values:
                rows.append(values)
        if not rows:
            return self.browse()
        queued = self._metrika_insert(records._metrika_conversion_field, rows)
        if queued:
            # Neither field is stored: nothing to flush first.
            records.invalidate_recordset(
                ["metrika_conversion_ids", "metrika_conversion_count"], flush=False
            )
            self._metrika_trigger_upload()
        return queued

    @api.model
    def _metrika_failed_values(self, record, event, err):
        """An ``error`` row saying why ``record`` could not be prepared, with as much of its
        description as can still be read; None (logged) when not even that can be built."""
        failure = {
            "state": const.STATE_ERROR,
            "failure_reason": "invalid_data",
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
        # and recomputations of the user's action here, query by query.
        super().flush_model()
        field_sql = SQL.identifier(field)
        self.env.cr.execute(
            SQL(
                "%s %s ON CONFLICT (%s, event) DO NOTHING RETURNING id, %s",
                INSERT_INTO,
                SQL(", ".join([INSERT_ROW] * len(rows)), *params),
                field_sql,
                field_sql,
            )
        )
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
                  AND EXISTS (
                      SELECT 1 FROM metrika_conversion later
                       WHERE later.%(field)s = conversion.%(field)s
                         AND later.event != conversion.event
                         AND later.event_date > conversion.event_date)
            RETURNING conversion.id, conversion.%(field)s""",
                uid=self.env.uid,
                now=now,
                values=SQL(", ").join(SQL("%s", row) for row in values),
                field=SQL.identifier(field),
            )
        )
        requeued = self.env.cr.fetchall()
        self.browse(row_id for row_id, _record_id in requeued).invalidate_recordset()
        return requeued

    @api.model
    def _metrika_trigger_upload(self):
        """Wake the upload cron when this transaction commits.

        The trigger is set for the end of the current time slot, so that one trigger serves
        every transaction committed in the slot: each process creates at most one per slot and
        database, instead of one per confirmed order.
        """
        precommit = self.env.cr.precommit
        if precommit.data.get("metrika_trigger_upload"):
            return
        precommit.data["metrika_trigger_upload"] = True
        env = self.env
        precommit.add(lambda: env["metrika.conversion"]._metrika_trigger_slot())

    @api.model
    def _metrika_trigger_slot(self):
        slot = -(-int(time.time()) // const.TRIGGER_SLOT_SECONDS) * const.TRIGGER_SLOT_SECONDS
        key = (self.env.cr.dbname, slot)
        if key in _TRIGGERED_SLOTS:
            return
        cron = self.env.ref(const.CRON_XMLID, raise_if_not_found=False)
        if not cron:
            return
        cron.sudo()._trigger(at=datetime.fromtimestamp(slot, timezone.utc).replace(tzinfo=None))
        # Remembered only once committed: a rolled-back trigger does not count.
        self.env.cr.postcommit.add(lambda: _remember_slot(key))

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
            ("failure_reason", "=", "no_identifier"),
        ]
        if contact_only:
            domain.append(("transport", "=", const.TRANSPORT_SIMPLE_ORDERS))
        self.sudo().search(domain)._metrika_reset_to_pending()

    def _metrika_reset_to_pending(self):
        if not self:
            return
        self.sudo().write(
            {
                "state": const.STATE_PENDING,
                "failure_reason": False,
                "last_error": False,
                "next_attempt_at": fields.Datetime.now(),
                "attempt_count": 0,
            }
        )
        self._metrika_trigger_upload()

    def action_cancel(self):
        self._check_manager()
        self.filtered(lambda c: c.state != const.STATE_SENT).sudo().write(
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
                "AND failure_reason IN ('settings', 'auth') AND next_attempt_at > %s",
                now,
                companies.ids,
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
        """Send due conversions, one HTTP request per batch, per company and transport."""
        auto_commit = not getattr(threading.current_thread(), "testing", False)
        started = time.monotonic()
        done = 0
        for company, transport in self._metrika_due_groups():
            # Batches go in id order; a row this run already handled (and left due, e.g. on a
            # test cursor that never commits) is never taken twice.
            after_id = 0
            while time.monotonic() - started < const.CRON_TIME_BUDGET_SECONDS:
                if company.metrika_paused:
                    # Access refused earlier in this run: nothing of this company is sent
                    # (and no administrator is alerted twice) until the token is fixed.
                    break
                batch = self._metrika_lock_due_batch(company, transport, after_id)
                if not batch and auto_commit:
                    # Look again from a fresh snapshot: rows a concurrent run settled after
                    # ours began cannot be locked in this transaction (nothing is pending
                    # here: the last batch was committed).
                    self.env.cr.commit()
                    batch = self._metrika_lock_due_batch(company, transport, after_id)
                if not batch:
                    break
                after_id = max(batch.ids)
                error = batch._metrika_upload_batch_guarded(company, transport)
                done += len(batch)
                if isinstance(error, metrika_errors.MetrikaQuotaError):
                    # The quota is the account's: every other request would be refused too.
                    self._metrika_postpone_due(company, transport, error)
                if auto_commit:
                    self.env.cr.commit()
                if error is not None:
                    break
        remaining = self._metrika_due_count()
        self.env["ir.cron"]._notify_progress(done=done, remaining=remaining)
        if auto_commit:
            self.env.cr.commit()
        return done

    def _metrika_due_where(self):
        return SQL(
            "conversion.state = 'pending' AND conversion.next_attempt_at <= %s "
            "AND company.metrika_enabled AND NOT COALESCE(company.metrika_paused, FALSE)",
            fields.Datetime.now(),
        )

    @api.model
    def _metrika_due_groups(self):
        self._metrika_flush_all()
        self.env.cr.execute(
            SQL(
                "SELECT DISTINCT conversion.company_id, conversion.transport "
                "FROM metrika_conversion conversion "
                "JOIN res_company company ON company.id = conversion.company_id "
                "WHERE %s ORDER BY 1, 2",
                self._metrika_due_where(),
            )
        )
        companies = self.env["res.company"].sudo()
        return [
            (companies.browse(company_id), transport)
            for company_id, transport in self.env.cr.fetchall()
        ]

    @api.model
    def _metrika_due_count(self):
        self._metrika_flush_all()
        self.env.cr.execute(
            SQL(
                "SELECT COUNT(*) FROM metrika_conversion conversion "
                "JOIN res_company company ON company.id = conversion.company_id WHERE %s",
                self._metrika_due_where(),
            )
        )
        return self.env.cr.fetchone()[0]

    @api.model
    def _metrika_lock_due_batch(self, company, transport, after_id=0):
        """Take and lock the next batch; rows another worker holds are skipped, not waited for."""
        rows = self._metrika_execute_locking(
            SQL(
                "SELECT id FROM metrika_conversion "
                "WHERE company_id = %s AND transport = %s AND state = 'pending' "
                "AND next_attempt_at <= %s AND id > %s "
                "ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED",
                company.id,
                transport,
                fields.Datetime.now(),
                after_id,
                company.metrika_batch_size or const.DEFAULT_BATCH_SIZE,
            )
        )
        return self.sudo().browse(row_id for (row_id,) in rows)

    @api.model
    def _metrika_execute_locking(self, query):
        """Run a row-locking query; ``[]`` when a concurrent run changed those rows meanwhile.

        Odoo's transactions are REPEATABLE READ: a row that another worker updated and committed
        after this transaction's snapshot cannot be locked here ("could not serialize access").
        That worker has settled the row, so there is nothing for us to take now; the next run
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
    def _metrika_postpone_due(self, company, transport, error):
        """Make the rest of the company's due rows wait as long as Metrica asked (quota).

        The refused batch itself already waits (it is no longer due).
        """
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
        waiting._metrika_mark_postponed(
            _retry_reason(error),
            self.env["res.company"]._metrika_error_text(error),
            delay=RETRY_POLICY.delay_for(1, error),
        )

    def _metrika_upload_batch_guarded(self, company, transport):
        """Like ``_metrika_upload_batch``, but a bug in one batch never stops the queue behind it."""
        try:
            with self.env.cr.savepoint():
                return self._metrika_upload_batch(company, transport)
        except Exception as err:  # noqa: BLE001 - recorded on the rows, which stay resendable
            _logger.exception(
                "Metrica: a batch of %s conversions of company %s failed unexpectedly",
                len(self),
                company.id,
            )
            self._metrika_mark_final(
                const.STATE_ERROR,
                "unexpected",
                _(
                    "Sending failed on an unexpected error (%s); see the server log, then resend.",
                    type(err).__name__,
                ),
            )
            return None

    def _metrika_upload_batch(self, company, transport):
        """Send this batch; return the error that should stop the company's sending, or None.

        Never raises for anything Metrica or the settings can cause: every outcome is recorded
        on the rows (and on a ``metrika.upload`` when a request was attempted).
        """
        company = company.sudo()
        sendable = self._metrika_drop_unsendable()
        if not sendable:
            return None
        settings_message = _(
            "Set the Metrica counter ID and OAuth token in Settings to send conversions."
        )
        if not company._metrika_is_configured():
            sendable._metrika_mark_postponed("settings", settings_message, delay=3600)
            return None
        try:
            client = company._metrika_client()
        except ValueError as err:
            # e.g. a token pasted with a space or a line break inside; never echo the value.
            _logger.warning("Metrica settings of company %s are unusable: %s", company.id, err)
            sendable._metrika_mark_postponed(
                "settings",
                _(
                    "The Metrica settings cannot be used (%(reason)s). %(hint)s",
                    reason=err,
                    hint=settings_message,
                ),
                delay=3600,
            )
            return None
        try:
            if transport == const.TRANSPORT_OFFLINE:
                try:
                    sendable = sendable._metrika_confirm_lost_uploads(client)
                except metrika_errors.MetrikaError as error:
                    sendable._metrika_mark_failed(company, error)
                    return error if _stops_sending(error) else None
                return sendable._metrika_send_offline(company, client) if sendable else None
            try:
                time_zone = company._metrika_counter_time_zone(client)
            except metrika_errors.MetrikaError as error:
                # Reading the counter failed before any file was sent: log the attempt, so
                # that the failure is visible and an access alert has a record to live on.
                upload = sendable._metrika_create_upload(company, transport, row_count=0)
                upload._metrika_record_failure(error, client.last_elapsed or 0.0)
                sendable._metrika_mark_failed(company, error, upload=upload)
                _logger.warning(
                    "Metrica: reading counter of company %s failed: %s (HTTP %s)",
                    company.id,
                    type(error).__name__,
                    error.status,
                )
                return error if _stops_sending(error) else None
            return sendable._metrika_send_simple_orders(company, client, time_zone)
        finally:
            client.close()

    def _metrika_drop_unsendable(self):
        """Settle rows that can never be sent; return the rest."""
        gone = self.filtered(lambda c: not (c.sale_order_id or c.lead_id))
        gone._metrika_mark_final(
            const.STATE_ERROR,
            "record_deleted",
            _("The lead or sale order was deleted before it could be sent."),
        )
        limit = fields.Datetime.now() - timedelta(days=const.CONVERSION_WINDOW_DAYS)
        too_old = (self - gone).filtered(lambda c: c.event_date and c.event_date < limit)
        too_old._metrika_mark_final(
            const.STATE_SKIPPED,
            "too_old",
            _(
                "Metrica only links conversions of the last %s days; this one is older.",
                const.CONVERSION_WINDOW_DAYS,
            ),
        )
        return self - gone - too_old

    # -- simple_orders --------------------------------------------------

    def _metrika_send_simple_orders(self, company, client, time_zone):
        hashed = company.metrika_hash_identifiers
        latest = self._metrika_latest_per_order()
        orders = []
        without_identifier = self.browse()
        for conversion in self:
            current = latest.get(conversion.metrika_order_id, conversion)
            identifiers = conversion._metrika_record()._metrika_identifiers()
            if not (identifiers["client_ids"] or identifiers["emails"] or identifiers["phones"]):
                without_identifier |= conversion
                continue
            orders.append((conversion, current._metrika_simple_order(identifiers)))
        without_identifier._metrika_mark_final(
            const.STATE_SKIPPED,
            "no_identifier",
            _("Neither a ClientID nor a phone or e-mail is known for this record."),
        )
        if not orders:
            return None
        rows, invalid, data = self._metrika_build_rows(
            orders, lambda items: formats.build_simple_orders_csv(items, time_zone, hashed=hashed)
        )
        invalid._metrika_mark_final(const.STATE_ERROR, "invalid_data", None)
        if not rows:
            return None
        conversions = self.browse(conversion.id for conversion, _order in rows)
        return conversions._metrika_send_file(
            company,
            const.TRANSPORT_SIMPLE_ORDERS,
            data,
            # SAVE with stable order ids: sending again after a lost answer changes nothing.
            lambda _upload: client.upload_simple_orders(data),
        )

    def _metrika_latest_per_order(self):
        """For each Metrica order id in this batch, the conversion that carries its current state.

        A batch may hold an older event only (e.g. a retried "created" after "paid" went out);
        Metrica must still get the latest status, since every upload replaces the order.
        """
        self.env.cr.execute(
            SQL(
                "SELECT DISTINCT ON (metrika_order_id) metrika_order_id, id "
                "FROM metrika_conversion WHERE metrika_order_id = ANY(%s) "
                "AND state IN ('pending', 'sent') "
                "ORDER BY metrika_order_id, event_date DESC, id DESC",
                list(set(self.mapped("metrika_order_id"))),
            )
        )
        rows = self.env.cr.fetchall()
        records = self.browse(row_id for _order_id, row_id in rows)
        return {order_id: record for (order_id, _row_id), record in zip(rows, records)}

    def _metrika_simple_order(self, identifiers):
        self.ensure_one()
        return formats.SimpleOrder(
            id=self.metrika_order_id,
            create_date_time=self.order_create_date.replace(tzinfo=timezone.utc),
            order_status=self.order_status,
            client_ids=tuple(identifiers["client_ids"]),
            emails=tuple(identifiers["emails"]),
            phones=tuple(identifiers["phones"]),
            revenue=self._metrika_decimal_revenue(),
            currency=self.currency_id.name if self.revenue else None,
        )

    def _metrika_decimal_revenue(self):
        if not self.revenue:
            return None
        return Decimal(
            str(self.currency_id.round(self.revenue) if self.currency_id else self.revenue)
        )

    # -- goal-based offline conversions ----------------------------------

    def _metrika_send_offline(self, company, client):
        goals = {
            const.EVENT_IN_PROGRESS: company.metrika_goal_in_progress,
            const.EVENT_PAID: company.metrika_goal_paid,
            const.EVENT_CANCELLED: company.metrika_goal_cancelled,
        }
        by_column = {"ClientId": [], "Yclid": []}
        no_goal = no_click = self.browse()
        for conversion in self:
            goal = goals.get(conversion.event)
            if not goal:
                no_goal |= conversion
                continue
            identifiers = conversion._metrika_record()._metrika_identifiers()
            if identifiers["client_ids"]:
                column, identifier = "ClientId", identifiers["client_ids"][0]
            elif identifiers["yclids"]:
                column, identifier = "Yclid", identifiers["yclids"][0]
            else:
                no_click |= conversion
                continue
            by_column[column].append(
                (
                    conversion,
                    formats.OfflineConversion(
                        identifier=identifier,
                        target=goal,
                        date_time=conversion.event_date.replace(tzinfo=timezone.utc),
                        price=conversion._metrika_decimal_revenue()
                        if conversion.event == const.EVENT_PAID
                        else None,
                        currency=conversion.currency_id.name
                        if conversion.event == const.EVENT_PAID and conversion.revenue
                        else None,
                    ),
                )
            )
        no_goal._metrika_mark_final(
            const.STATE_SKIPPED,
            "no_goal",
            _("No Metrica goal is set in Settings for this event."),
        )
        no_click._metrika_mark_final(
            const.STATE_SKIPPED,
            "no_identifier",
            _("Goal-based conversions need a ClientID or a yclid; this record has neither."),
        )
        stop = None
        for column, items in by_column.items():
            if not items:
                continue
            rows, invalid, data = self._metrika_build_rows(
                items, lambda part, col=column: formats.build_offline_conversions_csv(part, col)
            )
            invalid._metrika_mark_final(const.STATE_ERROR, "invalid_data", None)
            if not rows:
                continue
            conversions = self.browse(conversion.id for conversion, _item in rows)
            if stop is not None:
                # The first file was refused for the whole account (access or quota): this one
                # would be too. Its rows wait with the same reason, without a request.
                conversions._metrika_mark_waiting(stop)
                continue
            stop = conversions._metrika_send_file(
                company,
                const.TRANSPORT_OFFLINE,
                data,
                lambda upload, data=data: client.upload_offline_conversions(
                    data, comment=upload._metrika_comment()
                ),
            )
        return stop

    def _metrika_confirm_lost_uploads(self, client):
        """Rows whose last goal-based upload lost its answer: was it stored after all?

        Goal hits have no idempotency key, so sending them again blindly could count them
        twice. Each such upload carries a unique comment; if Metrica lists it, its rows are
        sent. Returns the rows still to send.
        """
        unconfirmed = self.filtered("unconfirmed_upload_id")
        if not unconfirmed:
            return self
        for upload in unconfirmed.unconfirmed_upload_id:
            rows = unconfirmed.filtered(lambda c, upload=upload: c.unconfirmed_upload_id == upload)
            uploading = client.find_offline_uploading(upload._metrika_comment())
            if uploading:
                upload._metrika_record_success(uploading, upload.duration)
                rows._metrika_mark_sent()
                _logger.info("Metrica upload %s was stored although its answer was lost", upload.id)
        self._metrika_update([SQL("unconfirmed_upload_id = NULL")])
        return self.filtered(lambda c: c.state == const.STATE_PENDING)

    # -- shared ----------------------------------------------------------

    def _metrika_build_rows(self, items, build):
        """Keep the (conversion, row) pairs the file builder accepts; the others get its reason.

        Builders refuse a whole file for one bad row, so on failure each row is tried alone:
        one broken record never holds back the rest of the batch. Returns
        ``(accepted pairs, refused conversions, file of the accepted rows or None)``.
        """
        try:
            return items, self.browse(), build([row for _conversion, row in items])
        except ValueError:
            pass
        accepted = []
        invalid = self.browse()
        for conversion, row in items:
            try:
                build([row])
            except ValueError as err:
                conversion.last_error = _("Metrica would refuse this conversion: %s", err)
                invalid |= conversion
            else:
                accepted.append((conversion, row))
        data = build([row for _conversion, row in accepted]) if accepted else None
        return accepted, invalid, data

    def _metrika_record(self):
        self.ensure_one()
        return self.sale_order_id or self.lead_id

    def _metrika_create_upload(self, company, transport, row_count):
        return (
            self.env["metrika.upload"]
            .sudo()
            .create(
                {
                    "company_id": company.id,
                    "transport": transport,
                    "conversion_ids": [(6, 0, self.ids)],
                    "row_count": row_count,
                }
            )
        )

    def _metrika_send_file(self, company, transport, data, send):
        """One HTTP request: send ``data``, log it as a metrika.upload, settle these rows.

        Returns the error when it should stop the company's sending for now (access refused,
        quota), else None.
        """
        # Rows of the file, not conversions: two events of one order are one CSV row.
        row_count = max(sum(1 for _row in csv.reader(io.StringIO(data.decode("utf-8")))) - 1, 0)
        upload = self._metrika_create_upload(company, transport, row_count)
        upload._metrika_attach_file(data)
        started = time.monotonic()
        try:
            uploading = send(upload)
        except metrika_errors.MetrikaError as error:
            upload._metrika_record_failure(error, time.monotonic() - started)
            self._metrika_mark_failed(company, error, upload=upload)
            if transport == const.TRANSPORT_OFFLINE and error.maybe_accepted:
                self._metrika_update([SQL("unconfirmed_upload_id = %s", upload.id)])
            _logger.warning(
                "Metrica upload %s for company %s failed: %s (HTTP %s, retryable %s)",
                upload.id,
                company.id,
                type(error).__name__,
                error.status,
                error.retryable,
            )
            return error if _stops_sending(error) else None
        upload._metrika_record_success(uploading, time.monotonic() - started)
        self._metrika_mark_sent()
        _logger.info(
            "Metrica upload %s for company %s: %s conversions sent in %.2fs",
            upload.id,
            company.id,
            len(self),
            time.monotonic() - started,
        )
        return None

    # -- state changes (set-based, so a batch costs the same queries whatever its size) --

    def _metrika_update(self, assignments):
        if not self:
            return
        self._metrika_flush_all()
        self.env.cr.execute(
            SQL(
                "UPDATE metrika_conversion SET %s, write_date = %s, write_uid = %s WHERE id = ANY(%s)",
                SQL(", ").join(assignments),
                fields.Datetime.now(),
                self.env.uid,
                self.ids,
            )
        )
        self.invalidate_recordset()

    def _metrika_mark_sent(self):
        self._metrika_update(
            [
                SQL("state = %s", const.STATE_SENT),
                SQL("sent_at = %s", fields.Datetime.now()),
                SQL("failure_reason = NULL"),
                SQL("last_error = NULL"),
                SQL("attempt_count = COALESCE(attempt_count, 0) + 1"),
            ]
        )

    def _metrika_mark_final(self, state, reason, message):
        """Settle rows that will not be retried by themselves; ``message=None`` keeps theirs."""
        self._metrika_update(
            [
                SQL("state = %s", state),
                SQL("failure_reason = %s", reason),
                SQL("last_error = %s", message)
                if message is not None
                else SQL("last_error = last_error"),
            ]
        )

    def _metrika_mark_postponed(self, reason, message, delay):
        self._metrika_update(
            [
                SQL("failure_reason = %s", reason),
                SQL("last_error = %s", message),
                SQL("next_attempt_at = %s", fields.Datetime.now() + timedelta(seconds=delay)),
            ]
        )

    def _metrika_mark_waiting(self, error):
        """Rows not attempted because the account is refused for now: same reason, no attempt."""
        message = self.env["res.company"]._metrika_error_text(error)
        if isinstance(error, metrika_errors.MetrikaAuthError):
            self._metrika_update([SQL("failure_reason = 'auth'"), SQL("last_error = %s", message)])
        else:
            self._metrika_mark_postponed(
                _retry_reason(error), message, delay=RETRY_POLICY.delay_for(1, error)
            )

    def _metrika_mark_failed(self, company, error, upload=None):
        message = self.env["res.company"]._metrika_error_text(error)
        if isinstance(error, metrika_errors.MetrikaAuthError):
            # Not the rows' fault: they wait, untouched, until the access is fixed.
            company._metrika_pause(message)
            (upload or self.env["metrika.upload"])._metrika_alert_administrators(company, message)
            self._metrika_update([SQL("failure_reason = 'auth'"), SQL("last_error = %s", message)])
        elif error.retryable:
            attempt = max(self.mapped("attempt_count") or [0]) + 1
            delay = RETRY_POLICY.delay_for(attempt, error)
            self._metrika_update(
                [
                    SQL("failure_reason = %s", _retry_reason(error)),
                    SQL("last_error = %s", message),
                    SQL("attempt_count = COALESCE(attempt_count, 0) + 1"),
                    SQL("next_attempt_at = %s", fields.Datetime.now() + timedelta(seconds=delay)),
                ]
            )
        else:
            reason = (
                "unexpected"
                if isinstance(error, metrika_errors.MetrikaUnexpectedResponseError)
                else "bad_request"
            )
            self._metrika_update(
                [
                    SQL("state = %s", const.STATE_ERROR),
                    SQL("failure_reason = %s", reason),
                    SQL("last_error = %s", message),
                    SQL("attempt_count = COALESCE(attempt_count, 0) + 1"),
                ]
            )


def _stops_sending(error):
    """Errors that concern the whole account, not this file: stop sending for this run."""
    return isinstance(error, (metrika_errors.MetrikaAuthError, metrika_errors.MetrikaQuotaError))


# (database, slot end) of the upload triggers this process has committed; see _metrika_trigger_slot.
_TRIGGERED_SLOTS = set()


def _remember_slot(key):
    _TRIGGERED_SLOTS.add(key)
    # Older slots are of no use any more; keep the set small.
    for old in [item for item in _TRIGGERED_SLOTS if item[1] < key[1]]:
        _TRIGGERED_SLOTS.discard(old)


def _retry_reason(error):
    if isinstance(error, metrika_errors.MetrikaQuotaError):
        return "quota"
    if isinstance(error, metrika_errors.MetrikaServerError):
        return "server"
    if isinstance(error, metrika_errors.MetrikaTransportError):
        return "network"
    return "unexpected"
