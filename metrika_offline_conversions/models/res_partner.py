from odoo import models

from .sale_order import PARTNER_CONTACT_FIELDS


class ResPartner(models.Model):
    _inherit = "res.partner"

    def write(self, vals):
        result = super().write(vals)
        if any(vals.get(fname) for fname in PARTNER_CONTACT_FIELDS):
            # Orders skipped because their customer had neither a phone nor an e-mail.
            self.env["metrika.conversion"]._metrika_retry_skipped(
                [("sale_order_id.partner_id", "in", self.ids)], contact_only=True
            )
        return result
