from odoo.tests import TransactionCase, tagged

from . import catalogue

MODULE = "metrika_offline_conversions"


@tagged("post_install", "-at_install")
class TestRussianTranslation(TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.po = catalogue.catalogue(MODULE)

    def test_every_user_facing_string_has_a_russian_translation(self):
        # What Odoo itself exports for translation from the installed module, on this series
        # (catalogue.py: the entries of one series only say so).
        sources, problems = catalogue.problems(self.env, MODULE)
        self.assertGreater(len(sources), 100)
        for kind, msgids in problems.items():
            self.assertEqual(msgids, [], kind)

    def test_placeholders_survive_translation(self):
        for entry in self.po:
            with self.subTest(msgid=entry.msgid[:60]):
                self.assertEqual(
                    sorted(catalogue.PLACEHOLDER.findall(entry.msgstr)),
                    sorted(catalogue.PLACEHOLDER.findall(entry.msgid)),
                )

    def test_russian_is_served_to_users(self):
        self.env["res.lang"]._activate_lang("ru_RU")
        self.env["ir.module.module"].search([("name", "=", MODULE)])._update_translations(["ru_RU"])
        field = self.env["ir.model.fields"]._get("sale.order", "metrika_attribution")
        russian = field.with_context(lang="ru_RU").field_description
        self.assertNotEqual(russian, "Attribution quality")
        self.assertEqual(russian, self.po.find("Attribution quality").msgstr)
