"""Two workers draining one queue at the same time never send a conversion twice, and a worker
that dies mid-upload loses nothing and sends no goal hit twice.

A TransactionCase cannot show this: its data is never committed, so no second transaction
sees it, and its cursor holds the locks of everything set up. These tests commit their data
through their own cursors (``self.registry.cursor()``: outside HttpCase's test mode every call
is a real, separate PostgreSQL connection) and remove all of it afterwards.
"""

import csv
import io
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from unittest.mock import patch

import psycopg2.errors

from odoo import SUPERUSER_ID, api, fields
from odoo.modules.registry import Registry
from odoo.tests.common import BaseCase, get_db_name, tagged
from odoo.tools import mute_logger

from odoo.addons.metrika_offline_conversions import const
from odoo.addons.metrika_offline_conversions.metrika_core.client_cdp import MetrikaCdpClient
from odoo.addons.metrika_offline_conversions.tools import odoo_compat, senders, upload_run

from .common import CLIENT_ID, COUNTER_ID, TOKEN, StandInAccessMixin, load_stand_in

SIMPLE_ORDERS_PATH = f"/cdp/api/v1/counter/{COUNTER_ID}/data/simple_orders"
QUEUE_SIZE = 12
BATCH_SIZE = 3
GOAL = "odoo_order_created"


class WorkerKilled(BaseException):
    """Stands for kill -9: nothing of the worker's current transaction is committed."""


# Company fields these tests change, restored afterwards (connection fields first: writing
# them resets the pause and the cached counter data, which are restored after them).
COMPANY_FIELDS = (
    "metrika_enabled",
    "metrika_counter_id",
    "metrika_token",
    "metrika_api_url",
    "metrika_transport",
    "metrika_batch_size",
    "metrika_goal_in_progress",
)
COMPANY_CACHE_FIELDS = (
    "metrika_paused",
    "metrika_pause_reason",
    "metrika_counter_name",
    "metrika_counter_time_zone",
    "metrika_status_mapping_fingerprint",
)


