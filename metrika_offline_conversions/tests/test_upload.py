"""The upload cron against the Metrica stand-in, over real sockets (requests is never patched)."""

import hashlib
import logging
from datetime import datetime, timedelta, timezone
from datetime import time as dt_time
from decimal import Decimal
from unittest.mock import patch

from odoo import fields
from odoo.exceptions import AccessError
from odoo.tests import new_test_user, tagged

from odoo.addons.metrika_offline_conversions import const
from odoo.addons.metrika_offline_conversions.tools import odoo_compat
from odoo.addons.metrika_offline_conversions.tools.senders import SimpleOrdersSender
from odoo.addons.metrika_offline_conversions.tools.upload_run import UploadRun

from .common import CLIENT_ID, COUNTER_ID, TOKEN, MetrikaCase, csv_rows, load_stand_in

_logger = logging.getLogger(__name__)

SIMPLE_ORDERS_PATH = f"/cdp/api/v1/counter/{COUNTER_ID}/data/simple_orders"
OFFLINE_PATH = f"/management/v1/counter/{COUNTER_ID}/offline_conversions/upload"
COUNTER_PATH = f"/management/v1/counter/{COUNTER_ID}"
EMAIL = "ivan.petrov@example.ru"
PHONE = "79995551111"
YCLID = "6754821930114400255"
SECOND_TOKEN = "second-company-token-51c2"
SECOND_COUNTER_ID = 67890
ADDON_LOGGER = "odoo.addons.metrika_offline_conversions"


def md5(value):
    return hashlib.md5(value.encode()).hexdigest()


def csv_header(request):
    return request.file.decode("utf-8").split("\n", 1)[0]


