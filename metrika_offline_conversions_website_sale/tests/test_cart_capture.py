from odoo.tests import tagged

from odoo.addons.metrika_offline_conversions.tools import metrika_capture, odoo_compat
from odoo.addons.metrika_offline_conversions_website.tests.common import (
    CLIENT_ID,
    MALFORMED,
    OTHER_CLIENT_ID,
    YCLID,
)

from .common import MetrikaShopCase


@tagged("post_install", "-at_install")
class TestCartCapture(MetrikaShopCase):
    def test_public_cart_carries_both_to_the_confirmed_order(self):
        self.land("/shop")
        cart = self.add_to_cart()
        self.assertRecordValues(cart, [{"metrika_yclid": YCLID, "metrika_client_id": False}])
        # The tag sets its cookie after the cart exists: the next shop page fills it in.
        self.set_cookies(_ym_uid=CLIENT_ID)
        self.assertEqual(self.url_open("/shop/cart").status_code, 200)
        self.assertEqual(cart.metrika_client_id, CLIENT_ID)
        self.assertEqual(cart.website_id, self.website)
        cart.action_confirm()
        self.assertRecordValues(
            cart, [{"state": "sale", "metrika_client_id": CLIENT_ID, "metrika_yclid": YCLID}]
        )

    def test_cart_created_with_the_cookie_takes_it_at_once(self):
        self.set_cookies(_ym_uid=CLIENT_ID)
        cart = self.add_to_cart()
        self.assertRecordValues(cart, [{"metrika_client_id": CLIENT_ID, "metrika_yclid": False}])

    def test_an_identifier_already_there_is_not_overwritten(self):
        self.set_cookies(_ym_uid=CLIENT_ID)
        cart = self.add_to_cart()
        self.set_cookies(_ym_uid=OTHER_CLIENT_ID)
        self.url_open("/shop/cart")
        self.assertEqual(cart.metrika_client_id, CLIENT_ID)

    def test_a_shop_manager_testing_the_checkout_is_not_captured(self):
        manager = self.employee
        manager[odoo_compat.user_groups_field(self.env)] += self.env.ref(
            "sales_team.group_sale_manager"
        )
        self.authenticate(manager.login, manager.login)
        self.land("/shop")
        self.set_cookies(_ym_uid=CLIENT_ID, **{metrika_capture.YCLID_COOKIE: YCLID})
        cart = self.add_to_cart()
        self.url_open("/shop/cart")
        self.assertRecordValues(cart, [{"metrika_client_id": False, "metrika_yclid": False}])

    def test_declined_consent_captures_nothing(self):
        self.set_consent(optional=False)
        self.set_cookies(_ym_uid=CLIENT_ID, **{metrika_capture.YCLID_COOKIE: YCLID})
        cart = self.add_to_cart()
        self.url_open("/shop/cart")
        self.assertRecordValues(cart, [{"metrika_client_id": False, "metrika_yclid": False}])

    def test_malformed_cookies_are_ignored_and_the_cart_works(self):
        for junk in MALFORMED:
            with self.subTest(junk=junk):
                self.set_cookies(_ym_uid=junk, **{metrika_capture.YCLID_COOKIE: junk})
                cart = self.add_to_cart()
                self.assertEqual(self.url_open("/shop/cart").status_code, 200)
                self.assertRecordValues(
                    cart, [{"metrika_client_id": False, "metrika_yclid": False}]
                )

    def test_capture_adds_no_query_to_shop_pages(self):
        self.set_cookies(_ym_uid=CLIENT_ID, **{metrika_capture.YCLID_COOKIE: YCLID})
        cart = self.add_to_cart()
        self.assertTrue(cart.metrika_client_id and cart.metrika_yclid)

        def cart_page():
            self.assertEqual(self.url_open("/shop/cart").status_code, 200)

        def cart_page_without_cookies():
            saved = {
                name: self.opener.cookies.pop(name)
                for name in ("_ym_uid", metrika_capture.YCLID_COOKIE)
            }
            cart_page()
            self.set_cookies(**saved)

        for _warm_up in range(3):
            cart_page()
            cart_page_without_cookies()
        self.assertEqual(
            self.added_queries("cart page, cart has them", cart_page, cart_page_without_cookies), 0
        )

    def test_creating_a_cart_with_identifiers_costs_at_most_one_query(self):
        cookies = {"_ym_uid": CLIENT_ID, metrika_capture.YCLID_COOKIE: YCLID}

        def new_cart(with_cookies):
            def run():
                self.authenticate(None, None)  # a new visitor: a new session, a new cart
                if with_cookies:
                    self.set_cookies(**cookies)
                self.add_to_cart()
                for name in cookies:
                    self.opener.cookies.pop(name, None)

            return run

        for _warm_up in range(2):
            new_cart(False)()
            new_cart(True)()
        self.assertLessEqual(
            self.added_queries("first add to cart", new_cart(True), new_cart(False)), 1
        )
        self.assertEqual(
            self.env["sale.order"]
            .search([("website_id", "=", self.website.id)], order="id desc", limit=2)
            .mapped("metrika_client_id"),
            [False, CLIENT_ID],
        )

    def test_filling_a_cart_later_costs_at_most_one_query(self):
        cart = self.add_to_cart()

        def cart_page():
            self.assertEqual(self.url_open("/shop/cart").status_code, 200)

        for _warm_up in range(3):
            cart_page()

        def cart_page_with_a_new_cookie():
            self.set_cookies(_ym_uid=CLIENT_ID)
            cart_page()

        self.assertLessEqual(
            self.added_queries(
                "cart page filling the cart", cart_page_with_a_new_cookie, cart_page
            ),
            1,
        )
        self.assertEqual(cart.metrika_client_id, CLIENT_ID)
