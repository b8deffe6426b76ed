"""The outbox end to end: whatever order events happen in, the last status Metrica receives is
the record's own; lead merges keep the identifiers; the upgrade writes out the events queued on
records by 1.0; nothing a user writes forges a conversion.
"""

import importlib.util
import pathlib
from datetime import datetime
from xmlrpc.client import Fault

from odoo.tests import HttpCase, new_test_user, tagged
from odoo.tools import mute_logger

from odoo.addons.metrika_offline_conversions import const

from .common import CLIENT_ID, MetrikaCase, csv_rows

MIGRATION = pathlib.Path(__file__).resolve().parents[1] / "migrations" / "1.1.0" / "post-migrate.py"
YCLID = "2854563251230359551"


def load_migration():
    spec = importlib.util.spec_from_file_location("metrika_migration_1_1_0", MIGRATION)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@tagged("post_install", "-at_install")
class TestCurrentStatusReachesMetrica(MetrikaCase):
    """Cancel, set back to quotation and confirm again: Metrica ends with IN_PROGRESS."""

    def last_status_sent(self, metrika_order_id):
        statuses = [
            row["order_status"]
            for request in self.upload_requests()
            for row in csv_rows(request)
            if row["id"] == metrika_order_id
        ]
        self.assertTrue(statuses, f"{metrika_order_id} was never sent")
        return statuses[-1]

    def cancel_and_confirm_again(self, order):
        order._action_cancel()
        order.action_draft()
        order.action_confirm()
        self.assertEqual(order.state, "sale")

    def test_in_one_transaction_before_the_first_upload(self):
        order = self.make_order(metrika_client_id=CLIENT_ID)
        self.cancel_and_confirm_again(order)
        self.run_cron()
        self.assertEqual(self.last_status_sent(f"so-{order.id}"), "IN_PROGRESS")
        self.assertEqual(set(self.conversions(order).mapped("state")), {const.STATE_SENT})

    def test_after_the_first_upload(self):
        order = self.make_order(metrika_client_id=CLIENT_ID)
        self.run_cron()
        self.cancel_and_confirm_again(order)
        self.run_cron()
        self.assertEqual(self.last_status_sent(f"so-{order.id}"), "IN_PROGRESS")

    def test_after_the_cancellation_was_sent(self):
        order = self.make_order(metrika_client_id=CLIENT_ID)
        self.run_cron()
        order._action_cancel()
        self.run_cron()
        self.assertEqual(self.last_status_sent(f"so-{order.id}"), "CANCELLED")
        order.action_draft()
        order.action_confirm()
        self.run_cron()
        self.assertEqual(self.last_status_sent(f"so-{order.id}"), "IN_PROGRESS")

    def test_any_number_of_times_between_uploads(self):
        order = self.make_order(metrika_client_id=CLIENT_ID)
        for round_number in range(3):
            with self.subTest(round=round_number):
                self.cancel_and_confirm_again(order)
                self.cancel_and_confirm_again(order)
                self.run_cron()
                self.assertEqual(self.last_status_sent(f"so-{order.id}"), "IN_PROGRESS")
                order._action_cancel()
                self.run_cron()
                self.assertEqual(self.last_status_sent(f"so-{order.id}"), "CANCELLED")
                order.action_draft()
                order.action_confirm()

    def test_quotation_reopened_in_created_mode_is_in_progress_again(self):
        self.company.metrika_order_event = const.ORDER_EVENT_CREATED
        order = self.make_order(confirm=False, metrika_client_id=CLIENT_ID)
        self.run_cron()
        order._action_cancel()
        order.action_draft()
        self.run_cron()
        self.assertEqual(self.last_status_sent(f"so-{order.id}"), "IN_PROGRESS")

    def test_lost_lead_restored_is_in_progress_again(self):
        self.company.metrika_send_leads = True
        lead = self.env["crm.lead"].create(
            {"name": "Sofa", "type": "opportunity", "metrika_client_id": CLIENT_ID}
        )
        self.run_cron()
        lead.action_archive()
        self.run_cron()
        self.assertEqual(self.last_status_sent(f"lead-{lead.id}"), "CANCELLED")
        lead.action_unarchive()
        self.run_cron()
        self.assertEqual(self.last_status_sent(f"lead-{lead.id}"), "IN_PROGRESS")

    def test_goal_hit_is_sent_once_however_often_its_event_comes_back(self):
        self.company.write(
            {
                "metrika_transport": const.TRANSPORT_OFFLINE,
                "metrika_goal_in_progress": "odoo_order_confirmed",
                "metrika_goal_cancelled": "odoo_order_cancelled",
            }
        )
        order = self.make_order(metrika_client_id=CLIENT_ID)
        self.run_cron()
        self.cancel_and_confirm_again(order)
        self.run_cron()
        goals = [row["Target"] for request in self.upload_requests() for row in csv_rows(request)]
        self.assertEqual(sorted(goals), ["odoo_order_cancelled", "odoo_order_confirmed"])


