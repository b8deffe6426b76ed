"""The sync log: one row per conversion of a lead or a sale order (the record, its event, what
became of it at Metrica), with the operators' actions on it.

The queue that writes the rows (metrika_conversion_queue.py), the upload cron
(metrika_conversion_cron.py) and the state transitions of an upload
(metrika_conversion_state.py) extend this model, each in its own file.
"""

from datetime import timedelta

from odoo import _, api, fields, models
from odoo.exceptions import AccessError
from odoo.tools import SQL

from .. import const
from ..metrika_core import formats
from ..tools import odoo_compat

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
    (const.STATE_KEPT, "Kept (dry run)"),
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
    (const.REASON_CENTRE_ONLY, "Conversion Centre link only"),
    (const.REASON_PREFLIGHT, "Kept back by the preflight check"),
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
# Numbers the rows in the order their events were queued (or reached again): an order's row
# with the highest number carries its current status (see metrika_conversion_queue.py).
QUEUED_SEQUENCE = "metrika_conversion_queued_sequence"


# The queue's INSERT ... ON CONFLICT (column, event) needs them (metrika_conversion_queue.py).
@odoo_compat.sql_constraints(
    (
        "sale_order_event_unique",
        "UNIQUE(sale_order_id, event)",
        "A sale order is queued at most once per event.",
    ),
    ("lead_event_unique", "UNIQUE(lead_id, event)", "A lead is queued at most once per event."),
)
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
    queued_sequence = fields.Integer(
        string="Queue order",
        readonly=True,
        help="Raised each time the event is queued or reached again: of a record's conversions, "
        "the one with the highest number carries the status it has now.",
    )
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

    def init(self):
        self.env.cr.execute(
            SQL("CREATE SEQUENCE IF NOT EXISTS %s", SQL.identifier(QUEUED_SEQUENCE))
        )
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
    # Operator actions
    # ------------------------------------------------------------------

    def _metrika_check_manager(self):
        """Managers change conversions through these actions only: they have no write access.

        The actions write as superuser, so the manager must at least be allowed to read the rows
        (the multi-company rule), not just hold ids of another company's conversions.
        """
        if not self.env.user.has_group("metrika_offline_conversions.group_metrika_manager"):
            raise AccessError(_("Only Yandex Metrica managers may resend conversions."))
        self.check_access("read")

    def action_resend(self):
        """Send these conversions again at the next upload, whatever happened to them before."""
        self._metrika_check_manager()
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
            domain.append(
                ("transport", "in", (const.TRANSPORT_SIMPLE_ORDERS, const.TRANSPORT_CDP_DETAILED))
            )
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
        self._metrika_check_manager()
        # A row being sent (or already sent) is for Metrica to settle, not for a manager.
        self.filtered(
            lambda c: c.state not in (const.STATE_SENT, const.STATE_SENDING)
        ).sudo().write({"state": const.STATE_CANCELLED})
        return True

    def _metrika_record(self):
        self.ensure_one()
        return self.sale_order_id or self.lead_id
