from odoo.tests import TransactionCase, tagged

from odoo.addons.metrika_offline_conversions_website.tests.common import RussianTranslationChecks


@tagged("post_install", "-at_install")
class TestRussianTranslation(RussianTranslationChecks, TransactionCase):
    # The bridge shows no screen of its own: Odoo exports the name of the model it extends.
    module = "metrika_offline_conversions_website_sale"
    min_terms = 1