@tagged("post_install", "-at_install")
class TestUpload(MetrikaCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # A second company talks to its own "account": another stand-in with another token.
        cls.second_api = load_stand_in().MetrikaStandIn(
            token=SECOND_TOKEN,
            counters=[
                {
                    "id": SECOND_COUNTER_ID,
                    "time_zone_name": "Asia/Yekaterinburg",
                    "time_zone_offset": 300,
                }
            ],
        )
        cls.second_api.start()
        cls.addClassCleanup(cls.second_api.stop)
        cls.admin = cls.env.ref("base.user_admin")
        cls.manager = new_test_user(
            cls.env,
            login="metrika_upload_manager",
            groups="base.group_user,metrika_offline_conversions.group_metrika_manager",
        )
        cls.salesman = new_test_user(
            cls.env,
            login="metrika_upload_salesman",
            groups="base.group_user,sales_team.group_sale_salesman",
        )

    @classmethod
    def _stand_ins(cls):
        return [cls.api, cls.second_api]

    def setUp(self):
        super().setUp()
        self.second_api.reset()

    # ------------------------------------------------------------------ helpers

    def posts(self, path=SIMPLE_ORDERS_PATH, api=None):
        return [r for r in (api or self.api).requests if r.method == "POST" and r.path == path]

    def gets(self, api=None):
        return [r for r in (api or self.api).requests if r.method == "GET"]

    def set_company(self, **values):
        self.company.sudo().write(values)

    def make_due(self, conversions):
        conversions.sudo().write({"next_attempt_at": fields.Datetime.now() - timedelta(seconds=1)})

    def uploads(self):
        return self.Upload.search([], order="id")

    def admin_activities(self, upload):
        return self.env["mail.activity"].search(
            [
                ("res_model", "=", "metrika.upload"),
                ("res_id", "=", upload.id),
            ]
        )

    def assert_retryable(self, conversions, reason, status, words):
        now = fields.Datetime.now()
        for conversion in conversions:
            self.assertRecordValues(
                conversion,
                [
                    {
                        "state": "pending",
                        "attempt_count": 1,
                        "failure_reason": reason,
                    }
                ],
            )
            self.assertGreater(conversion.next_attempt_at, now)
            self.assertRegex(conversion.last_error, words)
        upload = self.uploads()[-1]
        self.assertRecordValues(upload, [{"state": "failed", "http_status": status}])
        self.assertEqual(upload.conversion_ids, conversions)
        self.assertTrue(upload.error_message)
        return upload

    # ------------------------------------------------------------------ simple_orders

    def test_happy_path_simple_orders(self):
        with_client_id = self.make_order(metrika_client_id=CLIENT_ID)
        contact_only = self.make_order()
        conversions = self.conversions(with_client_id | contact_only)
        self.assertEqual(len(conversions), 2)

        self.assertEqual(self.run_cron(), 2)

        [request] = self.posts()
        self.assertEqual(request.path, SIMPLE_ORDERS_PATH)
        self.assertEqual(request.query["merge_mode"], "SAVE")
        self.assertEqual(request.header("Authorization"), f"OAuth {TOKEN}")
        self.assertNotIn(TOKEN, request.raw_query)
        self.assertTrue(request.content_type.startswith("multipart/form-data"))
        self.assertIsNotNone(request.file)
        self.assertEqual(request.status, 200)
        rows = {row["id"]: row for row in csv_rows(request)}
        self.assertEqual(set(rows), {f"so-{with_client_id.id}", f"so-{contact_only.id}"})
        for order, client_ids in ((with_client_id, CLIENT_ID), (contact_only, "")):
            row = rows[f"so-{order.id}"]
            moscow = order.create_date + timedelta(hours=3)  # the stand-in counter: UTC+3
            self.assertEqual(row["create_date_time"], moscow.strftime("%Y-%m-%d %H:%M:%S"))
            self.assertEqual(row["order_status"], "IN_PROGRESS")
            self.assertEqual(Decimal(row["revenue"]), Decimal(str(order.amount_total)))
            self.assertRegex(row["revenue"], r"^\d+(\.\d+)?$")
            self.assertEqual(row["currency"], order.currency_id.name)
            self.assertEqual(row["client_ids"], client_ids)
            self.assertEqual(row["emails"], EMAIL)
            self.assertEqual(row["phones"], PHONE)

        for conversion in conversions:
            self.assertRecordValues(
                conversion,
                [
                    {
                        "state": "sent",
                        "attempt_count": 1,
                        "failure_reason": False,
                        "last_error": False,
                    }
                ],
            )
            self.assertTrue(conversion.sent_at)
        [upload] = self.uploads()
        uploading = self.api.cdp_uploadings[COUNTER_ID][-1]
        self.assertRecordValues(
            upload,
            [
                {
                    "company_id": self.company.id,
                    "transport": "simple_orders",
                    "state": "accepted",
                    "http_status": 200,
                    "uploading_id": uploading["uploading_id"],
                    "validation_status": "PASSED",
                    "row_count": 2,
                }
            ],
        )
        self.assertEqual(upload.conversion_ids, conversions)
        self.assertEqual(conversions.upload_ids, upload)
        self.assertEqual(upload.attachment_id.raw, request.file)
        self.assertEqual(upload.attachment_id.mimetype, "text/csv")
        self.assertGreater(upload.duration, 0)

        # The counter's time zone was read once and is kept on the company.
        self.assertEqual(len([r for r in self.gets() if r.path == COUNTER_PATH]), 1)
        self.assertEqual(self.company.metrika_counter_time_zone, "Europe/Moscow")
        self.api.reset()
        self.make_order()
        self.assertEqual(self.run_cron(), 1)
        self.assertEqual(len(self.posts()), 1)
        self.assertFalse(self.gets(), "the cached time zone is used, the counter is not read again")

    def test_hashed_identifiers(self):
        self.set_company(metrika_hash_identifiers=True)
        order = self.make_order(metrika_client_id=CLIENT_ID)
        self.run_cron()
        [request] = self.posts()
        header = csv_header(request).split(",")
        self.assertIn("emails_md5", header)
        self.assertIn("phones_md5", header)
        self.assertNotIn("emails", header)
        self.assertNotIn("phones", header)
        [row] = csv_rows(request)
        self.assertEqual(row["id"], f"so-{order.id}")
        self.assertEqual(row["emails_md5"], md5(EMAIL))
        self.assertEqual(row["phones_md5"], md5(PHONE))
        self.assertEqual(
            row["phones_md5"], "f09f2c3d48f31e2a802944ade2e5aec5"
        )  # metrika-api.md TV9
        self.assertEqual(row["client_ids"], CLIENT_ID)
        self.assertNotIn(EMAIL.encode(), request.file)
        self.assertNotIn(PHONE.encode(), request.file)
        self.assertEqual(self.conversions(order).state, "sent")

    def test_latest_state_wins_in_one_batch(self):
        paid = self.make_order()
        self.Conversion._metrika_enqueue(paid, const.EVENT_PAID)
        cancelled = self.make_order()
        cancelled._action_cancel()
        self.assertEqual(len(self.conversions(paid)), 2)
        self.assertEqual(len(self.conversions(cancelled)), 2)

        self.run_cron()

        [request] = self.posts()
        rows = csv_rows(request)
        self.assertEqual(len(rows), 2, "one row per order, not per event")
        statuses = {row["id"]: row["order_status"] for row in rows}
        self.assertEqual(statuses, {f"so-{paid.id}": "PAID", f"so-{cancelled.id}": "CANCELLED"})
        self.assertEqual(set(self.conversions(paid | cancelled).mapped("state")), {"sent"})
        self.assertEqual(self.uploads().row_count, 2)

    def test_older_event_retried_after_newer_sent_uploads_latest_status(self):
        order = self.make_order()
        created = self.conversions(order)
        self.Conversion._metrika_enqueue(order, const.EVENT_PAID)
        paid = self.conversions(order) - created
        # "created" failed earlier and waits; "paid" goes out first.
        created.sudo().write({"next_attempt_at": fields.Datetime.now() + timedelta(hours=1)})
        self.run_cron()
        [request] = self.posts()
        self.assertEqual([row["order_status"] for row in csv_rows(request)], ["PAID"])
        self.assertEqual((paid.state, created.state), ("sent", "pending"))

        self.api.reset()
        self.make_due(created)
        self.run_cron()
        [request] = self.posts()
        [row] = csv_rows(request)
        self.assertEqual(row["id"], f"so-{order.id}")
        self.assertEqual(row["order_status"], "PAID", "SAVE replaces the order: never go back")
        self.assertEqual(created.state, "sent")

    # ------------------------------------------------------------------ batches

    def test_batches_of_the_configured_size(self):
        self.set_company(metrika_batch_size=2)
        orders = self.make_orders(5)
        conversions = self.conversions(orders)

        self.assertEqual(self.run_cron(), 5)

        requests = self.posts()
        self.assertEqual([len(csv_rows(r)) for r in requests], [2, 2, 1])
        sent_ids = [row["id"] for request in requests for row in csv_rows(request)]
        self.assertCountEqual(sent_ids, [f"so-{order.id}" for order in orders])
        uploads = self.uploads()
        self.assertEqual(len(uploads), 3)
        self.assertEqual(uploads.mapped("row_count"), [2, 2, 1])
        for conversion in conversions:
            self.assertEqual(len(conversion.upload_ids), 1, "each conversion in exactly one upload")
            self.assertEqual(conversion.state, "sent")
        self.assertEqual(uploads.conversion_ids, conversions)

    def test_the_company_whose_rows_waited_longest_goes_first(self):
        """A backlog of the first company does not hold up rows another company queued before
        most of it: the due groups are served by their oldest due row, not by company id."""
        second = self.env["res.company"].create({"name": "Metrica patient company"})
        second.sudo().write(
            {
                "metrika_enabled": True,
                "metrika_counter_id": str(SECOND_COUNTER_ID),
                "metrika_token": SECOND_TOKEN,
                "metrika_api_url": self.second_api.url,
            }
        )
        backlog = self.conversions(self.make_orders(3))
        waiting = self.conversions(self.make_orders(1, company_id=second.id))
        now = fields.Datetime.now()
        backlog.write({"next_attempt_at": now - timedelta(minutes=5)})
        waiting.write({"next_attempt_at": now - timedelta(minutes=30)})
        self.assertLess(self.company.id, second.id)
        groups = self.Conversion._metrika_due_groups()
        self.assertEqual(
            [(company, method) for company, method in groups],
            [
                (second, const.TRANSPORT_SIMPLE_ORDERS),
                (self.company, const.TRANSPORT_SIMPLE_ORDERS),
            ],
        )
        self.Conversion._cron_upload()  # one call: one batch
        self.assertEqual(waiting.state, const.STATE_SENT)
        self.assertEqual(set(backlog.mapped("state")), {const.STATE_PENDING})

    def test_batches_per_company_and_transport(self):
        second = self.env["res.company"].create(
            {
                "name": "Metrica second company",
                "country_id": self.env.ref("base.ru").id,
            }
        )
        second.sudo().write(
            {
                "metrika_enabled": True,
                "metrika_counter_id": str(SECOND_COUNTER_ID),
                "metrika_token": SECOND_TOKEN,
                "metrika_api_url": self.second_api.url,
            }
        )
        first_orders = self.make_orders(2)
        second_orders = self.make_orders(2, company_id=second.id)
        second_conversions = self.conversions(second_orders)
        self.assertEqual(second_conversions.company_id, second)
        # The first company switches to goal-based uploads: rows already queued keep theirs.
        self.set_company(
            metrika_transport=const.TRANSPORT_OFFLINE, metrika_goal_in_progress="crm_qualified_lead"
        )
        goal_order = self.make_order(metrika_client_id=CLIENT_ID)
        self.assertEqual(self.conversions(goal_order).transport, const.TRANSPORT_OFFLINE)

        self.assertEqual(self.run_cron(), 5)

        [goal_request] = self.posts(OFFLINE_PATH)
        self.assertEqual([row["ClientId"] for row in csv_rows(goal_request)], [CLIENT_ID])
        [first_request] = self.posts()
        [second_request] = self.posts(
            f"/cdp/api/v1/counter/{SECOND_COUNTER_ID}/data/simple_orders", api=self.second_api
        )
        self.assertEqual(second_request.header("Authorization"), f"OAuth {SECOND_TOKEN}")
        self.assertEqual(first_request.header("Authorization"), f"OAuth {TOKEN}")
        self.assertCountEqual(
            [r["id"] for r in csv_rows(first_request)], [f"so-{o.id}" for o in first_orders]
        )
        second_rows = csv_rows(second_request)
        self.assertCountEqual([r["id"] for r in second_rows], [f"so-{o.id}" for o in second_orders])
        # Each counter's own time zone: Yekaterinburg is UTC+5.
        local = second_orders[0].create_date + timedelta(hours=5)
        self.assertIn(
            local.strftime("%Y-%m-%d %H:%M:%S"), [r["create_date_time"] for r in second_rows]
        )
        self.assertEqual(second.metrika_counter_time_zone, "Asia/Yekaterinburg")
        uploads = self.uploads()
        self.assertEqual(len(uploads), 3, "one request per company and transport")
        self.assertEqual(uploads.company_id, self.company | second)
        self.assertEqual(
            set(uploads.mapped("transport")),
            {const.TRANSPORT_SIMPLE_ORDERS, const.TRANSPORT_OFFLINE},
        )
        self.assertEqual(
            set(self.conversions(first_orders | second_orders | goal_order).mapped("state")),
            {"sent"},
        )

    def test_batch_query_count_does_not_grow_with_batch_size(self):
        self.set_company(metrika_batch_size=const.MAX_BATCH_SIZE)
        # Warm the caches (counter time zone, xmlids, ormcaches) with a first batch.
        self.company._metrika_counter_time_zone(self.company._metrika_client())
        counts = {}
        for size in (3, 10, 50):
            orders = self.make_orders(size)
            conversions = self.conversions(orders)
            self.env.flush_all()
            self.env.invalidate_all()
            batch = self.Conversion.sudo().browse(conversions.ids)  # as the cron takes it
            before = self.env.cr.sql_log_count
            UploadRun(self.env)._send(self.company, const.TRANSPORT_SIMPLE_ORDERS, batch)
            self.env.flush_all()
            counts[size] = self.env.cr.sql_log_count - before
            self.assertEqual(set(conversions.mapped("state")), {"sent"})
            self.assertEqual(len(csv_rows(self.posts()[-1])), size)
        _logger.info("Metrica upload batch SQL queries by batch size: %s", counts)
        self.assertEqual(counts[10], counts[50], f"queries per batch grow with its size: {counts}")

    # ------------------------------------------------------------------ failures

    def _retry_then_succeed(self, fail, reason, status, words, **kw):
        order = self.make_order()
        conversion = self.conversions(order)
        self.api.fail_next(fail, path="simple_orders", **kw)
        self.run_cron()
        self.assertEqual(len(self.posts()), 1)
        upload = self.assert_retryable(conversion, reason, status, words)

        self.run_cron()
        self.assertEqual(len(self.posts()), 1, "not due yet: nothing is sent")

        self.make_due(conversion)
        self.run_cron()
        self.assertEqual(len(self.posts()), 2)
        self.assertRecordValues(
            conversion,
            [
                {
                    "state": "sent",
                    "attempt_count": 2,
                    "failure_reason": False,
                    "last_error": False,
                }
            ],
        )
        self.assertEqual(conversion.upload_ids.sorted("id").mapped("state"), ["failed", "accepted"])
        return upload, conversion

    def test_server_errors_are_retried_later(self):
        for status in (500, 502, 503, 504):
            with self.subTest(status=status):
                self.api.reset()
                self._retry_then_succeed(status, "server", status, "not available")

    def test_quota_errors_wait_as_long_as_metrica_says(self):
        for status in (429, 420):
            with self.subTest(status=status):
                self.api.reset()
                order = self.make_order()
                conversion = self.conversions(order)
                self.api.fail_next(status, path="simple_orders", retry_after=600)
                self.run_cron()
                self.assert_retryable(conversion, "quota", status, "quota")
                wait = (conversion.next_attempt_at - fields.Datetime.now()).total_seconds()
                self.assertTrue(590 <= wait <= 610, wait)
                self.run_cron()
                self.assertEqual(len(self.posts()), 1)
                self.make_due(conversion)
                self.run_cron()
                self.assertEqual(conversion.state, "sent")

    def test_daily_quota_waits_until_midnight_utc(self):
        order = self.make_order()
        conversion = self.conversions(order)
        self.api.fail_next(429, path="simple_orders", error_type="quota_requests_by_uid")
        self.run_cron()
        self.assert_retryable(conversion, "quota", 429, "quota")
        today = datetime.now(timezone.utc).date()
        midnight = datetime.combine(today + timedelta(days=1), dt_time(0))
        self.assertLessEqual(abs((conversion.next_attempt_at - midnight).total_seconds()), 5)

    def test_quota_stops_the_run_and_postpones_the_queue(self):
        self.set_company(metrika_batch_size=1)
        orders = self.make_orders(3)
        conversions = self.conversions(orders)
        self.api.fail_next(429, path="simple_orders", retry_after=600)
        self.run_cron()
        self.assertEqual(len(self.posts()), 1, "no more requests once the quota is used up")
        now = fields.Datetime.now()
        self.assertEqual(set(conversions.mapped("state")), {"pending"})
        self.assertEqual(set(conversions.mapped("failure_reason")), {"quota"})
        self.assertEqual(sorted(conversions.mapped("attempt_count")), [0, 0, 1])
        self.assertTrue(all(c.next_attempt_at > now + timedelta(seconds=500) for c in conversions))
        self.assertEqual(self.Conversion._metrika_due_count(), 0)

    def test_dropped_connection_is_retried_later(self):
        upload, _conversion = self._retry_then_succeed("drop", "network", 0, "could not be reached")
        self.assertRegex(upload.error_message, "Connection")

    def test_timeout_is_retried_later(self):
        # The stand-in answers after 1 s; the client gives up after 0.3 s.
        with patch.object(const, "HTTP_TIMEOUT", (1.0, 0.3)):
            upload, _conversion = self._retry_then_succeed(
                "slow",
                "network",
                0,
                "did not answer in time",
                delay=1.0,
            )
        self.assertRegex(upload.error_message, "in time")
        self.assertLess(upload.duration, 1.0)

    def test_garbage_answer_is_an_error(self):
        order = self.make_order()
        self.api.fail_next("garbage", path="simple_orders")
        self.run_cron()
        self.assertRecordValues(
            self.conversions(order),
            [
                {
                    "state": "error",
                    "failure_reason": "unexpected",
                }
            ],
        )
        self.assertEqual(self.uploads().state, "failed")

    def _assert_paused_with_alert(self, conversions, upload):
        self.assertTrue(self.company.metrika_paused)
        self.assertRegex(self.company.metrika_pause_reason, "OAuth token")
        for conversion in conversions:
            self.assertRecordValues(
                conversion,
                [
                    {
                        "state": "pending",
                        "failure_reason": "auth",
                        "attempt_count": 0,
                    }
                ],
            )
            self.assertRegex(conversion.last_error, "refused the access")
        activities = self.admin_activities(upload)
        self.assertIn(self.admin, activities.user_id)
        self.assertEqual(len(activities), len(activities.user_id), "one alert per administrator")
        for activity in activities:
            self.assertIn("OAuth token", activity.note)
            self.assertIn("Metrica", activity.summary)

    def test_auth_errors_pause_the_company(self):
        for status in (401, 403):
            with self.subTest(status=status):
                self.api.reset()
                self.set_company(metrika_batch_size=1)
                orders = self.make_orders(3)
                conversions = self.conversions(orders)
                uploads_before = self.uploads()
                self.api.fail_next(status, path="simple_orders")

                self.run_cron()

                self.assertEqual(len(self.posts()), 1, "sending stops at the first refusal")
                upload = self.uploads() - uploads_before
                self.assertEqual(len(upload), 1, "one failed upload, one alert per administrator")
                self.assertRecordValues(upload, [{"state": "failed", "http_status": status}])
                self._assert_paused_with_alert(upload.conversion_ids, upload)
                self.assertEqual(set(conversions.mapped("state")), {"pending"})

                # The cron skips the paused company altogether.
                self.api.reset()
                self.run_cron()
                self.assertFalse(self.api.requests)
                self.assertEqual(self.Conversion._metrika_due_count(), 0)

                # A new token unpauses; the rows go out with it.
                new_token = f"{TOKEN}-renewed-{status}"
                self.api.token = new_token
                self.addCleanup(setattr, self.api, "token", TOKEN)
                self.set_company(metrika_token=new_token)
                self.assertFalse(self.company.metrika_paused)
                self.assertFalse(self.company.metrika_pause_reason)
                self.run_cron()
                self.assertEqual(set(conversions.mapped("state")), {"sent"})
                self.assertEqual(self.posts()[-1].header("Authorization"), f"OAuth {new_token}")
                self.api.token = TOKEN
                self.set_company(metrika_token=TOKEN)

    def test_auth_error_reading_the_counter_alerts_too(self):
        order = self.make_order()
        conversion = self.conversions(order)
        self.api.fail_next(401, path=COUNTER_PATH, method="GET")
        self.run_cron()
        self.assertFalse(self.posts())
        upload = self.uploads()
        self.assertRecordValues(upload, [{"state": "failed", "http_status": 401, "row_count": 0}])
        self.assertEqual(upload.conversion_ids, conversion)
        self._assert_paused_with_alert(conversion, upload)

    def test_bad_request_marks_rows_error(self):
        orders = self.make_orders(2)
        conversions = self.conversions(orders)
        self.api.fail_next(
            400,
            path="simple_orders",
            error_type="invalid_uploading",
            message="Column phones has an invalid value",
        )
        self.run_cron()
        for conversion in conversions:
            self.assertRecordValues(
                conversion,
                [
                    {
                        "state": "error",
                        "failure_reason": "bad_request",
                        "attempt_count": 1,
                    }
                ],
            )
            self.assertIn("Column phones has an invalid value", conversion.last_error)
        upload = self.uploads()
        self.assertRecordValues(upload, [{"state": "failed", "http_status": 400}])
        self.assertIn("Column phones has an invalid value", upload.validation_errors)
        self.api.reset()
        self.run_cron()
        self.assertFalse(self.api.requests, "rows in error are not retried by themselves")

    def test_failed_validation_answer(self):
        order = self.make_order()
        body = {
            "uploading": {
                "uploading_id": "f00d",
                "datetime": "2025-01-01T00:00:00Z",
                "api_validation_status": "FAILED",
                "elements_count": 0,
                "entity_type": "SYSTEM",
                "uploading_format": "CSV",
                "uploading_source": "API",
                "api_validation_errors": ["line 2: order_status is not a known status"],
            }
        }
        self.api.fail_next(200, path="simple_orders", body=body)
        self.run_cron()
        conversion = self.conversions(order)
        self.assertEqual(conversion.state, "error")
        self.assertIn("order_status is not a known status", conversion.last_error)
        self.assertRecordValues(
            self.uploads(),
            [
                {
                    "state": "failed",
                    "validation_status": "FAILED",
                    "uploading_id": "f00d",
                    "validation_errors": "line 2: order_status is not a known status",
                }
            ],
        )

    def test_missing_settings_postpone_without_exception(self):
        for values in (
            {"metrika_token": False},
            {"metrika_counter_id": False},
            {"metrika_token": "pasted with a space"},
        ):
            with self.subTest(values=values):
                self.api.reset()
                order = self.make_order()
                conversion = self.conversions(order)
                self.set_company(**values)
                self.run_cron()
                self.assertFalse(self.api.requests)
                self.assertRecordValues(
                    conversion,
                    [
                        {
                            "state": "pending",
                            "failure_reason": "settings",
                            "attempt_count": 0,
                        }
                    ],
                )
                self.assertIn("Settings", conversion.last_error)
                self.assertGreater(conversion.next_attempt_at, fields.Datetime.now())
                self.set_company(metrika_token=TOKEN, metrika_counter_id=str(COUNTER_ID))
                # What res.company.write should call when the connection settings change.
                self.Conversion._metrika_wake_companies(self.company)
                self.assertLessEqual(conversion.next_attempt_at, fields.Datetime.now())
                self.run_cron()
                self.assertEqual(conversion.state, "sent")

    # ------------------------------------------------------------------ goal-based transport

    def test_offline_conversions_transport(self):
        self.set_company(
            metrika_transport=const.TRANSPORT_OFFLINE,
            metrika_goal_in_progress="crm_qualified_lead",
            metrika_goal_paid="crm_deal_won",
            metrika_goal_cancelled=False,
        )
        with_client_id = self.make_order(metrika_client_id=CLIENT_ID)
        self.Conversion._metrika_enqueue(with_client_id, const.EVENT_PAID)
        with_yclid = self.make_order(metrika_yclid=YCLID)
        without_click = self.make_order()
        lost_click = self.make_order(metrika_client_id="1628529640459314055")
        lost_click.metrika_client_id = False  # gone before the upload
        cancelled = self.make_order(metrika_client_id="1628529640459314056")
        cancelled._action_cancel()
        self.assertRecordValues(
            self.conversions(without_click),
            [
                {
                    "state": "skipped",
                    "failure_reason": "no_identifier",
                }
            ],
        )
        # Well in the past, so that Metrica's "not in the future" cap never applies.
        self.Conversion.search([]).sudo().write(
            {"event_date": fields.Datetime.now() - timedelta(hours=1)}
        )

        self.run_cron()

        requests = self.posts(OFFLINE_PATH)
        self.assertEqual(len(requests), 2, "one file per identifier type")
        self.assertFalse(self.gets(), "goal-based uploads need no counter time zone")
        by_header = {csv_header(r): r for r in requests}
        self.assertEqual(
            set(by_header),
            {"ClientId,Target,DateTime,Price,Currency", "Yclid,Target,DateTime,Price,Currency"},
        )
        client_request = by_header["ClientId,Target,DateTime,Price,Currency"]
        self.assertEqual(client_request.header("Authorization"), f"OAuth {TOKEN}")
        rows = {(row["ClientId"], row["Target"]): row for row in csv_rows(client_request)}
        self.assertEqual(
            set(rows),
            {
                (CLIENT_ID, "crm_qualified_lead"),
                (CLIENT_ID, "crm_deal_won"),
                ("1628529640459314056", "crm_qualified_lead"),
            },
        )
        created_conversion, paid_conversion = self.conversions(with_client_id)
        for conversion, target in (
            (created_conversion, "crm_qualified_lead"),
            (paid_conversion, "crm_deal_won"),
        ):
            stamp = int(conversion.event_date.replace(tzinfo=timezone.utc).timestamp())
            self.assertEqual(int(rows[CLIENT_ID, target]["DateTime"]), stamp, "UTC unix seconds")
        paid_row = rows[CLIENT_ID, "crm_deal_won"]
        self.assertEqual(Decimal(paid_row["Price"]), Decimal(str(with_client_id.amount_total)))
        self.assertEqual(paid_row["Currency"], with_client_id.currency_id.name)
        self.assertEqual(rows[CLIENT_ID, "crm_qualified_lead"]["Price"], "")
        [yclid_row] = csv_rows(by_header["Yclid,Target,DateTime,Price,Currency"])
        self.assertEqual((yclid_row["Yclid"], yclid_row["Target"]), (YCLID, "crm_qualified_lead"))

        self.assertEqual(
            set(self.conversions(with_client_id | with_yclid).mapped("state")), {"sent"}
        )
        self.assertRecordValues(
            self.conversions(lost_click),
            [
                {
                    "state": "skipped",
                    "failure_reason": "no_identifier",
                }
            ],
        )
        cancel_created, cancel_event = self.conversions(cancelled)
        self.assertEqual(cancel_created.state, "sent")
        self.assertRecordValues(cancel_event, [{"state": "skipped", "failure_reason": "no_goal"}])
        uploads = self.uploads()
        self.assertEqual(uploads.mapped("transport"), ["offline_conversions"] * 2)
        self.assertEqual(set(uploads.mapped("metrika_status")), {"UPLOADED"})
        self.assertEqual(sorted(uploads.mapped("row_count")), [1, 3])

    def test_offline_transport_stops_at_an_account_error(self):
        self.set_company(
            metrika_transport=const.TRANSPORT_OFFLINE, metrika_goal_in_progress="crm_qualified_lead"
        )
        for status, reason in ((429, "quota"), (401, "auth")):
            with self.subTest(status=status):
                self.api.reset()
                orders = self.make_order(metrika_client_id=CLIENT_ID) | self.make_order(
                    metrika_yclid=YCLID
                )
                conversions = self.conversions(orders)
                self.api.fail_next(status, path="offline_conversions", retry_after=600)
                self.run_cron()
                self.assertEqual(len(self.posts(OFFLINE_PATH)), 1, "the second file is not tried")
                self.assertEqual(set(conversions.mapped("state")), {"pending"})
                self.assertEqual(set(conversions.mapped("failure_reason")), {reason})
                self.assertEqual(
                    sorted(conversions.mapped("attempt_count")),
                    [0, 1] if reason == "quota" else [0, 0],
                )
                self.assertEqual(self.Conversion._metrika_due_count(), 0)
                self.assertEqual(len(self.uploads().filtered(lambda u: u.state == "failed")), 1)
                self.uploads().unlink()

    def test_an_unexpected_failure_in_one_batch_does_not_stop_the_queue(self):
        self.set_company(metrika_batch_size=1)
        broken, fine = self.make_order(metrika_client_id=CLIENT_ID), self.make_order()
        original = SimpleOrdersSender._simple_order

        def simple_order(sender, conversion, identifiers):
            if conversion.sale_order_id == broken:
                raise KeyError("boom")
            return original(sender, conversion, identifiers)

        with (
            patch.object(SimpleOrdersSender, "_simple_order", simple_order),
            self.assertLogs(ADDON_LOGGER, level="ERROR"),
        ):
            self.run_cron()
        self.assertRecordValues(
            self.conversions(broken),
            [
                {
                    "state": "error",
                    "failure_reason": "unexpected",
                }
            ],
        )
        self.assertIn("KeyError", self.conversions(broken).last_error)
        self.assertRecordValues(self.conversions(fine), [{"state": "sent"}])

    def test_fixing_the_settings_wakes_the_waiting_rows(self):
        self.set_company(metrika_token=False)
        conversion = self.conversions(self.make_order())
        self.run_cron()
        self.assertRecordValues(conversion, [{"state": "pending", "failure_reason": "settings"}])
        self.assertGreater(conversion.next_attempt_at, fields.Datetime.now())
        self.set_company(metrika_token=TOKEN)
        self.assertLessEqual(conversion.next_attempt_at, fields.Datetime.now())
        self.run_cron()
        self.assertRecordValues(conversion, [{"state": "sent"}])

    def test_uploaded_files_are_removed_after_the_retention_period(self):
        self.set_company(metrika_upload_retention_days=10)
        self.make_orders(2)
        self.run_cron()
        old, recent = self.uploads(), None
        self.make_orders(1)
        self.run_cron()
        recent = self.uploads() - old
        self.env.cr.execute(
            "UPDATE metrika_upload SET create_date = %s WHERE id = %s",
            (fields.Datetime.now() - timedelta(days=11), old.id),
        )
        old.invalidate_recordset()
        old_file = old.attachment_id
        self.assertTrue(old_file and recent.attachment_id)
        self.Upload._gc_uploaded_files()
        self.assertFalse(old.attachment_id)
        self.assertFalse(old_file.exists())
        self.assertTrue(recent.attachment_id.exists())
        self.assertRecordValues(old, [{"state": "accepted", "row_count": 2}])

    # ------------------------------------------------------------------ rows that cannot go

    def conversions_of_a_deleted_order(self, **values):
        """The two conversions (created, cancelled) of an order deleted before they went."""
        order = self.make_order(**values)
        order._action_cancel()
        conversions = self.conversions(order)
        self.assertEqual(len(conversions), 2)
        order.unlink()
        return conversions

    def assert_skipped_as_deleted(self, conversions):
        """Conversions of a deleted lead or order: nothing to fix, so skipped, not a red error
        row, and never at risk; nothing was uploaded."""
        self.assertFalse(self.api.requests)
        self.assertRecordValues(
            conversions,
            [
                {
                    "state": "skipped",
                    "failure_reason": const.REASON_RECORD_DELETED,
                    "at_risk": False,
                }
            ]
            * len(conversions),
        )
        for conversion in conversions:
            self.assertIn("deleted", conversion.last_error)
        self.assertFalse(self.uploads())

    def test_too_old_and_deleted_records(self):
        old = self.make_order()
        old_conversion = self.conversions(old)
        old_conversion.sudo().write(
            {"order_create_date": fields.Datetime.now() - timedelta(days=22)}
        )
        deleted_conversions = self.conversions_of_a_deleted_order()

        self.run_cron()

        self.assertRecordValues(
            old_conversion, [{"state": "skipped", "failure_reason": const.REASON_LINK_WINDOW}]
        )
        self.assertIn("21", old_conversion.last_error)
        self.assert_skipped_as_deleted(deleted_conversions)

    def test_goal_based_conversions_of_a_deleted_record_are_skipped(self):
        self.set_company(
            metrika_transport=const.TRANSPORT_OFFLINE,
            metrika_goal_in_progress="crm_qualified_lead",
            metrika_goal_cancelled="crm_deal_lost",
        )
        deleted_conversions = self.conversions_of_a_deleted_order(metrika_client_id=CLIENT_ID)
        self.run_cron()
        self.assert_skipped_as_deleted(deleted_conversions)

    # ------------------------------------------------------------------ resend

    def test_resend(self):
        orders = self.make_orders(3)
        conversions = self.conversions(orders)
        self.api.fail_next(400, path="simple_orders", error_type="invalid_uploading")
        self.run_cron()
        self.assertEqual(set(conversions.mapped("state")), {"error"})

        with self.assertRaises(AccessError):
            conversions[0].with_user(self.salesman).action_resend()
        self.assertEqual(conversions[0].state, "error")

        conversions[0].with_user(self.manager).action_resend()
        self.assertRecordValues(
            conversions[0],
            [
                {
                    "state": "pending",
                    "failure_reason": False,
                    "last_error": False,
                    "attempt_count": 0,
                }
            ],
        )
        self.assertLessEqual(conversions[0].next_attempt_at, fields.Datetime.now())
        self.api.reset()
        self.run_cron()
        [request] = self.posts()
        self.assertEqual([row["id"] for row in csv_rows(request)], [f"so-{orders[0].id}"])
        self.assertEqual(conversions[0].state, "sent")

        # A selection of several rows.
        (conversions[1] | conversions[2]).with_user(self.manager).action_resend()
        self.assertEqual(set(conversions.mapped("state")), {"sent", "pending"})
        self.api.reset()
        self.run_cron()
        [request] = self.posts()
        self.assertCountEqual(
            [row["id"] for row in csv_rows(request)], [f"so-{orders[1].id}", f"so-{orders[2].id}"]
        )
        self.assertEqual(set(conversions.mapped("state")), {"sent"})

    def test_resend_respects_companies(self):
        order = self.make_order()
        conversion = self.conversions(order)
        other = self.env["res.company"].create({"name": "Metrica other company"})
        self.env.cr.execute(
            "UPDATE metrika_conversion SET company_id = %s, state = 'error' WHERE id = %s",
            (other.id, conversion.id),
        )
        conversion.invalidate_recordset()
        with self.assertRaises(AccessError):
            conversion.with_user(self.manager).action_resend()
        with self.assertRaises(AccessError):
            conversion.with_user(self.manager).action_cancel()
        self.assertEqual(conversion.state, "error")

    # ------------------------------------------------------------------ progress

    def test_progress_is_notified(self):
        """One batch per call; Odoo's scheduler calls again while work is left."""
        cron = self.env.ref(const.CRON_XMLID)
        self.set_company(metrika_batch_size=2)
        self.make_orders(3)
        later = self.make_order()
        self.conversions(later).sudo().write(
            {"next_attempt_at": fields.Datetime.now() + timedelta(hours=1)}
        )
        for done, remaining in ((2, 1), (1, 0), (0, 0)):
            progress = self.env["ir.cron.progress"].create(
                {"cron_id": cron.id, "done": 0, "remaining": 0}
            )
            self.Conversion.with_context(
                ir_cron_progress_id=progress.id, cron_id=cron.id
            )._cron_upload()
            self.assertRecordValues(progress, [{"done": done, "remaining": remaining}])
        self.assertEqual(len(self.posts()), 2)

        calls = []
        original = odoo_compat.report_cron_progress

        def record(env, done, remaining):
            calls.append({"done": done, "remaining": remaining})
            return original(env, done, remaining)

        self.make_orders(2)
        with patch.object(odoo_compat, "report_cron_progress", record):
            self.run_cron()
        self.assertEqual(calls, [{"done": 2, "remaining": 0}])

    # ------------------------------------------------------------------ the token stays secret

    def test_token_never_in_logs_or_records(self):
        scenarios = (
            ("happy path", None, {}),
            ("server error", 503, {}),
            ("html 500", 500, {}),
            ("quota", 429, {"retry_after": 1}),
            ("dropped connection", "drop", {}),
            ("timeout", "slow", {"delay": 1.0}),
            ("bad request echoing the token", 400, {"message": f"Token {TOKEN} is not allowed"}),
            (
                "failed validation echoing the token",
                200,
                {
                    "body": {
                        "uploading": {
                            "uploading_id": "t0ken",
                            "api_validation_status": "FAILED",
                            "api_validation_errors": [f"OAuth {TOKEN}: bad row"],
                        }
                    }
                },
            ),
            ("unauthorized", 401, {"message": f"Token {TOKEN} revoked"}),
        )
        records = []
        with (
            self.assertLogs(ADDON_LOGGER, level="DEBUG") as addon_logs,
            self.assertLogs("urllib3", level="DEBUG") as http_logs,
            self.assertLogs("requests", level="DEBUG") as requests_logs,
            patch.object(const, "HTTP_TIMEOUT", (1.0, 0.3)),
        ):
            logging.getLogger("requests").debug("capture started")  # assertLogs needs one line
            for name, fail, kw in scenarios:
                self.api.reset()
                self.make_order(metrika_client_id=CLIENT_ID)
                if fail is not None:
                    self.api.fail_next(fail, path="simple_orders", **kw)
                self.run_cron()
                self.assertEqual(len(self.posts()), 1, name)
                self.assertEqual(self.posts()[0].header("Authorization"), f"OAuth {TOKEN}")
                if self.company.metrika_paused:
                    self.company.sudo().write(
                        {"metrika_paused": False, "metrika_pause_reason": False}
                    )
            records = addon_logs.records + http_logs.records + requests_logs.records
        self.assertTrue(
            any("HTTP 200" in r.getMessage() for r in addon_logs.records),
            "the client's DEBUG lines were captured",
        )
        self.assertTrue(any(r.name.startswith("urllib3") for r in http_logs.records))
        for record in records:
            text = " ".join(
                str(part) for part in (record.getMessage(), record.args, record.exc_text)
            )
            self.assertNotIn(TOKEN, text, record.name)

        uploads = self.uploads()
        self.assertEqual(len(uploads), len(scenarios))
        for upload in uploads:
            for name in (
                "response",
                "error_message",
                "validation_errors",
                "uploading_id",
                "validation_status",
            ):
                self.assertNotIn(TOKEN, upload[name] or "", name)
            self.assertNotIn(TOKEN.encode(), upload.attachment_id.raw or b"")
            for message in upload.message_ids:
                self.assertNotIn(TOKEN, message.body or "")
        self.assertIn("***", " ".join(uploads.mapped(lambda u: u.validation_errors or "")))
        conversions = self.Conversion.search([])
        self.assertTrue(any(c.last_error for c in conversions))
        for conversion in conversions:
            self.assertNotIn(TOKEN, conversion.last_error or "")
        activities = self.env["mail.activity"].search([("res_model", "=", "metrika.upload")])
        self.assertTrue(activities)
        for activity in activities:
            self.assertNotIn(TOKEN, activity.note or "")
            self.assertNotIn(TOKEN, activity.summary or "")
        self.assertNotIn(TOKEN, self.company.metrika_pause_reason or "")
