import json
import logging
from datetime import timedelta

from odoo import _, api, fields, models

from .. import const
from ..metrika_core import errors as metrika_errors

_logger = logging.getLogger(__name__)


class MetrikaUpload(models.Model):
    _name = "metrika.upload"
    _description = "Yandex Metrica upload"
    _inherit = ["mail.thread", "mail.activity.mixin"]
    _order = "id desc"

    company_id = fields.Many2one("res.company", required=True, readonly=True, index=True)
    transport = fields.Selection(
        [
            (const.TRANSPORT_SIMPLE_ORDERS, "CRM orders (simplified)"),
            (const.TRANSPORT_OFFLINE, "Goal-based offline conversions"),
        ],
        required=True,
        readonly=True,
    )
    state = fields.Selection(
        [("sending", "Sending"), ("done", "Accepted"), ("failed", "Failed")],
        default="sending",
        required=True,
        readonly=True,
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
    http_status = fields.Integer(string="HTTP status", readonly=True)
    uploading_id = fields.Char(string="Metrica uploading ID", readonly=True)
    validation_status = fields.Char(readonly=True)
    validation_errors = fields.Text(readonly=True)
    error_message = fields.Text(string="Error", readonly=True)
    response = fields.Text(string="Metrica's answer", readonly=True)
    duration = fields.Float(string="Duration (s)", readonly=True, digits=(16, 3))

    @api.depends("transport", "create_date")
    def _compute_display_name(self):
        labels = dict(self._fields["transport"]._description_selection(self.env))
        for upload in self:
            upload.display_name = _(
                "%(transport)s upload #%(id)s", transport=labels.get(upload.transport), id=upload.id
            )

    def _metrika_comment(self):
        """Unique per upload: how a goal-based upload is found again when its answer was lost."""
        self.ensure_one()
        return f"Odoo upload {self.id}"

    def _metrika_attach_file(self, data):
        self.ensure_one()
        extension = "csv"
        self.attachment_id = (
            self.env["ir.attachment"]
            .sudo()
            .create(
                {
                    "name": f"metrika_{self.transport}_{self.id}.{extension}",
                    "raw": data,
                    "mimetype": "text/csv",
                    "res_model": self._name,
                    "res_id": self.id,
                }
            )
        )

    def _metrika_record_success(self, uploading, duration):
        self.ensure_one()
        uploading = uploading or {}
        self.write(
            {
                "state": "done",
                "http_status": 200,
                "uploading_id": str(uploading.get("uploading_id") or uploading.get("id") or ""),
                "validation_status": uploading.get("api_validation_status")
                or uploading.get("status"),
                "response": json.dumps(uploading, ensure_ascii=False, indent=1),
                "duration": duration,
            }
        )

    def _metrika_record_failure(self, error, duration):
        self.ensure_one()
        values = {
            "state": "failed",
            "http_status": error.status or 0,
            "error_message": self.env["res.company"]._metrika_error_text(error),
            "duration": duration,
        }
        if isinstance(error, metrika_errors.MetrikaValidationError):
            uploading = error.uploading or {}
            values.update(
                http_status=200,
                uploading_id=str(uploading.get("uploading_id") or ""),
                validation_status=uploading.get("api_validation_status"),
                validation_errors="\n".join(error.errors),
                response=json.dumps(uploading, ensure_ascii=False, indent=1),
            )
        elif getattr(error, "errors", None):
            values["validation_errors"] = "\n".join(error.errors)
        self.write(values)

    def _metrika_alert_administrators(self, company, message):
        """An activity for each administrator of the company: sending waits for them."""
        if not self:
            return
        admins = self.env.ref("base.group_system").users.filtered(
            lambda user: not user.share and company in user.company_ids
        )
        activity_type = self.env.ref("mail.mail_activity_data_todo", raise_if_not_found=False)
        for user in admins:
            self.activity_schedule(
                activity_type_id=activity_type.id if activity_type else False,
                summary=_("Yandex Metrica: fix the access"),
                note=message,
                user_id=user.id,
            )

    @api.autovacuum
    def _gc_uploaded_files(self):
        """Remove sent files after the retention period each company set; keep the log lines."""
        for company in self.env["res.company"].sudo().search([]):
            limit = fields.Datetime.now() - timedelta(
                days=company.metrika_upload_retention_days or const.DEFAULT_UPLOAD_RETENTION_DAYS
            )
            old = self.sudo().search(
                [
                    ("company_id", "=", company.id),
                    ("create_date", "<", limit),
                    ("attachment_id", "!=", False),
                ]
            )
            if old:
                attachments = old.attachment_id
                old.write({"attachment_id": False})
                attachments.unlink()
                _logger.info(
                    "Metrica: removed %s uploaded files of company %s", len(attachments), company.id
                )
