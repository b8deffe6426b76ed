from datetime import timedelta

from odoo import _, api, fields, models
from odoo.exceptions import AccessError, UserError
from odoo.tools import SQL

from .. import const
from ..metrika_core.errors import MetrikaConfigError, MetrikaError
from ..tools import metrika_messages


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
    metrika_log_retention_days = fields.Integer(
        related="company_id.metrika_log_retention_days", readonly=False
    )
    metrika_late_order_count = fields.Integer(
        string="Orders confirmed too late to link", compute="_compute_metrika_late_orders"
    )
    metrika_late_order_message = fields.Char(
        string="Late orders", compute="_compute_metrika_late_orders"
    )
    metrika_paused = fields.Boolean(related="company_id.metrika_paused")
    metrika_dry_run = fields.Boolean(related="company_id.metrika_dry_run", readonly=False)
    metrika_pause_reason = fields.Text(related="company_id.metrika_pause_reason")
    # -- Conversion Centre link --
    metrika_centre_link_enabled = fields.Boolean(
        related="company_id.metrika_centre_link_enabled", readonly=False
    )
    metrika_centre_link_url = fields.Char(
        string="Conversion Centre link address",
        compute="_compute_metrika_centre_link_url",
        groups="base.group_system",
    )

    @api.depends("company_id", "metrika_centre_link_enabled")
    def _compute_metrika_centre_link_url(self):
        for settings in self:
            company = settings.company_id.sudo()
            secret = company.metrika_centre_secret
            settings.metrika_centre_link_url = (
                secret
                and company.metrika_centre_link_enabled
                and "%s%s/%s.csv" % (company.get_base_url(), const.CENTRE_ROUTE, secret)
            )

    def action_metrika_rotate_centre_secret(self):
        """A new secret for the link: the address given to the Centre stops working at once."""
        self.ensure_one()
        # Checked here, not only by the view: the button's method can be called over RPC.
        if not self.env.user.has_group("base.group_system"):
            raise AccessError(
                self.env._("Only administrators may change the Conversion Centre link.")
            )
        self.execute()
        self.company_id._metrika_centre_rotate_secret()
        return {"type": "ir.actions.client", "tag": "reload"}

    @api.depends("company_id")
    def _compute_metrika_late_orders(self):
        """Orders of the last 90 days confirmed too late for Metrica to link them when sent at
        confirmation: what the "when created" choice would have saved."""
        self.env["sale.order"].flush_model(["company_id", "create_date", "date_order", "state"])
        for settings in self:
            self.env.cr.execute(
                SQL(
                    "SELECT COUNT(*), COUNT(*) FILTER (WHERE date_order > create_date + %s) "
                    "FROM sale_order WHERE company_id = %s AND state = 'sale' "
                    "AND date_order > NOW() AT TIME ZONE 'UTC' - INTERVAL '90 days'",
                    timedelta(days=const.CRM_NEW_ORDER_LINK_DAYS),
                    settings.company_id.id,
                )
            )
            recent, late = self.env.cr.fetchone()
            settings.metrika_late_order_count = late
            settings.metrika_late_order_message = late and _(
                "%(late)s of the %(recent)s orders confirmed in the last 90 days were confirmed "
                "more than %(days)s days after their quotation was created: sent when confirmed, "
                "Metrica can no longer link them to the visit.",
                late=late,
                recent=recent,
                days=const.CRM_NEW_ORDER_LINK_DAYS,
            )

    def action_metrika_send_orders_when_created(self):
        self.ensure_one()
        self.company_id.metrika_order_event = const.ORDER_EVENT_CREATED
        return {"type": "ir.actions.client", "tag": "reload"}

    def action_metrika_test_connection(self):
        """Read the counter with the saved settings and say what Metrica answered."""
        self.ensure_one()
        self.execute()
        company = self.company_id.sudo()
        if not (company.metrika_counter_id and company.metrika_token):
            raise UserError(_("Enter the Metrica counter ID and the OAuth token first."))
        try:
            with company._metrika_client() as client:
                counter = client.get_counter()
        except MetrikaConfigError as error:
            raise UserError(_("The Metrica settings cannot be used: %s", error)) from None
        except MetrikaError as error:
            raise UserError(metrika_messages.error_text(self.env, error)) from None
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

    # -- History sent at connection ------------------------------------------------------------

    def execute(self):
        """Once sending was turned on for the first time, saving Settings opens the history's
        preview, as the next step of connecting (the web client saves the values, which turns
        sending on, then calls this), until the administrator queues it or answers "Not now".
        Later, the history is a button."""
        result = super().execute()
        company = self.company_id.sudo()
        if (
            company.metrika_enabled
            and company.metrika_history_offer == const.HISTORY_TO_OFFER
            and any(self.env.user.has_group(group) for group in const.HISTORY_GROUPS)
        ):
            return self.env["metrika.history.wizard"]._metrika_open(self.company_id)
        return result

    def action_metrika_history(self):
        self.ensure_one()
        self.execute()
        return self.env["metrika.history.wizard"]._metrika_open(self.company_id)
