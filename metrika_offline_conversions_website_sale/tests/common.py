from odoo.addons.metrika_offline_conversions_website.tests.common import MetrikaWebsiteCase


class MetrikaShopCase(MetrikaWebsiteCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.product = cls.env["product.product"].create(
            {
                "name": "Metrika Sofa",
                # Free: the checkout confirms the order without a payment provider.
                "list_price": 0.0,
                "type": "consu",
                "website_published": True,
                "sale_ok": True,
            }
        )

    def add_to_cart(self):
        """What the product page's button does: the cart is created on the first click."""
        result = self.make_jsonrpc_request(
            "/shop/cart/update_json", {"product_id": self.product.id, "add_qty": 1}
        )
        self.assertTrue(result.get("cart_quantity"), result)
        return self.cart()

    def cart(self):
        return self.env["sale.order"].search(
            [("order_line.product_id", "=", self.product.id)], order="id desc", limit=1
        )
