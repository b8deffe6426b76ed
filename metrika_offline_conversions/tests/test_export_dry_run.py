"""Export CSV, the dry run and the preflight check, against the Metrica stand-in: the files
exported or kept are byte for byte those an upload sends."""

import base64
import io
import zipfile
from datetime import timedelta
from unittest.mock import patch

from odoo import fields
from odoo.exceptions import AccessError, UserError
from odoo.tests import new_test_user, tagged

from odoo.addons.metrika_offline_conversions import const
from odoo.addons.metrika_offline_conversions.tools.upload_run import UploadRun

from .common import CLIENT_ID, COUNTER_ID, MetrikaCase, csv_rows

SIMPLE_ORDERS_PATH = f"/cdp/api/v1/counter/{COUNTER_ID}/data/simple_orders"
OFFLINE_PATH = f"/management/v1/counter/{COUNTER_ID}/offline_conversions/upload"
YCLID = "6754821930114400255"


@tagged("post_install", "-at_install")
class TestExportDryRun(MetrikaCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.admin = cls.env.ref("base.user_admin")
        cls.manager = new_test_user(
            cls.env,
            login="metrika_export_manager",
            groups="base.group_user,metrika_offline_conversions.group_metrika_manager",
        )
        cls.sales_manager = new_test_user(
            cls.env,
            login="metrika_export_sales_manager",
            groups="base.group_user,sales_team.group_sale_manager,"
            "metrika_offline_conversions.group_metrika_manager",
        )
        cls.salesman = new_test_user(
            cls.env,
            login="metrika_export_salesman",
            groups="base.group_user,sales_team.group_sale_salesman",
        )

    # ------------------------------------------------------------------ helpers

    def posts(self, path=SIMPLE_ORDERS_PATH):
        return [r for r in self.api.requests if r.method == "POST" and r.path == path]

    def learn_time_zone(self):
        """What Test connection does: the counter's time zone, read once and kept."""
        with self.company._metrika_client() as client:
            self.company._metrika_counter_time_zone(client)
        self.api.reset()

    def export(self, conversions, file_format, user=None):
        wizard = (
            self.env["metrika.conversion.export"]
            .with_user(user or self.admin)
            .with_context(active_model="metrika.conversion", active_ids=conversions.ids)
            .create({"file_format": file_format})
        )
        wizard.action_export()
        return wizard

    def exported_bytes(self, wizard):
        return base64.b64decode(wizard.file_data)

    def sync_log(self, conversions):
        conversions.invalidate_recordset()
        return conversions.read(["state", "failure_reason", "last_error", "upload_id"])

    def offline_company(self):
        self.company.sudo().write(
            {
                "metrika_transport": const.TRANSPORT_OFFLINE,
                "metrika_goal_in_progress": "crm_qualified_lead",
                "metrika_goal_paid": "crm_deal_won",
            }
        )

    # ------------------------------------------------------------------ export

    def test_exported_simple_orders_file_is_the_file_sent(self):
        self.learn_time_zone()
        orders = self.make_order(metrika_client_id=CLIENT_ID) | self.make_orders(3)
        conversions = self.conversions(orders)
        before = self.sync_log(conversions)

        wizard = self.export(conversions, const.TRANSPORT_SIMPLE_ORDERS)

        exported = self.exported_bytes(wizard)
        self.assertTrue(wizard.file_name.endswith(".csv"))
        self.assertEqual(wizard.row_count, 4)
        self.assertFalse(wizard.kept_back)
        self.assertEqual(self.sync_log(conversions), before, "an export changes no row")
        self.assertFalse(self.api.requests, "an export sends nothing")

        self.run_cron()
        [request] = self.posts()
        self.assertEqual(request.file, exported)
        self.assertEqual(
            {row["id"] for row in csv_rows(request)}, set(conversions.mapped("metrika_order_id"))
        )

    def test_exported_goal_based_files_are_the_files_sent(self):
        self.offline_company()
        orders = (
            self.make_order(metrika_client_id=CLIENT_ID)
            | self.make_order(metrika_yclid=YCLID)
            | self.make_order()  # no click: skipped, and said so
        )
        conversions = self.conversions(orders)
        conversions.sudo().write({"event_date": fields.Datetime.now() - timedelta(hours=1)})

        wizard = self.export(conversions, const.TRANSPORT_OFFLINE)

        self.assertTrue(wizard.file_name.endswith(".zip"), "one file per identifier column")
        with zipfile.ZipFile(io.BytesIO(self.exported_bytes(wizard))) as archive:
            exported = sorted(archive.read(name) for name in archive.namelist())
        self.assertEqual(len(exported), 2)
        self.assertEqual(wizard.row_count, 2)
        self.assertIn("ClientID or a yclid", wizard.kept_back)

        self.run_cron()
        sent = sorted(request.file for request in self.posts(OFFLINE_PATH))
        self.assertEqual(sent, exported)

    def test_export_checks_its_user_on_the_server(self):
        self.learn_time_zone()
        conversions = self.conversions(self.make_order(metrika_client_id=CLIENT_ID))
        with self.assertRaises(AccessError):
            self.export(conversions, const.TRANSPORT_SIMPLE_ORDERS, user=self.salesman)
        # A Metrica manager who may not read the sale orders may not export their identifiers.
        with self.assertRaises(AccessError):
            self.export(conversions, const.TRANSPORT_SIMPLE_ORDERS, user=self.manager)
        wizard = self.export(conversions, const.TRANSPORT_SIMPLE_ORDERS, user=self.sales_manager)
        self.assertEqual(wizard.row_count, 1)

    def test_export_needs_the_counter_time_zone_and_asks_nothing(self):
        conversions = self.conversions(self.make_order(metrika_client_id=CLIENT_ID))
        with self.assertRaisesRegex(UserError, "Test connection"):
            self.export(conversions, const.TRANSPORT_SIMPLE_ORDERS)
        self.assertFalse(self.api.requests)

    # ------------------------------------------------------------------ preflight

    def test_preflight_keeps_back_a_bad_row_and_the_rest_goes(self):
        self.learn_time_zone()
        orders = self.make_orders(3)
        bad_order, good_orders = orders[0], orders[1:]
        bad = self.conversions(bad_order)
        bad.sudo().write({"revenue": -10.0})  # a refund-like total: Metrica takes no negative

        wizard = self.export(self.conversions(orders), const.TRANSPORT_SIMPLE_ORDERS)
        self.assertEqual(wizard.row_count, 2)
        self.assertIn("negative", wizard.kept_back)

        self.run_cron()

        [request] = self.posts()
        self.assertEqual(
            {row["id"] for row in csv_rows(request)},
            {self.conversions(order).metrika_order_id for order in good_orders},
        )
        self.assertEqual(request.file, self.exported_bytes(wizard))
        self.assertRecordValues(
            bad, [{"state": const.STATE_ERROR, "failure_reason": const.REASON_PREFLIGHT}]
        )
        self.assertIn("preflight check", bad.last_error)
        self.assertIn("an amount is negative", bad.last_error)
        for order in good_orders:
            self.assertEqual(self.conversions(order).state, const.STATE_SENT)

    # ------------------------------------------------------------------ dry run

    def dry_run_batch(self):
        self.learn_time_zone()
        self.company.sudo().metrika_dry_run = True
        orders = self.make_order(metrika_client_id=CLIENT_ID) | self.make_orders(2)
        self.run_cron()
        return self.conversions(orders)

    def test_dry_run_keeps_the_file_and_sends_nothing(self):
        conversions = self.dry_run_batch()

        self.assertFalse(self.api.requests, "the stand-in receives nothing")
        [upload] = self.Upload.search([])
        self.assertEqual(upload.state, const.UPLOAD_KEPT)
        self.assertIn("Dry run", upload.result_summary)
        self.assertEqual(set(conversions.mapped("state")), {const.STATE_KEPT})
        self.assertEqual(conversions.upload_id, upload)
        self.assertEqual(
            {row["id"] for row in csv_rows(_File(upload.attachment_id.raw))},
            set(conversions.mapped("metrika_order_id")),
        )
        # Exported now, the same rows make the same file.
        self.assertEqual(
            self.exported_bytes(self.export(conversions, const.TRANSPORT_SIMPLE_ORDERS)),
            upload.attachment_id.raw,
        )
        # The cron finds nothing more to do with kept rows.
        self.assertFalse(self.run_cron())
        self.assertFalse(self.api.requests)

        action = upload.with_user(self.admin).action_download_file()
        self.assertEqual(action["url"], f"/web/content/{upload.attachment_id.id}?download=true")
        with self.assertRaises(AccessError):
            upload.with_user(self.manager).action_download_file()
        with self.assertRaises(AccessError):
            upload.with_user(self.manager).action_send_for_real()
        self.assertEqual(upload.state, const.UPLOAD_KEPT)

    def test_kept_batch_sent_for_real_goes_out_once(self):
        conversions = self.dry_run_batch()
        [upload] = self.Upload.search([])
        kept = upload.attachment_id.raw

        upload.with_user(self.admin).action_send_for_real()
        upload.with_user(self.admin).action_send_for_real()  # a second click does nothing
        self.assertEqual(upload.state, const.UPLOAD_RELEASED)
        self.assertFalse(self.api.requests, "released, not sent from the click")

        self.run_cron()
        self.run_cron()

        [request] = self.posts()
        self.assertEqual(request.file, kept, "the kept file, exactly")
        self.assertEqual(upload.state, const.UPLOAD_ACCEPTED)
        self.assertEqual(set(conversions.mapped("state")), {const.STATE_SENT})
        self.assertEqual(self.Upload.search([]), upload, "no other upload was made")
        upload.with_user(self.admin).action_send_for_real()
        self.run_cron()
        self.assertEqual(len(self.posts()), 1)

    def test_released_goal_file_whose_worker_died_is_looked_up_not_sent_twice(self):
        """Phase one moves a released file to sending: a worker that dies during the request
        leaves an upload the next runs settle (found at Metrica by its reference), as any
        other; the file is never taken again as released."""
        self.offline_company()
        self.company.sudo().metrika_dry_run = True
        conversion = self.conversions(self.make_order(metrika_client_id=CLIENT_ID))
        conversion.sudo().write({"event_date": fields.Datetime.now() - timedelta(hours=1)})
        self.run_cron()
        [upload] = self.Upload.search([])
        self.assertEqual((upload.state, conversion.state), (const.UPLOAD_KEPT, const.STATE_KEPT))
        upload.with_user(self.admin).action_send_for_real()

        def request_then_die(run, sender, upload, prepared):
            sender.send(upload, prepared)  # Metrica stores the file; its answer is never recorded

        with patch.object(UploadRun, "_upload", request_then_die):
            self.run_cron(calls=1)
        self.assertEqual(upload.state, const.UPLOAD_SENDING)
        self.assertEqual(conversion.state, const.STATE_SENDING)
        self.assertEqual(len(self.posts(OFFLINE_PATH)), 1)
        self.run_cron()
        self.assertEqual(len(self.posts(OFFLINE_PATH)), 1, "still in flight: not sent again")

        upload.sudo().settle_after = fields.Datetime.now() - timedelta(seconds=1)
        self.run_cron()

        self.assertEqual(len(self.posts(OFFLINE_PATH)), 1, "found at Metrica, not sent again")
        self.assertEqual(upload.state, const.UPLOAD_ACCEPTED)
        self.assertEqual(conversion.state, const.STATE_SENT)

    def test_kept_batch_whose_rows_changed_is_not_sent_as_kept(self):
        conversions = self.dry_run_batch()
        [upload] = self.Upload.search([])
        conversions[:1].with_user(self.admin).action_cancel()
        with self.assertRaisesRegex(UserError, "Resend"):
            upload.with_user(self.admin).action_send_for_real()
        self.assertEqual(upload.state, const.UPLOAD_KEPT)

    def test_kept_files_outlive_the_retention(self):
        """A kept or released file is still to go: neither it nor its upload is pruned."""
        states = (const.UPLOAD_KEPT, const.UPLOAD_RELEASED, const.UPLOAD_PROCESSED)
        uploads = self.Upload.sudo().create(
            [
                {
                    "company_id": self.company.id,
                    "transport": const.TRANSPORT_SIMPLE_ORDERS,
                    "state": state,
                }
                for state in (*states, const.UPLOAD_PROCESSED)
            ]
        )
        for upload in uploads:
            upload._metrika_attach_file(b"id,create_date_time\n")
        self.env.flush_all()
        long_ago = fields.Datetime.now() - timedelta(days=1000)
        # Created long ago; the last one changed since (its file is old, its log line is not).
        self.env.cr.execute(
            "UPDATE metrika_upload SET create_date = %s, "
            "write_date = CASE WHEN id = %s THEN write_date ELSE %s END WHERE id = ANY(%s)",
            (long_ago, uploads[-1].id, long_ago, uploads.ids),
        )
        uploads.invalidate_recordset()
        held, old_log, recent_log = uploads[:2], uploads[2], uploads[3]

        self.Upload.sudo()._gc_closed_uploads()
        self.assertEqual(uploads.exists(), held | recent_log)
        self.Upload.sudo()._gc_uploaded_files()
        self.assertTrue(all(held.mapped("attachment_id")))
        self.assertFalse(recent_log.attachment_id)
        self.assertFalse(old_log.exists())


class _File:
    """What csv_rows reads: a request-like object around the kept bytes."""

    def __init__(self, data):
        self.file = data
