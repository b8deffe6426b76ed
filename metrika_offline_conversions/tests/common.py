"""Shared set-up of the Odoo-layer tests: a configured company and a local Metrica stand-in."""

import csv
import importlib.util
import io
import pathlib
import sys
from urllib.parse import urlsplit

from odoo.tests import HttpCase, TransactionCase
from odoo.tests.common import _super_send

from odoo.addons.metrika_offline_conversions import const

STAND_IN_PATH = pathlib.Path(__file__).resolve().parents[2] / "tests" / "metrika_stand_in.py"
TOKEN = "odoo-test-token-7f3a9c"
COUNTER_ID = 12345
CLIENT_ID = "1628529640459314054"


def load_stand_in():
    """The repository's Metrica stand-in (tests/metrika_stand_in.py), loaded by file path."""
    module = sys.modules.get("metrika_stand_in")
    if module is None:
        spec = importlib.util.spec_from_file_location("metrika_stand_in", STAND_IN_PATH)
        module = importlib.util.module_from_spec(spec)
        sys.modules["metrika_stand_in"] = module
        spec.loader.exec_module(module)
    return module


def csv_rows(request):
    """The rows of the CSV file a request to the stand-in uploaded."""
    return list(csv.DictReader(io.StringIO(request.file.decode("utf-8"))))


class StandInAccessMixin:
    """Odoo blocks outgoing HTTP in tests: this lets the Metrica stand-ins through, only them."""

    @classmethod
    def _stand_ins(cls):
        return [cls.api]

    @classmethod
    def _request_handler(cls, session, request, /, **kwargs):
        target = urlsplit(request.url)
        for stand_in in cls._stand_ins():
            address = urlsplit(stand_in.url)
            if (target.hostname, target.port) == (address.hostname, address.port):
                return _super_send(session, request, **kwargs)
        return super()._request_handler(session, request, **kwargs)


class MetrikaCase(StandInAccessMixin, TransactionCase):
    """A company that sends to a real HTTP server on 127.0.0.1 speaking the Metrica API."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.api = load_stand_in().MetrikaStandIn(token=TOKEN)
        cls.api.start()
        cls.addClassCleanup(cls.api.stop)
        cls.company = cls.env.company
        cls.company.country_id = cls.env.ref("base.ru")
        cls.company.sudo().write(
            {
                "metrika_enabled": True,
                "metrika_counter_id": str(COUNTER_ID),
                "metrika_token": TOKEN,
                "metrika_api_url": cls.api.url,
            }
        )
        cls.Conversion = cls.env["metrika.conversion"]
        cls.Upload = cls.env["metrika.upload"]
        cls.partner = cls.env["res.partner"].create(
            {
                "name": "Ivan Petrov",
                "email": "Ivan.Petrov@Example.ru",
                "phone": "8 (999) 555-11-11",
            }
        )
        cls.product = cls.env["product.product"].create(
            {
                "name": "Sofa",
                "list_price": 1000.0,
                "type": "consu",
            }
        )

    def setUp(self):
        super().setUp()
        self.api.reset()

    def make_order(self, confirm=True, **values):
        order = self.env["sale.order"].create(
            {
                "partner_id": self.partner.id,
                "order_line": [(0, 0, {"product_id": self.product.id, "product_uom_qty": 1})],
                **values,
            }
        )
        if confirm:
            order.action_confirm()
        return order

    def make_orders(self, count, **values):
        partners = self.env["res.partner"].create(
            [
                {
                    "name": f"Customer {index}",
                    "email": f"customer{index}@example.ru",
                    "phone": f"+7 999 100-{index // 100:02d}-{index % 100:02d}",
                }
                for index in range(count)
            ]
        )
        orders = self.env["sale.order"].create(
            [
                {
                    "partner_id": partner.id,
                    "order_line": [(0, 0, {"product_id": self.product.id, "product_uom_qty": 1})],
                    **values,
                }
                for partner in partners
            ]
        )
        orders.action_confirm()
        return orders

    def conversions(self, record):
        field = "sale_order_id" if record._name == "sale.order" else "lead_id"
        return self.Conversion.search([(field, "in", record.ids)], order="id")

    def upload_requests(self):
        return [request for request in self.api.requests if request.method == "POST"]

    def run_cron(self, calls=10):
        """Run the upload cron as Odoo's scheduler does: called again at once while it reports
        work done and work left, up to ten calls a run. Returns the work done."""
        total = 0
        for _call in range(calls):
            done = self.Conversion._cron_upload()
            total += done
            if not done or not self.Conversion._metrika_due_count():
                break
        return total

    def pending(self):
        return self.Conversion.search([("state", "=", const.STATE_PENDING)])


class CentreLinkCase(HttpCase):
    """A company in Russia serving the Conversion Centre link alone (no token, API sending
    off), and a product to sell."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.company = cls.env.company
        cls.company.country_id = cls.env.ref("base.ru")
        cls.company.sudo().write({"metrika_enabled": False, "metrika_centre_link_enabled": True})
        cls.product = cls.env["product.product"].create(
            {"name": "Sofa", "list_price": 1000.0, "type": "consu"}
        )
