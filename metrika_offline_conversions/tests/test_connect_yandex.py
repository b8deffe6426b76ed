""" "Connect to Yandex" against the stand-in playing Yandex OAuth: both flows end to end, the
refresh before expiry, a revoked refresh token, and secrets kept out of logs."""

import logging
import urllib.parse
from datetime import timedelta

import requests

from odoo import fields
from odoo.exceptions import UserError
from odoo.tests import HttpCase, tagged
from odoo.tools import mute_logger

from odoo.addons.metrika_offline_conversions import const
from odoo.addons.metrika_offline_conversions.metrika_core import formats
from odoo.addons.metrika_offline_conversions.tools import odoo_compat

from .common import COUNTER_ID, TOKEN, MetrikaCase, StandInAccessMixin, load_stand_in

APP_ID = "odoo-test-app"
APP_SECRET = "odoo-test-app-secret-91b2"
REDIRECT = "https://odoo.example" + const.OAUTH_CALLBACK_PATH


class ConnectMixin:
    def connect_with_a_code(self):
        """The device flow as an administrator does it; returns the issued access token."""
        self.env["res.config.settings"].create({}).action_metrika_oauth_connect_device()
        settings = self.env["res.config.settings"].create({})
        self.assertTrue(settings.metrika_oauth_user_code)
        self.assertEqual(settings.metrika_oauth_verification_url, self.api.url + "/device")
        self.api.approve_device(settings.metrika_oauth_user_code)
        settings.action_metrika_oauth_poll_device()
        return self.company.sudo().metrika_token


