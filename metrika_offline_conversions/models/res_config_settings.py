from odoo import _, fields, models
from odoo.exceptions import UserError

from ..metrika_core.errors import MetrikaError


class ResConfigSettings(models.TransientModel):
    _inherit = "res.config.settings"

    metrika_enabled = fields.Boolean(related="company_id.metrika_enabled", readonly=False)
    metrika_counter_id = fields.Char(related="company_id.metrika_counter_id", readonly=False)
    metrika_token = fields.Char(related="company_id.metrika_token", readonly=False)
    metrika_api_url = fields.Char(related="company_id.metrika_api_url", readonly=False)
    metrika_order_event = fields.Selection(related="company_id.metrika_order_event", readonly=False)
    metrika_send_paid = fields.Boolean(related="company_id.metrika_send_paid", readonly=False)
    metrika_send_cancelled = fields.Boolean(
        related="company_id.metrika_send_cancelled", readonly=False
    )
    metrika_send_leads = fields.Boolean(related="company_id.metrika_send_leads", readonly=False)
    metrika_spam_lost_reason_ids = fields.Many2many(
        related="company_id.metrika_spam_lost_reason_ids", readonly=False
    )
    metrika_transport = fields.Selection(related="company_id.metrika_transport", readonly=False)
    metrika_goal_in_progress = fields.Char(
        related="company_id.metrika_goal_in_progress", readonly=False
    )
    metrika_goal_paid = fields.Char(related="company_id.metrika_goal_paid", readonly=False)
    metrika_goal_cancelled = fields.Char(
        related="company_id.metrika_goal_cancelled", readonly=False
    )
    metrika_hash_identifiers = fields.Boolean(
        related="company_id.metrika_hash_identifiers", readonly=False
    )
    metrika_batch_size = fields.Integer(related="company_id.metrika_batch_size", readonly=False)
    metrika_upload_retention_days = fields.Integer(
        related="company_id.metrika_upload_retention_days", readonly=False
    )
    metrika_paused = fields.Boolean(related="company_id.metrika_paused")
    metrika_pause_reason = fields.Text(related="company_id.metrika_pause_reason")

    def action_metrika_test_connection(self):
        """Read the counter with the saved settings and say what Metrica answered."""
        self.ensure_one()
        self.execute()
        company = self.company_id.sudo()
        if not (company.metrika_counter_id and company.metrika_token):
            raise UserError(_("Enter the Metrica counter ID and the OAuth token first."))
        try:
            counter = company._metrika_client().get_counter()
        except MetrikaError as error:
            raise UserError(company._metrika_error_text(error)) from None
        company.write(
            {
                "metrika_paused": False,
                "metrika_pause_reason": False,
                "metrika_counter_name": counter.get("name") or False,
                "metrika_counter_time_zone": counter.get("time_zone_name") or "UTC",
            }
        )
        return {
            "type": "ir.actions.client",
            "tag": "display_notification",
            "params": {
                "type": "success",
                "title": _("Connected to Yandex Metrica"),
                "message": _(
                    'Counter "%(name)s" (%(site)s), time zone %(time_zone)s.',
                    name=counter.get("name") or counter.get("id"),
                    site=counter.get("site") or "-",
                    time_zone=counter.get("time_zone_name") or "UTC",
                ),
                "next": {"type": "ir.actions.client", "tag": "soft_reload"},
            },
        }
