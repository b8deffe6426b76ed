"""The dashboard's figures on known data sets: the upload path against the Metrica stand-in, a
sync log written row by row, and the coverage of orders and leads by identifier."""

from datetime import datetime, timedelta

from odoo import fields
from odoo.exceptions import AccessError
from odoo.tests import new_test_user, tagged

from odoo.addons.metrika_offline_conversions import const
from odoo.addons.metrika_offline_conversions.metrika_core import formats

from .common import CLIENT_ID, MetrikaCase

GOAL_CREATED = "crm_qualified_lead"
GOAL_PAID = "crm_deal_won"
MEASURES = [
    "queued_count:sum",
    "sent_count:sum",
    "accepted_count:sum",
    "linked_count:sum",
    "skipped_count:sum",
    "error_count:sum",
    "stuck_count:sum",
]
SHARES = [
    "__count",
    "client_id_share:avg",
    "yclid_share:avg",
    "phone_share:avg",
    "email_share:avg",
    "attribution_maximum_share:avg",
    "attribution_good_share:avg",
    "attribution_medium_share:avg",
    "attribution_none_share:avg",
]


@tagged("post_install", "-at_install")
class TestDashboard(MetrikaCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.Report = cls.env["metrika.conversion.report"]
        cls.Coverage = cls.env["metrika.coverage.report"]
        # A company of its own: the figures count its rows only, whatever else the database has.
        cls.other = cls.env["res.company"].create(
            {"name": "Dashboard Ltd", "metrika_counter_id": "777"}
        )

    def figures(self, domain, groupby=()):
        """{group: {measure: value}} of the dashboard, as its pivot view adds them up."""
        self.Report._metrika_refresh()
        rows = self.Report._read_group(domain, list(groupby), MEASURES)
        result = {}
        for row in rows:
            key = tuple(
                value.id if hasattr(value, "_name") else value for value in row[: len(groupby)]
            )
            values = row[len(groupby) :]
            result[key] = {
                name.split(":")[0]: round(value or 0, 3)
                for name, value in zip(MEASURES, values, strict=True)
            }
        return result

    # ------------------------------------------------------------------ the upload path

    def test_goal_based_uploads_accepted_and_linked(self):
        """Three goal-based conversions, one refused visitor: three accepted, two linked (Metrica
        counts them per file), and the order without a click skipped for want of an
        identifier."""
        self.company.sudo().write(
            {
                "metrika_transport": const.TRANSPORT_OFFLINE,
                "metrika_goal_in_progress": GOAL_CREATED,
                "metrika_goal_paid": GOAL_PAID,
            }
        )
        self.api.add_visitor(CLIENT_ID)
        self.api.add_visitor("1628529640459314111")
        self.addCleanup(self.api.visitors.clear)
        orders = self.env["sale.order"]
        for client_id in (CLIENT_ID, "1628529640459314111", "1628529640459314999", False):
            orders |= self.make_order(metrika_client_id=client_id)
        conversions = self.conversions(orders)
        # Well in the past, so that Metrica's "not in the future" cap never applies.
        conversions.sudo().write({"event_date": fields.Datetime.now() - timedelta(hours=1)})
        domain = [("company_id", "=", self.company.id)]

        self.run_cron()
        [upload] = self.Upload.search([("company_id", "=", self.company.id)])
        self.assertEqual(
            self.figures(domain, ["transport"]),
            {
                (const.TRANSPORT_OFFLINE,): {
                    "queued_count": 4,
                    "sent_count": 3,
                    "accepted_count": 3,
                    "linked_count": 0,
                    "skipped_count": 1,
                    "error_count": 0,
                    "stuck_count": 0,
                }
            },
            "accepted, being processed: nothing linked yet",
        )

        self.api.set_offline_status(int(upload.uploading_id), "PROCESSED")
        upload.sudo().next_poll_at = fields.Datetime.now() - timedelta(seconds=1)
        self.run_cron()
        self.assertEqual(upload.linked_quantity, 2)
        self.assertEqual(
            set(conversions.filtered("sent_at").mapped("metrika_result")),
            {const.RESULT_PARTLY_LINKED},
        )
        figures = self.figures(domain)[()]
        self.assertEqual((figures["accepted_count"], figures["linked_count"]), (3, 2))
        self.assertEqual(
            self.figures(domain + [("state", "=", "skipped")], ["failure_reason"]),
            {
                (const.REASON_NO_IDENTIFIER,): {
                    "queued_count": 1,
                    "sent_count": 0,
                    "accepted_count": 0,
                    "linked_count": 0,
                    "skipped_count": 1,
                    "error_count": 0,
                    "stuck_count": 0,
                }
            },
        )
        self.assertEqual(self.figures(domain, ["counter"]).keys(), {("12345",)})

    # ------------------------------------------------------------------ a known sync log

    def log_row(self, state, transport=const.TRANSPORT_SIMPLE_ORDERS, age=None, **values):
        """A conversion of the company ``other``, queued ``age`` ago (a timedelta) or on
        ``age`` (a datetime)."""
        row = self.Conversion.sudo().create(
            {
                "company_id": self.other.id,
                "record_name": "S%05d" % len(self.Conversion.sudo().search([])),
                "event": const.EVENT_IN_PROGRESS,
                "order_status": formats.IN_PROGRESS,
                "transport": transport,
                "state": state,
                **values,
            }
        )
        if age is not None:
            self.env.flush_all()
            self.env.cr.execute(
                "UPDATE metrika_conversion SET create_date = %s WHERE id = %s",
                [fields.Datetime.now() - age if isinstance(age, timedelta) else age, row.id],
            )
        return row

    def test_known_log_by_week_reason_and_result(self):
        # Wednesdays at noon (UTC): in the middle of their week wherever weeks start, in any time
        # zone; the weeks do not depend on when the test runs.
        week_ago, last_week = datetime(2026, 3, 4, 12), datetime(2026, 3, 11, 12)
        upload = self.Upload.sudo().create(
            {
                "company_id": self.other.id,
                "transport": const.TRANSPORT_OFFLINE,
                "state": const.UPLOAD_PROCESSED,
                "row_count": 4,
                "source_quantity": 4,
                "line_quantity": 3,
                "linked_quantity": 1,
            }
        )
        # In the first week: four goal-based rows of one file (3 of 4 stored, 1 linked), two CRM
        # orders accepted, one skipped too late, one refused by Metrica.
        for _index in range(4):
            self.log_row(
                const.STATE_SENT,
                const.TRANSPORT_OFFLINE,
                age=week_ago,
                upload_id=upload.id,
                metrika_result=const.RESULT_PARTLY_LINKED,
            )
        for _index in range(2):
            self.log_row(const.STATE_SENT, age=week_ago, metrika_result=const.RESULT_ACCEPTED)
        self.log_row(const.STATE_SKIPPED, age=week_ago, failure_reason=const.REASON_LINK_WINDOW)
        self.log_row(const.STATE_ERROR, age=week_ago, failure_reason=const.REASON_BAD_REQUEST)
        # Now: two rows waiting for an administrator for five and two hours (stuck), one being
        # sent for three hours (stuck), one just queued (not stuck). In the next week: two
        # without an identifier.
        self.log_row(const.STATE_PENDING, age=timedelta(hours=5), failure_reason=const.REASON_AUTH)
        self.log_row(const.STATE_PENDING, age=timedelta(hours=2), failure_reason=const.REASON_AUTH)
        self.log_row(const.STATE_SENDING, age=timedelta(hours=3))
        self.log_row(const.STATE_PENDING, age=timedelta(minutes=5))
        for _index in range(2):
            self.log_row(
                const.STATE_SKIPPED, age=last_week, failure_reason=const.REASON_NO_IDENTIFIER
            )
        domain = [("company_id", "=", self.other.id)]

        self.assertEqual(
            self.figures(domain, ["transport"]),
            {
                (const.TRANSPORT_OFFLINE,): {
                    "queued_count": 4,
                    "sent_count": 4,
                    "accepted_count": 3,
                    "linked_count": 1,
                    "skipped_count": 0,
                    "error_count": 0,
                    "stuck_count": 0,
                },
                (const.TRANSPORT_SIMPLE_ORDERS,): {
                    "queued_count": 10,
                    "sent_count": 2,
                    "accepted_count": 2,
                    "linked_count": 0,
                    "skipped_count": 3,
                    "error_count": 1,
                    "stuck_count": 3,
                },
            },
        )
        skipped = self.figures(domain + [("state", "=", const.STATE_SKIPPED)], ["failure_reason"])
        self.assertEqual(
            {reason: figures["skipped_count"] for (reason,), figures in skipped.items()},
            {const.REASON_LINK_WINDOW: 1, const.REASON_NO_IDENTIFIER: 2},
        )
        # The pivot's weeks, as the client asks for them: 8 rows in the first, 2 in the next.
        by_week = sorted(
            self.figures(domain + [("date", "<", "2026-06-01")], ["date:week"]).items()
        )
        self.assertEqual([figures["queued_count"] for _week, figures in by_week], [8, 2])
        self.assertEqual([figures["skipped_count"] for _week, figures in by_week], [1, 2])
        self.assertEqual([figures["error_count"] for _week, figures in by_week], [1, 0])
        self.assertEqual([figures["accepted_count"] for _week, figures in by_week], [5, 0])
        # Since when: the oldest stuck row waits for five hours.
        [(oldest,)] = self.Report._read_group(domain, [], ["stuck_hours:max"])
        self.assertAlmostEqual(oldest, 5.0, delta=0.05)
        stuck = self.figures(domain + [("stuck_count", ">", 0)], ["state"])
        self.assertEqual(
            {state: figures["stuck_count"] for (state,), figures in stuck.items()},
            {const.STATE_PENDING: 2, const.STATE_SENDING: 1},
        )
        [(since,)] = self.Report._read_group(domain, [], ["stuck_since:min"])
        self.assertAlmostEqual(
            since, fields.Datetime.now() - timedelta(hours=5), delta=timedelta(minutes=3)
        )

    def test_access_managers_of_the_company_only(self):
        self.log_row(const.STATE_PENDING)
        self.log_row(const.STATE_PENDING, company_id=self.company.id)
        self.Report._metrika_refresh()
        manager = new_test_user(
            self.env,
            "dash_manager",
            groups="base.group_user,metrika_offline_conversions.group_metrika_manager",
            company_id=self.company.id,
            company_ids=[self.company.id],
        )
        seen = self.Report.with_user(manager).search([])
        self.assertTrue(seen)
        self.assertEqual(seen.company_id, self.company, "not the other company's rows")
        salesman = new_test_user(self.env, "dash_salesman", groups="sales_team.group_sale_salesman")
        for model in ("metrika.conversion.report", "metrika.coverage.report"):
            with self.assertRaises(AccessError):
                self.env[model].with_user(salesman).search([])

    # ------------------------------------------------------------------ coverage

    def test_coverage_of_orders_and_leads(self):
        partner = self.env["res.partner"]
        full = partner.create(
            {"name": "Full", "email": "full@example.ru", "phone": "+7 999 555-00-01"}
        )
        mail_only = partner.create({"name": "Mail", "email": "mail@example.ru"})
        nothing = partner.create({"name": "Nobody"})
        Order = self.env["sale.order"].with_company(self.other)

        def order(customer, confirm=True, **values):
            record = Order.create(
                {
                    "company_id": self.other.id,
                    "partner_id": customer.id,
                    "order_line": [(0, 0, {"product_id": self.product.id})],
                    **values,
                }
            )
            if confirm:
                record.action_confirm()
            return record

        maximum = order(full, metrika_client_id=CLIENT_ID)
        good = order(nothing, metrika_client_id="1628529640459314111")
        medium = order(mail_only, metrika_yclid="6754821930114400255")
        none = order(nothing)
        order(full, confirm=False, metrika_client_id=CLIENT_ID)  # a quotation: not counted
        order(full, metrika_client_id=CLIENT_ID)._action_cancel()  # cancelled: not counted
        # Its payment is in Metrica's log: a paid order.
        self.Conversion.sudo().create(
            {
                "company_id": self.other.id,
                "sale_order_id": maximum.id,
                "event": const.EVENT_PAID,
                "order_status": formats.PAID,
                "transport": const.TRANSPORT_SIMPLE_ORDERS,
            }
        )
        won_stage = self.env["crm.stage"].search([("is_won", "=", True)], limit=1)
        open_stage = self.env["crm.stage"].search([("is_won", "=", False)], limit=1)
        Lead = self.env["crm.lead"].with_company(self.other)
        lead_values = {"company_id": self.other.id, "type": "opportunity"}
        won = Lead.create(
            {**lead_values, "name": "Won", "stage_id": won_stage.id, "email_from": "w@example.ru"}
        )
        Lead.create({**lead_values, "name": "Open", "stage_id": open_stage.id})
        lost = Lead.create({**lead_values, "name": "Lost", "stage_id": open_stage.id})
        lost.action_set_lost()
        domain = [("company_id", "=", self.other.id)]
        self.Coverage._metrika_refresh()

        rows = self.Coverage.search(domain)
        self.assertEqual(
            sorted(rows.mapped("name")),
            sorted([*(maximum | good | medium | none).mapped("name"), "Won"]),
        )
        # Each row's quality is the one the record shows.
        for record in (maximum, good, medium, none, won):
            row = rows.filtered(lambda r, record=record: r.name == record.name)
            self.assertEqual(row.attribution, record.metrika_attribution, record.name)
        self.assertEqual(
            {row.name: row.stage for row in rows},
            {
                maximum.name: "paid",
                good.name: "confirmed",
                medium.name: "confirmed",
                none.name: "confirmed",
                "Won": "won",
            },
        )
        shares = {
            record_type: dict(zip(SHARES, values, strict=True))
            for record_type, *values in self.Coverage._read_group(domain, ["record_type"], SHARES)
        }
        self.assertEqual(
            shares["order"],
            {
                "__count": 4,
                "client_id_share:avg": 50.0,
                "yclid_share:avg": 25.0,
                "phone_share:avg": 25.0,
                "email_share:avg": 50.0,
                "attribution_maximum_share:avg": 25.0,
                "attribution_good_share:avg": 25.0,
                "attribution_medium_share:avg": 25.0,
                "attribution_none_share:avg": 25.0,
            },
        )
        self.assertEqual(
            shares["lead"],
            {
                "__count": 1,
                "client_id_share:avg": 0.0,
                "yclid_share:avg": 0.0,
                "phone_share:avg": 0.0,
                "email_share:avg": 100.0,
                "attribution_maximum_share:avg": 0.0,
                "attribution_good_share:avg": 0.0,
                "attribution_medium_share:avg": 100.0,
                "attribution_none_share:avg": 0.0,
            },
        )
        counts = dict(self.Coverage._read_group(domain, ["attribution"], ["__count"]))
        self.assertEqual(counts, {"maximum": 1, "good": 1, "medium": 2, "none": 1})