@tagged("post_install", "-at_install")
class TestConnectYandex(ConnectMixin, MetrikaCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.api.add_oauth_client(APP_ID, APP_SECRET, redirect_uris=[REDIRECT])
        cls.company.sudo().write(
            {
                "metrika_oauth_client_id": APP_ID,
                "metrika_oauth_client_secret": APP_SECRET,
                "metrika_oauth_url": cls.api.url,
            }
        )
        cls.Health = cls.env["metrika.connection.health"]

    def test_device_flow_end_to_end(self):
        self.env["res.config.settings"].create({}).action_metrika_oauth_connect_device()
        settings = self.env["res.config.settings"].create({})
        with self.assertRaises(UserError) as caught:
            settings.action_metrika_oauth_poll_device()
        self.assertIn(settings.metrika_oauth_user_code, str(caught.exception))
        self.assertEqual(self.company.sudo().metrika_token, TOKEN, "nothing stored yet")

        self.api.approve_device(settings.metrika_oauth_user_code)
        settings.action_metrika_oauth_poll_device()
        company = self.company.sudo()
        self.assertIn(company.metrika_token, self.api.issued_tokens)
        self.assertIn(company.metrika_refresh_token, self.api.refresh_tokens)
        self.assertAlmostEqual(
            company.metrika_token_expires_at,
            fields.Datetime.now() + timedelta(days=365),
            delta=timedelta(minutes=5),
        )
        self.assertFalse(self.env["metrika.oauth.request"].sudo().search([]))
        self.assertFalse(self.env["res.config.settings"].create({}).metrika_oauth_user_code)
        # The token Yandex issued works at Metrica.
        self.assertEqual(self.Health._metrika_check(self.company).state, const.HEALTH_OK)

    def test_code_flow_end_to_end_and_bound_to_its_session(self):
        url = self.company._metrika_oauth_start_code_flow(REDIRECT, "session-a")
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
        self.assertEqual(query["code_challenge_method"], "S256")
        self.assertNotIn(APP_SECRET, url)
        answer = requests.get(url, allow_redirects=False, timeout=5)
        back = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(answer.headers["Location"]).query))
        self.assertEqual(back["state"], query["state"])
        Company = self.env["res.company"]

        # Another browser session cannot use this state, nor a made-up one.
        for state, session in ((back["state"], "session-b"), ("forged", "session-a")):
            with self.subTest(state=state), self.assertRaises(UserError):
                Company._metrika_oauth_finish_code_flow(state, back["code"], session)
        self.assertEqual(self.company.sudo().metrika_token, TOKEN)

        Company._metrika_oauth_finish_code_flow(back["state"], back["code"], "session-a")
        self.assertIn(self.company.sudo().metrika_token, self.api.issued_tokens)
        # The state is single-use.
        with self.assertRaises(UserError):
            Company._metrika_oauth_finish_code_flow(back["state"], back["code"], "session-a")

    def test_the_token_is_refreshed_before_it_expires(self):
        token = self.connect_with_a_code()
        refresh_token = self.company.sudo().metrika_refresh_token
        company = self.company.sudo()

        company.metrika_token_expires_at = fields.Datetime.now() + timedelta(days=60)
        self.Health._cron_check_connections()
        self.assertEqual(company.metrika_token, token, "not due yet")

        company.metrika_token_expires_at = fields.Datetime.now() + timedelta(days=20)
        self.Health._cron_check_connections()
        self.assertNotEqual(company.metrika_token, token)
        self.assertNotEqual(company.metrika_refresh_token, refresh_token)
        self.assertGreater(
            company.metrika_token_expires_at, fields.Datetime.now() + timedelta(days=300)
        )
        self.assertTrue(self.api.refresh_tokens[refresh_token]["revoked"], "spent")
        self.assertEqual(self.Health._metrika_of(company).state, const.HEALTH_OK)

    @mute_logger(
        "odoo.addons.metrika_offline_conversions.models.metrika_connection_health",
        "odoo.addons.metrika_offline_conversions.models.res_company_metrika_oauth",
    )
    def test_a_revoked_refresh_token_warns_a_week_ahead(self):
        self.connect_with_a_code()
        company = self.company.sudo()
        self.api.revoke_refresh_token(company.metrika_refresh_token)

        company.metrika_token_expires_at = fields.Datetime.now() + timedelta(days=20)
        self.Health._cron_check_connections()
        record = self.Health._metrika_of(company)
        self.assertFalse(company.metrika_refresh_token, "a dead refresh token is not kept")
        self.assertEqual(record.state, const.HEALTH_OK, "no warning three weeks ahead")
        self.assertFalse(record._metrika_alerts())

        company.metrika_token_expires_at = fields.Datetime.now() + timedelta(days=5)
        self.Health._cron_check_connections()
        self.assertEqual(record.state, const.HEALTH_FAILED)
        self.assertEqual(record.problem_codes, const.PROBLEM_TOKEN_EXPIRING)
        self.assertIn("cannot be refreshed", record.message)
        self.assertTrue(record._metrika_alerts())

        # Connecting again ends it.
        self.connect_with_a_code()
        self.Health._cron_check_connections()
        self.assertEqual(record.state, const.HEALTH_OK)
        self.assertFalse(record._metrika_alerts())

    def test_a_pasted_token_keeps_working(self):
        self.connect_with_a_code()
        settings = self.env["res.config.settings"].create({})
        settings.metrika_token = TOKEN
        settings.execute()
        company = self.company.sudo()
        self.assertRecordValues(
            company,
            [
                {
                    "metrika_token": TOKEN,
                    "metrika_refresh_token": False,
                    "metrika_token_expires_at": False,
                }
            ],
        )
        # Nothing left to refresh it into another token.
        self.Health._cron_check_connections()
        self.assertEqual(company.metrika_token, TOKEN)
        self.assertEqual(self.Health._metrika_of(company).state, const.HEALTH_OK)

    def test_a_wrong_application_id_or_secret_says_so(self):
        company = self.company.sudo()
        company.metrika_oauth_client_id = "unknown-app"
        with self.assertRaises(UserError) as caught:
            self.env["res.config.settings"].create({}).action_metrika_oauth_connect_device()
        self.assertIn("ID and secret", str(caught.exception))

        # The device code needs only the ID; the secret is checked when the token is asked for.
        company.write({"metrika_oauth_client_id": APP_ID, "metrika_oauth_client_secret": "nope"})
        self.env["res.config.settings"].create({}).action_metrika_oauth_connect_device()
        settings = self.env["res.config.settings"].create({})
        self.api.approve_device(settings.metrika_oauth_user_code)
        with self.assertRaises(UserError) as caught:
            settings.action_metrika_oauth_poll_device()
        self.assertIn("ID and secret", str(caught.exception))
        self.assertNotIn("nope", str(caught.exception))
        self.assertEqual(company.metrika_token, TOKEN)

    def test_secrets_stay_out_of_the_logs(self):
        with self.assertLogs("odoo.addons.metrika_offline_conversions", level="DEBUG") as logs:
            logging.getLogger("odoo.addons.metrika_offline_conversions").debug("start")
            token = self.connect_with_a_code()
            company = self.company.sudo()
            company.metrika_token_expires_at = fields.Datetime.now() + timedelta(days=1)
            self.Health._cron_check_connections()
        text = "\n".join(logs.output)
        for secret in (APP_SECRET, token, company.metrika_token, company.metrika_refresh_token):
            self.assertNotIn(secret, text)

    def test_neutralization_wipes_the_oauth_secrets(self):
        from odoo.modules.neutralize import get_neutralization_queries

        self.connect_with_a_code()
        self.company._metrika_oauth_start_code_flow(REDIRECT, "session")
        self.env.flush_all()
        for query in get_neutralization_queries(["metrika_offline_conversions"]):
            self.env.cr.execute(query)
        self.company.invalidate_recordset()
        self.assertRecordValues(
            self.company.sudo(),
            [
                {
                    "metrika_token": False,
                    "metrika_refresh_token": False,
                    "metrika_oauth_client_secret": False,
                    "metrika_token_expires_at": False,
                }
            ],
        )
        self.assertFalse(self.env["metrika.oauth.request"].sudo().search([]))