@tagged("post_install", "-at_install")
class TestUploadConcurrency(StandInAccessMixin, BaseCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.registry = Registry(get_db_name())
        cls.api = load_stand_in().MetrikaStandIn(token=TOKEN)
        cls.api.start()
        cls.addClassCleanup(cls.api.stop)
        cls.addClassCleanup(cls._remove_committed_data)
        with cls.registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            company = env.ref("base.main_company")
            cls.company_id = company.id
            cls.saved_company = company.sudo().read(COMPANY_FIELDS + COMPANY_CACHE_FIELDS)[0]
            cr.execute("SELECT COALESCE(MAX(id), 0) FROM ir_cron_trigger")
            cls.max_trigger_id = cr.fetchone()[0]
            cr.execute("SELECT COALESCE(MAX(id), 0) FROM metrika_upload")
            cls.max_upload_id = cr.fetchone()[0]
            company.sudo().write(
                {
                    "metrika_enabled": True,
                    "metrika_counter_id": str(COUNTER_ID),
                    "metrika_token": TOKEN,
                    "metrika_api_url": cls.api.url,
                    "metrika_transport": const.TRANSPORT_SIMPLE_ORDERS,
                    "metrika_batch_size": BATCH_SIZE,
                    "metrika_goal_in_progress": GOAL,
                }
            )
            # As after the first upload: the counter's time zone is known. (Two workers that
            # both find it missing both write res_company; see the report on res_company.)
            company.sudo().write({"metrika_counter_time_zone": "Europe/Moscow"})
            partner = env["res.partner"].create(
                {
                    "name": "Concurrency customer",
                    "email": "concurrency@example.ru",
                }
            )
            cls.partner_id = partner.id
            product = env["product.product"].create({"name": "Concurrency sofa", "list_price": 10})
            cls.product_id = product.id
            orders = env["sale.order"].create(
                [
                    {
                        "partner_id": partner.id,
                        "company_id": company.id,
                        "metrika_client_id": str(int(CLIENT_ID) + index),
                        "order_line": [(0, 0, {"product_id": product.id, "product_uom_qty": 1})],
                    }
                    for index in range(QUEUE_SIZE)
                ]
            )
            cls.order_ids = orders.ids
            conversions = env["metrika.conversion"]._metrika_enqueue(
                orders, const.EVENT_IN_PROGRESS
            )
            cls.conversion_ids = conversions.ids
            # Only this test's rows may be due: the workers drain whatever is.
            cr.execute(
                "SELECT id FROM metrika_conversion WHERE state = 'pending' AND NOT id = ANY(%s)",
                (cls.conversion_ids,),
            )
            cls.foreign_due = [row_id for (row_id,) in cr.fetchall()]
        assert len(cls.conversion_ids) == QUEUE_SIZE, cls.conversion_ids

    @classmethod
    def _remove_committed_data(cls):
        with cls.registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            uploads = env["metrika.upload"].search([("id", ">", cls.max_upload_id)])
            env["ir.attachment"].search(
                [
                    ("res_model", "=", "metrika.upload"),
                    ("res_id", "in", uploads.ids),
                ]
            ).unlink()
            uploads.unlink()
            env["metrika.conversion"].browse(getattr(cls, "conversion_ids", [])).exists().unlink()
            env["sale.order"].browse(getattr(cls, "order_ids", [])).exists().unlink()
            env["product.product"].browse(
                getattr(cls, "product_id", [])
            ).exists().product_tmpl_id.unlink()
            env["res.partner"].browse(getattr(cls, "partner_id", [])).exists().unlink()
            cr.execute("DELETE FROM ir_cron_trigger WHERE id > %s", (cls.max_trigger_id,))
            company = env["res.company"].browse(cls.company_id).sudo()
            saved = cls.saved_company
            company.write({name: saved[name] for name in COMPANY_FIELDS})
            company.write({name: saved[name] for name in COMPANY_CACHE_FIELDS})

    def setUp(self):
        super().setUp()
        self.api.reset()
        self.assertFalse(
            self.foreign_due, "other pending conversions are committed in this database"
        )
        with self.registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            env["metrika.upload"].search([("id", ">", self.max_upload_id)]).unlink()
            conversions = env["metrika.conversion"].browse(self.conversion_ids)
            conversions.write(
                {
                    "state": const.STATE_PENDING,
                    "attempt_count": 0,
                    "sent_at": False,
                    "failure_reason": False,
                    "last_error": False,
                    "upload_id": False,
                    "metrika_result": False,
                    "transport": const.TRANSPORT_SIMPLE_ORDERS,
                    "next_attempt_at": fields.Datetime.now(),
                }
            )
            env["res.company"].browse(
                self.company_id
            ).sudo().metrika_transport = const.TRANSPORT_SIMPLE_ORDERS

    def thread_env(self, cr):
        """An environment for a cursor used in another thread.

        ``api.Environment`` looks the registry up with ``Registry(dbname)``, which takes
        ``Registry._lock``; the test runner's main thread holds that lock for the whole run
        (``ThreadedServer.run`` wraps ``preload_registries``), so a worker thread would wait
        forever. Giving the cursor its transaction on our registry skips the look-up.
        """
        cr.transaction = odoo_compat.Transaction(self.registry)
        return api.Environment(cr, SUPERUSER_ID, {})

    def committed_state(self):
        with self.registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            conversions = env["metrika.conversion"].browse(self.conversion_ids)
            return {
                conversion.id: (
                    conversion.state,
                    conversion.attempt_count,
                    len(conversion.upload_ids),
                )
                for conversion in conversions
            }

    @staticmethod
    def drain(env, calls=20):
        """Call the cron as Odoo's scheduler does until it has nothing left to do."""
        total = 0
        for _call in range(calls):
            done = env["metrika.conversion"]._cron_upload()
            total += done
            if not done:
                break
        return total

    def run_worker(self, calls=20):
        with self.registry.cursor() as cr:
            return self.drain(self.thread_env(cr), calls)

    def in_thread(self, function):
        """Run ``function`` in a new thread, with a cursor that is not the test's: real commits
        (odoo_compat.test_owns_transaction)."""
        with ThreadPoolExecutor(max_workers=1) as executor:
            return executor.submit(function).result(timeout=60)

    def use_goal_based_method(self):
        with self.registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            env["res.company"].browse(
                self.company_id
            ).sudo().metrika_transport = const.TRANSPORT_OFFLINE
            env["metrika.conversion"].browse(self.conversion_ids).write(
                {"transport": const.TRANSPORT_OFFLINE}
            )

    def kill_after_metrica_stored_the_first_file(self, sender_class):
        """A worker that dies after Metrica stored its file, before it committed the outcome."""

        def killed(*args, **kwargs):
            raise WorkerKilled()

        with patch.object(sender_class, "record_success", killed):
            with self.assertRaises(WorkerKilled):
                self.in_thread(self.run_worker)

    def open_uploads_are_overdue(self):
        """As when the grace period of an upload whose worker died has passed."""
        with self.registry.cursor() as cr:
            cr.execute(
                "UPDATE metrika_upload SET settle_after = %s WHERE id > %s",
                (fields.Datetime.now() - timedelta(seconds=1), self.max_upload_id),
            )

    def committed_uploads(self):
        with self.registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            uploads = env["metrika.upload"].search([("id", ">", self.max_upload_id)], order="id")
            return [(upload.state, len(upload.conversion_ids)) for upload in uploads]

    def test_killed_worker_sends_no_goal_hit_twice(self):
        self.use_goal_based_method()
        self.kill_after_metrica_stored_the_first_file(senders.OfflineConversionsSender)
        # Metrica stored the first file; the worker died before it committed that.
        self.assertEqual(sum(self.api.stored_offline_rows.values()), BATCH_SIZE)
        states = [state for state, _attempts, _uploads in self.committed_state().values()]
        self.assertEqual(states.count(const.STATE_SENDING), BATCH_SIZE)
        self.assertEqual(self.committed_uploads(), [(const.UPLOAD_SENDING, BATCH_SIZE)])

        # Within the grace period another worker leaves the open upload alone.
        self.in_thread(self.run_worker)
        self.assertEqual(self.committed_uploads()[0], (const.UPLOAD_SENDING, BATCH_SIZE))
        self.open_uploads_are_overdue()
        self.in_thread(self.run_worker)

        self.assertEqual(len(self.api.stored_offline_rows), QUEUE_SIZE, "every goal hit stored")
        self.assertEqual(set(self.api.stored_offline_rows.values()), {1}, "none stored twice")
        self.assertEqual(
            {state for state, _attempts, _uploads in self.committed_state().values()},
            {const.STATE_SENT},
        )
        self.assertEqual(
            self.committed_uploads()[0],
            (const.UPLOAD_ACCEPTED, BATCH_SIZE),
            "found in Metrica by its reference",
        )

    def test_killed_worker_of_crm_orders_loses_nothing(self):
        self.kill_after_metrica_stored_the_first_file(senders.SimpleOrdersSender)
        self.assertEqual(sum(self.api.stored_order_ids.values()), BATCH_SIZE)
        self.open_uploads_are_overdue()
        self.in_thread(self.run_worker)

        expected = {f"so-{order_id}" for order_id in self.order_ids}
        self.assertEqual(set(self.api.stored_order_ids), expected, "every order stored")
        # Sent again with SAVE: the first file's orders were replaced by themselves.
        self.assertEqual(sum(self.api.stored_order_ids.values()), QUEUE_SIZE + BATCH_SIZE)
        self.assertEqual(
            {state for state, _attempts, _uploads in self.committed_state().values()},
            {const.STATE_SENT},
        )
        self.assertEqual(self.committed_uploads()[0], (const.UPLOAD_LOST, BATCH_SIZE))

    @staticmethod
    def first_upload_held():
        """A stand-in for ``UploadRun._hold`` that stops the first worker once its upload is
        committed and locked, before its request, until ``release`` is set: (holding, release,
        the stand-in)."""
        holding = threading.Event()
        release = threading.Event()
        original_hold = upload_run.UploadRun._hold

        def hold_and_wait(run, upload):
            original_hold(run, upload)
            if not holding.is_set():
                holding.set()
                release.wait(timeout=30)

        return holding, release, hold_and_wait

    def test_a_live_worker_keeps_its_upload(self):
        """An upload whose worker is still waiting for Metrica is never settled under it, even
        past its grace period: the worker holds its row lock."""
        self.use_goal_based_method()
        holding, release, hold_and_wait = self.first_upload_held()

        # Every upload is past its grace period from the start.
        with (
            patch.object(const, "IN_FLIGHT_GRACE_SECONDS", -60),
            patch.object(upload_run.UploadRun, "_hold", hold_and_wait),
        ):
            with ThreadPoolExecutor(max_workers=1) as executor:
                first = executor.submit(self.run_worker, 1)
                self.assertTrue(holding.wait(timeout=30))
                self.assert_the_live_worker_holds_its_upload()
                # The second worker finds the open upload locked and skips it.
                self.in_thread(lambda: self.run_worker(1))
                release.set()
                first.result(timeout=60)
        self.assertEqual(set(self.api.stored_offline_rows.values()), {1}, "no goal hit twice")
        self.assertEqual(sum(self.api.stored_offline_rows.values()), 2 * BATCH_SIZE)
        self.assertFalse(
            [r for r in self.api.requests if r.path.endswith("/uploadings")],
            "nothing was looked up: the upload's worker was alive",
        )

    def test_an_order_confirmed_again_while_its_row_is_sent_ends_in_progress(self):
        """The user cancels and confirms again an order whose "created" row is on its way to
        Metrica: the row is queued again under the worker's feet, so the worker's outcome no
        longer applies (PostgreSQL refuses its update) and the upload is settled as any upload
        whose worker stopped: sent again, with the order's current status."""
        order_id = self.order_ids[0]
        holding, release, hold_and_wait = self.first_upload_held()

        def cron_run(calls=1):
            # As Odoo's scheduler runs a job: an error rolls the call back, and is logged.
            with self.registry.cursor() as cr, mute_logger("odoo.sql_db"):
                try:
                    return self.drain(self.thread_env(cr), calls=calls)
                except psycopg2.errors.SerializationFailure:
                    cr.rollback()
                    return None

        try:
            with (
                patch.object(const, "IN_FLIGHT_GRACE_SECONDS", -60),
                patch.object(upload_run.UploadRun, "_hold", hold_and_wait),
            ):
                with ThreadPoolExecutor(max_workers=1) as executor:
                    first = executor.submit(cron_run)
                    self.assertTrue(holding.wait(timeout=30))
                    with self.registry.cursor() as user_cr:
                        env = api.Environment(user_cr, SUPERUSER_ID, {})
                        order = env["sale.order"].browse(order_id)
                        order._action_cancel()
                        order.action_draft()
                        order.action_confirm()
                    release.set()
                    self.assertIsNone(first.result(timeout=60), "the worker's outcome was refused")
                # The next run settles the upload, and the queue is drained.
                self.assertTrue(self.in_thread(lambda: cron_run(calls=20)))
            statuses = [
                row["order_status"]
                for request in self.api.requests
                if request.method == "POST" and request.path == SIMPLE_ORDERS_PATH
                for row in csv.DictReader(io.StringIO(request.file.decode()))
                if row["id"] == f"so-{order_id}"
            ]
            self.assertEqual(statuses[-1], "IN_PROGRESS", statuses)
            with self.registry.cursor() as cr:
                cr.execute(
                    "SELECT event, state FROM metrika_conversion WHERE sale_order_id = %s "
                    "ORDER BY queued_sequence",
                    [order_id],
                )
                self.assertEqual(
                    cr.fetchall(),
                    [
                        (const.EVENT_CANCELLED, const.STATE_SENT),
                        (const.EVENT_IN_PROGRESS, const.STATE_SENT),
                    ],
                )
        finally:
            with self.registry.cursor() as cr:
                cr.execute(
                    "DELETE FROM metrika_conversion WHERE sale_order_id = %s AND NOT id = ANY(%s)",
                    [order_id, self.conversion_ids],
                )
                cr.execute("UPDATE sale_order SET state = 'draft' WHERE id = %s", [order_id])

    def assert_the_live_worker_holds_its_upload(self):
        with self.registry.cursor() as cr:
            cr.execute(
                "SELECT id FROM metrika_upload WHERE id > %s FOR UPDATE SKIP LOCKED",
                (self.max_upload_id,),
            )
            self.assertFalse(cr.fetchall(), "the live worker holds its upload")

    def sent_order_ids(self):
        """Every order id in every row the stand-in received, repetitions included."""
        ids = []
        for request in self.api.requests:
            if request.method == "POST" and request.path == SIMPLE_ORDERS_PATH:
                self.assertEqual(request.status, 200)
                ids += [row["id"] for row in csv.DictReader(io.StringIO(request.file.decode()))]
        return ids

    def test_two_workers_drain_one_queue_without_sending_twice(self):
        # Each upload takes 0.3 s, so the two runs overlap for their whole length.
        self.api.fail_next("slow", accept=True, delay=0.3, times=QUEUE_SIZE, path="simple_orders")
        barrier = threading.Barrier(2)

        def worker():
            # A new thread's cursor is not the test's: the upload commits before and after each
            # request, exactly as in a cron worker; the loop is Odoo's scheduler's.
            with self.registry.cursor() as cr:
                env = self.thread_env(cr)
                barrier.wait(timeout=10)
                return self.drain(env)

        with ThreadPoolExecutor(max_workers=2) as executor:
            futures = [executor.submit(worker) for _index in range(2)]
            done = [future.result(timeout=60) for future in futures]

        self.assertTrue(all(done), f"both workers sent something (they overlapped): {done}")
        self.assertEqual(sum(done), QUEUE_SIZE, done)
        sent = self.sent_order_ids()
        self.assertCountEqual(
            sent,
            [f"so-{order_id}" for order_id in self.order_ids],
            "every conversion in exactly one uploaded row",
        )
        self.assertEqual(len(self.api.cdp_uploadings[COUNTER_ID]), QUEUE_SIZE // BATCH_SIZE)
        self.assertEqual(
            set(self.committed_state().values()),
            {(const.STATE_SENT, 1, 1)},
            "all sent once, each in one upload",
        )

    def test_upload_neither_waits_for_nor_writes_the_orders(self):
        """The upload only reads sale orders: it sends while a user holds an order's row lock,
        and leaves every order's "last updated on / by" as its user left them."""
        with self.registry.cursor() as cr:
            cr.execute(
                "SELECT id, write_date, write_uid FROM sale_order WHERE id = ANY(%s)",
                [self.order_ids],
            )
            before = {row[0]: row[1:] for row in cr.fetchall()}
        user_cr = self.registry.cursor()
        try:
            # A salesperson's transaction is updating the first order, and has not committed.
            user_cr.execute("UPDATE sale_order SET note = note WHERE id = %s", [self.order_ids[0]])
            with self.registry.cursor() as cron_cr:
                cron_cr.execute("SET LOCAL lock_timeout = '5s'")
                env = api.Environment(cron_cr, SUPERUSER_ID, {})
                company = env["res.company"].browse(self.company_id)
                batch = env["metrika.conversion"]._metrika_lock_due_batch(
                    company, const.TRANSPORT_SIMPLE_ORDERS
                )
                ids = set(batch.ids)
                upload_run.UploadRun(env)._send(company, const.TRANSPORT_SIMPLE_ORDERS, batch)
            self.assertEqual(len(ids), BATCH_SIZE)
        finally:
            user_cr.rollback()
            user_cr.close()
        self.assertEqual(len(self.sent_order_ids()), BATCH_SIZE)
        with self.registry.cursor() as cr:
            cr.execute(
                "SELECT id, write_date, write_uid FROM sale_order WHERE id = ANY(%s)",
                [self.order_ids],
            )
            after = {row[0]: row[1:] for row in cr.fetchall()}
        self.assertEqual(after, before)

    def test_a_conversion_is_in_the_sync_log_once_the_user_commits(self):
        """The row is written by the user's own transaction: a manager who opens the sync log
        right after the commit sees it, with no cron run in between."""
        with self.registry.cursor() as user_cr:
            env = api.Environment(user_cr, SUPERUSER_ID, {})
            order = env["sale.order"].create(
                {
                    "partner_id": self.partner_id,
                    "company_id": self.company_id,
                    "metrika_client_id": CLIENT_ID,
                    "order_line": [(0, 0, {"product_id": self.product_id, "product_uom_qty": 1})],
                }
            )
            order.action_confirm()
            order_id = order.id
            # Nobody else sees it before the commit.
            with self.registry.cursor() as other_cr:
                other_cr.execute(
                    "SELECT COUNT(*) FROM metrika_conversion WHERE sale_order_id = %s", [order_id]
                )
                self.assertEqual(other_cr.fetchone()[0], 0)
        try:
            with self.registry.cursor() as manager_cr:
                env = api.Environment(manager_cr, SUPERUSER_ID, {})
                rows = env["metrika.conversion"].search([("sale_order_id", "=", order_id)])
                self.assertEqual(
                    [(row.event, row.state, row.order_status) for row in rows],
                    [(const.EVENT_IN_PROGRESS, const.STATE_PENDING, "IN_PROGRESS")],
                )
        finally:
            with self.registry.cursor() as cr:
                env = api.Environment(cr, SUPERUSER_ID, {})
                order = env["sale.order"].browse(order_id)
                order._action_cancel()  # a confirmed order cannot be deleted
                env["metrika.conversion"].search([("sale_order_id", "=", order_id)]).unlink()
                order.unlink()

    def test_interleaved_cursors_take_disjoint_batches(self):
        """The same, step by step: what worker B may take while A holds or has just sent."""
        cr_a = self.registry.cursor()
        cr_b = self.registry.cursor()
        try:
            env_a = api.Environment(cr_a, SUPERUSER_ID, {})
            env_b = api.Environment(cr_b, SUPERUSER_ID, {})
            company_a = env_a["res.company"].browse(self.company_id)
            company_b = env_b["res.company"].browse(self.company_id)
            transport = const.TRANSPORT_SIMPLE_ORDERS
            # B's transaction starts (and takes its snapshot) first, as a run that began earlier.
            self.assertEqual(env_b["metrika.conversion"]._metrika_due_count(), QUEUE_SIZE)

            batch_a = env_a["metrika.conversion"]._metrika_lock_due_batch(company_a, transport)
            batch_b = env_b["metrika.conversion"]._metrika_lock_due_batch(company_b, transport)
            self.assertEqual(len(batch_a), BATCH_SIZE)
            self.assertEqual(len(batch_b), BATCH_SIZE)
            self.assertFalse(set(batch_a.ids) & set(batch_b.ids), "B skips the rows A holds")

            # A sends its batch and commits: its rows are no longer locked, and sent.
            upload_run.UploadRun(env_a)._send(company_a, transport, batch_a)
            cr_a.commit()
            self.assertEqual(set(batch_a.mapped("state")), {const.STATE_SENT})

            # B, still in its old snapshot, sees A's rows as pending. Locking them must not
            # hand them out again, nor crash the run.
            again = env_b["metrika.conversion"]._metrika_lock_due_batch(company_b, transport)
            self.assertFalse(set(again.ids) & set(batch_a.ids), "A's sent rows are never taken")
            upload_run.UploadRun(env_b)._send(company_b, transport, batch_b)
            cr_b.commit()

            # A fresh transaction takes what is left, and only that.
            rest = env_b["metrika.conversion"]._metrika_lock_due_batch(company_b, transport)
            self.assertFalse(set(rest.ids) & (set(batch_a.ids) | set(batch_b.ids)))
            self.assertEqual(len(rest), BATCH_SIZE)
            cr_b.rollback()
        finally:
            cr_a.close()
            cr_b.close()
        sent = self.sent_order_ids()
        self.assertEqual(len(sent), len(set(sent)), "no order uploaded twice")
        self.assertEqual(len(sent), 2 * BATCH_SIZE)

    # -- the detailed CRM method (contacts, then orders) -------------------------------------------

    def use_detailed_method(self):
        with self.registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            env["res.company"].browse(self.company_id).sudo().write(
                {
                    "metrika_transport": const.TRANSPORT_CDP_DETAILED,
                    # The stand-in was reset: the counter has no status mapping.
                    "metrika_status_mapping_fingerprint": False,
                }
            )
            env["metrika.conversion"].browse(self.conversion_ids).write(
                {"transport": const.TRANSPORT_CDP_DETAILED}
            )

    def detailed_orders_stored(self):
        return {
            order_id: times
            for (_counter, order_id), times in self.api.stored_detailed_order_ids.items()
        }

    def test_killed_worker_of_detailed_orders_is_found_in_the_history(self):
        """Metrica stored the contacts and the orders; the worker died before it committed the
        outcome: the orders are found in Metrica's upload history, never sent again."""
        self.use_detailed_method()
        self.kill_after_metrica_stored_the_first_file(senders.CdpDetailedSender)
        self.assertEqual(sum(self.detailed_orders_stored().values()), BATCH_SIZE)
        # The contacts' answer was committed before the orders went.
        with self.registry.cursor() as cr:
            cr.execute(
                "SELECT state, contacts_uploading_id IS NOT NULL, orders_sent_at IS NOT NULL "
                "FROM metrika_upload WHERE id > %s",
                (self.max_upload_id,),
            )
            self.assertEqual(cr.fetchall(), [(const.UPLOAD_SENDING, True, True)])
        self.open_uploads_are_overdue()
        self.in_thread(self.run_worker)

        expected = {f"so-{order_id}" for order_id in self.order_ids}
        self.assertEqual(set(self.detailed_orders_stored()), expected, "every order stored")
        self.assertEqual(set(self.detailed_orders_stored().values()), {1}, "none sent twice")
        self.assertEqual(
            {state for state, _attempts, _uploads in self.committed_state().values()},
            {const.STATE_SENT},
        )
        self.assertEqual(self.committed_uploads()[0], (const.UPLOAD_ACCEPTED, BATCH_SIZE))

    def test_worker_killed_between_contacts_and_orders_loses_nothing(self):
        """The contacts went (and their answer was committed), the orders never did: the orders
        are not in the history, so they go again, with their contacts."""
        self.use_detailed_method()

        def killed(*args, **kwargs):
            raise WorkerKilled()

        with patch.object(MetrikaCdpClient, "upload_orders", killed):
            with self.assertRaises(WorkerKilled):
                self.in_thread(self.run_worker)
        self.assertEqual(self.detailed_orders_stored(), {})
        self.open_uploads_are_overdue()
        self.in_thread(self.run_worker)

        expected = {f"so-{order_id}" for order_id in self.order_ids}
        self.assertEqual(set(self.detailed_orders_stored()), expected, "every order stored")
        self.assertEqual(set(self.detailed_orders_stored().values()), {1}, "none sent twice")
        self.assertEqual(self.committed_uploads()[0], (const.UPLOAD_LOST, BATCH_SIZE))
        contacts_posts = [r for r in self.api.requests if "data/contacts" in r.path]
        self.assertEqual(len(contacts_posts), QUEUE_SIZE // BATCH_SIZE + 1, "once more: harmless")
