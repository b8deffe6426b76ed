"""Settings → Yandex Metrica: "Connect to Yandex" and the connection health."""

from odoo import api, fields, models
from odoo.exceptions import AccessError, UserError
from odoo.http import request as http_request

from .. import const


class ResConfigSettings(models.TransientModel):
    _inherit = "res.config.settings"

    metrika_oauth_client_id = fields.Char(
        related="company_id.metrika_oauth_client_id", readonly=False
    )
    metrika_oauth_client_secret = fields.Char(
        related="company_id.metrika_oauth_client_secret", readonly=False
    )
    metrika_oauth_url = fields.Char(related="company_id.metrika_oauth_url", readonly=False)
    metrika_token_expires_at = fields.Datetime(related="company_id.metrika_token_expires_at")
    metrika_oauth_redirect_uri = fields.Char(
        string="Redirect URI", compute="_compute_metrika_oauth_redirect_uri"
    )
    metrika_oauth_user_code = fields.Char(
        string="Code to enter", compute="_compute_metrika_oauth_device"
    )
    metrika_oauth_verification_url = fields.Char(
        string="Enter it at", compute="_compute_metrika_oauth_device"
    )
    metrika_health_state = fields.Selection(
        related="metrika_health_id.state", string="Connection health"
    )
    metrika_health_checked_at = fields.Datetime(related="metrika_health_id.checked_at")
    metrika_health_message = fields.Text(related="metrika_health_id.message")
    metrika_health_id = fields.Many2one(
        "metrika.connection.health",
        string="Yandex Metrica connection",
        compute="_compute_metrika_health_id",
    )

    @api.depends("company_id")
    def _compute_metrika_oauth_redirect_uri(self):
        for settings in self:
            settings.metrika_oauth_redirect_uri = (
                settings.company_id.get_base_url() + const.OAUTH_CALLBACK_PATH
            )

    @api.depends("company_id")
    def _compute_metrika_oauth_device(self):
        for settings in self:
            request = settings.company_id._metrika_oauth_device_request()
            settings.metrika_oauth_user_code = request.user_code
            settings.metrika_oauth_verification_url = request.verification_url

    @api.depends("company_id")
    def _compute_metrika_health_id(self):
        Health = self.env["metrika.connection.health"].sudo()
        for settings in self:
            settings.metrika_health_id = Health.search(
                [("company_id", "=", settings.company_id.id)], limit=1
            )

    @api.model
    def _metrika_check_administrator(self):
        """Every action that changes the connection checks the group here, on the server: a
        button hidden in the form is no protection."""
        if not self.env.user.has_group("base.group_system"):
            raise AccessError(
                self.env._("Only administrators may change the Yandex Metrica connection.")
            )

    def _metrika_reload(self):
        return {"type": "ir.actions.client", "tag": "reload"}

    def action_metrika_oauth_connect(self):
        """Authorization-code flow: save the settings, then send the browser to Yandex."""
        self.ensure_one()
        self._metrika_check_administrator()
        self.execute()
        # Outside a browser request (a shell) there is no session, and no callback can match.
        session_key = http_request.session.sid if http_request else None
        url = self.company_id._metrika_oauth_start_code_flow(
            self.metrika_oauth_redirect_uri, session_key
        )
        return {"type": "ir.actions.act_url", "url": url, "target": "self"}

    def action_metrika_oauth_connect_device(self):
        """Device flow: save the settings, ask Yandex for a code to show."""
        self.ensure_one()
        self._metrika_check_administrator()
        self.execute()
        self.company_id._metrika_oauth_start_device_flow()
        return self._metrika_reload()

    def action_metrika_oauth_poll_device(self):
        """The administrator says they entered the code: ask Yandex once."""
        self.ensure_one()
        self._metrika_check_administrator()
        if not self.company_id._metrika_oauth_poll_device():
            raise UserError(
                self.env._(
                    "Yandex has not seen the code entered yet. Enter %(code)s at %(url)s, allow "
                    "the access, then press this button again.",
                    code=self.metrika_oauth_user_code,
                    url=self.metrika_oauth_verification_url,
                )
            )
        return self._metrika_reload()

    def action_metrika_check_connection(self):
        """Run the connection check now and show its result in Settings."""
        self.ensure_one()
        self._metrika_check_administrator()
        self.execute()
        company = self.company_id.sudo()
        if not (company.metrika_counter_id and company.metrika_token):
            raise UserError(self.env._("Enter the Metrica counter ID and the OAuth token first."))
        self.env["metrika.connection.health"]._metrika_check(company)
        return self._metrika_reload()