@tagged("post_install", "-at_install")
class TestConnectTour(StandInAccessMixin, HttpCase):
    """An administrator connects through Settings in headless Chromium: the stand-in's
    "Yandex" page approves at once and sends the browser back to the callback route; then
    the dashboard, from the Metrica menu, its graph and its pivot with a figure of a known
    log."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.api = load_stand_in().MetrikaStandIn(token=TOKEN)
        cls.api.start()
        cls.addClassCleanup(cls.api.stop)
        cls.company = cls.env.company
        cls.company.sudo().write(
            {
                "metrika_enabled": True,
                "metrika_counter_id": str(COUNTER_ID),
                "metrika_token": TOKEN,
                "metrika_api_url": cls.api.url,
                "metrika_oauth_url": cls.api.url,
            }
        )
        cls.api.add_oauth_client(
            APP_ID, APP_SECRET, redirect_uris=[cls.base_url() + const.OAUTH_CALLBACK_PATH]
        )

    def make_dashboard_log(self):
        """A known log for the dashboard: seven conversions queued, three sent (accepted), two
        skipped; the dashboard's views refreshed, as their cron does."""
        Conversion = self.env["metrika.conversion"].sudo()
        Conversion.search([("company_id", "=", self.company.id)]).unlink()
        states = [const.STATE_SENT] * 3 + [const.STATE_SKIPPED] * 2 + [const.STATE_PENDING] * 2
        Conversion.create(
            [
                {
                    "company_id": self.company.id,
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

    def test_connect_through_settings_then_the_dashboard(self):
        admin = self.env.ref("base.user_admin")
        self.assertTrue(admin.has_group("metrika_offline_conversions.group_metrika_manager"))
        self.assertEqual(admin.company_id, self.company)
        self.make_dashboard_log()
        # The Sales app's menu is switched on by sale_management, the "Sales" app every shop
        # installs; sale_crm alone (the addon's dependency) leaves it off.
        self.env.ref("sale.sale_menu_root").active = True
        self.start_tour(
            "/odoo/action-metrika_offline_conversions.metrika_settings_action",
            odoo_compat.tour_variant("metrika_connect_to_yandex"),
            login="admin",
            # Two page loads through the stand-in's Yandex page, then the dashboard.
            timeout=240,
        )
        company = self.company.sudo()
        self.assertIn(company.metrika_token, self.api.issued_tokens)
        self.assertEqual(company.metrika_oauth_client_id, APP_ID)
        self.assertTrue(company.metrika_refresh_token)
        authorize = self.api.last_request("/authorize")
        self.assertEqual(authorize.query["code_challenge_method"], "S256")
        self.assertTrue(self.api.last_request("/token").status == 200)

    def test_a_callback_without_a_started_flow_stores_nothing(self):
        self.authenticate("admin", "admin")
        answer = self.url_open(const.OAUTH_CALLBACK_PATH + "?state=forged&code=1234567")
        self.assertEqual(answer.status_code, 400)
        self.assertIn("was not connected", answer.text)
        self.assertEqual(self.company.sudo().metrika_token, TOKEN)
