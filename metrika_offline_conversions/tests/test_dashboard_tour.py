"""The dashboard in headless Chromium: opened from the Metrica menu, its graph, then its pivot
with a figure of a known log."""

from odoo.tests import HttpCase, tagged

from odoo.addons.metrika_offline_conversions import const
from odoo.addons.metrika_offline_conversions.metrika_core import formats


@tagged("post_install", "-at_install")
class TestDashboardTour(HttpCase):
    def test_dashboard_from_the_menu(self):
        admin = self.env.ref("base.user_admin")
        self.assertTrue(admin.has_group("metrika_offline_conversions.group_metrika_manager"))
        company = admin.company_id
        Conversion = self.env["metrika.conversion"].sudo()
        Conversion.search([("company_id", "=", company.id)]).unlink()
        states = [const.STATE_SENT] * 3 + [const.STATE_SKIPPED] * 2 + [const.STATE_PENDING] * 2
        Conversion.create(
            [
                {
                    "company_id": company.id,
                    "record_name": f"S{index:05d}",
                    "event": const.EVENT_IN_PROGRESS,
                    "order_status": formats.IN_PROGRESS,
                    "transport": const.TRANSPORT_SIMPLE_ORDERS,
                    "state": state,
                    "metrika_result": const.RESULT_ACCEPTED if state == const.STATE_SENT else False,
                    "failure_reason": const.REASON_NO_IDENTIFIER
                    if state == const.STATE_SKIPPED
                    else False,
                }
                for index, state in enumerate(states)
            ]
        )
        self.env["metrika.conversion.report"]._cron_refresh_dashboard()
        # The Sales app's menu is switched on by sale_management, the "Sales" app every shop
        # installs; sale_crm alone (the addon's dependency) leaves it off.
        self.env.ref("sale.sale_menu_root").active = True
        self.start_tour("/odoo", "metrika_dashboard", login="admin")
