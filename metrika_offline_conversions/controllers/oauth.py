"""The page Yandex OAuth sends the administrator back to after "Connect to Yandex"."""

from markupsafe import Markup, escape

from odoo import http
from odoo.exceptions import AccessError, UserError
from odoo.http import request

from .. import const

SETTINGS_URL = "/odoo/action-metrika_offline_conversions.metrika_settings_action"


class MetrikaOAuthController(http.Controller):
    @http.route(const.OAUTH_CALLBACK_PATH, type="http", auth="user", methods=["GET"])
    def metrika_oauth_callback(self, state=None, code=None, error=None, **_kwargs):
        """Exchange the code from here (the verifier never left the server), then back to
        Settings. Only the administrator who started the flow, in the same session."""
        env = request.env
        try:
            env["res.config.settings"]._metrika_check_administrator()
            env["res.company"]._metrika_oauth_finish_code_flow(
                state, code, request.session.sid, error=error
            )
        except (AccessError, UserError) as failure:
            page = Markup(
                "<!DOCTYPE html><html><body><h1>%s</h1><p>%s</p><p><a href='%s'>%s</a></p>"
                "</body></html>"
            ) % (
                env._("Yandex Metrica was not connected"),
                escape(str(failure)),
                SETTINGS_URL,
                env._("Back to Settings"),
            )
            return request.make_response(
                page, headers=[("Content-Type", "text/html; charset=utf-8")], status=400
            )
        return request.redirect(SETTINGS_URL)
