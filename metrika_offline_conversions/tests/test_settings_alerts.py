"""The administrators' alerts that sending waits for a settings fix: found again by their own
activity type and the company's uploads, whatever language they or the fix were written in."""

from odoo.exceptions import UserError
from odoo.tests import Form, new_test_user, tagged

from odoo.addons.metrika_offline_conversions import const

from .common import MetrikaCase

MODULE = "metrika_offline_conversions"
ENGLISH_SUMMARY = "Yandex Metrica: fix the settings or the access"


@tagged("post_install", "-at_install")
class TestSettingsAlerts(MetrikaCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.alert_type = cls.env.ref(const.SETTINGS_ALERT_ACTIVITY_TYPE)
        cls.admin = cls.env.ref("base.user_admin")
        cls.admin.lang = "en_US"

    def alerts(self, company=None):
        return self.Upload._metrika_alerts(company or self.company)

    def refuse_the_token(self):
        """An upload run against a Metrica that refuses the token: the company pauses and its
        administrators are alerted. Returns the failed upload."""
        uploads = self.Upload.search([])
        self.make_order()
        self.api.fail_next(401, path="simple_orders")
        self.run_cron()
        self.assertTrue(self.company.metrika_paused)
        upload = self.Upload.search([]) - uploads
        self.assertEqual(upload.state, const.UPLOAD_FAILED)
        return upload

    def make_upload(self, company):
        return self.Upload.sudo().create(
            {
                "company_id": company.id,
                "transport": const.TRANSPORT_SIMPLE_ORDERS,
                "state": const.UPLOAD_FAILED,
            }
        )

    def test_an_alert_written_in_english_is_closed_by_a_fix_saved_in_russian(self):
        self.env["res.lang"]._activate_lang("ru_RU")
        self.env["ir.module.module"].search([("name", "=", MODULE)])._update_translations(["ru_RU"])
        russian_summary = self.alert_type.with_context(lang="ru_RU").summary
        self.assertNotEqual(russian_summary, ENGLISH_SUMMARY, "the Russian translation is loaded")
        russian_admin = new_test_user(
            self.env,
            login="metrika_russian_admin",
            groups="base.group_user,base.group_system",
            lang="ru_RU",
        )

        upload = self.refuse_the_token()

        alerts = self.alerts()
        self.assertEqual(alerts.user_id, self.admin | russian_admin)
        self.assertEqual(len(alerts), 2, "one alert per administrator")
        self.assertEqual(set(alerts.mapped("res_id")), {upload.id})
        self.assertEqual(alerts.activity_type_id, self.alert_type)
        # Each administrator reads the alert in their own language.
        by_user = {alert.user_id: alert.summary for alert in alerts}
        self.assertEqual(by_user[self.admin], ENGLISH_SUMMARY)
        self.assertEqual(by_user[russian_admin], russian_summary)

        # The Russian-speaking administrator saves a new token in the settings, in Russian.
        settings_env = self.env(user=russian_admin, context={**self.env.context, "lang": "ru_RU"})
        with Form(settings_env["res.config.settings"]) as settings:
            settings.metrika_token = "odoo-test-token-renewed"

        self.assertFalse(self.company.metrika_paused)
        self.assertFalse(self.alerts(), "both alerts are closed, the English one too")
        self.assertFalse(
            self.env["mail.activity"].search([("res_model", "=", "metrika.upload")]),
        )

    def test_no_second_alert_while_one_is_open(self):
        self.refuse_the_token()
        alerts = self.alerts()
        self.assertTrue(alerts)
        self.assertEqual(len(alerts), len(alerts.user_id), "one alert per administrator")

        # The company is unpaused without a fix and refused again: a second failed upload.
        self.company.sudo().metrika_paused = False
        second = self.refuse_the_token()
        self.assertEqual(self.alerts(), alerts, "no alert added")
        # Nor by a run in another language, which the translated summary used to miss.
        self.env["res.lang"]._activate_lang("ru_RU")
        second.with_context(lang="ru_RU")._metrika_alert_administrators(self.company, "again")
        self.assertEqual(self.alerts(), alerts, "no alert added")
        self.assertEqual(
            self.env["mail.activity"].search_count([("res_model", "=", "metrika.upload")]),
            len(alerts),
        )

    def test_alerts_are_per_company_and_of_their_own_type(self):
        other_company = self.env["res.company"].create({"name": "Metrika second company"})
        self.admin.company_ids |= other_company
        self.make_upload(other_company)._metrika_alert_administrators(other_company, "fix it")
        other_alert = self.alerts(other_company)
        self.assertEqual(other_alert.user_id, self.admin)
        self.assertFalse(self.alerts(), "another company's alert is not this company's")
        # A to-do an administrator wrote with the same words is not an alert.
        upload = self.make_upload(self.company)
        todo = upload.activity_schedule(
            "mail.mail_activity_data_todo", summary=ENGLISH_SUMMARY, user_id=self.admin.id
        )
        self.assertFalse(self.alerts())

        upload._metrika_alert_administrators(self.company, "fix it")
        alert = self.alerts()
        self.assertEqual(alert.user_id, self.admin, "the admin is alerted once per company")
        self.assertEqual(alert.res_id, upload.id)

        self.company.sudo().metrika_counter_id = "87654321"
        self.assertFalse(alert.exists(), "the fix closes this company's alert")
        self.assertTrue(todo.exists(), "and leaves the to-do")
        self.assertEqual(self.alerts(other_company), other_alert, "and the other company's")

    def test_the_alert_type_cannot_be_deleted(self):
        with self.assertRaisesRegex(UserError, "cannot be deleted"):
            self.alert_type.unlink()
