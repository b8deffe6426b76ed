"""The detailed CRM method against the Metrica stand-in, which holds an order to its contact
(uploaded before it) and to a status Metrica knows (a default, a mapped id or a goal): contacts
before orders, a contact with every identifier of its customer, the status mapping pushed once
and again when it changes, and the same guarantees as the other methods through faults and lost
answers."""

from datetime import timedelta

from odoo import fields
from odoo.tests import tagged

from odoo.addons.metrika_offline_conversions import const

from .common import CLIENT_ID, COUNTER_ID, MetrikaCase, csv_rows

CDP = f"/cdp/api/v1/counter/{COUNTER_ID}"
CONTACTS_PATH = f"{CDP}/data/contacts/csv"
ORDERS_PATH = f"{CDP}/data/orders/csv"
STATUSES_PATH = f"{CDP}/schema/order_statuses"
HISTORY_PATH = f"{CDP}/last_uploadings"
OTHER_CLIENT_ID = "1628529640459314999"
LEAD_CLIENT_ID = "1700000000123456789"


@tagged("post_install", "-at_install")
class TestUploadCdpDetailed(MetrikaCase):
    def setUp(self):
        super().setUp()
        self.api.strict_goals = False
        self.company.sudo().write(
            {
                "metrika_transport": const.TRANSPORT_CDP_DETAILED,
                "metrika_status_mapping_fingerprint": False,
            }
        )

    # ------------------------------------------------------------------ helpers

    def posts(self, path=None):
        return [
            request.path
            for request in self.api.requests
            if request.method == "POST" and (path is None or request.path == path)
        ]

    def stored_contact(self, partner):
        return self.api.contacts[COUNTER_ID][f"partner-{partner.commercial_partner_id.id}"]

    def stored_order(self, order_id):
        return self.api.detailed_orders[COUNTER_ID][order_id]

    def uploads(self):
        return self.Upload.search([], order="id")

    def overdue(self, uploads):
        uploads.sudo().write({"settle_after": fields.Datetime.now() - timedelta(seconds=1)})

    def due_now(self):
        self.pending().sudo().write({"next_attempt_at": fields.Datetime.now()})

    def customer(self):
        """A company customer with a contact person, each with a phone and an e-mail."""
        company = self.env["res.partner"].create(
            {
                "name": "Romashka LLC",
                "is_company": True,
                "email": "office@romashka.ru",
                "phone": "+7 495 123-45-67",
            }
        )
        person = self.env["res.partner"].create(
            {
                "name": "Anna Romashkina",
                "parent_id": company.id,
                "email": "Anna@Romashka.ru",
                "phone": "8 (916) 000-11-22",
            }
        )
        return company, person

    # ------------------------------------------------------------------ contacts and orders

    def test_contacts_go_before_orders_with_every_identifier_of_the_customer(self):
        company, person = self.customer()
        # Known from a lead of the customer that is not sent at all (leads are off). (Its
        # e-mail and phone would be written to the partner by crm: they are the partner's.)
        self.env["crm.lead"].create(
            {"name": "Sofa request", "partner_id": person.id, "metrika_client_id": LEAD_CLIENT_ID}
        )
        first = self.make_order(partner_id=person.id, metrika_client_id=CLIENT_ID)
        second = self.make_order(partner_id=company.id, metrika_client_id=OTHER_CLIENT_ID)
        self.run_cron()

        self.assertEqual(
            self.posts(), [STATUSES_PATH, CONTACTS_PATH, ORDERS_PATH], "mapping, contacts, orders"
        )
        contacts = csv_rows(self.api.last_request("data/contacts"))
        self.assertEqual(len(contacts), 1, "one contact per customer")
        contact = self.stored_contact(person)
        self.assertEqual(set(contact["client_ids"]), {CLIENT_ID, OTHER_CLIENT_ID, LEAD_CLIENT_ID})
        self.assertEqual(set(contact["emails"]), {"office@romashka.ru", "anna@romashka.ru"})
        self.assertEqual(set(contact["phones"]), {"74951234567", "79160001122"})

        for order in (first, second):
            stored = self.stored_order(f"so-{order.id}")
            self.assertEqual(stored["client_uniq_id"], contact["uniq_id"])
            self.assertEqual(stored["client_type"], "CONTACT")
            self.assertEqual(stored["order_status"], const.STATUS_SALES_ORDER)
            self.assertEqual(stored["products"], "Sofa:1")
            self.assertEqual(stored["currency"], order.currency_id.name)
            self.assertEqual(float(stored["revenue"]), order.amount_total)
        [upload] = self.uploads()
        self.assertRecordValues(
            upload,
            [
                {
                    "transport": const.TRANSPORT_CDP_DETAILED,
                    "state": const.UPLOAD_ACCEPTED,
                    "row_count": 2,
                    "contacts_count": 1,
                    "validation_status": "PASSED",
                    "contacts_validation_status": "PASSED",
                }
            ],
        )
        self.assertTrue(upload.contacts_uploading_id and upload.uploading_id)
        self.assertNotEqual(upload.contacts_uploading_id, upload.uploading_id)
        self.assertTrue(upload.attachment_id and upload.contacts_attachment_id)
        self.assertIn("1 contacts and 2 orders accepted", upload.result_summary)
        self.assertEqual(set(self.conversions(first | second).mapped("state")), {const.STATE_SENT})

    def test_hashed_identifiers_go_as_md5_only(self):
        self.company.sudo().metrika_hash_identifiers = True
        self.make_order(metrika_client_id=CLIENT_ID)
        self.run_cron()
        [row] = csv_rows(self.api.last_request("data/contacts"))
        self.assertEqual(row["client_ids"], CLIENT_ID)
        self.assertNotIn("emails", row)
        self.assertNotIn("phones", row)
        self.assertEqual(row["phones_md5"], "f09f2c3d48f31e2a802944ade2e5aec5")

    def test_an_order_whose_customer_has_no_identifier_is_skipped(self):
        nobody = self.env["res.partner"].create({"name": "Walk-in customer"})
        conversion = self.conversions(self.make_order(partner_id=nobody.id))
        self.run_cron()
        self.assertRecordValues(
            conversion,
            [{"state": const.STATE_SKIPPED, "failure_reason": const.REASON_NO_IDENTIFIER}],
        )
        self.assertEqual(self.posts(), [], "nothing to send")
        # A phone arrives: the order goes at the next upload.
        nobody.phone = "+7 999 555-11-11"
        self.assertRecordValues(conversion, [{"state": const.STATE_PENDING}])
        self.run_cron()
        self.assertRecordValues(conversion, [{"state": const.STATE_SENT}])
        self.assertEqual(self.stored_contact(nobody)["phones"], ["79995551111"])

    def test_paid_and_cancelled_orders_carry_our_status(self):
        order = self.make_order(metrika_client_id=CLIENT_ID)
        self.Conversion._metrika_enqueue(order, const.EVENT_PAID)
        other = self.make_order(metrika_client_id=OTHER_CLIENT_ID)
        other._action_cancel()
        self.run_cron()
        self.assertEqual(self.stored_order(f"so-{order.id}")["order_status"], const.STATUS_PAID)
        self.assertEqual(
            self.stored_order(f"so-{other.id}")["order_status"], const.STATUS_CANCELLED
        )
        mapping = {status["id"]: status for status in self.api.order_statuses[COUNTER_ID]}
        self.assertEqual(mapping[const.STATUS_PAID]["type"], "PAID")
        self.assertEqual(mapping[const.STATUS_CANCELLED]["type"], "CANCELLED")
        self.assertEqual(mapping[const.STATUS_QUOTATION]["humanized"], "Quotation")
        self.assertEqual(mapping[const.STATUS_PAID]["humanized"], "Paid order")

    # ------------------------------------------------------------------ the status mapping

    def test_mapping_is_pushed_once_and_again_when_a_stage_is_added(self):
        self.company.sudo().metrika_send_leads = True
        lead = self.env["crm.lead"].create(
            {"name": "Lead", "partner_id": self.partner.id, "metrika_client_id": CLIENT_ID}
        )
        self.run_cron()
        self.assertEqual(len(self.posts(STATUSES_PATH)), 1)
        mapping = {status["id"]: status for status in self.api.order_statuses[COUNTER_ID]}
        stage_status = f"{const.STATUS_STAGE_PREFIX}{lead.stage_id.id}"
        self.assertEqual(mapping[stage_status]["type"], "IN_PROGRESS")
        self.assertEqual(mapping[stage_status]["humanized"], f"Lead: {lead.stage_id.name}")
        won = self.env["crm.stage"].search([("is_won", "=", True)], limit=1)
        self.assertEqual(mapping[f"{const.STATUS_STAGE_PREFIX}{won.id}"]["type"], "PAID")
        self.assertEqual(mapping[const.STATUS_LEAD_SPAM]["type"], "SPAM")
        self.assertEqual(self.stored_order(f"lead-{lead.id}")["order_status"], stage_status)
        fingerprint = self.company.metrika_status_mapping_fingerprint
        self.assertTrue(fingerprint)

        self.make_order(metrika_client_id=OTHER_CLIENT_ID)
        self.run_cron()
        self.assertEqual(len(self.posts(ORDERS_PATH)), 2)
        self.assertEqual(len(self.posts(STATUSES_PATH)), 1, "unchanged: not pushed again")

        stage = self.env["crm.stage"].create({"name": "Site visit", "sequence": 50})
        lead.stage_id = stage
        self.Conversion._metrika_enqueue(
            self.env["crm.lead"].create({"name": "Another", "partner_id": self.partner.id}),
            const.EVENT_IN_PROGRESS,
        )
        self.run_cron()
        self.assertEqual(len(self.posts(STATUSES_PATH)), 2, "a stage was added: pushed again")
        self.assertEqual(
            self.posts()[-3:], [STATUSES_PATH, CONTACTS_PATH, ORDERS_PATH], "before the orders"
        )
        mapping = {status["id"]: status for status in self.api.order_statuses[COUNTER_ID]}
        self.assertEqual(
            mapping[f"{const.STATUS_STAGE_PREFIX}{stage.id}"]["humanized"], "Lead: Site visit"
        )
        self.assertNotEqual(self.company.metrika_status_mapping_fingerprint, fingerprint)

    def test_mapping_is_named_in_the_company_language(self):
        self.env["res.lang"]._activate_lang("ru_RU")
        self.env["ir.module.module"].search(
            [("name", "=", "metrika_offline_conversions")]
        )._update_translations(["ru_RU"])
        self.company.partner_id.lang = "ru_RU"
        self.make_order(metrika_client_id=CLIENT_ID)
        self.run_cron()
        mapping = {status["id"]: status for status in self.api.order_statuses[COUNTER_ID]}
        self.assertEqual(mapping[const.STATUS_QUOTATION]["humanized"], "Коммерческое предложение")
        self.assertEqual(mapping[const.STATUS_PAID]["humanized"], "Оплаченный заказ")

    def test_a_failed_mapping_push_sends_nothing_and_is_retried(self):
        conversion = self.conversions(self.make_order(metrika_client_id=CLIENT_ID))
        self.api.fail_next(503, path="schema/order_statuses")
        self.run_cron()
        self.assertRecordValues(
            conversion, [{"state": const.STATE_PENDING, "failure_reason": const.REASON_SERVER}]
        )
        self.assertEqual(self.posts(), [STATUSES_PATH], "no contacts, no orders")
        self.assertFalse(self.company.metrika_status_mapping_fingerprint)
        self.due_now()
        self.run_cron()
        self.assertRecordValues(conversion, [{"state": const.STATE_SENT}])
        self.assertEqual(self.posts().count(STATUSES_PATH), 2)

    # ------------------------------------------------------------------ faults, lost answers

    def test_contacts_refused_for_now_send_no_orders(self):
        conversion = self.conversions(self.make_order(metrika_client_id=CLIENT_ID))
        self.api.fail_next(429, path="data/contacts")
        self.run_cron()
        self.assertRecordValues(
            conversion, [{"state": const.STATE_PENDING, "failure_reason": const.REASON_QUOTA}]
        )
        self.assertEqual(self.posts(ORDERS_PATH), [])
        self.due_now()
        self.run_cron()
        self.assertRecordValues(conversion, [{"state": const.STATE_SENT}])
        self.assertEqual(self.api.stats()["detailed"]["orders_stored"], 1)

    def test_lost_answer_of_stored_orders_is_found_in_the_history(self):
        order = self.make_order(metrika_client_id=CLIENT_ID)
        conversion = self.conversions(order)
        self.api.fail_next(504, path="data/orders", accept=True)
        self.run_cron()
        [upload] = self.uploads()
        self.assertRecordValues(upload, [{"state": const.UPLOAD_UNCONFIRMED}])
        self.assertRecordValues(
            conversion, [{"state": const.STATE_SENDING, "upload_id": upload.id}]
        )
        self.assertTrue(upload.contacts_uploading_id and upload.orders_sent_at)

        self.run_cron()
        self.assertEqual(conversion.state, const.STATE_SENDING, "not before its check is due")
        self.overdue(upload)
        self.run_cron()
        self.assertTrue(
            [r for r in self.api.requests if r.path == HISTORY_PATH], "looked up in the history"
        )
        self.assertEqual(len(self.posts(ORDERS_PATH)), 1, "never sent again")
        self.assertEqual(self.api.stored_detailed_order_ids[(COUNTER_ID, f"so-{order.id}")], 1)
        self.assertRecordValues(upload, [{"state": const.UPLOAD_ACCEPTED}])
        self.assertRecordValues(
            conversion, [{"state": const.STATE_SENT, "metrika_result": const.RESULT_ACCEPTED}]
        )
        self.assertEqual(
            upload.uploading_id, self.api.cdp_uploadings[COUNTER_ID][-1]["uploading_id"]
        )

    def test_lost_answer_of_unstored_orders_sends_them_again(self):
        order = self.make_order(metrika_client_id=CLIENT_ID)
        conversion = self.conversions(order)
        self.api.fail_next("drop", path="data/orders")
        self.run_cron()
        [lost] = self.uploads()
        self.assertRecordValues(lost, [{"state": const.UPLOAD_UNCONFIRMED}])
        self.overdue(lost)
        self.run_cron()
        self.assertRecordValues(lost, [{"state": const.UPLOAD_LOST}])
        self.assertRecordValues(conversion, [{"state": const.STATE_SENT}])
        self.assertEqual(len(self.posts(CONTACTS_PATH)), 2, "contacts again: harmless")
        self.assertEqual(self.api.stored_detailed_order_ids[(COUNTER_ID, f"so-{order.id}")], 1)

    def test_random_faults_lose_nothing_and_count_nothing_twice(self):
        orders = self.make_orders(8, metrika_client_id=CLIENT_ID)
        self.company.sudo().metrika_batch_size = 3
        self.api.fail_randomly(0.3, seed=7)
        for _round in range(60):
            if not self.Conversion.search_count(
                [("state", "in", (const.STATE_PENDING, const.STATE_SENDING))]
            ):
                break
            self.overdue(self.Upload.search([("state", "in", const.UPLOAD_OPEN_STATES)]))
            self.due_now()
            self.run_cron()
        self.api.fail_randomly(0)
        self.assertGreater(sum(self.api.random_failures.values()), 0, "faults were injected")
        self.assertEqual(set(self.conversions(orders).mapped("state")), {const.STATE_SENT})
        self.assertEqual(
            set(self.api.detailed_orders[COUNTER_ID]), {f"so-{order.id}" for order in orders}
        )
        # The verdict kept is Metrica's: every upload taken as accepted is one Metrica passed.
        passed = {
            uploading["uploading_id"]
            for uploading in self.api.cdp_uploadings[COUNTER_ID]
            if uploading["api_validation_status"] == "PASSED"
            and uploading["entity_subtype"] == "ORDERS"
        }
        accepted = self.uploads().filtered(lambda u: u.state == const.UPLOAD_ACCEPTED)
        self.assertTrue(accepted)
        self.assertLessEqual(set(accepted.mapped("uploading_id")), passed)
