"""Every route that queues a Metrica conversion, on a real database.

Sale orders (create, confirm, cancel, paid by invoice or online), CRM leads (create, won by
button or kanban drag, lost by the wizard, imported won), the settings that switch events off,
and the guarantees of the outbox: one row per record and event, never an error in the user's
action, a cron trigger at commit, no read access for salespeople.
"""

from datetime import timedelta
from unittest.mock import patch

from psycopg2 import IntegrityError

from odoo import Command, fields
from odoo.exceptions import AccessError
from odoo.tests import new_test_user, tagged
from odoo.tools import SQL, mute_logger

from odoo.addons.account_payment.tests.common import AccountPaymentCommon
from odoo.addons.metrika_offline_conversions import const
from odoo.addons.sale.tests.common import SaleCommon

from .common import CLIENT_ID, MetrikaCase, csv_rows

ENQUEUE_LOGGER = "odoo.addons.metrika_offline_conversions.models.metrika_conversion_queue"
PAID_STATES = ("paid", "in_payment")


def pending_row(record, event, status, metrika_order_id, revenue):
    """The exact values of a freshly queued conversion."""
    return {
        "event": event,
        "order_status": status,
        "state": const.STATE_PENDING,
        "revenue": revenue,
        "metrika_order_id": metrika_order_id,
        "failure_reason": False,
        record._metrika_conversion_field: record.id,
    }


