from odoo.tests import TransactionCase, tagged

from odoo.addons.metrika_offline_conversions_website.tests.common import RussianTranslationChecks


@tagged("post_install", "-at_install")
class TestRussianTranslation(RussianTranslationChecks, TransactionCase):
    # The bridge shows nothing of its own today: its ru.po must stay in step with that.
    module = "metrika_offline_conversions_website_crm"
