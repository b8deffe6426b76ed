import logging
import threading
import time
from datetime import timedelta, timezone
from decimal import Decimal

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
# Columns the enqueue INSERT writes; everything else keeps its database default.
INSERT_COLUMNS = (
    "company_id", "sale_order_id", "lead_id", "record_name", "event", "order_status",
    "metrika_order_id", "order_create_date", "event_date", "revenue", "currency_id", "transport",
    "state", "failure_reason", "last_error", "next_attempt_at",
)
RETRY_POLICY = RetryPolicy()


class MetrikaConversion(models.Model):
    _name = "metrika.conversion"
    _description = "Yandex Metrica conversion"
    _order = "id desc"
    _rec_name = "record_name"

    company_id = fields.Many2one("res.company", required=True, readonly=True, index=True)
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
        required=True, readonly=True,
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
        required=True, readonly=True,
    )
    state = fields.Selection(
        [
            (const.STATE_PENDING, "Pending"),
            (const.STATE_SENT, "Sent"),
            (const.STATE_ERROR, "Error"),
            (const.STATE_SKIPPED, "Skipped"),
            (const.STATE_CANCELLED, "Cancelled"),
        ],
        default=const.STATE_PENDING, required=True, readonly=True, index=True,
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
    upload_ids = fields.Many2many(
        "metrika.upload", "metrika_conversion_metrika_upload_rel", "conversion_id", "upload_id",
        string="Uploads", readonly=True,
    )

    _sql_constraints = [
        (
            "sale_order_event_unique", "UNIQUE(sale_order_id, event)",
            "A sale order is queued at most once per event.",
        ),
        ("lead_event_unique", "UNIQUE(lead_id, event)", "A lead is queued at most once per event."),
    ]

    def init(self):
        # The cron's only query on a large queue: keep it on a small partial index.
        self.env.cr.execute(SQL(
            "CREATE INDEX IF NOT EXISTS metrika_conversion_due_index "
            "ON metrika_conversion (company_id, transport, next_attempt_at, id) "
            "WHERE state = 'pending'"
        ))

    # ------------------------------------------------------------------
    # Enqueueing (runs inside the salesperson's transaction)
    # ------------------------------------------------------------------

    @api.model
    def _metrika_enqueue(self, records, event):
        """Queue ``event`` for every record of ``records`` (sale orders or leads).

        Idempotent per record and event (a unique constraint decides, so concurrent
        transactions cannot queue twice), and never raises into the user's action: a record
        that cannot be prepared gets an ``error`` row that says why.
        """
        rows = []
        now = self.env.cr.now()
        for record in records:
            try:
                values = record._metrika_conversion_values(event)
            except Exception as err:  # noqa: BLE001 - a salesperson's action must go through
                _logger.exception("Metrica: cannot prepare %s of %s", event, record)
                values = record._metrika_conversion_base_values(event)
                values.update(
                    state=const.STATE_ERROR, failure_reason="invalid_data",
                    last_error=_("This conversion could not be prepared: %s", err),
                )
            if values:
                rows.append(values)
        if not rows:
            return self.browse()
        for row in rows:
            row.setdefault("next_attempt_at", now)
        query = SQL(
            "INSERT INTO metrika_conversion (create_uid, create_date, write_uid, write_date, %s) "
            "VALUES %s ON CONFLICT DO NOTHING RETURNING id",
            SQL(", ").join(SQL.identifier(column) for column in INSERT_COLUMNS),
            SQL(", ").join(
                SQL("%s", (self.env.uid, now, self.env.uid, now)
                    + tuple(row.get(column) or None for column in INSERT_COLUMNS))
                for row in rows
            ),
        )
        self.env.cr.execute(query)
        created = self.browse(row_id for (row_id,) in self.env.cr.fetchall())
        if created:
            records.invalidate_recordset(["metrika_conversion_ids"])
            self._metrika_trigger_upload()
        return created

    @api.model
    def _metrika_trigger_upload(self):
        """Wake the upload cron once per transaction, when it commits."""
        precommit = self.env.cr.precommit
        if precommit.data.get("metrika_trigger_upload"):
            return
        precommit.data["metrika_trigger_upload"] = True
        cron = self.env.ref(const.CRON_XMLID, raise_if_not_found=False)
        if cron:
            precommit.add(cron.sudo()._trigger)

    # ------------------------------------------------------------------
    # Operator actions
    # ------------------------------------------------------------------

    def _check_manager(self):
        if not self.env.user.has_group("metrika_offline_conversions.group_metrika_manager"):
            raise AccessError(_("Only Yandex Metrica managers may resend conversions."))

    def action_resend(self):
        """Send these conversions again at the next upload, whatever happened to them before."""
        self._check_manager()
        self._metrika_reset_to_pending()
        return True

    def _metrika_reset_to_pending(self):
        if not self:
            return
        self.sudo().write({
            "state": const.STATE_PENDING, "failure_reason": False, "last_error": False,
            "next_attempt_at": fields.Datetime.now(), "attempt_count": 0,
        })
        self._metrika_trigger_upload()

    def action_cancel(self):
        self._check_manager()
        self.filtered(lambda c: c.state != const.STATE_SENT).sudo().write({
            "state": const.STATE_CANCELLED,
        })
        return True

    # ------------------------------------------------------------------
    # Upload (cron)
    # ------------------------------------------------------------------

    @api.model
    def _cron_upload(self):
        """Send due conversions, one HTTP request per batch, per company and transport."""
        auto_commit = not getattr(threading.current_thread(), "testing", False)
        started = time.monotonic()
        done = 0
        seen = set()
        for company, transport in self._metrika_due_groups():
            while time.monotonic() - started < const.CRON_TIME_BUDGET_SECONDS:
                batch = self._metrika_lock_due_batch(company, transport, exclude=seen)
                if not batch:
                    break
                seen.update(batch.ids)
                batch._metrika_upload_batch(company, transport)
                done += len(batch)
                if auto_commit:
                    self.env.cr.commit()
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
        self.env.flush_all()
        self.env.cr.execute(SQL(
            "SELECT DISTINCT conversion.company_id, conversion.transport "
            "FROM metrika_conversion conversion "
            "JOIN res_company company ON company.id = conversion.company_id "
            "WHERE %s ORDER BY 1, 2",
            self._metrika_due_where(),
        ))
        companies = self.env["res.company"].sudo()
        return [(companies.browse(company_id), transport)
                for company_id, transport in self.env.cr.fetchall()]

    @api.model
    def _metrika_due_count(self):
        self.env.flush_all()
        self.env.cr.execute(SQL(
            "SELECT COUNT(*) FROM metrika_conversion conversion "
            "JOIN res_company company ON company.id = conversion.company_id WHERE %s",
            self._metrika_due_where(),
        ))
        return self.env.cr.fetchone()[0]

    @api.model
    def _metrika_lock_due_batch(self, company, transport, exclude=()):
        """Take and lock the next batch; rows another worker holds are skipped, not waited for."""
        self.env.flush_all()
        self.env.cr.execute(SQL(
            "SELECT id FROM metrika_conversion "
            "WHERE company_id = %s AND transport = %s AND state = 'pending' "
            "AND next_attempt_at <= %s AND NOT (id = ANY(%s)) "
            "ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED",
            company.id, transport, fields.Datetime.now(), list(exclude),
            company.metrika_batch_size or const.DEFAULT_BATCH_SIZE,
        ))
        return self.sudo().browse(row_id for (row_id,) in self.env.cr.fetchall())

    def _metrika_upload_batch(self, company, transport):
        company = company.sudo()
        sendable = self._metrika_drop_unsendable()
        if not sendable:
            return
        if not company._metrika_is_configured():
            sendable._metrika_mark_postponed(
                "settings",
                _("Set the Metrica counter ID and OAuth token in Settings to send conversions."),
                delay=3600,
            )
            return
        client = company._metrika_client()
        try:
            if transport == const.TRANSPORT_OFFLINE:
                sendable._metrika_send_offline(company, client)
            else:
                time_zone = company._metrika_counter_time_zone(client)
                sendable._metrika_send_simple_orders(company, client, time_zone)
        except metrika_errors.MetrikaError as error:
            # Reading the counter failed before any file was sent.
            sendable._metrika_mark_failed(company, error)

    def _metrika_drop_unsendable(self):
        """Settle rows that can never be sent; return the rest."""
        gone = self.filtered(lambda c: not (c.sale_order_id or c.lead_id))
        gone._metrika_mark_final(
            const.STATE_ERROR, "record_deleted",
            _("The lead or sale order was deleted before it could be sent."),
        )
        limit = fields.Datetime.now() - timedelta(days=const.CONVERSION_WINDOW_DAYS)
        too_old = (self - gone).filtered(lambda c: c.event_date and c.event_date < limit)
        too_old._metrika_mark_final(
            const.STATE_SKIPPED, "too_old",
            _("Metrica only links conversions of the last %s days; this one is older.",
              const.CONVERSION_WINDOW_DAYS),
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
            const.STATE_SKIPPED, "no_identifier",
            _("Neither a ClientID nor a phone or e-mail is known for this record."),
        )
        if not orders:
            return
        rows, invalid = self._metrika_build_rows(
            orders, lambda items: formats.build_simple_orders_csv(items, time_zone, hashed=hashed)
        )
        invalid._metrika_mark_final(const.STATE_ERROR, "invalid_data", None)
        if rows:
            conversions = self.browse(conversion.id for conversion, _order in rows)
            data = formats.build_simple_orders_csv(
                [order for _conversion, order in rows], time_zone, hashed=hashed
            )
            conversions._metrika_send_file(
                company, const.TRANSPORT_SIMPLE_ORDERS, data,
                lambda: client.upload_simple_orders(data),
            )

    def _metrika_latest_per_order(self):
        """For each Metrica order id in this batch, the conversion that carries its current state.

        A batch may hold an older event only (e.g. a retried "created" after "paid" went out);
        Metrica must still get the latest status, since every upload replaces the order.
        """
        self.env.cr.execute(SQL(
            "SELECT DISTINCT ON (metrika_order_id) metrika_order_id, id "
            "FROM metrika_conversion WHERE metrika_order_id = ANY(%s) "
            "AND state IN ('pending', 'sent') "
            "ORDER BY metrika_order_id, event_date DESC, id DESC",
            list(set(self.mapped("metrika_order_id"))),
        ))
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
        return Decimal(str(self.currency_id.round(self.revenue) if self.currency_id else self.revenue))

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
            by_column[column].append((conversion, formats.OfflineConversion(
                identifier=identifier,
                target=goal,
                date_time=conversion.event_date.replace(tzinfo=timezone.utc),
                price=conversion._metrika_decimal_revenue()
                if conversion.event == const.EVENT_PAID else None,
                currency=conversion.currency_id.name
                if conversion.event == const.EVENT_PAID and conversion.revenue else None,
            )))
        no_goal._metrika_mark_final(
            const.STATE_SKIPPED, "no_goal",
            _("No Metrica goal is set in Settings for this event."),
        )
        no_click._metrika_mark_final(
            const.STATE_SKIPPED, "no_identifier",
            _("Goal-based conversions need a ClientID or a yclid; this record has neither."),
        )
        for column, items in by_column.items():
            if not items:
                continue
            rows, invalid = self._metrika_build_rows(
                items, lambda part, col=column: formats.build_offline_conversions_csv(part, col)
            )
            invalid._metrika_mark_final(const.STATE_ERROR, "invalid_data", None)
            if not rows:
                continue
            conversions = self.browse(conversion.id for conversion, _item in rows)
            data = formats.build_offline_conversions_csv([item for _c, item in rows], column)
            conversions._metrika_send_file(
                company, const.TRANSPORT_OFFLINE, data,
                lambda data=data: client.upload_offline_conversions(
                    data, comment="Odoo offline conversions"
                ),
            )

    # -- shared ----------------------------------------------------------

    def _metrika_build_rows(self, items, build):
        """Keep the (conversion, row) pairs the file builder accepts; the others get its reason.

        Builders refuse a whole file for one bad row, so on failure each row is tried alone:
        one broken record never holds back the rest of the batch.
        """
        try:
            build([row for _conversion, row in items])
            return items, self.browse()
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
        return accepted, invalid

    def _metrika_record(self):
        self.ensure_one()
        return self.sale_order_id or self.lead_id

    def _metrika_send_file(self, company, transport, data, send):
        """One HTTP request: send ``data``, log it as a metrika.upload, settle these rows."""
        upload = self.env["metrika.upload"].sudo().create({
            "company_id": company.id,
            "transport": transport,
            "conversion_ids": [(6, 0, self.ids)],
            "row_count": len(self),
        })
        upload._metrika_attach_file(data)
        started = time.monotonic()
        try:
            uploading = send()
        except metrika_errors.MetrikaError as error:
            upload._metrika_record_failure(error, time.monotonic() - started)
            self._metrika_mark_failed(company, error, upload=upload)
            _logger.warning(
                "Metrica upload %s for company %s failed: %s (HTTP %s, retryable %s)",
                upload.id, company.id, type(error).__name__, error.status, error.retryable,
            )
            return
        upload._metrika_record_success(uploading, time.monotonic() - started)
        self._metrika_mark_sent()
        _logger.info(
            "Metrica upload %s for company %s: %s conversions sent in %.2fs",
            upload.id, company.id, len(self), time.monotonic() - started,
        )

    # -- state changes (set-based, so a batch costs the same queries whatever its size) --

    def _metrika_update(self, assignments):
        if not self:
            return
        self.env.flush_all()
        self.env.cr.execute(SQL(
            "UPDATE metrika_conversion SET %s, write_date = %s, write_uid = %s WHERE id = ANY(%s)",
            SQL(", ").join(assignments), fields.Datetime.now(), self.env.uid, self.ids,
        ))
        self.invalidate_recordset()

    def _metrika_mark_sent(self):
        self._metrika_update([
            SQL("state = %s", const.STATE_SENT),
            SQL("sent_at = %s", fields.Datetime.now()),
            SQL("failure_reason = NULL"),
            SQL("last_error = NULL"),
            SQL("attempt_count = attempt_count + 1"),
        ])

    def _metrika_mark_final(self, state, reason, message):
        """Settle rows that will not be retried by themselves; ``message=None`` keeps theirs."""
        self._metrika_update([
            SQL("state = %s", state),
            SQL("failure_reason = %s", reason),
            SQL("last_error = %s", message) if message is not None else SQL("last_error = last_error"),
        ])

    def _metrika_mark_postponed(self, reason, message, delay):
        self._metrika_update([
            SQL("failure_reason = %s", reason),
            SQL("last_error = %s", message),
            SQL("next_attempt_at = %s", fields.Datetime.now() + timedelta(seconds=delay)),
        ])

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
            self._metrika_update([
                SQL("failure_reason = %s", _retry_reason(error)),
                SQL("last_error = %s", message),
                SQL("attempt_count = attempt_count + 1"),
                SQL("next_attempt_at = %s", fields.Datetime.now() + timedelta(seconds=delay)),
            ])
        else:
            reason = (
                "unexpected" if isinstance(error, metrika_errors.MetrikaUnexpectedResponseError)
                else "bad_request"
            )
            self._metrika_update([
                SQL("state = %s", const.STATE_ERROR),
                SQL("failure_reason = %s", reason),
                SQL("last_error = %s", message),
                SQL("attempt_count = attempt_count + 1"),
            ])


def _retry_reason(error):
    if isinstance(error, metrika_errors.MetrikaQuotaError):
        return "quota"
    if isinstance(error, metrika_errors.MetrikaServerError):
        return "server"
    if isinstance(error, metrika_errors.MetrikaTransportError):
        return "network"
    return "unexpected"