@tagged("post_install", "-at_install")
class TestConversionEvents(MetrikaCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.stage_new = cls.env["crm.stage"].create({"name": "Metrica: new", "sequence": 1})
        cls.stage_won = cls.env["crm.stage"].create(
            {
                "name": "Metrica: won",
                "sequence": 2,
                "is_won": True,
            }
        )
        cls.reason_price = cls.env["crm.lost.reason"].create({"name": "Too expensive (Metrica)"})
        cls.reason_spam = cls.env["crm.lost.reason"].create({"name": "Spam (Metrica)"})
        cls.company.metrika_spam_lost_reason_ids = [Command.set(cls.reason_spam.ids)]

    # ------------------------------------------------------------------
    # Helpers
    # ------------------------------------------------------------------

    def order_row(self, order, event, status, metrika_order_id=None):
        return pending_row(
            order, event, status, metrika_order_id or f"so-{order.id}", order.amount_total
        )

    def lead_row(self, lead, event, status):
        return pending_row(lead, event, status, f"lead-{lead.id}", lead.expected_revenue)

    def make_lead(self, **values):
        return self.env["crm.lead"].create(
            {
                "name": "Sofa for the office",
                "type": "opportunity",
                "partner_id": self.partner.id,
                "expected_revenue": 5000.0,
                "stage_id": self.stage_new.id,
                **values,
            }
        )

    def cancel(self, order):
        # On 18.0 the button opens the cancel wizard for a confirmed order, and its "Cancel" goes
        # on here; 19.0 has no wizard, the button cancels.
        if "sale.order.cancel" in self.env:
            self.env["sale.order.cancel"].create({"order_id": order.id}).action_cancel()
        else:
            order.action_cancel()
        self.assertEqual(order.state, "cancel")

    def send_leads(self):
        self.company.metrika_send_leads = True

    # ------------------------------------------------------------------
    # Sale orders: created / confirmed
    # ------------------------------------------------------------------

    def test_order_confirmed_queues_in_progress(self):
        order = self.make_order(confirm=False)
        self.assertFalse(self.conversions(order), "no row for a quotation in 'confirmed' mode")
        order.action_confirm()
        self.assertEqual(order.state, "sale")
        self.assertTrue(order.amount_total)
        self.assertRecordValues(
            self.conversions(order),
            [
                self.order_row(order, const.EVENT_IN_PROGRESS, "IN_PROGRESS"),
            ],
        )
        conversion = self.conversions(order)
        self.assertEqual(conversion.company_id, self.company)
        self.assertEqual(conversion.currency_id, order.currency_id)
        self.assertEqual(conversion.transport, const.TRANSPORT_SIMPLE_ORDERS)
        self.assertEqual(conversion.record_name, order.display_name)
        self.assertEqual(order.metrika_conversion_count, 1)

    def test_order_created_mode_queues_on_create_once(self):
        self.company.metrika_order_event = "created"
        order = self.make_order(confirm=False)
        self.assertEqual(order.state, "draft")
        self.assertRecordValues(
            self.conversions(order),
            [
                self.order_row(order, const.EVENT_IN_PROGRESS, "IN_PROGRESS"),
            ],
        )
        order.action_confirm()
        self.assertEqual(order.state, "sale")
        self.assertEqual(len(self.conversions(order)), 1, "confirming adds no second row")

    def test_reconfirmed_order_is_not_queued_twice(self):
        order = self.make_order()
        self.cancel(order)
        order.action_draft()
        order.action_confirm()
        self.assertEqual(order.state, "sale")
        self.assertRecordValues(
            self.conversions(order),
            [
                self.order_row(order, const.EVENT_IN_PROGRESS, "IN_PROGRESS"),
                self.order_row(order, const.EVENT_CANCELLED, "CANCELLED"),
            ],
        )
        confirmed, cancelled = self.conversions(order)
        self.assertGreater(
            confirmed.queued_sequence,
            cancelled.queued_sequence,
            "the row of the order's current status is the one queued last",
        )

    def test_order_confirmed_again_after_a_sent_cancellation_is_queued_again(self):
        order = self.make_order()
        confirmed = self.conversions(order)
        self.cancel(order)
        cancelled = self.conversions(order) - confirmed
        # Both went out in earlier transactions: the cancellation last.
        earlier = fields.Datetime.now() - timedelta(hours=2)
        confirmed.sudo().write({"state": "sent", "event_date": earlier})
        cancelled.sudo().write({"state": "sent", "event_date": earlier + timedelta(hours=1)})
        order.action_draft()
        order.action_confirm()
        self.assertEqual(self.conversions(order), confirmed | cancelled, "no new row")
        self.assertRecordValues(confirmed, [{"state": "pending", "attempt_count": 0}])
        self.assertGreater(confirmed.event_date, cancelled.event_date)
        self.assertRecordValues(cancelled, [{"state": "sent"}])
        self.assertGreater(confirmed.queued_sequence, cancelled.queued_sequence)
        # Confirming once more changes nothing: the row is already queued.
        self.assertFalse(self.Conversion._metrika_enqueue(order, const.EVENT_IN_PROGRESS))

    def test_deleted_quotation_keeps_its_row_in_the_log(self):
        self.company.metrika_order_event = "created"
        order = self.make_order(confirm=False)
        kept = self.make_order(confirm=False)
        name = order.name
        order.unlink()
        # The log keeps what was queued; the upload skips it (the record is gone).
        self.assertRecordValues(
            self.Conversion.search([("record_name", "=", name)]),
            [{"event": const.EVENT_IN_PROGRESS, "sale_order_id": False, "state": "pending"}],
        )
        self.assertEqual(len(self.conversions(kept)), 1)

    def test_database_refuses_a_second_row_per_order_and_event(self):
        order = self.make_order()
        existing = self.conversions(order)
        self.assertEqual(len(existing), 1)
        with mute_logger("odoo.sql_db"), self.assertRaises(IntegrityError), self.env.cr.savepoint():
            self.Conversion.create(
                {
                    "company_id": self.company.id,
                    "sale_order_id": order.id,
                    "event": const.EVENT_IN_PROGRESS,
                    "order_status": "IN_PROGRESS",
                    "transport": const.TRANSPORT_SIMPLE_ORDERS,
                }
            )
            self.env.flush_all()
        with mute_logger("odoo.sql_db"), self.assertRaises(IntegrityError), self.env.cr.savepoint():
            self.env.cr.execute(
                "INSERT INTO metrika_conversion "
                "(company_id, sale_order_id, event, order_status, transport, state) "
                "VALUES (%s, %s, %s, 'IN_PROGRESS', %s, 'pending')",
                (self.company.id, order.id, const.EVENT_IN_PROGRESS, const.TRANSPORT_SIMPLE_ORDERS),
            )
        self.assertEqual(self.conversions(order), existing)
        # A lead is held to the same rule.
        self.send_leads()
        lead = self.make_lead()
        self.assertEqual(len(self.conversions(lead)), 1)
        with mute_logger("odoo.sql_db"), self.assertRaises(IntegrityError), self.env.cr.savepoint():
            self.env.cr.execute(
                "INSERT INTO metrika_conversion "
                "(company_id, lead_id, event, order_status, transport, state) "
                "VALUES (%s, %s, %s, 'IN_PROGRESS', %s, 'pending')",
                (self.company.id, lead.id, const.EVENT_IN_PROGRESS, const.TRANSPORT_SIMPLE_ORDERS),
            )
        self.assertEqual(len(self.conversions(lead)), 1)

    # ------------------------------------------------------------------
    # Sale orders: cancelled
    # ------------------------------------------------------------------

    def test_order_cancelled_after_confirmation_queues_cancelled(self):
        order = self.make_order()
        self.cancel(order)
        self.assertRecordValues(
            self.conversions(order),
            [
                self.order_row(order, const.EVENT_IN_PROGRESS, "IN_PROGRESS"),
                self.order_row(order, const.EVENT_CANCELLED, "CANCELLED"),
            ],
        )

    def test_quotation_cancelled_before_metrica_heard_of_it_queues_nothing(self):
        order = self.make_order(confirm=False)
        order.action_cancel()  # no wizard for a draft
        self.assertEqual(order.state, "cancel")
        self.assertFalse(self.conversions(order))

    def test_send_now_queues_no_cancellation_metrica_never_heard_of(self):
        quotation = self.make_order(confirm=False)
        quotation.action_cancel()
        order = self.make_order()
        self.cancel(order)
        (quotation | order).action_metrika_send_now()
        self.assertFalse(self.conversions(quotation))
        self.assertRecordValues(
            self.conversions(order),
            [
                self.order_row(order, const.EVENT_IN_PROGRESS, "IN_PROGRESS"),
                self.order_row(order, const.EVENT_CANCELLED, "CANCELLED"),
            ],
        )

    def test_quotation_cancelled_in_created_mode_queues_cancelled(self):
        # In "created" mode Metrica heard of the quotation, so it hears of its end too.
        self.company.metrika_order_event = "created"
        order = self.make_order(confirm=False)
        order.action_cancel()
        self.assertRecordValues(
            self.conversions(order),
            [
                self.order_row(order, const.EVENT_IN_PROGRESS, "IN_PROGRESS"),
                self.order_row(order, const.EVENT_CANCELLED, "CANCELLED"),
            ],
        )

    # ------------------------------------------------------------------
    # CRM leads
    # ------------------------------------------------------------------

    def test_lead_created_queues_in_progress(self):
        self.send_leads()
        lead = self.make_lead()
        self.assertRecordValues(
            self.conversions(lead),
            [
                self.lead_row(lead, const.EVENT_IN_PROGRESS, "IN_PROGRESS"),
            ],
        )
        self.assertEqual(self.conversions(lead).currency_id, self.company.currency_id)

    def test_lead_won_by_button_queues_paid(self):
        self.send_leads()
        lead = self.make_lead()
        lead.action_set_won()
        self.assertTrue(lead.stage_id.is_won)
        self.assertRecordValues(
            self.conversions(lead),
            [
                self.lead_row(lead, const.EVENT_IN_PROGRESS, "IN_PROGRESS"),
                self.lead_row(lead, const.EVENT_PAID, "PAID"),
            ],
        )
        # Winning again (another won stage, or the button twice) adds nothing.
        lead.action_set_won()
        lead.write({"stage_id": self.stage_won.id})
        self.assertEqual(len(self.conversions(lead)), 2)

    def test_lead_won_by_kanban_drag_queues_paid(self):
        self.send_leads()
        lead = self.make_lead()
        lead.write({"stage_id": self.stage_won.id})
        self.assertEqual(lead.probability, 100)
        self.assertRecordValues(
            self.conversions(lead),
            [
                self.lead_row(lead, const.EVENT_IN_PROGRESS, "IN_PROGRESS"),
                self.lead_row(lead, const.EVENT_PAID, "PAID"),
            ],
        )

    def test_lead_lost_by_wizard_queues_cancelled(self):
        self.send_leads()
        lead = self.make_lead()
        self.env["crm.lead.lost"].create(
            {
                "lead_ids": [Command.set(lead.ids)],
                "lost_reason_id": self.reason_price.id,
            }
        ).action_lost_reason_apply()
        self.assertFalse(lead.active)
        self.assertEqual(lead.lost_reason_id, self.reason_price)
        self.assertRecordValues(
            self.conversions(lead),
            [
                self.lead_row(lead, const.EVENT_IN_PROGRESS, "IN_PROGRESS"),
                self.lead_row(lead, const.EVENT_CANCELLED, "CANCELLED"),
            ],
        )

    def test_lead_lost_as_spam_queues_spam(self):
        self.send_leads()
        lead = self.make_lead()
        self.env["crm.lead.lost"].create(
            {
                "lead_ids": [Command.set(lead.ids)],
                "lost_reason_id": self.reason_spam.id,
            }
        ).action_lost_reason_apply()
        self.assertRecordValues(
            self.conversions(lead),
            [
                self.lead_row(lead, const.EVENT_IN_PROGRESS, "IN_PROGRESS"),
                self.lead_row(lead, const.EVENT_CANCELLED, "SPAM"),
            ],
        )

    def test_lead_imported_won_queues_in_progress_and_paid(self):
        self.send_leads()
        lead = self.make_lead(stage_id=self.stage_won.id)
        self.assertRecordValues(
            self.conversions(lead),
            [
                self.lead_row(lead, const.EVENT_IN_PROGRESS, "IN_PROGRESS"),
                self.lead_row(lead, const.EVENT_PAID, "PAID"),
            ],
        )

    def test_leads_not_sent_queue_nothing(self):
        self.assertFalse(self.company.metrika_send_leads)
        lead = self.make_lead()
        lead.action_set_won()
        other = self.make_lead()
        other.action_set_lost(lost_reason_id=self.reason_spam.id)
        self.assertFalse(self.conversions(lead | other))

    def test_lead_without_company_reads_phone_in_the_company_country(self):
        # A lead may have no company; its phone is still read with the company's country.
        partner = self.env["res.partner"].create(
            {
                "name": "Phone only",
                "phone": "8 (999) 555-22-22",
            }
        )
        self.send_leads()
        lead = self.make_lead(partner_id=partner.id, company_id=False)
        self.assertFalse(lead.company_id)
        self.assertEqual(lead._metrika_identifiers()["phones"], ["79995552222"])
        self.assertRecordValues(
            self.conversions(lead),
            [
                self.lead_row(lead, const.EVENT_IN_PROGRESS, "IN_PROGRESS"),
            ],
        )

    # ------------------------------------------------------------------
    # Lead -> quotation: one Metrica order per deal
    # ------------------------------------------------------------------

    def test_quotation_from_opportunity_is_the_leads_metrica_order(self):
        self.send_leads()
        lead = self.make_lead()
        first = self.make_order(opportunity_id=lead.id)
        second = self.make_order(opportunity_id=lead.id)
        self.assertRecordValues(
            self.conversions(first),
            [
                self.order_row(first, const.EVENT_IN_PROGRESS, "IN_PROGRESS", f"lead-{lead.id}"),
            ],
        )
        self.assertEqual(self.conversions(first).order_create_date, lead.create_date)
        self.assertRecordValues(
            self.conversions(second),
            [
                self.order_row(second, const.EVENT_IN_PROGRESS, "IN_PROGRESS", f"so-{second.id}"),
            ],
        )
        # The first quotation keeps the lead's id for its later events too.
        self.cancel(first)
        self.assertEqual(
            self.conversions(first).mapped("metrika_order_id"), [f"lead-{lead.id}"] * 2
        )

    def _salespeople(self):
        groups = "base.group_user,sales_team.group_sale_salesman"
        return (
            new_test_user(self.env, login="metrika_seller", name="Seller", groups=groups),
            new_test_user(self.env, login="metrika_colleague", name="Colleague", groups=groups),
        )

    def test_salespersons_second_quotation_keeps_its_own_id(self):
        # The salesperson's lead had a first quotation by a colleague, which the salesperson
        # cannot see ("own documents only"): theirs is still the second one.
        self.send_leads()
        seller, colleague = self._salespeople()
        lead = self.make_lead(user_id=seller.id)
        first = self.make_order(opportunity_id=lead.id, user_id=colleague.id)
        second = (
            self.env["sale.order"]
            .with_user(seller)
            .create(
                {
                    "partner_id": self.partner.id,
                    "opportunity_id": lead.id,
                    "order_line": [Command.create({"product_id": self.product.id})],
                }
            )
        )
        self.env.invalidate_all()  # the confirmation comes in another request
        second.action_confirm()
        self.assertEqual(self.conversions(first).metrika_order_id, f"lead-{lead.id}")
        self.assertRecordValues(
            self.conversions(second),
            [
                self.order_row(second, const.EVENT_IN_PROGRESS, "IN_PROGRESS", f"so-{second.id}"),
            ],
        )

    def test_salesperson_confirms_a_quotation_of_a_colleagues_lead(self):
        # The opportunity belongs to a colleague, so the salesperson cannot read it; the
        # quotation is still the deal's first order, sent under the lead's id.
        self.send_leads()
        seller, colleague = self._salespeople()
        lead = self.make_lead(user_id=colleague.id)
        order = (
            self.env["sale.order"]
            .with_user(seller)
            .create(
                {
                    "partner_id": self.partner.id,
                    "opportunity_id": lead.id,
                    "order_line": [Command.create({"product_id": self.product.id})],
                }
            )
        )
        self.env.invalidate_all()
        # sale_crm's own action_confirm reads the opportunity, so the seller cannot confirm
        # it in plain Odoo either; the queueing done in the seller's transaction must still
        # see the whole deal (and not raise).
        conversions = self.Conversion.with_user(seller)
        conversions._metrika_enqueue(order, const.EVENT_IN_PROGRESS)
        self.assertRecordValues(
            self.conversions(order),
            [
                self.order_row(order, const.EVENT_IN_PROGRESS, "IN_PROGRESS", f"lead-{lead.id}"),
            ],
        )
        self.assertEqual(self.conversions(order).order_create_date, lead.create_date)

    def test_quotation_from_opportunity_keeps_its_own_id_when_leads_are_not_sent(self):
        lead = self.make_lead()
        order = self.make_order(opportunity_id=lead.id)
        self.assertRecordValues(
            self.conversions(order),
            [
                self.order_row(order, const.EVENT_IN_PROGRESS, "IN_PROGRESS"),
            ],
        )

    def test_quotation_takes_the_leads_client_id(self):
        self.send_leads()
        lead = self.make_lead(metrika_client_id=CLIENT_ID)
        order = self.make_order(opportunity_id=lead.id, confirm=False)
        self.assertEqual(order.metrika_client_id, CLIENT_ID)

    # ------------------------------------------------------------------
    # Identifiers
    # ------------------------------------------------------------------

    def test_record_without_identifier_is_skipped_until_a_client_id_arrives(self):
        anonymous = self.env["res.partner"].create({"name": "Anonymous buyer"})
        order = self.make_order(partner_id=anonymous.id)
        # Confirming does not look up the customer's phone and e-mail: the upload does.
        self.assertRecordValues(
            self.conversions(order),
            [
                self.order_row(order, const.EVENT_IN_PROGRESS, "IN_PROGRESS"),
            ],
        )
        self.run_cron()
        self.assertFalse(self.upload_requests(), "nothing to send, no file")
        self.assertRecordValues(
            self.conversions(order),
            [
                {
                    "event": const.EVENT_IN_PROGRESS,
                    "order_status": "IN_PROGRESS",
                    "state": const.STATE_SKIPPED,
                    "revenue": order.amount_total,
                    "metrika_order_id": f"so-{order.id}",
                    "failure_reason": "no_identifier",
                }
            ],
        )
        self.assertIn(
            "Neither a ClientID nor a phone or e-mail", self.conversions(order).last_error
        )
        self.assertEqual(order.metrika_attribution, "none")

        order.metrika_client_id = CLIENT_ID
        self.assertRecordValues(
            self.conversions(order),
            [
                self.order_row(order, const.EVENT_IN_PROGRESS, "IN_PROGRESS"),
            ],
        )
        self.assertFalse(self.conversions(order).last_error)
        self.assertEqual(order.metrika_attribution, "good")

    def test_client_id_on_the_lead_requeues_its_quotations(self):
        self.send_leads()
        anonymous = self.env["res.partner"].create({"name": "Anonymous visitor"})
        lead = self.make_lead(partner_id=anonymous.id)
        order = self.make_order(partner_id=anonymous.id, opportunity_id=lead.id)
        self.run_cron()
        self.assertEqual(
            (self.conversions(lead) | self.conversions(order)).mapped("state"),
            [const.STATE_SKIPPED] * 2,
        )
        lead.metrika_client_id = CLIENT_ID
        self.assertEqual(order.metrika_client_id, CLIENT_ID)
        self.assertEqual(
            (self.conversions(lead) | self.conversions(order)).mapped("state"),
            [const.STATE_PENDING] * 2,
        )

    def test_skipped_order_goes_out_once_its_customer_has_a_phone(self):
        anonymous = self.env["res.partner"].create({"name": "Anonymous buyer"})
        order = self.make_order(partner_id=anonymous.id)
        self.run_cron()
        self.assertEqual(self.conversions(order).state, const.STATE_SKIPPED)
        anonymous.write({"comment": "Called back", "email": False})
        self.assertEqual(self.conversions(order).state, const.STATE_SKIPPED, "no contact came")

        anonymous.phone = "8 (999) 555-22-22"
        self.assertRecordValues(
            self.conversions(order),
            [
                self.order_row(order, const.EVENT_IN_PROGRESS, "IN_PROGRESS"),
            ],
        )
        self.run_cron()
        self.assertEqual(self.conversions(order).state, const.STATE_SENT)
        [request] = self.upload_requests()
        [row] = csv_rows(request)
        self.assertEqual((row["id"], row["phones"]), (f"so-{order.id}", "79995552222"))

    def test_skipped_quotation_goes_out_with_a_customer_that_has_an_email(self):
        anonymous = self.env["res.partner"].create({"name": "Anonymous buyer"})
        order = self.make_order(partner_id=anonymous.id)
        self.run_cron()
        self.assertEqual(self.conversions(order).state, const.STATE_SKIPPED)
        order.partner_id = self.partner
        self.assertEqual(self.conversions(order).state, const.STATE_PENDING)

    def test_skipped_lead_goes_out_once_it_has_an_email(self):
        self.send_leads()
        lead = self.make_lead(partner_id=False)
        self.run_cron()
        self.assertEqual(self.conversions(lead).mapped("state"), [const.STATE_SKIPPED])
        lead.email_from = "Buyer@Example.ru"
        self.assertEqual(self.conversions(lead).mapped("state"), [const.STATE_PENDING])

    def test_contact_data_does_not_bring_back_goal_based_conversions(self):
        # A goal-based conversion needs a click (a ClientID or a yclid), not a phone.
        self.company.write(
            {
                "metrika_transport": const.TRANSPORT_OFFLINE,
                "metrika_goal_in_progress": "crm_qualified_lead",
            }
        )
        order = self.make_order()
        self.assertEqual(self.conversions(order).state, const.STATE_SKIPPED)
        self.partner.phone = "8 (999) 555-33-33"
        self.assertEqual(self.conversions(order).state, const.STATE_SKIPPED)
        order.metrika_client_id = CLIENT_ID
        self.assertEqual(self.conversions(order).state, const.STATE_PENDING)

    # ------------------------------------------------------------------
    # Settings
    # ------------------------------------------------------------------

    def test_disabled_company_queues_nothing(self):
        self.company.write({"metrika_enabled": False, "metrika_send_leads": True})
        order = self.make_order()
        self.cancel(order)
        lead = self.make_lead()
        lead.action_set_won()
        self.assertFalse(self.conversions(order))
        self.assertFalse(self.conversions(lead))

    def test_broken_settings_still_queue(self):
        self.company.sudo().write({"metrika_token": False, "metrika_counter_id": False})
        self.assertFalse(self.company._metrika_is_configured())
        order = self.make_order()
        self.assertEqual(order.state, "sale")
        self.assertRecordValues(
            self.conversions(order),
            [
                self.order_row(order, const.EVENT_IN_PROGRESS, "IN_PROGRESS"),
            ],
        )

    def test_cancelled_event_switched_off(self):
        self.company.metrika_send_cancelled = False
        order = self.make_order()
        self.cancel(order)
        self.assertRecordValues(
            self.conversions(order),
            [
                self.order_row(order, const.EVENT_IN_PROGRESS, "IN_PROGRESS"),
            ],
        )

    # ------------------------------------------------------------------
    # Outbox guarantees
    # ------------------------------------------------------------------

    def test_enqueue_never_raises_into_the_users_action(self):
        def broken(record, event):
            raise ValueError("the revenue is not a number")

        with (
            patch.object(type(self.env["sale.order"]), "_metrika_conversion_values", broken),
            mute_logger(ENQUEUE_LOGGER),
        ):
            order = self.make_order()
            self.assertEqual(order.state, "sale")
        self.assertRecordValues(
            self.conversions(order),
            [
                {
                    "event": const.EVENT_IN_PROGRESS,
                    "order_status": "IN_PROGRESS",
                    "state": const.STATE_ERROR,
                    "revenue": order.amount_total,
                    "metrika_order_id": f"so-{order.id}",
                    "failure_reason": "invalid_data",
                }
            ],
        )
        self.assertIn("the revenue is not a number", self.conversions(order).last_error)

    def test_enqueue_registers_the_cron_trigger_at_commit(self):
        cron = self.env.ref(const.CRON_XMLID)
        Trigger = self.env["ir.cron.trigger"].sudo()
        before = Trigger.search_count([("cron_id", "=", cron.id)])
        order = self.make_order()
        self.assertEqual(len(self.conversions(order)), 1, "written in the user's transaction")
        self.assertEqual(
            Trigger.search_count([("cron_id", "=", cron.id)]),
            before,
            "the trigger waits for the commit",
        )
        now = fields.Datetime.now()
        self.env.cr.precommit.run()
        triggers = Trigger.search([("cron_id", "=", cron.id)], order="id desc", limit=2)
        self.assertEqual(Trigger.search_count([("cron_id", "=", cron.id)]), before + 2)
        soon, slot_end = sorted(triggers.mapped("call_at"))
        # At once (the cron thread is notified), and at the end of the slot for the
        # transactions that commit while the cron runs.
        self.assertLessEqual(soon, now + timedelta(seconds=1))
        self.assertGreaterEqual(slot_end, soon)
        self.assertLessEqual(slot_end, now + timedelta(seconds=const.TRIGGER_SLOT_SECONDS + 1))

    def test_confirming_writes_the_row_with_one_statement(self):
        orders = self.make_order(confirm=False) | self.make_order(confirm=False)
        self.env.flush_all()
        statements = []
        execute = type(self.env.cr).execute

        def counting_execute(cr, query, params=None, log_exceptions=True):
            statements.append(query.code if isinstance(query, SQL) else str(query))
            return execute(cr, query, params, log_exceptions)

        with patch.object(type(self.env.cr), "execute", counting_execute):
            self.Conversion._metrika_enqueue(orders, const.EVENT_IN_PROGRESS)
        self.assertEqual(len(statements), 1, statements)
        self.assertTrue(statements[0].startswith("INSERT INTO metrika_conversion"))
        # Read back with plain SQL: the rows are in the table, in this transaction.
        self.env.cr.execute(
            "SELECT sale_order_id, event, state, event_date FROM metrika_conversion "
            "WHERE sale_order_id = ANY(%s) ORDER BY sale_order_id",
            [orders.ids],
        )
        now = self.env.cr.now().replace(microsecond=0)
        self.assertEqual(
            self.env.cr.fetchall(),
            [(order.id, const.EVENT_IN_PROGRESS, const.STATE_PENDING, now) for order in orders],
        )

    def test_queue_is_kept_across_a_flushing_savepoint(self):
        order = self.make_order()
        with self.env.cr.savepoint():  # runs the precommit callbacks
            pass
        self.assertEqual(len(self.conversions(order)), 1)

    def test_sales_user_queues_but_cannot_read_the_log(self):
        salesman = new_test_user(
            self.env,
            login="metrika_salesman",
            name="Metrica salesman",
            groups="base.group_user,sales_team.group_sale_salesman",
        )
        self.assertFalse(salesman.has_group("metrika_offline_conversions.group_metrika_manager"))
        order = (
            self.env["sale.order"]
            .with_user(salesman)
            .create(
                {
                    "partner_id": self.partner.id,
                    "order_line": [
                        Command.create({"product_id": self.product.id, "product_uom_qty": 2})
                    ],
                }
            )
        )
        order.action_confirm()
        self.assertEqual(order.state, "sale")
        order = order.with_user(self.env.user)
        self.assertRecordValues(
            self.conversions(order),
            [
                self.order_row(order, const.EVENT_IN_PROGRESS, "IN_PROGRESS"),
            ],
        )
        with self.assertRaises(AccessError):
            self.env["metrika.conversion"].with_user(salesman).search([])
        with self.assertRaises(AccessError):
            self.conversions(order).with_user(salesman).read(["state"])


@tagged("post_install", "-at_install")
class TestPaymentEvents(MetrikaCase, AccountPaymentCommon, SaleCommon):
    """Paid: the register-payment wizard on invoices, and online transactions without one.

    The accounting bases load a chart of accounts on their own company and make an accountant
    the current user; that user is no Metrica manager, so the log is read as superuser.
    """

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.Conversion = cls.env["metrika.conversion"].sudo()

    def order_row(self, order, event, status):
        return pending_row(order, event, status, f"so-{order.id}", order.amount_total)

    def invoiced_order(self):
        order = self.make_order()
        invoice = order._create_invoices()
        invoice.action_post()
        self.assertEqual(invoice.amount_total, order.amount_total)
        return order, invoice

    def register_payment(self, invoice, **values):
        wizard = (
            self.env["account.payment.register"]
            .with_context(
                active_model="account.move",
                active_ids=invoice.ids,
            )
            .create(values)
        )
        return wizard._create_payments()

    def paid_rows(self, order):
        return self.conversions(order).filtered(lambda c: c.event == const.EVENT_PAID)

    def test_invoice_paid_by_the_wizard_queues_paid(self):
        order, invoice = self.invoiced_order()
        self.assertFalse(self.paid_rows(order))
        self.register_payment(invoice)
        self.assertIn(invoice.payment_state, PAID_STATES)
        self.assertRecordValues(
            self.conversions(order),
            [
                self.order_row(order, const.EVENT_IN_PROGRESS, "IN_PROGRESS"),
                self.order_row(order, const.EVENT_PAID, "PAID"),
            ],
        )

    def test_partial_payment_is_not_paid(self):
        order, invoice = self.invoiced_order()
        self.register_payment(invoice, amount=invoice.amount_total / 2)
        self.assertEqual(invoice.payment_state, "partial")
        self.assertFalse(self.paid_rows(order))
        self.register_payment(invoice)  # the rest
        self.assertIn(invoice.payment_state, PAID_STATES)
        self.assertRecordValues(
            self.paid_rows(order),
            [
                self.order_row(order, const.EVENT_PAID, "PAID"),
            ],
        )

    def test_paying_twice_queues_one_paid(self):
        order, invoice = self.invoiced_order()
        payment = self.register_payment(invoice)
        receivable = payment.move_id.line_ids.filtered(
            lambda line: (
                line.account_id
                == invoice.line_ids.filtered(
                    lambda move_line: move_line.display_type == "payment_term"
                ).account_id
            )
        )
        self.assertEqual(len(receivable), 1)
        receivable.remove_move_reconcile()
        self.assertEqual(invoice.payment_state, "not_paid")
        invoice.js_assign_outstanding_line(receivable.id)
        self.assertIn(invoice.payment_state, PAID_STATES)
        self.assertRecordValues(
            self.conversions(order),
            [
                self.order_row(order, const.EVENT_IN_PROGRESS, "IN_PROGRESS"),
                self.order_row(order, const.EVENT_PAID, "PAID"),
            ],
        )

    def test_deal_paid_by_an_accountant_without_crm_access(self):
        # Billing users may register payments but not read leads: the row is still complete.
        self.company.metrika_send_leads = True
        billing = new_test_user(
            self.env,
            login="metrika_billing",
            name="Metrica billing",
            groups="base.group_user,account.group_account_invoice",
        )
        self.assertFalse(billing.has_group("sales_team.group_sale_salesman"))
        lead = (
            self.env["crm.lead"]
            .sudo()
            .create(
                {
                    "name": "Deal",
                    "type": "opportunity",
                    "partner_id": self.partner.id,
                }
            )
        )
        order = self.make_order(opportunity_id=lead.id)
        invoice = order._create_invoices()
        invoice.action_post()
        self.env.invalidate_all()  # the payment comes in another request
        wizard = (
            self.env["account.payment.register"]
            .with_user(billing)
            .with_context(
                active_model="account.move",
                active_ids=invoice.ids,
            )
            .create({})
        )
        wizard._create_payments()
        self.assertIn(invoice.payment_state, PAID_STATES)
        self.assertRecordValues(
            self.paid_rows(order),
            [
                {
                    **self.order_row(order, const.EVENT_PAID, "PAID"),
                    "metrika_order_id": f"lead-{lead.id}",
                }
            ],
        )

    def test_paid_event_switched_off(self):
        self.company.metrika_send_paid = False
        order, invoice = self.invoiced_order()
        self.register_payment(invoice)
        self.assertIn(invoice.payment_state, PAID_STATES)
        self.assertRecordValues(
            self.conversions(order),
            [
                self.order_row(order, const.EVENT_IN_PROGRESS, "IN_PROGRESS"),
            ],
        )

    def test_refunded_invoice_then_new_invoice_paid_queues_paid(self):
        # A wrong invoice, fully reversed by a credit note, must not keep the order "unpaid".
        order, invoice = self.invoiced_order()
        invoice._reverse_moves([{"ref": "wrong address"}], cancel=True)
        self.assertEqual(invoice.payment_state, "reversed")
        self.assertFalse(self.paid_rows(order))
        second = order._create_invoices()
        second.action_post()
        self.register_payment(second)
        self.assertIn(second.payment_state, PAID_STATES)
        self.assertRecordValues(
            self.paid_rows(order),
            [
                self.order_row(order, const.EVENT_PAID, "PAID"),
            ],
        )

    def test_online_payment_without_invoice_confirms_and_queues_paid(self):
        order = self.make_order(confirm=False)
        tx = self._create_transaction(
            "redirect",
            amount=order.amount_total,
            currency_id=order.currency_id.id,
            partner_id=order.partner_id.id,
            reference=f"metrika-{order.id}",
            sale_order_ids=[Command.set(order.ids)],
        )
        tx._set_done()
        tx._post_process()
        self.assertEqual(order.state, "sale")
        self.assertFalse(order.invoice_ids)
        self.assertRecordValues(
            self.conversions(order),
            [
                self.order_row(order, const.EVENT_IN_PROGRESS, "IN_PROGRESS"),
                self.order_row(order, const.EVENT_PAID, "PAID"),
            ],
        )

    def test_authorized_payment_is_not_paid(self):
        # Money only held on the card (manual capture) is not a payment yet.
        order = self.make_order()
        self.provider.support_manual_capture = "full_only"
        self._create_transaction(
            "redirect",
            amount=order.amount_total,
            currency_id=order.currency_id.id,
            partner_id=order.partner_id.id,
            reference=f"metrika-auth-{order.id}",
            sale_order_ids=[Command.set(order.ids)],
            state="authorized",
        )
        order._metrika_enqueue_current_state()
        self.assertFalse(self.paid_rows(order))
