from odoo.addons.metrika_offline_conversions_website.tests.common import MetrikaWebsiteCase
from odoo.addons.website_sale.controllers.main import WebsiteSale


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
        if hasattr(WebsiteSale, "cart_update_json"):  # 18.0
            route, params = "/shop/cart/update_json", {"product_id": self.product.id, "add_qty": 1}
        else:  # 19.0 adds to the cart with /shop/cart/add
            route, params = (
                "/shop/cart/add",
                {
                    "product_template_id": self.product.product_tmpl_id.id,
                    "product_id": self.product.id,
                    "quantity": 1,
                },
            )
        result = self.make_jsonrpc_request(route, params)
        self.assertTrue(result.get("cart_quantity"), result)
        return self.cart()

    def cart(self):
        return self.env["sale.order"].search(
            [("order_line.product_id", "=", self.product.id)], order="id desc", limit=1
        )
