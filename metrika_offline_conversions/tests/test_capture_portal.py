from odoo.tests import HttpCase, new_test_user, tagged
from odoo.tools import mute_logger

from odoo.addons.account_payment.tests.common import AccountPaymentCommon
from odoo.addons.metrika_offline_conversions.tools import metrika_capture
from odoo.addons.payment.tests.http_common import PaymentHttpCommon
from odoo.addons.sale.tests.common import SaleCommon

from .common import CLIENT_ID

YCLID = "6754821930114400255"
OTHER_CLIENT_ID = "1700000000123456789"
# A 1x1 GIF: what the portal's signature pad sends, base64.
SIGNATURE = "R0lGODlhAQABAIAAAP///wAAACwAAAAAAQABAAACAkQBADs="


class PortalVisitorCase(HttpCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.portal_user = new_test_user(
            cls.env, login="metrika_portal", password="metrika_portal", groups="base.group_portal"
        )
        cls.employee = new_test_user(
            cls.env,
            login="metrika_salesman",
            password="metrika_salesman",
            groups="base.group_user,sales_team.group_sale_salesman",
        )
        cls.product = cls.env["product.product"].create(
            {"name": "Sofa", "list_price": 1000.0, "type": "consu"}
        )

    def set_visitor_cookies(self, client_id=CLIENT_ID, yclid=YCLID):
        self.opener.cookies.set(metrika_capture.CLIENT_ID_COOKIE, client_id)
        self.opener.cookies.set(metrika_capture.YCLID_COOKIE, yclid)


@tagged("post_install", "-at_install")
class TestPortalSignature(PortalVisitorCase):
    def quotation(self, **values):
        order = self.env["sale.order"].create(
            {
                "partner_id": self.portal_user.partner_id.id,
                "require_signature": True,
                "require_payment": False,
                "order_line": [(0, 0, {"product_id": self.product.id, "product_uom_qty": 1})],
                **values,
            }
        )
        order.action_quotation_sent()
        return order

    def sign(self, order):
        result = self.make_jsonrpc_request(
            f"/my/orders/{order.id}/accept",
            {"access_token": order._portal_ensure_token(), "name": "Anna", "signature": SIGNATURE},
        )
        self.assertFalse(result.get("error"), result)
        return result

    def test_portal_customer_signing_a_quotation(self):
        order = self.quotation()
        self.authenticate(self.portal_user.login, self.portal_user.login)
        self.set_visitor_cookies()
        self.sign(order)
        self.assertRecordValues(
            order, [{"state": "sale", "metrika_client_id": CLIENT_ID, "metrika_yclid": YCLID}]
        )

    def test_signing_keeps_an_identifier_already_there(self):
        order = self.quotation(metrika_client_id=OTHER_CLIENT_ID)
        self.authenticate(self.portal_user.login, self.portal_user.login)
        self.set_visitor_cookies()
        self.sign(order)
        self.assertRecordValues(
            order, [{"metrika_client_id": OTHER_CLIENT_ID, "metrika_yclid": YCLID}]
        )

    def test_signing_with_malformed_cookies_works_and_stores_nothing(self):
        order = self.quotation()
        self.authenticate(self.portal_user.login, self.portal_user.login)
        self.set_visitor_cookies(client_id="1628529640459314054abc", yclid="0123")
        self.sign(order)
        self.assertRecordValues(
            order, [{"state": "sale", "metrika_client_id": False, "metrika_yclid": False}]
        )

    def test_an_employee_signing_for_the_customer_is_not_captured(self):
        order = self.quotation()
        self.authenticate(self.employee.login, self.employee.login)
        self.set_visitor_cookies()
        self.sign(order)
        self.assertRecordValues(
            order, [{"state": "sale", "metrika_client_id": False, "metrika_yclid": False}]
        )

    def test_a_failed_signature_stores_nothing(self):
        order = self.quotation()
        self.set_visitor_cookies()
        result = self.make_jsonrpc_request(
            f"/my/orders/{order.id}/accept",
            {"access_token": "wrong", "name": "Anna", "signature": SIGNATURE},
        )
        self.assertTrue(result.get("error"))
        self.assertFalse(order.metrika_client_id)


@tagged("post_install", "-at_install")
class TestBackendIsNeverCaptured(PortalVisitorCase):
    def test_a_salesperson_creating_a_lead_in_the_backend_carries_no_cookie_over(self):
        self.authenticate(self.employee.login, self.employee.login)
        self.set_visitor_cookies()
        lead_id = self.make_jsonrpc_request(
            "/web/dataset/call_kw/crm.lead/create",
            {
                "model": "crm.lead",
                "method": "create",
                "args": [{"name": "Phone call"}],
                "kwargs": {},
            },
        )
        lead = self.env["crm.lead"].browse(lead_id)
        self.assertRecordValues(lead, [{"metrika_client_id": False, "metrika_yclid": False}])


@tagged("post_install", "-at_install")
class TestPortalPayment(AccountPaymentCommon, SaleCommon, PaymentHttpCommon):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.currency = cls.sale_order.currency_id
        cls.partner = cls.sale_order.partner_invoice_id

    def pay(self):
        """What the payment form of the order's portal page posts: its transaction route,
        with the order's access token. (The form is not read from /payment/pay: with the core
        test provider, 19.0 shows no payment method there.)"""
        self.amount = self.sale_order.amount_total
        with mute_logger("odoo.addons.payment.models.payment_transaction"):
            self._get_processing_values(
                tx_route=self.sale_order.get_portal_url(suffix="/transaction"),
                provider_id=self.provider.id,
                payment_method_id=self.payment_method_id,
                token_id=None,
                amount=self.amount,
                flow="direct",
                tokenization_requested=False,
                landing_route=self.sale_order.get_portal_url(),
                access_token=self.sale_order._portal_ensure_token(),
            )

    def test_public_customer_paying_a_quotation_online(self):
        self.opener.cookies.set(metrika_capture.CLIENT_ID_COOKIE, CLIENT_ID)
        self.opener.cookies.set(metrika_capture.YCLID_COOKIE, YCLID)
        self.pay()
        self.assertRecordValues(
            self.sale_order, [{"metrika_client_id": CLIENT_ID, "metrika_yclid": YCLID}]
        )

    def test_paying_with_a_malformed_cookie_works_and_stores_nothing(self):
        self.opener.cookies.set(metrika_capture.CLIENT_ID_COOKIE, "<b>1</b>")
        self.pay()
        self.assertTrue(self.sale_order.transaction_ids)
        self.assertFalse(self.sale_order.metrika_client_id)
