"""The Conversion Centre link's phone numbers remembered in the database
(metrika.normalized.phone): a number is normalised once, whatever the process; the hourly cron
prepares a window before the Centre polls it; another phonenumbers release is never served."""

import csv
import io
from unittest.mock import patch

from odoo.tests import tagged

from odoo.addons.metrika_offline_conversions import const
from odoo.addons.metrika_offline_conversions.metrika_core.identifiers import (
    PHONE_RULES_VERSION,
)
from odoo.addons.metrika_offline_conversions.tools import centre_link

from .common import CentreLinkCase


@tagged("post_install", "-at_install")
class TestCentreLinkPhones(CentreLinkCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.Memo = cls.env["metrika.normalized.phone"].sudo()

    def setUp(self):
        super().setUp()
        # Nothing remembered by the process from another test: as after a restart.
        centre_link._EMAILS.clear()

    def make_order(self, phone, name="Ivan Petrov"):
        partner = self.env["res.partner"].create({"name": name, "phone": phone})
        order = self.env["sale.order"].create(
            {
                "partner_id": partner.id,
                "order_line": [(0, 0, {"product_id": self.product.id, "product_uom_qty": 1})],
            }
        )
        order.action_confirm()
        return order

    def fetch(self):
        response = self.opener.get(
            "%s%s/%s.csv"
            % (self.base_url(), const.CENTRE_ROUTE, self.company.sudo().metrika_centre_secret),
            timeout=12,
            allow_redirects=False,
        )
        self.assertEqual(response.status_code, 200, response.text[:500])
        return response.content

    def phones_served(self, body):
        rows = csv.DictReader(io.StringIO(body.decode("utf-8"), newline=""), delimiter=";")
        return {row["id"]: row["phones"] for row in rows}

    def fetch_counting(self):
        """(the file, the phone numbers normalised while it was served)."""
        normalised = []
        real = centre_link.normalize_phone

        def counting(value, region=None):
            normalised.append(value)
            return real(value, region)

        with patch.object(centre_link, "normalize_phone", counting):
            body = self.fetch()
        return body, normalised

    def remembered(self, raw):
        return self.Memo.search([("raw", "=", raw)])

    def test_a_fetch_remembers_its_numbers_and_the_next_normalises_none(self):
        first = self.make_order("8 999 555-11-11")
        second = self.make_order("+7 (999) 555-33-44", name="Anna")
        body, normalised = self.fetch_counting()
        self.assertEqual(sorted(normalised), ["+7 (999) 555-33-44", "8 999 555-11-11"])
        self.assertEqual(
            self.phones_served(body),
            {f"so-{first.id}": "79995551111", f"so-{second.id}": "79995553344"},
        )
        self.assertRecordValues(
            self.remembered("8 999 555-11-11"),
            [{"region": "RU", "normalized": "79995551111", "version": PHONE_RULES_VERSION}],
        )

        # A restart: the process remembers nothing, the database does.
        centre_link._EMAILS.clear()
        again, normalised = self.fetch_counting()
        self.assertEqual(normalised, [])
        self.assertEqual(again, body)
        self.assertEqual(len(self.remembered("8 999 555-11-11")), 1)

    def test_the_cron_prepares_the_window_before_the_first_fetch(self):
        order = self.make_order("8 999 555-44-55")
        self.assertFalse(self.remembered("8 999 555-44-55"))
        self.Memo._cron_prepare_centre_phones()
        self.assertRecordValues(
            self.remembered("8 999 555-44-55"), [{"region": "RU", "normalized": "79995554455"}]
        )
        body, normalised = self.fetch_counting()
        self.assertEqual(normalised, [])
        self.assertEqual(self.phones_served(body), {f"so-{order.id}": "79995554455"})
        # A second run has nothing left to prepare.
        with patch.object(centre_link, "normalize_phone") as normalize:
            self.Memo._cron_prepare_centre_phones()
        normalize.assert_not_called()

    def test_turning_the_link_on_triggers_the_preparation(self):
        cron = self.env.ref("metrika_offline_conversions.ir_cron_metrika_centre_phones")
        Trigger = self.env["ir.cron.trigger"].sudo()
        before = Trigger.search_count([("cron_id", "=", cron.id)])
        other = self.env["res.company"].create({"name": "Other shop"})
        self.assertEqual(Trigger.search_count([("cron_id", "=", cron.id)]), before)
        other.sudo().write({"metrika_centre_link_enabled": True})
        self.assertEqual(Trigger.search_count([("cron_id", "=", cron.id)]), before + 1)

    def test_an_invalid_number_is_remembered_as_invalid_and_not_served(self):
        invalid = self.make_order("8 12")
        valid = self.make_order("8 999 555-66-77", name="Anna")
        body, normalised = self.fetch_counting()
        self.assertIn("8 12", normalised)
        self.assertEqual(self.phones_served(body), {f"so-{valid.id}": "79995556677"})
        self.assertNotIn(f"so-{invalid.id}", body.decode())
        self.assertRecordValues(self.remembered("8 12"), [{"region": "RU", "normalized": False}])
        again, normalised = self.fetch_counting()
        self.assertEqual(normalised, [])
        self.assertEqual(again, body)

    def test_numbers_of_another_library_version_are_ignored_then_removed(self):
        order = self.make_order("8 999 555-88-99")
        # A wrong answer remembered by another phonenumbers release.
        stale = self.Memo.create(
            {
                "raw": "8 999 555-88-99",
                "region": "RU",
                "normalized": "70000000000",
                "version": "0.0.1-other",
            }
        )
        body, normalised = self.fetch_counting()
        self.assertEqual(normalised, ["8 999 555-88-99"])
        self.assertEqual(self.phones_served(body), {f"so-{order.id}": "79995558899"})
        self.assertRecordValues(
            self.remembered("8 999 555-88-99"),
            [
                {"normalized": "70000000000", "version": "0.0.1-other"},
                {"normalized": "79995558899", "version": PHONE_RULES_VERSION},
            ],
        )
        self.Memo._gc_metrika_other_phone_rules()
        self.assertFalse(stale.exists())
        self.assertRecordValues(
            self.remembered("8 999 555-88-99"), [{"version": PHONE_RULES_VERSION}]
        )

    def test_a_number_changed_on_the_partner_is_served_in_its_new_form(self):
        order = self.make_order("8 999 555-11-22")
        self.assertEqual(self.phones_served(self.fetch()), {f"so-{order.id}": "79995551122"})
        order.partner_id.phone = "+7 999 555-22-11"
        body, normalised = self.fetch_counting()
        self.assertEqual(normalised, ["+7 999 555-22-11"])
        self.assertEqual(self.phones_served(body), {f"so-{order.id}": "79995552211"})
