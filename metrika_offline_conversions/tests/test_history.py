"""History sent at connection: the first save of Settings that turns sending on opens a preview
of the orders and leads Metrica can still link; queuing them gives each its current status and
the dates its events happened; doing it again queues nothing; only managers may do it."""

from datetime import timedelta

from odoo import fields
from odoo.exceptions import AccessError
from odoo.tests import Form, new_test_user, tagged
from odoo.tools import SQL

from odoo.addons.account_payment.tests.common import AccountPaymentCommon
from odoo.addons.metrika_offline_conversions import const
from odoo.addons.sale.tests.common import SaleCommon

from .common import CLIENT_ID, MetrikaCase

MANAGER_GROUPS = "base.group_user,metrika_offline_conversions.group_metrika_manager"


class HistoryCase(MetrikaCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # A company that never sent: its records are made while sending is off.
        cls.company.sudo().write({"metrika_enabled": False, "metrika_history_offer": False})
        cls.manager = new_test_user(
            cls.env(su=True), login="metrika_history_manager", groups=MANAGER_GROUPS
        )
        cls.now = fields.Datetime.now()

    def backdate(self, record, days, **columns):
        """Set ``record``'s dates to ``days`` ago: its create_date (unless told False) and the
        columns named True."""
        when = self.now - timedelta(days=days)
        record.flush_recordset()
        for column, moved in {"create_date": True, **columns}.items():
            if not moved:
                continue
            self.env.cr.execute(
                SQL(
                    "UPDATE %s SET %s = %s WHERE id = %s",
                    SQL.identifier(record._table),
                    SQL.identifier(column),
                    when,
                    record.id,
                )
            )
        record.invalidate_recordset()
        return when

    def enable(self, **values):
        self.company.sudo().write({"metrika_enabled": True, **values})

    def wizard(self, user=None):
        wizard = self.env["metrika.history.wizard"].with_user(user or self.manager)
        return wizard.create({"company_id": self.company.id})

    def all_rows(self):
        return self.Conversion.sudo().search([("company_id", "=", self.company.id)], order="id")


@tagged("post_install", "-at_install")
class TestHistory(HistoryCase):
    def test_first_save_of_settings_opens_the_preview_then_queues_once(self):
        recent = self.make_order(metrika_client_id=CLIENT_ID)
        confirmed_at = self.backdate(recent, 5, date_order=True)
        old = self.make_order()
        self.backdate(old, 30, date_order=True)
        self.make_order(confirm=False)  # a quotation: sent when confirmed
        self.assertFalse(self.all_rows(), "sending was off: nothing queued")

        with Form(self.env["res.config.settings"]) as form:
            form.metrika_enabled = True
        action = form.record.execute()
        self.assertEqual(action["res_model"], "metrika.history.wizard")
        self.assertEqual(action["target"], "new")
        self.assertFalse(self.all_rows(), "the preview queues nothing")

        wizard = self.env["metrika.history.wizard"].browse(action["res_id"])
        self.assertEqual(wizard.conversion_count, 1)
        self.assertIn("Sale orders: 1 (1 in progress)", wizard.preview)
        result = wizard.with_user(self.manager).action_metrika_queue_history()
        self.assertIn("1 conversions queued", result["params"]["message"])
        self.assertRecordValues(
            self.all_rows(),
            [
                {
                    "sale_order_id": recent.id,
                    "event": const.EVENT_IN_PROGRESS,
                    "order_status": "IN_PROGRESS",
                    "state": const.STATE_PENDING,
                    "event_date": confirmed_at,
                    "order_create_date": confirmed_at,
                    "metrika_order_id": f"so-{recent.id}",
                }
            ],
        )
        # Offered once: the next save of Settings reloads as usual.
        self.assertEqual(self.company.metrika_history_offer, const.HISTORY_OFFERED)
        self.assertEqual(self.env["res.config.settings"].create({}).execute()["tag"], "reload")

        # Twice: nothing new, nothing queued, the preview says so.
        again = self.wizard()
        self.assertEqual(again.conversion_count, 0)
        self.assertIn("Nothing to queue", again.preview)
        again.action_metrika_queue_history()
        self.assertEqual(len(self.all_rows()), 1)

    def test_not_now_stops_the_offer_and_the_button_still_opens_it(self):
        self.make_order()
        self.enable()
        self.assertEqual(self.company.metrika_history_offer, const.HISTORY_TO_OFFER)
        settings = self.env["res.config.settings"].create({})
        wizard = self.env["metrika.history.wizard"].browse(settings.execute()["res_id"])
        wizard.with_user(self.manager).action_metrika_not_now()
        self.assertEqual(settings.execute()["tag"], "reload")
        self.assertFalse(self.all_rows())
        action = settings.action_metrika_history()
        self.assertEqual(action["res_model"], "metrika.history.wizard")
        self.assertEqual(
            self.env["metrika.history.wizard"].browse(action["res_id"]).conversion_count, 1
        )

    def test_turning_sending_on_again_offers_nothing(self):
        self.enable()
        self.wizard().action_metrika_not_now()
        self.company.sudo().metrika_enabled = False
        self.enable()
        self.assertEqual(self.company.metrika_history_offer, const.HISTORY_OFFERED)

    def test_crm_orders_linkable_window(self):
        """CRM orders: created in the last 21 days, or known to Metrica and created in the last
        111 days."""
        # Metrica has this one already (sent while sending was on); cancelled since, while off.
        self.enable()
        known = self.make_order()
        self.conversions(known).sudo().write(
            {"state": const.STATE_SENT, "sent_at": self.now - timedelta(days=50)}
        )
        self.company.sudo().write(
            {"metrika_enabled": False, "metrika_order_event": const.ORDER_EVENT_CREATED}
        )
        known._action_cancel()
        self.backdate(known, 60)
        fresh = self.make_order()
        self.backdate(fresh, 20)
        late = self.make_order()
        self.backdate(late, 22)
        too_old = self.make_order()
        self.backdate(too_old, 112)
        self.enable()
        wizard = self.wizard()
        self.assertEqual(wizard.conversion_count, 2)
        self.assertIn("Sale orders: 2 (1 cancelled, 1 in progress)", wizard.preview)
        wizard.action_metrika_queue_history()
        queued = self.all_rows().filtered(lambda row: row.state == const.STATE_PENDING)
        self.assertEqual(
            {(row.sale_order_id, row.event) for row in queued},
            {(fresh, const.EVENT_IN_PROGRESS), (known, const.EVENT_CANCELLED)},
        )

    def test_goal_based_window_is_the_event_date(self):
        self.enable(
            metrika_transport=const.TRANSPORT_OFFLINE,
            metrika_goal_in_progress="crm_qualified_lead",
        )
        self.company.sudo().metrika_enabled = False
        # Created long ago, confirmed 3 days ago: the conversion happened 3 days ago.
        confirmed = self.make_order(metrika_client_id=CLIENT_ID)
        self.backdate(confirmed, 60)
        confirmed_at = self.backdate(confirmed, 3, create_date=False, date_order=True)
        stale = self.make_order(metrika_client_id=CLIENT_ID)
        self.backdate(stale, 25, date_order=True)
        self.enable()
        self.wizard().action_metrika_queue_history()
        self.assertRecordValues(
            self.all_rows(),
            [{"sale_order_id": confirmed.id, "event_date": confirmed_at}],
        )

    def test_leads_with_their_outcome_and_dates(self):
        self.company.sudo().metrika_send_leads = True
        spam = self.env["crm.lost.reason"].create({"name": "Spam"})
        self.company.sudo().metrika_spam_lost_reason_ids = spam
        Lead = self.env["crm.lead"]
        lead = {"type": "opportunity", "company_id": self.company.id}
        won = Lead.create({**lead, "name": "Won", "metrika_client_id": CLIENT_ID})
        won.action_set_won()
        lost = Lead.create({**lead, "name": "Spam", "email_from": "x@example.ru"})
        lost.action_set_lost(lost_reason_id=spam.id)
        open_lead = Lead.create({**lead, "name": "Open"})
        created = self.backdate(won, 10)
        closed = self.backdate(won, 2, create_date=False, date_closed=True)
        self.assertFalse(self.all_rows())
        self.enable()
        wizard = self.wizard()
        self.assertEqual(wizard.conversion_count, 5)
        self.assertIn("Leads: 3 (1 in progress, 1 paid, 1 spam)", wizard.preview)
        # The open lead has no identifier: logged as skipped until one arrives.
        self.assertIn("1 of them carry nothing Metrica links by", wizard.preview)
        wizard.action_metrika_queue_history()
        rows = self.all_rows()
        self.assertEqual(
            [(row.lead_id, row.event, row.order_status) for row in rows],
            [
                (won, const.EVENT_IN_PROGRESS, "IN_PROGRESS"),
                (lost, const.EVENT_IN_PROGRESS, "IN_PROGRESS"),
                (open_lead, const.EVENT_IN_PROGRESS, "IN_PROGRESS"),
                (won, const.EVENT_PAID, "PAID"),
                (lost, const.EVENT_CANCELLED, "SPAM"),
            ],
        )
        won_rows = rows.filtered(lambda row: row.lead_id == won)
        self.assertEqual(won_rows.mapped("event_date"), [created, closed])
        # The current status is the last queued.
        self.assertGreater(won_rows[1].queued_sequence, won_rows[0].queued_sequence)

    def test_only_managers_may_queue_the_history(self):
        self.make_order()
        self.enable()
        salesman = new_test_user(
            self.env, login="metrika_history_salesman", groups="sales_team.group_sale_manager"
        )
        with self.assertRaises(AccessError):
            self.env["metrika.history.wizard"].with_user(salesman)._metrika_open(self.company)
        wizard = self.wizard()
        with self.assertRaises(AccessError):
            wizard.with_user(salesman).action_metrika_queue_history()
        other = self.env["res.company"].create({"name": "Another shop"})
        with self.assertRaises(AccessError):
            wizard.with_user(self.manager).write({"company_id": other.id})
            wizard.with_user(self.manager).action_metrika_queue_history()
        self.assertFalse(self.all_rows())
        self.assertEqual(wizard.conversion_count, 1)

    def test_nothing_when_sending_is_off(self):
        self.make_order()
        wizard = self.wizard()
        self.assertEqual(wizard.conversion_count, 0)
        self.assertIn("off for this company", wizard.preview)
        wizard.action_metrika_queue_history()
        self.assertFalse(self.all_rows())


@tagged("post_install", "-at_install")
class TestHistoryPaid(HistoryCase, AccountPaymentCommon, SaleCommon):
    """A paid order: in progress when confirmed, paid when its invoice was paid."""

    def test_paid_order_is_queued_in_progress_then_paid(self):
        self.manager.company_ids |= self.company
        self.manager.company_id = self.company
        order = self.make_order()
        invoice = order._create_invoices()
        invoice.action_post()
        self.env["account.payment.register"].with_context(
            active_model="account.move", active_ids=invoice.ids
        ).create({})._create_payments()
        self.assertTrue(order._metrika_is_paid())
        confirmed_at = self.backdate(order, 4, date_order=True)
        invoice.flush_recordset()
        self.enable()
        wizard = self.wizard()
        self.assertIn("Sale orders: 1 (1 paid)", wizard.preview)
        wizard.action_metrika_queue_history()
        rows = self.all_rows()
        self.assertEqual(
            [(row.event, row.order_status) for row in rows],
            [(const.EVENT_IN_PROGRESS, "IN_PROGRESS"), (const.EVENT_PAID, "PAID")],
        )
        self.assertEqual(rows[0].event_date, confirmed_at)
        self.assertEqual(rows[1].event_date, invoice.write_date)
