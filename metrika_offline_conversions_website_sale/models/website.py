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

    # The tag may set its cookie after the cart exists, and a yclid may come later: the cart
    # takes what it lacks. The cart is the order once confirmed, so the order keeps them.
    # Every shop page asks the website for the current cart: 18.0 with sale_get_order(),
    # 19.0 with _get_and_cache_current_cart() (request.cart). Each override is called by its
    # own series only; the other series has no such method to call it.

    def sale_get_order(self, *args, **kwargs):
        order = super().sale_get_order(*args, **kwargs)
        self._metrika_fill_cart(order)
        return order

    def _get_and_cache_current_cart(self):
        order = super()._get_and_cache_current_cart()
        self._metrika_fill_cart(order)
        return order

    def _metrika_fill_cart(self, order):
        # A read-only request (19.0 serves some shop pages so) cannot write: the next one will.
        if order and request and not request.env.cr.readonly:
            metrika_capture.fill_missing(order, metrika_capture.request_identifiers(request))
