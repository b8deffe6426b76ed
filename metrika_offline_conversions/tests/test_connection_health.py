"""The daily connection check against the stand-in: each failing check, its one activity per
administrator (never a second one), and the activity closed by itself once the check passes."""

from odoo.exceptions import AccessError
from odoo.tests import new_test_user, tagged
from odoo.tools import mute_logger

from odoo.addons.metrika_offline_conversions import const
from odoo.addons.metrika_offline_conversions.tools import odoo_compat

from .common import COUNTER_ID, TOKEN, MetrikaCase

HEALTH_LOGGER = "odoo.addons.metrika_offline_conversions.models.metrika_connection_health"


@tagged("post_install", "-at_install")
class TestConnectionHealth(MetrikaCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.Health = cls.env["metrika.connection.health"]
        cls.env.ref("base.user_admin").lang = "en_US"

    def setUp(self):
        super().setUp()
        self.addCleanup(setattr, self.api, "token", TOKEN)
        self.addCleanup(setattr, self.api, "token_scopes", None)

    def check(self):
        """The daily cron, as the scheduler runs it (a failed check logs a warning)."""
        with mute_logger(HEALTH_LOGGER):
            self.Health._cron_check_connections()
        return self.Health._metrika_of(self.company)

    def admins(self):
        return odoo_compat.group_users(self.env.ref("base.group_system")).filtered(
            lambda user: not user.share and self.company in user.company_ids
        )

    def use_goals(self, **goals):
        self.company.sudo().write({"metrika_transport": const.TRANSPORT_OFFLINE, **goals})

    def test_a_healthy_connection_is_recorded_without_an_activity(self):
        record = self.check()
        self.assertEqual(record.state, const.HEALTH_OK)
        self.assertTrue(record.checked_at)
        self.assertFalse(record.message)
        self.assertFalse(record._metrika_alerts())
        probes = [r for r in self.api.requests if r.method == "POST"]
        self.assertEqual(len(probes), 1, "one upload probe")
        self.assertIsNone(probes[0].file, "the probe carries no file")
        self.assertEqual(self.api.stats(rows=False)["simple_orders"]["uploadings"], 0)

    def test_a_failure_alerts_once_per_administrator_and_closes_when_fixed(self):
        self.api.token = "a-token-revoked-at-yandex"
        record = self.check()
        self.assertEqual(record.state, const.HEALTH_FAILED)
        self.assertEqual(record.problem_codes, "token")
        alerts = record._metrika_alerts()
        self.assertTrue(alerts)
        self.assertEqual(alerts.user_id, self.admins())
        self.assertEqual(len(alerts), len(alerts.user_id), "one activity per administrator")
        self.assertIn("Connect to Yandex", alerts[0].note)

        # The next day, the same failure: no new activity.
        self.check()
        self.assertEqual(record._metrika_alerts(), alerts)

        # Fixed at Yandex: the next check closes the activities by itself.
        self.api.token = TOKEN
        self.check()
        self.assertEqual(record.state, const.HEALTH_OK)
        self.assertFalse(alerts.exists())

    def test_a_bad_token(self):
        self.api.token = "another"
        record = self.check()
        self.assertEqual(record.problem_codes, "token")
        self.assertIn("refuses the OAuth token", record.message)

    def test_a_token_without_the_upload_permission(self):
        self.api.token_scopes = {"metrika:read"}
        record = self.check()
        self.assertEqual(record.problem_codes, "upload_scope")
        self.assertIn("metrika:offline_data", record.message)
        self.assertIn(str(COUNTER_ID), record.message)

    def test_a_token_that_cannot_read_the_counter(self):
        self.api.token_scopes = {"metrika:offline_data"}
        record = self.check()
        self.assertEqual(record.problem_codes, "counter_access")
        self.assertIn("metrika:read", record.message)

    def test_an_unknown_goal_with_a_hint(self):
        self.use_goals(
            metrika_goal_paid="Crm_Deal_Won", metrika_goal_in_progress="crm_qualified_lead"
        )
        record = self.check()
        self.assertEqual(record.problem_codes, "goal_unknown")
        self.assertIn('"Crm_Deal_Won"', record.message)
        self.assertIn('Did you mean "crm_deal_won"?', record.message)

    def test_a_goal_of_the_wrong_kind(self):
        goal = self.api.add_goal(COUNTER_ID, "thank_you", name="Thank-you page", goal_type="url")
        self.addCleanup(self.api.goals[COUNTER_ID].remove, goal)
        self.use_goals(metrika_goal_paid="thank_you")
        record = self.check()
        self.assertEqual(record.problem_codes, "goal_kind")
        self.assertIn("JavaScript event", record.message)

    def test_goals_that_exist_pass(self):
        self.use_goals(
            metrika_goal_in_progress="crm_qualified_lead", metrika_goal_paid="crm_deal_won"
        )
        self.assertEqual(self.check().state, const.HEALTH_OK)

    def test_a_time_zone_the_files_do_not_use(self):
        self.company.sudo().metrika_counter_time_zone = "Asia/Omsk"
        record = self.check()
        self.assertEqual(record.problem_codes, "time_zone")
        self.assertIn("Europe/Moscow", record.message)
        self.assertIn("Asia/Omsk", record.message)
        # What the message says to do: Test connection takes the counter's time zone.
        self.env["res.config.settings"].create({}).action_metrika_test_connection()
        self.assertEqual(self.check().state, const.HEALTH_OK)

    def test_metrica_unreachable_is_not_a_failure(self):
        self.api.token = "another"
        record = self.check()
        alerts = record._metrika_alerts()
        self.api.outage()
        self.check()
        self.assertEqual(record.state, const.HEALTH_UNREACHABLE)
        self.assertEqual(record._metrika_alerts(), alerts, "the open activities are kept")
        self.assertIn("not available", record.message)

    def test_settings_show_the_result_and_check_on_demand(self):
        self.api.token_scopes = {"metrika:read"}
        settings = self.env["res.config.settings"].create({})
        with mute_logger(HEALTH_LOGGER):
            settings.action_metrika_check_connection()
        settings = self.env["res.config.settings"].create({})
        self.assertEqual(settings.metrika_health_state, const.HEALTH_FAILED)
        self.assertIn("metrika:offline_data", settings.metrika_health_message)

    def test_only_administrators_check_or_connect(self):
        settings = self.env["res.config.settings"].create({})
        user = new_test_user(
            self.env, login="metrika_health_salesman", groups="sales_team.group_sale_salesman"
        )
        for action in (
            "action_metrika_check_connection",
            "action_metrika_oauth_connect",
            "action_metrika_oauth_connect_device",
            "action_metrika_oauth_poll_device",
        ):
            with self.subTest(action=action), self.assertRaises(AccessError):
                getattr(settings.with_user(user), action)()
        self.assertFalse(self.Health.search([("company_id", "=", self.company.id)]).checked_at)
