from odoo.exceptions import ValidationError
from odoo.tests import tagged

from odoo.addons.metrika_offline_conversions.tools import odoo_compat

from .common import CLIENT_ID, MetrikaCase


@tagged("post_install", "-at_install")
class TestRecordIdentifiers(MetrikaCase):
    def test_identifiers_are_validated_and_stored_normalised(self):
        order = self.make_order(confirm=False, metrika_client_id=f"  {CLIENT_ID} ")
        self.assertEqual(order.metrika_client_id, CLIENT_ID)
        order.metrika_yclid = " 6754821930114400255 "
        self.assertEqual(order.metrika_yclid, "6754821930114400255")
        lead = self.env["crm.lead"].create(
            {"name": "Sofa", "metrika_client_id": "16711067211040563817"}
        )
        self.assertEqual(lead.metrika_client_id, "16711067211040563817", "kept past int64 as text")
        for field, value in (
            ("metrika_client_id", "12ab34"),
            ("metrika_client_id", "123456789012345678901"),
            ("metrika_yclid", "-5"),
        ):
            with (
                self.subTest(field=field, value=value),
                self.assertRaisesRegex(ValidationError, value),
            ):
                order.write({field: value})
        with self.assertRaisesRegex(ValidationError, "ClientID"):
            self.env["crm.lead"].create({"name": "Bad", "metrika_client_id": "abc"})

    def test_quotation_takes_the_opportunity_identifiers_without_overwriting(self):
        lead = self.env["crm.lead"].create(
            {
                "name": "Sofa deal",
                "type": "opportunity",
                "partner_id": self.partner.id,
                "metrika_client_id": CLIENT_ID,
                "metrika_yclid": "6754821930114400255",
            }
        )
        made_from_lead = self.make_order(confirm=False, opportunity_id=lead.id)
        self.assertRecordValues(
            made_from_lead,
            [
                {
                    "metrika_client_id": CLIENT_ID,
                    "metrika_yclid": "6754821930114400255",
                }
            ],
        )
        own = self.make_order(confirm=False, metrika_client_id="1700000000123456789")
        own.opportunity_id = lead
        self.assertRecordValues(
            own,
            [
                {
                    "metrika_client_id": "1700000000123456789",
                    "metrika_yclid": "6754821930114400255",
                }
            ],
        )
        linked_later = self.make_order(confirm=False)
        self.assertFalse(linked_later.metrika_client_id)
        linked_later.opportunity_id = lead
        self.assertEqual(linked_later.metrika_client_id, CLIENT_ID)

    def test_new_quotation_button_carries_identifiers(self):
        lead = self.env["crm.lead"].create(
            {
                "name": "Sofa deal",
                "type": "opportunity",
                "partner_id": self.partner.id,
                "metrika_client_id": CLIENT_ID,
            }
        )
        action = lead.action_new_quotation()
        order = (
            self.env["sale.order"]
            .with_context(**action["context"])
            .create(
                {
                    "order_line": [(0, 0, {"product_id": self.product.id})],
                }
            )
        )
        self.assertEqual(order.metrika_client_id, CLIENT_ID)

    def test_attribution_quality_follows_yandex_table(self):
        nobody = self.env["res.partner"].create({"name": "Anonymous"})
        # The mobile number where the series has one (18.0), else the phone.
        phone_field = odoo_compat.field_paths(self.env["res.partner"], ["mobile", "phone"])[0]
        phone_only = self.env["res.partner"].create(
            {"name": "Caller", phone_field: "+7 912 000-00-01"}
        )
        cases = (
            (self.partner, CLIENT_ID, "maximum"),
            (nobody, CLIENT_ID, "good"),
            (phone_only, False, "medium"),
            (self.partner, False, "medium"),
            (nobody, False, "none"),
        )
        for partner, client_id, quality in cases:
            order = self.make_order(
                confirm=False, partner_id=partner.id, metrika_client_id=client_id
            )
            with self.subTest(partner=partner.name, client_id=client_id):
                self.assertEqual(order.metrika_attribution, quality)
        lead = self.env["crm.lead"].create({"name": "Web form", "email_from": "Not an e-mail"})
        self.assertEqual(lead.metrika_attribution, "none", "invalid contact data does not count")
        lead.email_from = "buyer@example.com"
        self.assertEqual(lead.metrika_attribution, "medium")
        lead.metrika_client_id = CLIENT_ID
        self.assertEqual(lead.metrika_attribution, "maximum")

    def test_phone_and_email_normalised_with_company_country(self):
        order = self.make_order(confirm=False, metrika_client_id=CLIENT_ID)
        self.assertEqual(
            order._metrika_identifiers(),
            {
                "client_ids": [CLIENT_ID],
                "yclids": [],
                "emails": ["ivan.petrov@example.ru"],
                "phones": ["79995551111"],
            },
        )

    def test_smart_button_lists_the_record_conversions(self):
        order = self.make_order(metrika_client_id=CLIENT_ID)
        self.assertEqual(order.metrika_conversion_count, 1)
        action = order.action_metrika_conversions()
        self.assertEqual(
            self.env["metrika.conversion"].search(action["domain"]), self.conversions(order)
        )

    def test_send_now_queues_and_wakes_the_upload_without_sending(self):
        order = self.make_order(metrika_client_id=CLIENT_ID)
        conversion = self.conversions(order)
        conversion.sudo().write({"state": "error", "last_error": "old failure"})
        action = order.action_metrika_send_now()
        self.assertEqual(action["tag"], "display_notification")
        self.assertRecordValues(conversion, [{"state": "pending", "last_error": False}])
        self.assertFalse(self.api.requests, "no HTTP call on the user's path")
        self.assertTrue(self.env.cr.precommit.data.get("metrika_trigger_upload"))
