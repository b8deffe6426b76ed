"""The Conversion Centre link through Odoo's real HTTP server (HttpCase): secrets, the file,
its window and identifiers, validators, methods and the fetch log; and the browser tour."""

import base64
import csv
import hashlib
import io
import logging
import shutil
import time
from datetime import datetime, timedelta, timezone

from odoo import fields
from odoo.exceptions import AccessError
from odoo.modules.neutralize import get_neutralization_queries
from odoo.tests import new_test_user, tagged

from odoo.addons.metrika_offline_conversions import const
from odoo.addons.metrika_offline_conversions.tools import centre_link, odoo_compat

from .common import CLIENT_ID, COUNTER_ID, TOKEN, CentreLinkCase


@tagged("post_install", "-at_install")
class TestCentreLink(CentreLinkCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.partner = cls.env["res.partner"].create(
            {"name": "Ivan Petrov", "email": "Ivan.Petrov@Example.ru", "phone": "8 999 555-11-11"}
        )

    def make_order(self, partner=None, confirm=True, **values):
        order = self.env["sale.order"].create(
            {
                "partner_id": (partner or self.partner).id,
                "order_line": [(0, 0, {"product_id": self.product.id, "product_uom_qty": 1})],
                **values,
            }
        )
        if confirm:
            order.action_confirm()
        return order

    def link(self, secret=None):
        return "%s/%s.csv" % (
            const.CENTRE_ROUTE,
            secret or self.company.sudo().metrika_centre_secret,
        )

    def fetch(self, secret=None, method="GET", headers=None):
        # The test opener, not url_open: its way of asking for HEAD differs between series.
        return self.opener.request(
            method,
            self.base_url() + self.link(secret),
            headers=headers,
            timeout=12,
            allow_redirects=False,
        )

    def rows(self, response):
        self.assertEqual(response.status_code, 200, response.text[:500])
        text = response.content.decode("utf-8")
        reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=";")
        return reader.fieldnames, list(reader)

    def fetches(self):
        return self.env["metrika.centre.fetch"].search([("company_id", "=", self.company.id)])

    def set_created(self, order, when):
        self.env["metrika.conversion"].search([("sale_order_id", "=", order.id)]).write(
            {"order_create_date": when}
        )

    # -- the file ------------------------------------------------------------------------

    def test_right_secret_serves_the_file_with_current_status(self):
        order = self.make_order(metrika_client_id=CLIENT_ID)
        cancelled = self.make_order()
        cancelled._action_cancel()
        conversions = self.env["metrika.conversion"].search([("sale_order_id", "=", order.id)])
        # API sending off: the rows are the link's, never uploaded nor left pending.
        self.assertEqual(conversions.mapped("state"), [const.STATE_SKIPPED])
        self.assertEqual(conversions.failure_reason, const.REASON_CENTRE_ONLY)

        response = self.fetch()
        self.assertIn("text/csv", response.headers["Content-Type"])
        header, rows = self.rows(response)
        self.assertEqual(
            header,
            [
                "id",
                "create_date_time",
                "client_uniq_id",
                "client_ids",
                "emails",
                "phones",
                "order_status",
                "revenue",
            ],
        )
        by_id = {row["id"]: row for row in rows}
        self.assertEqual(set(by_id), {f"so-{order.id}", f"so-{cancelled.id}"})
        served = by_id[f"so-{order.id}"]
        self.assertEqual(served["client_ids"], CLIENT_ID)
        self.assertEqual(served["emails"], "ivan.petrov@example.ru")
        self.assertEqual(served["phones"], "79995551111")
        self.assertEqual(served["order_status"], "IN_PROGRESS")
        self.assertEqual(served["revenue"], "%.2f" % order.amount_total)
        # The order's latest event is what is served: cancelled, once.
        self.assertEqual(by_id[f"so-{cancelled.id}"]["order_status"], "CANCELLED")
        self.assertEqual(len(rows), 2)

        log = self.fetches()
        self.assertEqual(len(log), 1)
        self.assertRecordValues(
            log,
            [{"method": "GET", "http_status": 200, "rows_served": 2, "complete": True}],
        )

    def test_wrong_missing_and_rotated_secrets_get_404(self):
        self.make_order()
        secret = self.company.sudo().metrika_centre_secret
        self.assertGreaterEqual(len(secret), 43)
        wrong = secret[:-1] + ("A" if secret[-1] != "A" else "B")
        self.assertEqual(self.fetch(wrong).status_code, 404)
        self.assertEqual(self.fetch("x").status_code, 404)
        self.assertEqual(self.url_open(const.CENTRE_ROUTE + "/.csv").status_code, 404)
        self.assertEqual(self.url_open(const.CENTRE_ROUTE + "/").status_code, 404)
        self.assertEqual(self.fetch(secret).status_code, 200)

        self.company._metrika_centre_rotate_secret()
        new_secret = self.company.sudo().metrika_centre_secret
        self.assertNotEqual(new_secret, secret)
        self.assertEqual(self.fetch(secret).status_code, 404)
        self.assertEqual(self.fetch(new_secret).status_code, 200)

        # A link switched off answers nothing, whatever the secret.
        self.company.metrika_centre_link_enabled = False
        self.assertEqual(self.fetch(new_secret).status_code, 404)
        # Only the company's own fetches are logged, never a wrong secret.
        self.assertEqual(len(self.fetches()), 2)

    def test_no_row_older_than_113_days_or_in_the_future(self):
        now = fields.Datetime.now()
        old = self.make_order()
        edge = self.make_order()
        future = self.make_order()
        recent = self.make_order()
        self.set_created(old, now - timedelta(days=113, minutes=1))
        self.set_created(edge, now - timedelta(days=112, hours=23))
        self.set_created(future, now + timedelta(minutes=5))
        self.set_created(recent, now - timedelta(days=2))
        _header, rows = self.rows(self.fetch())
        self.assertEqual(
            sorted(row["id"] for row in rows), sorted([f"so-{edge.id}", f"so-{recent.id}"])
        )

    def test_only_rows_with_an_identifier(self):
        nobody = self.env["res.partner"].create({"name": "No contact"})
        bad_phone = self.env["res.partner"].create({"name": "Bad", "phone": "call me"})
        without = self.make_order(partner=nobody)
        unusable = self.make_order(partner=bad_phone)
        with_client_id = self.make_order(partner=nobody, metrika_client_id=CLIENT_ID)
        _header, rows = self.rows(self.fetch())
        self.assertEqual([row["id"] for row in rows], [f"so-{with_client_id.id}"])
        self.assertNotIn(f"so-{without.id}", str(rows))
        self.assertNotIn(f"so-{unusable.id}", str(rows))
        self.assertRecordValues(self.fetches(), [{"rows_served": 1, "rows_left_out": 2}])

    def test_orders_are_read_in_batches_and_a_reader_may_stop(self):
        other = self.env["res.partner"].create({"name": "Olga", "email": "olga@example.ru"})
        orders = self.make_order() | self.make_order(partner=other)
        self.env.flush_all()
        now = datetime.now(timezone.utc)
        region = self.company._metrika_phone_region()
        # One order per fetch: the last, empty fetch ends the file.
        read = list(centre_link.iter_orders(self.env, self.company.id, now, region, fetch_rows=1))
        self.assertEqual([order.id for order in read], [f"so-{order.id}" for order in orders])
        self.assertEqual(read[0].phones, ("79995551111",))
        self.assertEqual(read[1].emails, ("olga@example.ru",))
        # A reader that stops after the first order (a client gone) leaves the transaction
        # usable and the server-side cursor closed: the next file reads everything again.
        stopped = centre_link.iter_orders(self.env, self.company.id, now, region, fetch_rows=1)
        self.assertEqual(next(stopped).id, read[0].id)
        stopped.close()
        again = centre_link.iter_orders(self.env, self.company.id, now, region, fetch_rows=5)
        self.assertEqual(list(again), read)

    def test_rows_the_preflight_refuses_are_left_out_and_counted(self):
        refund = self.make_order()
        long_client_id = self.make_order()
        good = self.make_order()
        # A refund-like total: Metrica takes no negative revenue.
        self.env["metrika.conversion"].search([("sale_order_id", "=", refund.id)]).write(
            {"revenue": -10.0}
        )
        # A ClientID longer than Metrica's (written past the form's normalisation): the file's
        # writer takes it, only the preflight check knows Metrica would refuse it.
        self.env.flush_all()
        self.env.cr.execute(
            "UPDATE sale_order SET metrika_client_id = %s WHERE id = %s",
            ("1" * 25, long_client_id.id),
        )
        _header, rows = self.rows(self.fetch())
        self.assertEqual([row["id"] for row in rows], [f"so-{good.id}"])
        self.assertRecordValues(self.fetches(), [{"rows_served": 1, "rows_left_out": 2}])

    def test_hashed_columns_only_when_hashing_is_on(self):
        self.make_order()
        header, rows = self.rows(self.fetch())
        self.assertIn("emails", header)
        self.assertNotIn("emails_md5", header)

        self.company.metrika_hash_identifiers = True
        response = self.fetch()
        header, rows = self.rows(response)
        self.assertIn("emails_md5", header)
        self.assertIn("phones_md5", header)
        self.assertNotIn("emails", header)
        self.assertNotIn("phones", header)
        self.assertEqual(rows[0]["emails_md5"], hashlib.md5(b"ivan.petrov@example.ru").hexdigest())
        self.assertEqual(rows[0]["phones_md5"], hashlib.md5(b"79995551111").hexdigest())
        self.assertNotIn(b"example.ru", response.content)
        self.assertNotIn(b"79995551111", response.content)

    # -- HTTP ----------------------------------------------------------------------------

    def test_head_and_conditional_get(self):
        self.make_order()
        full = self.fetch()
        etag, last_modified = full.headers["ETag"], full.headers["Last-Modified"]
        self.assertTrue(etag and last_modified)

        head = self.fetch(method="HEAD")
        self.assertEqual(head.status_code, 200)
        self.assertEqual(head.content, b"")
        self.assertEqual(head.headers["ETag"], etag)
        self.assertEqual(head.headers["Last-Modified"], last_modified)

        by_etag = self.fetch(headers={"If-None-Match": etag})
        self.assertEqual(by_etag.status_code, 304)
        self.assertEqual(by_etag.content, b"")
        by_date = self.fetch(headers={"If-Modified-Since": last_modified})
        self.assertEqual(by_date.status_code, 304)
        stale = self.fetch(headers={"If-None-Match": '"not-the-etag"'})
        self.assertEqual(stale.status_code, 200)

        # A new order changes the file: the old validators no longer match.
        self.make_order()
        changed = self.fetch(headers={"If-None-Match": etag})
        self.assertEqual(changed.status_code, 200)
        self.assertNotEqual(changed.headers["ETag"], etag)
        self.assertEqual(len(self.rows(changed)[1]), 2)

        log = self.fetches().sorted("id")
        self.assertEqual(
            [(fetch.method, fetch.http_status) for fetch in log],
            [
                ("GET", 200),
                ("HEAD", 200),
                ("GET", 304),
                ("GET", 304),
                ("GET", 200),
                ("GET", 200),
            ],
        )
        self.assertEqual(log.mapped("rows_served"), [1, 0, 0, 0, 1, 2])

    def test_the_access_log_hides_the_secret(self):
        self.make_order()
        secret = self.company.sudo().metrika_centre_secret
        wrong = "x" * 43
        logged = []
        handler = logging.Handler()
        handler.emit = lambda record: logged.append(record.getMessage())
        access_log = logging.getLogger("werkzeug")
        access_log.addHandler(handler)
        try:
            self.assertEqual(self.fetch().status_code, 200)
            self.assertEqual(self.fetch(secret=wrong).status_code, 404)
            # The server logs a request once it has ended, in its own thread.
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                lines = [line for line in logged if const.CENTRE_ROUTE in line]
                if len(lines) >= 2:
                    break
                time.sleep(0.05)
        finally:
            access_log.removeHandler(handler)
        self.assertEqual(len(lines), 2, logged)
        for line in lines:
            self.assertIn(const.CENTRE_ROUTE + "/***.csv", line)
            self.assertNotIn(secret, line)
            self.assertNotIn(wrong, line)

    def test_other_methods_are_refused(self):
        self.make_order()
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            self.assertIn(self.fetch(method=method).status_code, (404, 405), method)
        self.assertFalse(self.fetches())

    def test_works_beside_api_sending(self):
        self.company.sudo().write({"metrika_enabled": True, "metrika_token": "t"})
        order = self.make_order(metrika_client_id=CLIENT_ID)
        conversion = self.env["metrika.conversion"].search([("sale_order_id", "=", order.id)])
        self.assertEqual(conversion.state, const.STATE_PENDING)
        _header, rows = self.rows(self.fetch())
        self.assertEqual([row["id"] for row in rows], [f"so-{order.id}"])

    def test_leads_are_served_with_their_status(self):
        self.company.metrika_send_leads = True
        lead = self.env["crm.lead"].create(
            {"name": "Deal", "email_from": "buyer@example.ru", "type": "opportunity"}
        )
        lead.action_set_lost()
        _header, rows = self.rows(self.fetch())
        self.assertEqual(
            [(row["id"], row["emails"], row["order_status"]) for row in rows],
            [(f"lead-{lead.id}", "buyer@example.ru", "CANCELLED")],
        )

    # -- settings ------------------------------------------------------------------------

    def test_secret_and_rotation_are_for_administrators_only(self):
        manager = new_test_user(
            self.env,
            "metrika_centre_manager",
            groups="base.group_user,metrika_offline_conversions.group_metrika_manager",
        )
        self.assertNotIn("metrika_centre_secret", self.company.with_user(manager).fields_get())
        settings = self.env["res.config.settings"].create({})
        with self.assertRaises(AccessError):
            settings.with_user(manager).action_metrika_rotate_centre_secret()
        secret = self.company.sudo().metrika_centre_secret
        settings.action_metrika_rotate_centre_secret()
        self.assertNotEqual(self.company.sudo().metrika_centre_secret, secret)
        self.assertIn(
            "%s/%s.csv" % (const.CENTRE_ROUTE, self.company.sudo().metrika_centre_secret),
            self.env["res.config.settings"].create({}).metrika_centre_link_url,
        )
        self.assertFalse(self.company._fields["metrika_centre_secret"].copy)

    def test_neutralisation_wipes_the_link(self):
        self.assertTrue(self.company.sudo().metrika_centre_secret)
        self.env.flush_all()
        for query in get_neutralization_queries(["metrika_offline_conversions"]):
            self.env.cr.execute(query)
        self.company.invalidate_recordset()
        self.assertFalse(self.company.sudo().metrika_centre_secret)
        self.assertFalse(self.company.metrika_centre_link_enabled)

    def test_tour_turn_on_copy_rotate_and_export(self):
        # Odoo skips a tour quietly when it finds no browser; here that is a failure.
        browsers = ("google-chrome", "chromium", "chromium-browser", "google-chrome-stable")
        self.assertTrue(any(shutil.which(name) for name in browsers), "no Chromium on PATH")
        # Sending through the API as well, the link off and never turned on before.
        self.company.sudo().write(
            {
                "metrika_enabled": True,
                "metrika_counter_id": str(COUNTER_ID),
                "metrika_token": TOKEN,
                "metrika_centre_link_enabled": False,
                "metrika_centre_secret": False,
            }
        )
        # The history was offered when sending was turned on: saving Settings reloads the page
        # instead of opening the offer.
        self.company.sudo().metrika_history_offer = const.HISTORY_OFFERED
        # Known since Test connection (new connection settings forget it): the export asks
        # Metrica nothing.
        self.company.sudo().metrika_counter_time_zone = "Europe/Moscow"
        order = self.make_order(metrika_client_id=CLIENT_ID)
        conversion = self.env["metrika.conversion"].search([("sale_order_id", "=", order.id)])
        self.assertEqual(len(conversion), 1)
        # The newest conversion heads the sync log; the tour selects the first row.
        self.assertEqual(self.env["metrika.conversion"].search([], limit=1), conversion)
        # The Sales app's menu is switched on by sale_management, the "Sales" app every shop
        # installs; sale_crm alone (the addon's dependency) leaves it off.
        self.env.ref("sale.sale_menu_root").active = True

        self.start_tour(
            "/odoo/action-metrika_offline_conversions.metrika_settings_action",
            odoo_compat.tour_variant("metrika_centre_link"),
            login="admin",
            # Three page loads and a save: more than the default minute on a loaded machine.
            timeout=240,
        )

        company = self.company.sudo()
        self.assertTrue(company.metrika_centre_link_enabled)
        self.assertTrue(company.metrika_centre_secret)
        self.assertEqual(self.fetch().status_code, 200)
        export = self.env["metrika.conversion.export"].search([], order="id desc", limit=1)
        self.assertEqual(export.create_uid, self.env.ref("base.user_admin"))
        self.assertEqual(export.conversion_ids, conversion)
        data = base64.b64decode(export.file_data).decode()
        self.assertTrue(data.startswith("id,create_date_time,"))
        self.assertIn(f"{conversion.metrika_order_id},", data)
        self.assertIn(CLIENT_ID, data)
        self.assertEqual(conversion.state, const.STATE_PENDING, "the export changed nothing")
