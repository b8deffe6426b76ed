"""A "Connect to Yandex" the administrator started and has not finished yet.

What the server must keep between the two halves of a flow, and nobody else may read: the
PKCE verifier and the state of the authorization-code flow (bound to the administrator, their
session and the company), or the device code of the device flow. Only the addon's code reads
it (``sudo``); each is used once and forgotten after const.OAUTH_REQUEST_MINUTES.
"""

import hashlib
from datetime import timedelta

from odoo import api, fields, models

from .. import const


def session_hash(session_key):
    """What is kept of the browser session that started a flow (never the session id)."""
    return hashlib.sha256(session_key.encode("utf-8")).hexdigest() if session_key else False


class MetrikaOauthRequest(models.Model):
    _name = "metrika.oauth.request"
    _description = "Yandex OAuth connection in progress"

    company_id = fields.Many2one("res.company", required=True, ondelete="cascade", index=True)
    user_id = fields.Many2one("res.users", required=True, ondelete="cascade")
    flow = fields.Selection(
        [(const.OAUTH_FLOW_CODE, "Redirect"), (const.OAUTH_FLOW_DEVICE, "Code")], required=True
    )
    state_token = fields.Char(index=True, copy=False)
    session_hash = fields.Char(copy=False)
    code_verifier = fields.Char(copy=False)
    redirect_uri = fields.Char(string="Redirect URI")
    device_code = fields.Char(copy=False)
    user_code = fields.Char()
    verification_url = fields.Char(string="Verification URL")
    expires_at = fields.Datetime(required=True)

    @api.model
    def _metrika_expiry(self, minutes=const.OAUTH_REQUEST_MINUTES):
        return fields.Datetime.now() + timedelta(minutes=minutes)

    @api.model
    def _metrika_live(self, domain):
        """The requests matching ``domain`` that have not expired."""
        return self.sudo().search([*domain, ("expires_at", ">", fields.Datetime.now())])

    @api.autovacuum
    def _gc_expired_requests(self):
        self.sudo().search([("expires_at", "<=", fields.Datetime.now())]).unlink()
