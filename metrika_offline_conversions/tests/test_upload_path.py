"""Issue 8's upload path against the Metrica stand-in: lost answers, what Metrica did with each
file, Metrica's windows at their edges, errors in their right class and the retry schedule."""

from datetime import datetime, timedelta, timezone

from odoo import fields
from odoo.tests import tagged

from odoo.addons.metrika_offline_conversions import const
from odoo.addons.metrika_offline_conversions.metrika_core.client import MetrikaClient
from odoo.addons.metrika_offline_conversions.tools.upload_run import retry_delay

from .common import CLIENT_ID, COUNTER_ID, TOKEN, MetrikaCase

OFFLINE_PATH = f"/management/v1/counter/{COUNTER_ID}/offline_conversions/upload"
LIST_PATH = f"/management/v1/counter/{COUNTER_ID}/offline_conversions/uploadings"
SIMPLE_ORDERS_PATH = f"/cdp/api/v1/counter/{COUNTER_ID}/data/simple_orders"
GOAL_CREATED = "crm_qualified_lead"
GOAL_PAID = "crm_deal_won"
MINUTE = timedelta(minutes=1)


@tagged("post_install", "-at_install")
class TestUploadPath(MetrikaCase):
    def setUp(self):
        super().setUp()
        self.cron = self.env.ref(const.CRON_XMLID)
        # reset() keeps the stand-in's settings and visitors: put back the defaults.
        self.api.max_page_size = 10000
        self.api.strict_goals = False
        self.api.visitors.clear()

    # ------------------------------------------------------------------ helpers

    def use_goals(self, **values):
        self.company.sudo().write(
            {
                "metrika_transport": const.TRANSPORT_OFFLINE,
                "metrika_goal_in_progress": GOAL_CREATED,
                "metrika_goal_paid": GOAL_PAID,
                **values,
            }
        )

    def goal_order(self, client_id=CLIENT_ID):
        order = self.make_order(metrika_client_id=client_id)
        # Well in the past, so that Metrica's "not in the future" cap never applies.
        self.conversions(order).sudo().event_date = fields.Datetime.now() - timedelta(hours=1)
        return order

    def posts(self, path):
        return [r for r in self.api.requests if r.method == "POST" and r.path == path]

    def uploads(self):
        return self.env["metrika.upload"].search([], order="id")

    def overdue(self, uploads):
        uploads.sudo().write({"settle_after": fields.Datetime.now() - timedelta(seconds=1)})

    def poll_due(self, uploads):
        uploads.sudo().write({"next_poll_at": fields.Datetime.now() - timedelta(seconds=1)})

    def triggers_at(self, when):
        return self.env["ir.cron.trigger"].search(
            [("cron_id", "=", self.cron.id), ("call_at", "=", when)]
        )

    def lost_goal_upload(self, stored):
        """A goal-based upload whose answer was lost (Metrica ``stored`` it, or not), now due
        to be settled; returns its conversion and the upload."""
        self.use_goals()
        conversion = self.conversions(self.goal_order())
        self.api.fail_next("drop", path="offline_conversions/upload", accept=stored)
        self.run_cron()
        [upload] = self.uploads()
        self.overdue(upload)
        return conversion, upload

    def failing_status_check(self, status):
        """An accepted goal-based upload, due for a status check Metrica answers with HTTP
        ``status``; returns its conversion and the upload."""
        self.use_goals()
        conversion = self.conversions(self.goal_order())
        self.run_cron()
        upload = conversion.upload_id
        self.api.fail_next(status, path="offline_conversions/uploading/", method="GET")
        self.poll_due(upload)
        return conversion, upload

    def fill_uploadings(self, count):
        """Other uploads of the counter, before ours (another shop, earlier months)."""
        client = MetrikaClient(TOKEN, COUNTER_ID, base_url=self.api.url, timeout=(5, 10))
        with client:
            for index in range(count):
                data = (
                    f"ClientId,Target,DateTime\n{CLIENT_ID},{GOAL_CREATED},{1700000000 + index}\n"
                )
                client.upload_offline_conversions(data.encode(), comment=f"Other{index}")

    # ------------------------------------------------------------------ lost answers

    def test_lost_answer_found_on_the_second_page_of_uploadings(self):
        self.use_goals()
        self.fill_uploadings(3)
        self.api.max_page_size = 2
        conversion = self.conversions(self.goal_order())
        self.api.fail_next("drop", path="offline_conversions/upload", accept=True)
        self.run_cron()
        [upload] = self.uploads()
        self.assertRecordValues(upload, [{"state": const.UPLOAD_UNCONFIRMED}])
        self.assertRecordValues(
            conversion, [{"state": const.STATE_SENDING, "upload_id": upload.id}]
        )
        self.assertRegex(upload.comment, r"^[0-9A-Za-z]+$", "Latin letters and digits only")
        self.assertEqual(self.posts(OFFLINE_PATH)[-1].query["comment"], upload.comment)

        self.run_cron()
        self.assertEqual(conversion.state, const.STATE_SENDING, "not before its check is due")
        self.overdue(upload)
        self.run_cron()

        lookups = [r for r in self.api.requests if r.path == LIST_PATH]
        self.assertGreaterEqual(len(lookups), 2, "our upload is past the first page")
        self.assertEqual(len(self.posts(OFFLINE_PATH)), 4, "3 others and ours, never re-posted")
        self.assertRecordValues(
            conversion,
            [{"state": const.STATE_SENT, "metrika_result": const.RESULT_PROCESSING}],
        )
        self.assertRecordValues(upload, [{"state": const.UPLOAD_ACCEPTED}])
        self.assertTrue(upload.uploading_id)

    def test_lost_answer_of_an_unstored_goal_file_sends_it_again(self):
        conversion, lost = self.lost_goal_upload(stored=False)
        self.run_cron()
        self.assertRecordValues(lost, [{"state": const.UPLOAD_LOST}])
        self.assertEqual(len(self.posts(OFFLINE_PATH)), 2)
        self.assertEqual(sum(self.api.stored_offline_rows.values()), 1)
        self.assertRecordValues(conversion, [{"state": const.STATE_SENT}])

    def test_a_lost_answer_metrica_cannot_look_up_now_is_looked_up_later(self):
        conversion, upload = self.lost_goal_upload(stored=True)
        self.api.fail_next(503, path="offline_conversions/uploadings", method="GET")
        before = fields.Datetime.now()
        self.run_cron()
        self.assertFalse(self.company.metrika_paused, "an outage pauses nothing")
        self.assertRecordValues(upload, [{"state": const.UPLOAD_UNCONFIRMED}])
        self.assertRecordValues(conversion, [{"state": const.STATE_SENDING}])
        self.assertGreaterEqual(upload.settle_after, before + MINUTE)
        self.assertLessEqual(upload.settle_after, fields.Datetime.now() + MINUTE)
        # The trigger of the failed upload, a second or so earlier, wakes it when the two fall
        # within the half minute _metrika_trigger_at folds into one.
        self.assertTrue(
            self.env["ir.cron.trigger"].search(
                [
                    ("cron_id", "=", self.cron.id),
                    ("call_at", "<=", upload.settle_after),
                    ("call_at", ">", upload.settle_after - timedelta(seconds=30)),
                ]
            ),
            "the cron is woken for it",
        )
        self.assertEqual(len(self.posts(OFFLINE_PATH)), 1, "never sent again unchecked")

        self.overdue(upload)
        self.run_cron()
        self.assertRecordValues(upload, [{"state": const.UPLOAD_ACCEPTED}])
        self.assertRecordValues(conversion, [{"state": const.STATE_SENT}])
        self.assertEqual(len(self.posts(OFFLINE_PATH)), 1)

    def test_crm_orders_whose_answer_was_lost_are_sent_again(self):
        conversion = self.conversions(self.make_order(metrika_client_id=CLIENT_ID))
        self.api.fail_next(504, path="simple_orders", accept=True)
        self.run_cron()
        # SAVE replaces the order: a retry is harmless, so it is an ordinary retry.
        self.assertRecordValues(
            conversion,
            [{"state": const.STATE_PENDING, "failure_reason": const.REASON_SERVER}],
        )
        conversion.sudo().next_attempt_at = fields.Datetime.now()
        self.run_cron()
        self.assertRecordValues(conversion, [{"state": const.STATE_SENT}])
        self.assertEqual(self.api.stored_order_ids[conversion.metrika_order_id], 2)

    # ------------------------------------------------------------------ what Metrica did

    def test_processed_upload_records_the_linked_counts(self):
        self.use_goals()
        self.api.add_visitor(CLIENT_ID)
        known = self.conversions(self.goal_order())
        unknown = self.conversions(self.goal_order(client_id="1628529640459314999"))
        self.run_cron()
        [upload] = self.uploads()
        self.assertRecordValues(
            upload,
            [
                {
                    "state": const.UPLOAD_ACCEPTED,
                    "source_quantity": 2,
                    "line_quantity": 2,
                    "refused_quantity": 0,
                }
            ],
        )
        self.assertEqual(set((known | unknown).mapped("metrika_result")), {"processing"})
        self.assertGreater(upload.next_poll_at, fields.Datetime.now())
        self.assertTrue(self.triggers_at(upload.next_poll_at), "the cron is woken for the check")

        self.api.set_offline_status(int(upload.uploading_id), "PROCESSED")
        self.poll_due(upload)
        self.run_cron()
        self.assertRecordValues(
            upload,
            [
                {
                    "state": const.UPLOAD_PROCESSED,
                    "metrika_status": "PROCESSED",
                    "linked_quantity": 1,
                    "user_not_found_quantity": 1,
                    "next_poll_at": False,
                }
            ],
        )
        self.assertIn("1 of 2", upload.result_summary)
        self.assertEqual(set((known | unknown).mapped("metrika_result")), {"partly_linked"})
        self.assertEqual(set((known | unknown).mapped("state")), {const.STATE_SENT})

    def test_linkage_failure_is_shown_on_the_conversions(self):
        self.use_goals()
        self.api.add_visitor("1")  # a known visitor, not ours
        conversion = self.conversions(self.goal_order())
        self.run_cron()
        upload = conversion.upload_id
        self.api.set_offline_status(int(upload.uploading_id), "LINKAGE_FAILURE")
        self.poll_due(upload)
        self.run_cron()
        self.assertRecordValues(upload, [{"state": const.UPLOAD_NOT_LINKED}])
        self.assertRecordValues(
            conversion,
            [{"state": const.STATE_SENT, "metrika_result": const.RESULT_NOT_LINKED}],
        )
        self.assertIn("unknown to Metrica", conversion.metrika_result_detail)

    def test_still_processing_after_the_deadline(self):
        self.use_goals()
        self.api.hold_next_offline()
        conversion = self.conversions(self.goal_order())
        self.run_cron()
        upload = conversion.upload_id
        self.poll_due(upload)
        self.run_cron()
        self.assertRecordValues(upload, [{"state": const.UPLOAD_ACCEPTED}])
        self.assertGreater(upload.next_poll_at, fields.Datetime.now(), "polled again later")
        upload.sudo().poll_deadline = fields.Datetime.now() - timedelta(seconds=1)
        self.poll_due(upload)
        self.run_cron()
        self.assertRecordValues(
            upload, [{"state": const.UPLOAD_PROCESSING_TIMEOUT, "next_poll_at": False}]
        )
        self.assertRecordValues(conversion, [{"metrika_result": const.RESULT_UNCONFIRMED}])

    def test_an_upload_metrica_no_longer_knows_stops_being_polled(self):
        conversion, upload = self.failing_status_check(404)
        self.run_cron()
        self.assertFalse(self.company.metrika_paused, "the counter is fine: nothing to pause")
        self.assertRecordValues(
            upload, [{"state": const.UPLOAD_PROCESSING_TIMEOUT, "next_poll_at": False}]
        )
        self.assertRecordValues(conversion, [{"metrika_result": const.RESULT_UNCONFIRMED}])

    def test_a_refused_status_check_pauses_the_company_until_it_is_fixed(self):
        conversion, upload = self.failing_status_check(401)
        before = fields.Datetime.now()
        self.run_cron()
        self.assertTrue(self.company.metrika_paused)
        self.assertTrue(
            self.env["mail.activity"].search(
                [("res_model", "=", "metrika.upload"), ("res_id", "=", upload.id)]
            ),
            "the administrators are told on the upload",
        )
        self.assertRecordValues(upload, [{"state": const.UPLOAD_ACCEPTED}])
        self.assertRecordValues(
            conversion,
            [{"state": const.STATE_SENT, "metrika_result": const.RESULT_PROCESSING}],
        )
        self.assertGreaterEqual(upload.next_poll_at, before + MINUTE)
        self.assertLessEqual(upload.next_poll_at, fields.Datetime.now() + MINUTE)

        def status_checks():
            return [r for r in self.api.requests if r.method == "GET" and "uploading/" in r.path]

        checks = len(status_checks())
        self.poll_due(upload)
        self.run_cron()
        self.assertEqual(len(status_checks()), checks, "no status check while paused")

        self.api.set_offline_status(int(upload.uploading_id), "PROCESSED")
        self.company.sudo().write({"metrika_paused": False, "metrika_pause_reason": False})
        self.run_cron()
        self.assertEqual(len(status_checks()), checks + 1)
        self.assertRecordValues(upload, [{"state": const.UPLOAD_PROCESSED}])
        self.assertRecordValues(conversion, [{"metrika_result": const.RESULT_LINKED}])

    def test_rows_metrica_refuses_are_flagged(self):
        self.api.strict_goals = True
        self.use_goals(metrika_goal_paid="no_such_goal")
        order = self.goal_order()
        self.Conversion._metrika_enqueue(order, const.EVENT_PAID)
        conversions = self.conversions(order)
        conversions.sudo().event_date = fields.Datetime.now() - timedelta(hours=1)
        self.run_cron()
        [upload] = self.uploads()
        self.assertRecordValues(
            upload, [{"source_quantity": 2, "line_quantity": 1, "refused_quantity": 1}]
        )
        self.assertEqual(set(conversions.mapped("metrika_result")), {"partly_refused"})
        self.assertIn("1 of the 2", conversions[0].metrika_result_detail)

    def test_a_file_metrica_refuses_whole_is_an_error(self):
        self.api.strict_goals = True
        self.use_goals(metrika_goal_in_progress="no_such_goal")
        conversion = self.conversions(self.goal_order())
        self.run_cron()
        self.assertRecordValues(
            conversion, [{"state": const.STATE_ERROR, "failure_reason": const.REASON_BAD_REQUEST}]
        )

    def test_crm_orders_answer_is_kept(self):
        conversion = self.conversions(self.make_order(metrika_client_id=CLIENT_ID))
        self.run_cron()
        upload = conversion.upload_id
        self.assertRecordValues(
            upload, [{"state": const.UPLOAD_ACCEPTED, "validation_status": "PASSED"}]
        )
        self.assertRecordValues(conversion, [{"metrika_result": const.RESULT_ACCEPTED}])
        self.assertIn("does not report which", upload.result_summary)

    # ------------------------------------------------------------------ windows

    def set_dates(self, conversion, created=None, event=None):
        values = {}
        if created is not None:
            values["order_create_date"] = created
        if event is not None:
            values["event_date"] = event
        conversion.sudo().write(values)

    def test_a_new_crm_order_is_sent_while_metrica_can_link_it(self):
        now = fields.Datetime.now()
        link = timedelta(days=const.CRM_NEW_ORDER_LINK_DAYS)
        inside = self.conversions(self.make_order(metrika_client_id=CLIENT_ID))
        outside = self.conversions(self.make_order(metrika_client_id=CLIENT_ID))
        self.set_dates(inside, created=now - link + MINUTE)
        self.set_dates(outside, created=now - link - MINUTE)
        self.run_cron()
        self.assertRecordValues(inside, [{"state": const.STATE_SENT}])
        self.assertRecordValues(
            outside,
            [{"state": const.STATE_SKIPPED, "failure_reason": const.REASON_LINK_WINDOW}],
        )
        self.assertIn("21 days", outside.last_error)

    def test_updates_of_a_sent_crm_order_go_on_for_as_long_as_metrica_takes_them(self):
        """A PAID update of an order sent 25 days ago still goes (the issue's own example)."""
        now = fields.Datetime.now()
        update = timedelta(days=const.CRM_LINKED_ORDER_UPDATE_DAYS)
        cases = {}
        for name, created in (
            ("25 days", now - timedelta(days=25)),
            ("inside", now - update + MINUTE),
            ("outside", now - update - MINUTE),
        ):
            order = self.make_order(metrika_client_id=CLIENT_ID)
            created_row = self.conversions(order)
            self.run_cron()
            self.assertEqual(created_row.state, const.STATE_SENT)
            self.Conversion._metrika_enqueue(order, const.EVENT_PAID)
            paid = self.conversions(order) - created_row
            self.set_dates(created_row | paid, created=created, event=created)
            cases[name] = paid
        self.run_cron()
        self.assertEqual(cases["25 days"].state, const.STATE_SENT)
        self.assertEqual(cases["inside"].state, const.STATE_SENT)
        self.assertRecordValues(
            cases["outside"],
            [{"state": const.STATE_SKIPPED, "failure_reason": const.REASON_UPDATE_WINDOW}],
        )

    def test_goal_hits_are_sent_while_their_visit_can_take_them(self):
        self.use_goals()
        now = fields.Datetime.now()
        window = timedelta(days=const.OFFLINE_VISIT_WINDOW_DAYS)
        inside = self.conversions(self.goal_order())
        outside = self.conversions(self.goal_order(client_id="1628529640459314057"))
        self.set_dates(inside, event=now - window + MINUTE)
        self.set_dates(outside, event=now - window - MINUTE)
        self.run_cron()
        self.assertRecordValues(inside, [{"state": const.STATE_SENT}])
        self.assertRecordValues(
            outside,
            [{"state": const.STATE_SKIPPED, "failure_reason": const.REASON_VISIT_WINDOW}],
        )

    def test_rows_waiting_close_to_their_limit_are_at_risk(self):
        now = fields.Datetime.now()
        link = timedelta(days=const.CRM_NEW_ORDER_LINK_DAYS)
        close = self.conversions(self.make_order(metrika_client_id=CLIENT_ID))
        far = self.conversions(self.make_order(metrika_client_id=CLIENT_ID))
        self.set_dates(close, created=now - link + timedelta(days=1))
        self.set_dates(far, created=now - timedelta(days=1))
        self.api.fail_next(503, times=2)
        self.run_cron()
        self.assertEqual(set((close | far).mapped("state")), {const.STATE_PENDING})
        self.assertEqual(close.window_closes_at, close.order_create_date + link)
        self.assertTrue(close.at_risk)
        self.assertFalse(far.at_risk)
        at_risk = self.Conversion.search([("at_risk", "=", True)])
        self.assertIn(close, at_risk)
        self.assertNotIn(far, at_risk)
        self.assertIn(far, self.Conversion.search([("at_risk", "=", False)]))

    def test_settings_warn_when_orders_are_confirmed_too_late_to_link(self):
        order = self.make_order(confirm=False, metrika_client_id=CLIENT_ID)
        self.env.cr.execute(
            "UPDATE sale_order SET create_date = %s WHERE id = %s",
            (fields.Datetime.now() - timedelta(days=30), order.id),
        )
        order.invalidate_recordset()
        order.action_confirm()
        self.make_order()  # confirmed the day it was created
        settings = self.env["res.config.settings"].create({})
        self.assertEqual(settings.metrika_late_order_count, 1)
        self.assertIn("1 of the", settings.metrika_late_order_message)
        settings.action_metrika_send_orders_when_created()
        self.assertEqual(self.company.metrika_order_event, const.ORDER_EVENT_CREATED)
        # Sent at confirmation, the 30-day-old quotation can no longer link: skipped, saying why.
        self.run_cron()
        self.assertRecordValues(
            self.conversions(order),
            [{"state": const.STATE_SKIPPED, "failure_reason": const.REASON_LINK_WINDOW}],
        )

    # ------------------------------------------------------------------ errors in their class

    def test_counter_not_found_pauses_the_company_with_one_activity(self):
        self.company.sudo().metrika_counter_id = "999999"
        conversion = self.conversions(self.make_order(metrika_client_id=CLIENT_ID))
        self.run_cron()
        self.assertTrue(self.company.metrika_paused)
        self.assertRecordValues(
            conversion,
            [
                {
                    "state": const.STATE_PENDING,
                    "failure_reason": const.REASON_SETTINGS,
                    "attempt_count": 0,
                }
            ],
        )
        self.assertIn("counter ID", conversion.last_error)
        activities = self.env["mail.activity"].search([("res_model", "=", "metrika.upload")])
        admins = activities.user_id
        self.assertTrue(activities)
        self.assertEqual(len(activities), len(admins), "one activity per administrator")
        # The next runs send nothing and alert nobody again.
        requests = len(self.api.requests)
        self.run_cron()
        self.company.sudo().metrika_paused = False
        self.run_cron()
        self.assertEqual(
            len(self.env["mail.activity"].search([("res_model", "=", "metrika.upload")])),
            len(activities),
        )
        self.assertGreater(len(self.api.requests), requests, "tried again once unpaused")
        # Fixing the counter closes the activities and sends the row.
        self.company.sudo().metrika_counter_id = str(COUNTER_ID)
        self.assertFalse(self.env["mail.activity"].search([("res_model", "=", "metrika.upload")]))
        self.run_cron()
        self.assertEqual(conversion.state, const.STATE_SENT)

    def test_a_request_level_400_pauses_the_company(self):
        conversion = self.conversions(self.make_order(metrika_client_id=CLIENT_ID))
        self.api.fail_next(
            400, path="simple_orders", error_type="invalid_parameter", location="merge_mode"
        )
        self.run_cron()
        self.assertTrue(self.company.metrika_paused)
        self.assertRecordValues(
            conversion,
            [{"state": const.STATE_PENDING, "failure_reason": const.REASON_SETTINGS}],
        )

    def test_the_per_counter_daily_quota_waits_until_it_resets(self):
        conversion = self.conversions(self.make_order(metrika_client_id=CLIENT_ID))
        self.api.fail_next(429, path="simple_orders", error_type="quota_requests_by_counter_id")
        before = fields.Datetime.now()
        self.run_cron()
        midnight = datetime.combine(
            before.date() + timedelta(days=1), datetime.min.time(), tzinfo=timezone.utc
        ).replace(tzinfo=None)
        self.assertRecordValues(
            conversion, [{"state": const.STATE_PENDING, "failure_reason": const.REASON_QUOTA}]
        )
        self.assertGreaterEqual(conversion.next_attempt_at, midnight)
        self.assertLess(conversion.next_attempt_at, midnight + timedelta(minutes=5))
        self.assertTrue(self.triggers_at(conversion.next_attempt_at))

    # ------------------------------------------------------------------ retry schedule

    def test_retries_follow_the_schedule_and_wake_the_cron(self):
        self.assertEqual(retry_delay(1), 60)
        self.assertEqual(retry_delay(2), 120)
        self.assertEqual(retry_delay(99), const.RETRY_DELAY_MINUTES[-1] * 60, "capped")
        conversion = self.conversions(self.make_order(metrika_client_id=CLIENT_ID))
        for attempt, minutes in ((1, 1), (2, 2), (3, 3)):
            self.api.fail_next(503, path="simple_orders")
            before = fields.Datetime.now()
            self.run_cron()
            self.assertRecordValues(
                conversion,
                [
                    {
                        "state": const.STATE_PENDING,
                        "attempt_count": attempt,
                        "failure_reason": const.REASON_SERVER,
                    }
                ],
            )
            expected = before + timedelta(minutes=minutes)
            self.assertGreaterEqual(conversion.next_attempt_at, expected)
            self.assertLessEqual(conversion.next_attempt_at, expected + timedelta(seconds=2))
            self.assertTrue(
                self.triggers_at(conversion.next_attempt_at),
                "the cron is triggered when the retry falls due",
            )
            conversion.sudo().next_attempt_at = fields.Datetime.now()
        self.run_cron()
        self.assertEqual(conversion.state, const.STATE_SENT)

    def test_an_outage_holds_the_whole_queue_for_the_same_delay(self):
        self.company.sudo().metrika_batch_size = 1
        conversions = self.conversions(self.make_orders(3))
        self.api.fail_next(503, path="simple_orders", times=5)
        self.run_cron()
        self.assertEqual(len(self.posts(SIMPLE_ORDERS_PATH)), 1, "one request into the outage")
        self.assertEqual(set(conversions.mapped("state")), {const.STATE_PENDING})
        self.assertEqual(len(set(conversions.mapped("next_attempt_at"))), 1)
        self.assertEqual(self.Conversion._metrika_due_count(), 0)

    # ------------------------------------------------------------------ goal hits once

    def test_an_order_cancelled_and_confirmed_again_sends_its_created_goal_once(self):
        self.use_goals(metrika_goal_cancelled="crm_deal_lost")
        order = self.goal_order()
        self.run_cron()
        order._action_cancel()
        self.conversions(order).sudo().write(
            {"event_date": fields.Datetime.now() - timedelta(minutes=30)}
        )
        self.run_cron()
        order.action_draft()
        order.action_confirm()
        self.run_cron()
        targets = [target for (_identifier, target, _date) in self.api.stored_offline_rows]
        self.assertEqual(targets.count(GOAL_CREATED), 1, "the created goal once")
        self.assertEqual(set(self.api.stored_offline_rows.values()), {1})
        created = self.conversions(order).filtered(lambda c: c.event == const.EVENT_IN_PROGRESS)
        self.assertRecordValues(
            created, [{"state": const.STATE_SENT, "metrika_goal": GOAL_CREATED}]
        )
