"""The sync log's retention: settled conversions and closed uploads are deleted once they have not
changed for their company's retention; waiting rows and open uploads never are."""

from datetime import timedelta
from unittest.mock import patch

from odoo import Command, fields
from odoo.exceptions import ValidationError
from odoo.tests import Form, TransactionCase, tagged
from odoo.tools import SQL

from odoo.addons.metrika_offline_conversions import const
from odoo.addons.metrika_offline_conversions.metrika_core import formats


@tagged("post_install", "-at_install")
class TestSyncLogRetention(TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.Conversion = cls.env["metrika.conversion"].sudo()
        cls.Upload = cls.env["metrika.upload"].sudo()
        cls.company = cls.env.company
        cls.company.metrika_log_retention_days = 200
        cls.other_company = cls.env["res.company"].create(
            {"name": "Metrika retention company", "metrika_log_retention_days": 400}
        )

    # ------------------------------------------------------------------ helpers

    def age(self, records, days, **values):
        """Make ``records`` last changed ``days`` ago (and write ``values``), as SQL: the ORM
        would stamp them with the current date."""
        values = {"write_date": fields.Datetime.now() - timedelta(days=days), **values}
        self.env.flush_all()
        self.env.cr.execute(
            SQL(
                "UPDATE %s SET %s WHERE id = ANY(%s)",
                SQL.identifier(records._table),
                SQL(", ").join(
                    SQL("%s = %s", SQL.identifier(name), value) for name, value in values.items()
                ),
                records.ids,
            )
        )
        records.invalidate_recordset()
        return records

    def conversion(self, state, days, company=None, window_closes_in=None):
        """A conversion in ``state`` last changed ``days`` ago; Metrica takes it for
        ``window_closes_in`` more days (None: its window closed 21 days after its event)."""
        conversion = self.Conversion.create(
            {
                "company_id": (company or self.company).id,
                "record_name": f"S{state}{days}",
                "event": const.EVENT_IN_PROGRESS,
                "order_status": formats.IN_PROGRESS,
                "transport": const.TRANSPORT_SIMPLE_ORDERS,
                "state": state,
            }
        )
        now = fields.Datetime.now()
        if window_closes_in is None:
            window = now - timedelta(days=days) + timedelta(days=const.CRM_NEW_ORDER_LINK_DAYS)
        else:
            window = now + timedelta(days=window_closes_in)
        event_date = now - timedelta(days=days)
        return self.age(conversion, days, event_date=event_date, window_closes_at=window)

    def upload(self, state, days, company=None, **values):
        upload = self.Upload.create(
            {
                "company_id": (company or self.company).id,
                "transport": const.TRANSPORT_SIMPLE_ORDERS,
                "state": state,
                **values,
            }
        )
        return self.age(upload, days)

    def rel_rows(self, conversions):
        self.env.cr.execute(
            "SELECT COUNT(*) FROM metrika_conversion_metrika_upload_rel "
            "WHERE conversion_id = ANY(%s)",
            (conversions.ids,),
        )
        return self.env.cr.fetchone()[0]

    # ------------------------------------------------------------------ settings

    def test_retention_is_a_company_setting_of_at_least_the_update_window(self):
        company = self.env["res.company"].create({"name": "Metrika default retention"})
        self.assertEqual(company.metrika_log_retention_days, const.DEFAULT_LOG_RETENTION_DAYS)
        self.assertGreater(const.DEFAULT_LOG_RETENTION_DAYS, const.CRM_LINKED_ORDER_UPDATE_DAYS)
        # Shown in the Metrica settings, and saved on the current company.
        with Form(self.env["res.config.settings"]) as settings:
            self.assertEqual(settings.metrika_log_retention_days, 200)
            settings.metrika_log_retention_days = 150
        self.assertEqual(self.company.metrika_log_retention_days, 150)
        for days in (0, const.CRM_LINKED_ORDER_UPDATE_DAYS - 1):
            with self.subTest(days=days), self.assertRaisesRegex(ValidationError, "at least 111"):
                self.company.metrika_log_retention_days = days
        self.company.metrika_log_retention_days = const.CRM_LINKED_ORDER_UPDATE_DAYS

    # ------------------------------------------------------------------ conversions

    def test_settled_conversions_older_than_the_retention_are_deleted(self):
        old = {state: self.conversion(state, 201) for state in const.SETTLED_STATES}
        kept = {
            "sent within the retention": self.conversion(const.STATE_SENT, 199),
            "pending": self.conversion(const.STATE_PENDING, 900),
            "sending": self.conversion(const.STATE_SENDING, 900),
            # Cannot happen with a retention of 111 days or more, and is kept all the same.
            "in error, Metrica still takes it": self.conversion(
                const.STATE_ERROR, 201, window_closes_in=2
            ),
        }
        upload = self.upload(const.UPLOAD_PROCESSED, 10)
        upload.conversion_ids = old[const.STATE_SENT] | kept["sent within the retention"]
        deleted = self.Conversion.browse(conversion.id for conversion in old.values())

        self.Conversion._gc_settled_conversions()

        self.assertFalse(deleted.exists())
        self.assertEqual(self.rel_rows(deleted), 0, "their lines in the uploads went with them")
        for name, conversion in kept.items():
            self.assertTrue(conversion.exists(), name)
        self.assertEqual(upload.conversion_ids, kept["sent within the retention"])

    def test_each_company_keeps_its_conversions_for_its_own_retention(self):
        mine = self.conversion(const.STATE_SENT, 300)
        theirs = self.conversion(const.STATE_SENT, 300, company=self.other_company)
        theirs_older = self.conversion(const.STATE_SKIPPED, 401, company=self.other_company)

        self.Conversion._gc_settled_conversions()

        self.assertFalse(mine.exists(), "older than this company's 200 days")
        self.assertTrue(theirs.exists(), "within the other company's 400 days")
        self.assertFalse(theirs_older.exists())

    def test_a_retention_below_the_update_window_is_never_applied(self):
        # Written around the constraint (by SQL, or before it existed): 111 days all the same.
        self.env.cr.execute(
            "UPDATE res_company SET metrika_log_retention_days = 30 WHERE id = %s",
            (self.company.id,),
        )
        self.company.invalidate_recordset()
        within = self.conversion(const.STATE_SENT, 100)
        beyond = self.conversion(const.STATE_SENT, 112)

        self.Conversion._gc_settled_conversions()

        self.assertTrue(within.exists())
        self.assertFalse(beyond.exists())

    def test_a_backlog_is_deleted_in_bounded_batches(self):
        conversions = self.Conversion.browse()
        for _index in range(5):
            conversions |= self.conversion(const.STATE_SENT, 201)
        Model = type(self.Conversion)
        original = Model._metrika_prune_batch
        batches = []

        def spy(model, limit):
            count = original(model, limit)
            batches.append((limit, count))
            return count

        with (
            patch.object(const, "LOG_PRUNE_BATCH", 2),
            patch.object(Model, "_metrika_prune_batch", spy),
        ):
            # One batch when the day's time is up: the rest waits for the next vacuum.
            with patch.object(const, "LOG_PRUNE_SECONDS", 0):
                self.Conversion._gc_settled_conversions()
            self.assertEqual(batches, [(2, 2)])
            self.assertEqual(len(conversions.exists()), 3)
            # Otherwise batch after batch, until one is not full.
            batches.clear()
            self.Conversion._gc_settled_conversions()
            self.assertEqual(batches, [(2, 2), (2, 1)])
        self.assertFalse(conversions.exists())

    # ------------------------------------------------------------------ uploads

    def test_closed_uploads_older_than_the_retention_are_deleted(self):
        attachment = self.env["ir.attachment"].create(
            {"name": "metrika_simple_orders.csv", "raw": b"id\n1\n", "mimetype": "text/csv"}
        )
        conversion = self.conversion(const.STATE_SENT, 10)
        processed = self.upload(
            const.UPLOAD_PROCESSED,
            201,
            attachment_id=attachment.id,
            conversion_ids=[Command.set(conversion.ids)],
        )
        attachment.write({"res_model": "metrika.upload", "res_id": processed.id})
        old = {
            state: self.upload(state, 201)
            for state in (const.UPLOAD_FAILED, const.UPLOAD_LOST, const.UPLOAD_PROCESSING_TIMEOUT)
        }
        old["processed"] = processed
        alerted = self.upload(const.UPLOAD_FAILED, 201)
        alerted._metrika_alert_administrators(self.company, "Fix the token")
        self.assertTrue(alerted.activity_ids)
        kept = {
            "processed within the retention": self.upload(const.UPLOAD_PROCESSED, 199),
            "sending": self.upload(const.UPLOAD_SENDING, 900),
            "answer lost": self.upload(const.UPLOAD_UNCONFIRMED, 900),
            "still polled": self.upload(
                const.UPLOAD_ACCEPTED, 900, next_poll_at=fields.Datetime.now()
            ),
            "with an open settings alert": alerted,
        }
        deleted = self.Upload.browse(upload.id for upload in old.values())

        self.Upload._gc_closed_uploads()

        self.assertFalse(deleted.exists())
        self.assertFalse(attachment.exists(), "the file sent went with its upload")
        for name, upload in kept.items():
            self.assertTrue(upload.exists(), name)
        self.assertTrue(conversion.exists(), "a conversion outlives an upload it was sent in")
        self.assertFalse(conversion.upload_ids)

    def test_each_company_keeps_its_uploads_for_its_own_retention(self):
        mine = self.upload(const.UPLOAD_PROCESSED, 300)
        theirs = self.upload(const.UPLOAD_PROCESSED, 300, company=self.other_company)
        theirs_older = self.upload(const.UPLOAD_FAILED, 401, company=self.other_company)

        self.Upload._gc_closed_uploads()

        self.assertFalse(mine.exists())
        self.assertTrue(theirs.exists())
        self.assertFalse(theirs_older.exists())
