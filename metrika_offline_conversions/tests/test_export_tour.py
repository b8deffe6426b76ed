"""An administrator exports a CSV from the sync log, in headless Chromium."""

import base64
import shutil

from odoo.tests import HttpCase, tagged

from odoo.addons.metrika_offline_conversions import const
from odoo.addons.metrika_offline_conversions.tools import odoo_compat

from .common import CLIENT_ID, COUNTER_ID, TOKEN


@tagged("post_install", "-at_install")
class TestExportTour(HttpCase):
    def test_administrator_exports_a_csv_from_the_sync_log(self):
        # Odoo skips a tour quietly when it finds no browser; here that is a failure.
        browsers = ("google-chrome", "chromium", "chromium-browser", "google-chrome-stable")
        self.assertTrue(any(shutil.which(name) for name in browsers), "no Chromium on PATH")
        company = self.env.company
        company.sudo().write(
            {
                "metrika_enabled": True,
                "metrika_counter_id": str(COUNTER_ID),
                "metrika_token": TOKEN,
            }
        )
        # Known since Test connection (new connection settings forget it): the export asks
        # Metrica nothing.
        company.sudo().metrika_counter_time_zone = "Europe/Moscow"
        partner = self.env["res.partner"].create({"name": "Tour Customer"})
        order = self.env["sale.order"].create(
            {
                "partner_id": partner.id,
                "metrika_client_id": CLIENT_ID,
                "order_line": [
                    (
                        0,
                        0,
                        {
                            "product_id": self.env["product.product"]
                            .create({"name": "Tour Sofa", "list_price": 10.0})
                            .id
                        },
                    )
                ],
            }
        )
        order.action_confirm()
        conversion = self.env["metrika.conversion"].search([("sale_order_id", "=", order.id)])
        self.assertEqual(len(conversion), 1)
        # The newest conversion heads the sync log; the tour selects the first row.
        self.assertEqual(self.env["metrika.conversion"].search([], limit=1), conversion)

        self.start_tour(
            "/odoo/action-metrika_offline_conversions.metrika_conversion_action",
            odoo_compat.tour_variant("metrika_export_csv"),
            login="admin",
        )

        export = self.env["metrika.conversion.export"].search([], order="id desc", limit=1)
        self.assertEqual(export.create_uid, self.env.ref("base.user_admin"))
        self.assertEqual(export.conversion_ids, conversion)
        data = base64.b64decode(export.file_data).decode()
        self.assertTrue(data.startswith("id,create_date_time,"))
        self.assertIn(f"{conversion.metrika_order_id},", data)
        self.assertIn(CLIENT_ID, data)
        self.assertEqual(conversion.state, const.STATE_PENDING, "the export changed nothing")