@tagged("post_install", "-at_install")
class TestLeadMerge(MetrikaCase):
    def make_lead(self, **values):
        return self.env["crm.lead"].create({"name": "Sofa", "type": "opportunity", **values})

    def test_merge_keeps_both_identifiers(self):
        with_client_id = self.make_lead(metrika_client_id=CLIENT_ID)
        with_yclid = self.make_lead(metrika_yclid=YCLID)
        kept = (with_client_id | with_yclid)._merge_opportunity()
        self.assertRecordValues(kept, [{"metrika_client_id": CLIENT_ID, "metrika_yclid": YCLID}])

    def test_merge_keeps_the_kept_leads_own_identifier_first(self):
        leads = self.make_lead(metrika_client_id="111") | self.make_lead(metrika_client_id="222")
        head = leads._sort_by_confidence_level(reverse=True)[0]
        own = head.metrika_client_id
        kept = leads._merge_opportunity()
        self.assertEqual(kept, head)
        self.assertEqual(kept.metrika_client_id, own)

    def test_merged_away_lead_is_skipped_not_an_error(self):
        self.company.metrika_send_leads = True
        leads = self.make_lead(metrika_client_id=CLIENT_ID) | self.make_lead()
        kept = leads._merge_opportunity()
        gone = self.Conversion.search([("record_name", "=", "Sofa"), ("lead_id", "=", False)])
        self.assertEqual(len(gone), 1, "the merged-away lead's row stays in the log")
        self.run_cron()
        self.assertRecordValues(
            gone, [{"state": const.STATE_SKIPPED, "failure_reason": const.REASON_RECORD_DELETED}]
        )
        self.assertEqual(self.conversions(kept).state, const.STATE_SENT)


@tagged("post_install", "-at_install")
class TestUpgradeWritesOutQueuedFlags(MetrikaCase):
    """A database upgraded from 1.0 still has events queued on its orders, in a column 1.1 no
    longer has: the migration makes them rows, in the order they happened, and drops it."""

    def test_flags_become_rows_in_the_order_they_happened(self):
        confirmed_then_cancelled = self.make_order(confirm=False)
        cancelled_then_confirmed = self.make_order(confirm=False)
        cancelled_in_the_same_second = self.make_order(confirm=False)
        cancelled_in_the_same_second._action_cancel()
        untouched = self.make_order()  # queued by 1.1 itself: a row already
        self.env.flush_all()
        cr = self.env.cr
        cr.execute("UPDATE metrika_conversion SET queued_sequence = NULL")
        cr.execute("ALTER TABLE sale_order ADD COLUMN metrika_queued_events varchar")
        cr.execute(
            "UPDATE sale_order SET metrika_queued_events = %s WHERE id = %s",
            [
                "in_progress=2026-12-01 10:00:00,cancelled=2026-12-01 11:00:00",
                confirmed_then_cancelled.id,
            ],
        )
        # The text of a 1.0 flag lists events in a fixed order, not in time order.
        cr.execute(
            "UPDATE sale_order SET metrika_queued_events = %s WHERE id = %s",
            [
                "in_progress=2026-12-01 12:00:00,cancelled=2026-12-01 09:00:00",
                cancelled_then_confirmed.id,
            ],
        )
        # A flag keeps one time per event: confirmed and cancelled in one transaction.
        cr.execute(
            "UPDATE sale_order SET metrika_queued_events = %s WHERE id = %s",
            [
                "in_progress=2026-12-01 13:00:00,cancelled=2026-12-01 13:00:00",
                cancelled_in_the_same_second.id,
            ],
        )
        load_migration().migrate(cr, "18.0.1.0.0")
        self.env.invalidate_all()

        def rows(order):
            found = self.conversions(order).sorted("queued_sequence")
            return [(row.event, row.event_date, row.state) for row in found]

        self.assertEqual(
            rows(confirmed_then_cancelled),
            [
                (const.EVENT_IN_PROGRESS, datetime(2026, 12, 1, 10), const.STATE_PENDING),
                (const.EVENT_CANCELLED, datetime(2026, 12, 1, 11), const.STATE_PENDING),
            ],
        )
        self.assertEqual(
            rows(cancelled_then_confirmed),
            [
                (const.EVENT_CANCELLED, datetime(2026, 12, 1, 9), const.STATE_PENDING),
                (const.EVENT_IN_PROGRESS, datetime(2026, 12, 1, 12), const.STATE_PENDING),
            ],
        )
        self.assertTrue(self.conversions(untouched).queued_sequence, "numbered by the upgrade")
        self.assertLess(
            self.conversions(untouched).queued_sequence,
            self.conversions(confirmed_then_cancelled)[0].queued_sequence,
        )
        cr.execute(
            "SELECT 1 FROM information_schema.columns "
            "WHERE table_name = 'sale_order' AND column_name = 'metrika_queued_events'"
        )
        self.assertFalse(cr.fetchone(), "the column is gone")
        self.run_cron()
        sent = {
            row["id"]: row["order_status"]
            for request in self.upload_requests()
            for row in csv_rows(request)
        }
        self.assertEqual(sent[f"so-{confirmed_then_cancelled.id}"], "CANCELLED")
        self.assertEqual(sent[f"so-{cancelled_then_confirmed.id}"], "IN_PROGRESS")
        self.assertEqual(sent[f"so-{cancelled_in_the_same_second.id}"], "CANCELLED")


