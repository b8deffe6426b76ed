"""Two workers draining one queue at the same time never send a conversion twice.

A TransactionCase cannot show this: its data is never committed, so no second transaction
sees it, and its cursor holds the locks of everything set up. These tests commit their data
through their own cursors (``self.registry.cursor()``: outside HttpCase's test mode every call
is a real, separate PostgreSQL connection) and remove all of it afterwards.
"""

import csv
import io
import threading
from concurrent.futures import ThreadPoolExecutor

from odoo import SUPERUSER_ID, api, fields
from odoo.modules.registry import Registry
from odoo.tests.common import BaseCase, get_db_name, tagged

from odoo.addons.metrika_offline_conversions import const

from .common import COUNTER_ID, TOKEN, StandInAccessMixin, load_stand_in

SIMPLE_ORDERS_PATH = f"/cdp/api/v1/counter/{COUNTER_ID}/data/simple_orders"
QUEUE_SIZE = 12
BATCH_SIZE = 3
# Company fields these tests change, restored afterwards (connection fields first: writing
# them resets the pause and the cached counter data, which are restored after them).
COMPANY_FIELDS = (
    "metrika_enabled",
    "metrika_counter_id",
    "metrika_token",
    "metrika_api_url",
    "metrika_transport",
    "metrika_batch_size",
)
COMPANY_CACHE_FIELDS = (
    "metrika_paused",
    "metrika_pause_reason",
    "metrika_counter_name",
    "metrika_counter_time_zone",
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
                        "order_line": [(0, 0, {"product_id": product.id, "product_uom_qty": 1})],
                    }
                    for _index in range(QUEUE_SIZE)
                ]
            )
            cls.order_ids = orders.ids
            env["metrika.conversion"]._metrika_enqueue(orders, const.EVENT_IN_PROGRESS)
            conversions = env["metrika.conversion"]._metrika_flush_queue()
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
                    "next_attempt_at": fields.Datetime.now(),
                }
            )

    def thread_env(self, cr):
        """An environment for a cursor used in another thread.

        ``api.Environment`` looks the registry up with ``Registry(dbname)``, which takes
        ``Registry._lock``; the test runner's main thread holds that lock for the whole run
        (``ThreadedServer.run`` wraps ``preload_registries``), so a worker thread would wait
        forever. Giving the cursor its transaction on our registry skips the look-up.
        """
        cr.transaction = api.Transaction(self.registry)
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
            # A new thread has no ``testing`` flag: _cron_upload commits after every batch,
            # exactly as in a cron worker.
            with self.registry.cursor() as cr:
                env = self.thread_env(cr)
                barrier.wait(timeout=10)
                return env["metrika.conversion"]._cron_upload()

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
            batch_a._metrika_upload_batch(company_a, transport)
            cr_a.commit()
            self.assertEqual(set(batch_a.mapped("state")), {const.STATE_SENT})

            # B, still in its old snapshot, sees A's rows as pending. Locking them must not
            # hand them out again, nor crash the run.
            again = env_b["metrika.conversion"]._metrika_lock_due_batch(company_b, transport)
            self.assertFalse(set(again.ids) & set(batch_a.ids), "A's sent rows are never taken")
            batch_b._metrika_upload_batch(company_b, transport)
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
