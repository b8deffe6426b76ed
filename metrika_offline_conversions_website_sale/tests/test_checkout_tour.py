from odoo.tests import tagged

from odoo.addons.metrika_offline_conversions.tools import odoo_compat
from odoo.addons.metrika_offline_conversions_website.tests.common import CLIENT_ID

from .common import MetrikaShopCase


@tagged("post_install", "-at_install")
class TestCheckoutTour(MetrikaShopCase):
    """A public visitor buys through the real shop pages in headless Chromium."""

    def setUp(self):
        super().setUp()
        self.assert_browser_available()

    def test_public_checkout_ends_with_the_client_id_on_the_order(self):
        self.start_tour(
            "/shop",
            odoo_compat.tour_variant("metrika_public_checkout"),
            cookies={"_ym_uid": CLIENT_ID},
        )
        order = self.cart()
        self.assertRecordValues(
            order,
            [
                {
                    "state": "sale",
                    "website_id": self.website.id,
                    "metrika_client_id": CLIENT_ID,
                }
            ],
        )
        self.assertEqual(order.partner_id.email, "anna@example.ru")
