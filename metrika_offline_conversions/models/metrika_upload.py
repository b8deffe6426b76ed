import json
import logging
import uuid
from datetime import timedelta

from odoo import _, api, fields, models
from odoo.tools import SQL

from .. import const
from ..metrika_core import errors as metrika_errors
from ..metrika_core.client import offline_upload_comment
from ..tools import metrika_messages, odoo_compat
from ..tools.metrika_retention import prune_in_batches, retention_cutoff

_logger = logging.getLogger(__name__)

UPLOAD_STATE_SELECTION = [
    (const.UPLOAD_SENDING, "Sending"),
    (const.UPLOAD_UNCONFIRMED, "Answer lost"),
    (const.UPLOAD_ACCEPTED, "Accepted"),
    (const.UPLOAD_PROCESSED, "Processed"),
    (const.UPLOAD_NOT_LINKED, "Not linked"),
    (const.UPLOAD_PROCESSING_TIMEOUT, "Not processed in time"),
    (const.UPLOAD_FAILED, "Failed"),
    (const.UPLOAD_LOST, "Not stored, sent again"),
    (const.UPLOAD_KEPT, "Dry run: kept, not sent"),
    (const.UPLOAD_RELEASED, "To send for real"),
]


class MetrikaUpload(models.Model):
    _name = "metrika.upload"
    _description = "Yandex Metrica upload"
    _inherit = ["mail.thread", "mail.activity.mixin"]
    _order = "id desc"

    company_id = fields.Many2one("res.company", required=True, readonly=True, index=True)
    transport = fields.Selection(
        const.TRANSPORT_SELECTION, string="Upload method", required=True, readonly=True
    )
    state = fields.Selection(
        UPLOAD_STATE_SELECTION,
        default=const.UPLOAD_SENDING,
        required=True,
        readonly=True,
        index=True,
    )
    conversion_ids = fields.Many2many(
        "metrika.conversion",
        "metrika_conversion_metrika_upload_rel",
        "upload_id",
        "conversion_id",
        string="Conversions",
        readonly=True,
    )
    row_count = fields.Integer(string="Rows", readonly=True)
    attachment_id = fields.Many2one("ir.attachment", string="File sent", readonly=True)
    comment = fields.Char(
        string="Reference",
        readonly=True,
        copy=False,
        help="Sent with goal-based files: how the upload is found again in Metrica when its "
        "answer was lost.",
    )
    settle_after = fields.Datetime(
        string="Check after",
        readonly=True,
        help="An upload still sending, or whose answer was lost, is settled after this time: "
        "looked up in Metrica (goal-based) or sent again (CRM orders).",
    )
    http_status = fields.Integer(string="HTTP status", readonly=True)
    uploading_id = fields.Char(string="Metrica uploading ID", readonly=True)
    metrika_status = fields.Char(string="Status at Metrica", readonly=True)
    validation_status = fields.Char(readonly=True)
    validation_errors = fields.Text(readonly=True)
    source_quantity = fields.Integer(string="Rows received", readonly=True)
    line_quantity = fields.Integer(string="Rows accepted", readonly=True)
    refused_quantity = fields.Integer(
        string="Rows refused", compute="_compute_refused_quantity", store=True
    )
    linked_quantity = fields.Integer(string="Rows linked", readonly=True)
    goal_not_found_quantity = fields.Integer(string="Goal not found", readonly=True)
    user_not_found_quantity = fields.Integer(string="Visitor not found", readonly=True)
    next_poll_at = fields.Datetime(string="Next status check", readonly=True)
    poll_deadline = fields.Datetime(string="Processing deadline", readonly=True)
    result_summary = fields.Char(string="What Metrica did", readonly=True)
    error_message = fields.Text(string="Error", readonly=True)
    response = fields.Text(string="Metrica's answer", readonly=True)
    duration = fields.Float(string="Duration (s)", readonly=True, digits=(16, 3))

    def init(self):
        # Every cron call looks for open uploads and for uploads to poll: keep both cheap.
        self.env.cr.execute(
            "CREATE INDEX IF NOT EXISTS metrika_upload_open_index "
            "ON metrika_upload (settle_after) WHERE state IN ('sending', 'unconfirmed')"
        )
        self.env.cr.execute(
            "CREATE INDEX IF NOT EXISTS metrika_upload_poll_index "
            "ON metrika_upload (next_poll_at) WHERE next_poll_at IS NOT NULL"
        )

    @api.depends("source_quantity", "line_quantity")
    def _compute_refused_quantity(self):
        for upload in self:
            upload.refused_quantity = max(upload.source_quantity - upload.line_quantity, 0)

    @api.depends("transport", "create_date")
    def _compute_display_name(self):
        labels = dict(self._fields["transport"]._description_selection(self.env))
        for upload in self:
            upload.display_name = _(
                "%(transport)s upload #%(id)s", transport=labels.get(upload.transport), id=upload.id
            )

    @api.model
    def _metrika_new_reference(self):
        """A comment Metrica accepts (Latin letters and digits) and no other upload has, in this
        database or any other sending to the same counter (a staging copy, a second Odoo)."""
        return offline_upload_comment(uuid.uuid4().hex[:24])

    def _metrika_open_rows(self):
        """The conversions still held by this upload (being sent, or waiting for its answer)."""
        self.ensure_one()
        return self.conversion_ids.filtered(
            lambda conversion: (
                conversion.upload_id == self and conversion.state == const.STATE_SENDING
            )
        )

    def _metrika_attach_file(self, data):
        self.ensure_one()
        self.attachment_id = (
            self.env["ir.attachment"]
            .sudo()
            .create(
                {
                    "name": f"metrika_{self.transport}_{self.id}.csv",
                    "raw": data,
                    "mimetype": "text/csv",
                    "res_model": self._name,
                    "res_id": self.id,
                }
            )
        )

    # ------------------------------------------------------------------
    # Outcomes
    # ------------------------------------------------------------------

    def _metrika_record_answer(self, uploading, duration, state):
        """Metrica stored the file: keep its answer and counts."""
        self.ensure_one()
        uploading = uploading or {}
        values = {
            "state": state,
            "http_status": 200,
            "settle_after": False,
            "uploading_id": str(uploading.get("uploading_id") or uploading.get("id") or ""),
            "validation_status": uploading.get("api_validation_status") or False,
            "response": json.dumps(uploading, ensure_ascii=False, indent=1),
            "duration": duration,
        }
        values.update(self._metrika_uploading_counts(uploading))
        self.write(values)

    @api.model
    def _metrika_uploading_counts(self, uploading):
        """The counts and status of a goal-based uploading, as fields of an upload."""
        values = {}
        if uploading.get("status"):
            values["metrika_status"] = uploading["status"]
        for fname in (
            "source_quantity",
            "line_quantity",
            "linked_quantity",
            "goal_not_found_quantity",
            "user_not_found_quantity",
        ):
            if isinstance(uploading.get(fname), int):
                values[fname] = uploading[fname]
        return values

    def _metrika_record_failure(self, error, duration, state=const.UPLOAD_FAILED):
        self.ensure_one()
        values = {
            "state": state,
            "http_status": error.status or 0,
            "error_message": metrika_messages.error_text(self.env, error),
            "duration": duration,
        }
        if state != const.UPLOAD_UNCONFIRMED:
            values["settle_after"] = False
        if isinstance(error, metrika_errors.MetrikaValidationError):
            uploading = error.uploading or {}
            values.update(
                http_status=200,
                uploading_id=str(uploading.get("uploading_id") or ""),
                validation_status=uploading.get("api_validation_status"),
                validation_errors="\n".join(error.errors),
                response=json.dumps(uploading, ensure_ascii=False, indent=1),
            )
        elif isinstance(error, metrika_errors.MetrikaBadRequestError) and error.errors:
            values["validation_errors"] = "\n".join(error.errors)
        self.write(values)

    def _metrika_alert_administrators(self, company, message):
        """One activity per administrator of the company while sending waits for them: a run
        that finds the same fault again adds none. Each summary is in its administrator's
        language; the alerts are found again by their type, never by that text."""
        if not self:
            return
        alert_type = self.env.ref(const.SETTINGS_ALERT_ACTIVITY_TYPE)
        admins = odoo_compat.group_users(self.env.ref("base.group_system")).filtered(
            lambda user: not user.share and company in user.company_ids
        )
        already = self._metrika_alerts(company).user_id
        for user in admins - already:
            self.activity_schedule(
                activity_type_id=alert_type.id,
                summary=alert_type.with_context(lang=user.lang).summary,
                note=message,
                user_id=user.id,
            )

    @api.model
    def _metrika_close_alerts(self, company):
        """The settings were fixed: the activities asking for it are done."""
        self._metrika_alerts(company).unlink()

    @api.model
    def _metrika_alerts(self, company):
        """The open activities asking the company's administrators to fix the settings: of the
        alert type, on one of the company's uploads (a subquery, not a list of their ids)."""
        alert_type = self.env.ref(const.SETTINGS_ALERT_ACTIVITY_TYPE)
        return (
            self.env["mail.activity"]
            .sudo()
            .search(
                [
                    ("activity_type_id", "=", alert_type.id),
                    ("res_model", "=", self._name),
                    ("res_id", "in", self.sudo()._search([("company_id", "=", company.id)])),
                ]
            )
        )

    @api.autovacuum
    def _gc_uploaded_files(self):
        """Remove sent files after the retention period each company set; keep the log lines."""
        self._metrika_drop_old_files("attachment_id", "uploaded files")

    def _metrika_drop_old_files(self, field_name, what):
        """Unlink the attachments in ``field_name`` of the uploads older than their company's
        retention, except open, kept and released ones (their file is still to go)."""
        for company in self.env["res.company"].sudo().search([]):
            limit = fields.Datetime.now() - timedelta(
                days=company.metrika_upload_retention_days or const.DEFAULT_UPLOAD_RETENTION_DAYS
            )
            old = self.sudo().search(
                [
                    ("company_id", "=", company.id),
                    ("create_date", "<", limit),
                    (field_name, "!=", False),
                    ("state", "not in", const.UPLOAD_OPEN_STATES + const.UPLOAD_HELD_STATES),
                ]
            )
            if old:
                attachments = old[field_name]
                old.write({field_name: False})
                attachments.unlink()
                _logger.info(
                    "Metrica: removed %s %s of company %s", len(attachments), what, company.id
                )

    @api.autovacuum
    def _gc_closed_uploads(self):
        """Delete the uploads Metrica has answered (neither open nor still polled) that have not
        changed for their company's sync log retention, with their files and chatter. An upload
        an administrator still has an open activity on (a settings alert) is kept."""
        total = prune_in_batches(self.env, self._metrika_prune_batch)
        if total:
            _logger.info("Metrica: removed %s closed uploads from the sync log", total)

    @api.model
    def _metrika_prune_batch(self, limit):
        """Delete up to ``limit`` prunable uploads; return how many. Uploads a transaction holds
        (a worker settling or polling them) are skipped, not waited for."""
        self.env.flush_all()
        self.env.cr.execute(
            SQL(
                """SELECT upload.id
                     FROM metrika_upload upload
                     JOIN res_company company ON company.id = upload.company_id
                    WHERE upload.state NOT IN %(open)s
                      AND upload.next_poll_at IS NULL
                      AND %(old)s
                      AND NOT EXISTS (
                          SELECT 1 FROM mail_activity activity
                           WHERE activity.res_model = %(model)s
                             AND activity.res_id = upload.id
                             AND activity.active)
                    LIMIT %(limit)s
                      FOR UPDATE OF upload SKIP LOCKED""",
                open=const.UPLOAD_OPEN_STATES + const.UPLOAD_HELD_STATES,
                old=retention_cutoff("upload", fields.Datetime.now()),
                model=self._name,
                limit=limit,
            )
        )
        uploads = self.sudo().browse(upload_id for (upload_id,) in self.env.cr.fetchall())
        # The ORM's unlink: their files, messages, followers and done activities go with them;
        # their lines in the conversions' many2many by ON DELETE CASCADE.
        uploads.unlink()
        return len(uploads)
