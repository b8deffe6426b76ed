from odoo import models
from odoo.http import request

from odoo.addons.metrika_offline_conversions.tools import metrika_capture


class Website(models.Model):
    _inherit = "website"

    def _prepare_sale_order_values(self, partner_sudo):
        # A new cart takes the visitor's identifiers in its INSERT: no query of its own.
        values = super()._prepare_sale_order_values(partner_sudo)
        values.update(metrika_capture.request_identifiers(request))
        return values

    def sale_get_order(self, *args, **kwargs):
        # The tag may set its cookie after the cart exists, and a yclid may come later: the cart
        # takes what it lacks. The cart is the order once confirmed, so the order keeps them.
        order = super().sale_get_order(*args, **kwargs)
        if order:
            metrika_capture.fill_missing(order, metrika_capture.request_identifiers(request))
        return order
