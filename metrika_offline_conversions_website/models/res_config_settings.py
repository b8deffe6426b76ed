from odoo import api, fields, models

from .. import const


class ResConfigSettings(models.TransientModel):
    _inherit = "res.config.settings"

    metrika_website_tag = fields.Boolean(related="company_id.metrika_website_tag", readonly=False)
    metrika_consent_rule = fields.Selection(
        [
            (
                const.CONSENT_RULE_ASKED,
                "The website asks for cookie consent: identifiers are captured only from "
                "visitors who accepted optional cookies.",
            ),
            (
                const.CONSENT_RULE_NOT_ASKED,
                "The website does not ask for cookie consent: identifiers are captured from "
                "every public or portal visitor.",
            ),
        ],
        string="Consent rule in force",
        compute="_compute_metrika_consent_rule",
    )

    @api.depends("website_cookies_bar")
    def _compute_metrika_consent_rule(self):
        for settings in self:
            settings.metrika_consent_rule = (
                const.CONSENT_RULE_ASKED
                if settings.website_cookies_bar
                else const.CONSENT_RULE_NOT_ASKED
            )