@tagged("post_install", "-at_install")
class TestNothingAUserWritesForgesAConversion(HttpCase):
    """Over the external API, as integrations and scripts reach Odoo."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.env.company.sudo().write(
            {
                "metrika_enabled": True,
                "metrika_counter_id": "12345",
                "metrika_token": "external-api-test-token",
            }
        )
        cls.salesperson = new_test_user(
            cls.env, login="metrika_rpc_salesperson", groups="sales_team.group_sale_salesman"
        )
        cls.manager = new_test_user(
            cls.env,
            login="metrika_rpc_manager",
            groups="sales_team.group_sale_salesman_all_leads,"
            "metrika_offline_conversions.group_metrika_manager",
        )
        partner = cls.env["res.partner"].create({"name": "RPC customer", "email": "r@example.ru"})
        product = cls.env["product.product"].create({"name": "RPC sofa", "list_price": 10})
        cls.quotation = (
            cls.env["sale.order"]
            .with_user(cls.salesperson)
            .create(
                {
                    "partner_id": partner.id,
                    "metrika_client_id": CLIENT_ID,
                    "order_line": [(0, 0, {"product_id": product.id})],
                }
            )
        )
        cls.confirmed = cls.quotation.copy({"metrika_client_id": CLIENT_ID})
        cls.confirmed.action_confirm()
        cls.failed = cls.env["metrika.conversion"].search(
            [("sale_order_id", "=", cls.confirmed.id)]
        )
        cls.failed.write({"state": const.STATE_ERROR, "last_error": "Rejected by Metrica"})

    def call(self, user, model, method, *args):
        # XML-RPC, which every series still serves (19.0 logs each call as deprecated).
        with mute_logger("odoo.addons.rpc.controllers.xmlrpc"):
            uid = self.xmlrpc_common.authenticate(self.env.cr.dbname, user.login, user.login, {})
            self.assertEqual(uid, user.id)
            return self.xmlrpc_object.execute_kw(
                self.env.cr.dbname, uid, user.login, model, method, list(args)
            )

    def assert_refused(self, user, model, method, *args):
        with mute_logger("odoo.http", "odoo.addons.base.models.ir_model"), self.assertRaises(Fault):
            self.call(user, model, method, *args)

    def conversion_states(self):
        self.env.invalidate_all()
        return sorted(
            self.env["metrika.conversion"]
            .search([("sale_order_id", "in", (self.quotation | self.confirmed).ids)])
            .mapped(lambda row: (row.sale_order_id.id, row.event, row.state))
        )

    def test_nobody_creates_or_changes_a_conversion(self):
        before = self.conversion_states()
        paid = {
            "company_id": self.env.company.id,
            "sale_order_id": self.quotation.id,
            "event": const.EVENT_PAID,
            "order_status": "PAID",
            "transport": const.TRANSPORT_SIMPLE_ORDERS,
        }
        for user in (self.salesperson, self.manager):
            with self.subTest(user=user.login):
                self.assert_refused(user, "metrika.conversion", "create", paid)
                self.assert_refused(
                    user, "metrika.conversion", "write", self.failed.ids, {"state": "pending"}
                )
                # The queue's own methods are private: not callable over RPC.
                self.assert_refused(
                    user, "metrika.conversion", "_metrika_enqueue", self.quotation.ids, "paid"
                )
                # No field of the order feeds the queue (1.0's metrika_queued_events is gone).
                self.assert_refused(
                    user,
                    "sale.order",
                    "write",
                    self.quotation.ids,
                    {"metrika_queued_events": "paid=2026-12-01 10:00:00"},
                )
        self.assertEqual(self.conversion_states(), before)
        self.assertEqual(self.failed.state, const.STATE_ERROR)

    def test_only_a_manager_sends_by_hand(self):
        self.assert_refused(
            self.salesperson, "sale.order", "action_metrika_send_now", self.confirmed.ids
        )
        self.failed.invalidate_recordset()
        self.assertEqual(self.failed.state, const.STATE_ERROR, "the salesperson requeued nothing")
        self.call(self.manager, "sale.order", "action_metrika_send_now", self.confirmed.ids)
        self.failed.invalidate_recordset()
        self.assertEqual(self.failed.state, const.STATE_PENDING)
