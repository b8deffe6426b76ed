from odoo.tests import TransactionCase, tagged

from odoo.addons.metrika_offline_conversions.metrika_core import identifiers


@tagged("post_install", "-at_install")
class TestInstall(TransactionCase):
    def test_addon_installed_with_its_dependencies(self):
        modules = self.env["ir.module.module"].search(
            [("name", "in", ["metrika_offline_conversions", "sale_crm", "sale", "crm"])]
        )
        self.assertEqual(set(modules.mapped("state")), {"installed"})
        self.assertEqual(len(modules), 4)

    def test_core_is_importable_inside_odoo(self):
        # The same core the pure suite tests is what the addon runs under odoo.addons.
        self.assertEqual(identifiers.md5_hex("mail@yandex.ru"), "3c56ff8fef0f6c65b36b2d25720fe276")

    def test_apps_page_shows_the_readme_fragments(self):
        # Odoo shows static/description/index.html, which scripts/gen_addon_readme.py makes.
        module = self.env["ir.module.module"].search([("name", "=", "metrika_offline_conversions")])
        page = module.description_html
        self.assertIn("Sends the sales that close outside the website", page)
        self.assertIn("Known issues / Roadmap", page)
        self.assertIn('src="/metrika_offline_conversions/static/description/settings.png"', page)
