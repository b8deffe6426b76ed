from odoo.tests import TransactionCase, tagged

from .common import RussianTranslationChecks


@tagged("post_install", "-at_install")
class TestRussianTranslation(RussianTranslationChecks, TransactionCase):
    module = "metrika_offline_conversions_website"
    min_terms = 8
