from lxml import etree

from odoo import http
from odoo.exceptions import AccessError, UserError, ValidationError
from odoo.modules.neutralize import get_neutralization_queries
from odoo.tests import Form, HttpCase, new_test_user, tagged
from odoo.tools import mute_logger

from .common import COUNTER_ID, TOKEN, MetrikaCase


@tagged("post_install", "-at_install")
class TestSettings(MetrikaCase):
    def test_settings_form_edits_current_company(self):
        with Form(self.env["res.config.settings"]) as settings:
            settings.metrika_counter_id = "87654321"
            settings.metrika_transport = "offline_conversions"
            settings.metrika_goal_paid = "crm_paid"
            settings.metrika_send_leads = True
            settings.metrika_hash_identifiers = True
        self.assertRecordValues(
            self.company,
            [
                {
                    "metrika_counter_id": "87654321",
                    "metrika_transport": "offline_conversions",
                    "metrika_goal_paid": "crm_paid",
                    "metrika_send_leads": True,
                    "metrika_hash_identifiers": True,
                }
            ],
        )

    def test_invalid_settings_are_refused_with_a_reason(self):
        for values, words in (
            ({"metrika_counter_id": "12ab"}, "counter ID"),
            ({"metrika_goal_paid": "Оплата заказа"}, "goal identifier"),
            ({"metrika_goal_cancelled": "order/cancelled"}, "goal identifier"),
            ({"metrika_batch_size": 0}, "Conversions per upload"),
            ({"metrika_api_url": "ftp://example.com"}, "API URL"),
        ):
            with self.subTest(values=values), self.assertRaisesRegex(ValidationError, words):
                self.company.sudo().write(values)

    def test_connection_reads_counter_name_and_time_zone(self):
        settings = self.env["res.config.settings"].create({})
        action = settings.action_metrika_test_connection()
        self.assertEqual(action["params"]["type"], "success")
        self.assertIn("Test shop", action["params"]["message"])
        self.assertIn("Europe/Moscow", action["params"]["message"])
        self.assertEqual(self.company.metrika_counter_time_zone, "Europe/Moscow")
        request = self.api.last_request()
        self.assertEqual(request.path, f"/management/v1/counter/{COUNTER_ID}")
        self.assertEqual(request.header("Authorization"), f"OAuth {TOKEN}")
        self.assertNotIn(TOKEN, request.raw_query)

    def test_connection_explains_metrika_errors(self):
        settings = self.env["res.config.settings"].create({})
        self.api.fail_next(403, error_type="access_denied", message="Access is denied")
        with self.assertRaisesRegex(UserError, "refused the access.*Access is denied") as caught:
            settings.action_metrika_test_connection()
        self.assertNotIn(TOKEN, str(caught.exception))
        self.api.fail_next(503)
        with self.assertRaisesRegex(UserError, "not available right now"):
            settings.action_metrika_test_connection()

    def test_connection_needs_counter_and_token(self):
        self.company.sudo().metrika_token = False
        settings = self.env["res.config.settings"].create({})
        with self.assertRaisesRegex(UserError, "counter ID and the OAuth token"):
            settings.action_metrika_test_connection()
        self.assertFalse(self.api.requests)

    def test_token_readable_by_administrators_only(self):
        salesman = new_test_user(
            self.env, "metrika_salesman", groups="sales_team.group_sale_salesman_all_leads"
        )
        manager = new_test_user(
            self.env,
            "metrika_operator",
            groups="sales_team.group_sale_salesman,metrika_offline_conversions.group_metrika_manager",
        )
        for user in (salesman, manager):
            company = self.company.with_user(user)
            with self.subTest(user=user.login), self.assertRaises(AccessError):
                company.read(["metrika_token"])
            self.assertNotIn("metrika_token", company.fields_get())
        self.assertEqual(self.company.sudo().metrika_token, TOKEN)

    def test_changing_the_token_resumes_paused_sending(self):
        company = self.company.sudo()
        company._metrika_pause("refused")
        company.write(
            {"metrika_counter_name": "Old", "metrika_counter_time_zone": "Asia/Yekaterinburg"}
        )
        company.metrika_send_leads = True
        self.assertTrue(company.metrika_paused, "unrelated settings keep the pause")
        company.metrika_token = "another-token"
        self.assertRecordValues(
            company,
            [
                {
                    "metrika_paused": False,
                    "metrika_pause_reason": False,
                    "metrika_counter_time_zone": False,
                }
            ],
        )

    def test_neutralization_wipes_token_and_disables_sending(self):
        queries = list(get_neutralization_queries(["metrika_offline_conversions"]))
        self.assertTrue(queries)
        self.env.flush_all()
        for query in queries:
            self.env.cr.execute(query)
        self.company.invalidate_recordset()
        self.assertRecordValues(
            self.company.sudo(), [{"metrika_token": False, "metrika_enabled": False}]
        )

    @mute_logger("odoo.addons.metrika_offline_conversions.models.res_company")
    def test_token_never_shown_in_error_texts(self):
        settings = self.env["res.config.settings"].create({})
        for failure in (401, 400, 429, 500, "drop"):
            self.api.fail_next(failure)
            with self.subTest(failure=failure), self.assertRaises(UserError) as caught:
                settings.action_metrika_test_connection()
            self.assertNotIn(TOKEN, str(caught.exception))


@tagged("post_install", "-at_install")
class TestSettingsDeveloperMode(HttpCase):
    """The API URL (a test seam) is in the settings form in developer mode only."""

    def settings_form_arch(self, debug):
        new_test_user(
            self.env,
            login="metrika_settings_admin",
            password="metrika_settings_admin",
            groups="base.group_user,base.group_system,base.group_no_one",
        )
        session = self.authenticate("metrika_settings_admin", "metrika_settings_admin")
        session.debug = "1" if debug else ""
        http.root.session_store.save(session)
        views = self.make_jsonrpc_request(
            "/web/dataset/call_kw/res.config.settings/get_views",
            {
                "model": "res.config.settings",
                "method": "get_views",
                "args": [[[False, "form"]]],
                "kwargs": {},
            },
        )
        return views["views"]["form"]["arch"]

    def shown(self, arch, field):
        """Whether the form shows ``field``: in the arch, and neither it nor a node around it
        invisible. (18.0 removes a node of another group from the arch; 19.0 keeps it, made
        invisible.)"""
        invisible = ("1", "True", "true")
        return any(
            all(node.get("invisible") not in invisible for node in (found, *found.iterancestors()))
            for found in etree.fromstring(arch).iter("field")
            if found.get("name") == field
        )

    def test_api_url_is_hidden_from_administrators(self):
        arch = self.settings_form_arch(debug=False)
        self.assertTrue(self.shown(arch, "metrika_counter_id"))
        self.assertFalse(self.shown(arch, "metrika_api_url"))

    def test_api_url_is_shown_in_developer_mode(self):
        arch = self.settings_form_arch(debug=True)
        self.assertTrue(self.shown(arch, "metrika_api_url"))
