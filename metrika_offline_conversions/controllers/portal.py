"""A customer signing or paying a quotation in the portal brings their Metrica identifiers."""

from odoo.http import request, route

from odoo.addons.sale.controllers import portal

from ..tools import metrika_capture


def _capture_on_order(order_id):
    identifiers = metrika_capture.request_identifiers(request)
    if identifiers:
        order = request.env["sale.order"].sudo().browse(order_id).exists()
        metrika_capture.fill_missing(order, identifiers)


class CustomerPortal(portal.CustomerPortal):
    @route()
    def portal_quote_accept(self, order_id, access_token=None, name=None, signature=None):
        result = super().portal_quote_accept(
            order_id, access_token=access_token, name=name, signature=signature
        )
        # Only once the access check and the signature went through.
        if isinstance(result, dict) and not result.get("error"):
            _capture_on_order(order_id)
        return result


class PaymentPortal(portal.PaymentPortal):
    @route()
    def portal_order_transaction(self, order_id, access_token, **kwargs):
        # super() checks the access token and raises when it is wrong.
        result = super().portal_order_transaction(order_id, access_token, **kwargs)
        _capture_on_order(order_id)
        return result
