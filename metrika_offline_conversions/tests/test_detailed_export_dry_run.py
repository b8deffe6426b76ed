"""The detailed CRM method through Export CSV, the dry run and the preflight check, against the
Metrica stand-in: the contacts and orders files exported or kept are byte for byte those the
upload sends, a kept batch goes out once when released, and a row the preflight refuses stays
back on its own."""

import base64
import io
import zipfile
from datetime import timedelta

from odoo import fields
from odoo.tests import tagged

from odoo.addons.metrika_offline_conversions import const

from .common import CLIENT_ID, COUNTER_ID, MetrikaCase, csv_rows

CDP = f"/cdp/api/v1/counter/{COUNTER_ID}"
CONTACTS_PATH = f"{CDP}/data/contacts/csv"
ORDERS_PATH = f"{CDP}/data/orders/csv"
STATUSES_PATH = f"{CDP}/schema/order_statuses"


@tagged("post_install", "-at_install")
class TestDetailedExportDryRun(MetrikaCase):
    def setUp(self):
        super().setUp()
        self.api.strict_goals = False
        self.company.sudo().write(
            {
                "metrika_transport": const.TRANSPORT_CDP_DETAILED,
                "metrika_status_mapping_fingerprint": False,
            }
        )
        self.admin = self.env.ref("base.user_admin")

    # ------------------------------------------------------------------ helpers

    def learn_time_zone(self):
        """What Test connection does: the counter's time zone, read once and kept."""
        with self.company._metrika_client() as client:
            self.company._metrika_counter_time_zone(client)
        self.api.reset()

    def posts(self):
        return [request for request in self.api.requests if request.method == "POST"]

    def sent_file(self, path):
        [request] = [request for request in self.posts() if request.path == path]
        return request.file

    def export(self, conversions):
        wizard = (
            self.env["metrika.conversion.export"]
            .with_user(self.admin)
            .with_context(active_model="metrika.conversion", active_ids=conversions.ids)
            .create({"file_format": const.TRANSPORT_CDP_DETAILED})
        )
        wizard.action_export()
        return wizard

    def exported_files(self, wizard):
        with zipfile.ZipFile(io.BytesIO(base64.b64decode(wizard.file_data))) as archive:
            return {name: archive.read(name) for name in archive.namelist()}

    # ------------------------------------------------------------------ export

    def test_exported_contacts_and_orders_are_the_files_sent(self):
        self.learn_time_zone()
        orders = self.make_order(metrika_client_id=CLIENT_ID) | self.make_orders(2)
        nobody = self.env["res.partner"].create({"name": "No contact"})
        unreachable = self.make_order(partner_id=nobody.id)
        conversions = self.conversions(orders | unreachable)

        wizard = self.export(conversions)

        self.assertTrue(wizard.file_name.endswith(".zip"), "two files: contacts and orders")
        stem = wizard.file_name.removesuffix(".zip")
        files = self.exported_files(wizard)
        self.assertEqual(sorted(files), [f"{stem}_contacts.csv", f"{stem}_orders.csv"])
        self.assertEqual(wizard.row_count, 3, "the orders of the file")
        self.assertIn(unreachable.name, wizard.kept_back)
        self.assertFalse(self.api.requests, "an export sends nothing")
        self.assertEqual(set(conversions.mapped("state")), {const.STATE_PENDING})

        self.run_cron()

        self.assertEqual(
            [request.path for request in self.posts()],
            [STATUSES_PATH, CONTACTS_PATH, ORDERS_PATH],
        )
        self.assertEqual(self.sent_file(CONTACTS_PATH), files[f"{stem}_contacts.csv"])
        self.assertEqual(self.sent_file(ORDERS_PATH), files[f"{stem}_orders.csv"])
        self.assertEqual(
            {row["id"] for row in csv_rows(self.api.last_request("data/orders"))},
            set(self.conversions(orders).mapped("metrika_order_id")),
        )

    # ------------------------------------------------------------------ dry run

    def test_kept_detailed_batch_sent_for_real_goes_out_once_as_kept(self):
        self.learn_time_zone()
        self.company.sudo().metrika_dry_run = True
        orders = self.make_order(metrika_client_id=CLIENT_ID) | self.make_orders(2)
        self.run_cron()
        conversions = self.conversions(orders)
        self.assertFalse(self.api.requests, "a dry run sends nothing, not even the mapping")
        [upload] = self.Upload.search([])
        self.assertEqual(upload.state, const.UPLOAD_KEPT)
        self.assertEqual(set(conversions.mapped("state")), {const.STATE_KEPT})
        kept_orders = upload.attachment_id.raw
        kept_contacts = upload.contacts_attachment_id.raw
        self.assertTrue(kept_orders and kept_contacts)
        self.assertEqual(upload.contacts_count, 3)

        upload.with_user(self.admin).action_send_for_real()
        self.run_cron()
        self.run_cron()

        self.assertEqual(
            [request.path for request in self.posts()],
            [STATUSES_PATH, CONTACTS_PATH, ORDERS_PATH],
            "the mapping, the contacts, then the orders; once",
        )
        self.assertEqual(self.sent_file(CONTACTS_PATH), kept_contacts, "the kept contacts")
        self.assertEqual(self.sent_file(ORDERS_PATH), kept_orders, "the kept orders")
        self.assertEqual(upload.state, const.UPLOAD_ACCEPTED)
        self.assertEqual(upload.contacts_validation_status, "PASSED")
        self.assertEqual(set(conversions.mapped("state")), {const.STATE_SENT})
        self.assertEqual(self.Upload.search([]), upload, "no other upload was made")
        for conversion in conversions:
            self.assertIn(
                conversion.metrika_order_id, self.api.detailed_orders[COUNTER_ID], "stored"
            )
        upload.with_user(self.admin).action_send_for_real()
        self.run_cron()
        self.assertEqual(len(self.posts()), 3)

    def test_kept_contacts_outlive_the_retention(self):
        """A kept or released batch is still to go: its contacts file stays, as its orders
        file does; a closed upload's goes."""
        states = (const.UPLOAD_KEPT, const.UPLOAD_RELEASED, const.UPLOAD_ACCEPTED)
        uploads = self.Upload.sudo().create(
            [
                {
                    "company_id": self.company.id,
                    "transport": const.TRANSPORT_CDP_DETAILED,
                    "state": state,
                }
                for state in states
            ]
        )
        for upload in uploads:
            upload._metrika_attach_contacts(b"uniq_id,client_ids\npartner-1,1\n", 1)
        self.env.flush_all()
        self.env.cr.execute(
            "UPDATE metrika_upload SET create_date = %s WHERE id = ANY(%s)",
            (fields.Datetime.now() - timedelta(days=1000), uploads.ids),
        )
        uploads.invalidate_recordset()

        self.Upload.sudo()._gc_uploaded_contacts_files()

        self.assertTrue(all(uploads[:2].mapped("contacts_attachment_id")))
        self.assertFalse(uploads[2].contacts_attachment_id)

    # ------------------------------------------------------------------ preflight

    def test_preflight_keeps_back_a_bad_order_and_the_rest_goes(self):
        self.learn_time_zone()
        orders = self.make_orders(3)
        bad_order, good_orders = orders[0], orders[1:]
        bad = self.conversions(bad_order)
        bad.sudo().write({"revenue": -10.0})  # a refund-like total: Metrica takes no negative

        wizard = self.export(self.conversions(orders))
        self.assertEqual(wizard.row_count, 2)
        self.assertIn("negative", wizard.kept_back)

        self.run_cron()

        self.assertEqual(
            {row["id"] for row in csv_rows(self.api.last_request("data/orders"))},
            {self.conversions(order).metrika_order_id for order in good_orders},
        )
        contacts = csv_rows(self.api.last_request("data/contacts"))
        self.assertEqual(len(contacts), 2, "no contact for the order kept back")
        self.assertRecordValues(
            bad, [{"state": const.STATE_ERROR, "failure_reason": const.REASON_PREFLIGHT}]
        )
        self.assertIn("preflight check", bad.last_error)
        self.assertIn("an amount is negative", bad.last_error)
        self.assertEqual(set(self.conversions(good_orders).mapped("state")), {const.STATE_SENT})
