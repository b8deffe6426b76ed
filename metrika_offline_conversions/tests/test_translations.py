import re

import polib

from odoo.modules.module import get_module_path
from odoo.tests import TransactionCase, tagged
from odoo.tools.translate import TranslationModuleReader

MODULE = "metrika_offline_conversions"
PLACEHOLDER = re.compile(r"%\([a-z_]+\)s|%s|%d")


@tagged("post_install", "-at_install")
class TestRussianTranslation(TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.po = polib.pofile(f"{get_module_path(MODULE)}/i18n/ru.po")

    def test_every_user_facing_string_has_a_russian_translation(self):
        # What Odoo itself would export for translation from the installed module.
        sources = {
            source
            for _m, _t, _n, _r, source, _v, _c in TranslationModuleReader(
                self.env.cr, modules=[MODULE]
            )
        }
        translated = {entry.msgid for entry in self.po if entry.msgstr and not entry.fuzzy}
        self.assertGreater(len(sources), 100)
        self.assertEqual(sorted(sources - translated), [])

    def test_placeholders_survive_translation(self):
        for entry in self.po:
            with self.subTest(msgid=entry.msgid[:60]):
                self.assertEqual(
                    sorted(PLACEHOLDER.findall(entry.msgstr)),
                    sorted(PLACEHOLDER.findall(entry.msgid)),
                )

    def test_russian_is_served_to_users(self):
        self.env["res.lang"]._activate_lang("ru_RU")
        self.env["ir.module.module"].search([("name", "=", MODULE)])._update_translations(["ru_RU"])
        field = self.env["ir.model.fields"]._get("sale.order", "metrika_attribution")
        russian = field.with_context(lang="ru_RU").field_description
        self.assertNotEqual(russian, "Attribution quality")
        self.assertEqual(russian, self.po.find("Attribution quality").msgstr)
