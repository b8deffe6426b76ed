"""Shared set-up of the website bridges' tests: real HTTP requests to Odoo's test server."""

import importlib.util
import json
import logging
import shutil

from odoo.tests import HttpCase, new_test_user

from odoo.addons.metrika_offline_conversions.tools import metrika_capture

_logger = logging.getLogger(__name__)

CLIENT_ID = "1628529640459314054"
OTHER_CLIENT_ID = "1700000000123456789"
YCLID = "6754821930114400255"
COUNTER_ID = "12345"
# Metrica-like junk: a forged or damaged value must be dropped, never break a form.
MALFORMED = (
    "162852964045931405455556666",
    "1628529640459314054abc",
    "0123",
    "-1",
    "1e19",
    "<b>1</b>",
)


class MetrikaWebsiteCase(HttpCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.website = cls.env["website"].get_current_website()
        cls.company = cls.website.company_id
        cls.company.metrika_counter_id = COUNTER_ID
        cls.employee = new_test_user(
            cls.env,
            login="metrika_salesman",
            password="metrika_salesman",
            groups="base.group_user,sales_team.group_sale_salesman",
        )
        cls.portal_user = new_test_user(
            cls.env, login="metrika_portal", password="metrika_portal", groups="base.group_portal"
        )

    def assert_browser_available(self):
        """Odoo skips a tour quietly when it finds no browser; for us that is a failure."""
        self.assertIsNotNone(
            importlib.util.find_spec("websocket"), "websocket-client is not installed"
        )
        # The names Odoo looks for on PATH (odoo/tests/common.py, _find_executable).
        browsers = ("google-chrome", "chromium", "chromium-browser", "google-chrome-stable")
        self.assertTrue(any(shutil.which(name) for name in browsers), "no Chromium on PATH")

    def set_cookies(self, **cookies):
        for name, value in cookies.items():
            self.opener.cookies.set(name, value)

    def set_consent(self, optional):
        """Turn the cookie bar on; the visitor has answered it (optional cookies or not)."""
        self.website.cookies_bar = True
        self.set_cookies(
            website_cookies_bar=json.dumps({"required": True, "optional": bool(optional)})
        )

    def land(self, url="/", yclid=YCLID):
        """Arrive from a Direct ad: ``?yclid=`` on the landing address."""
        response = self.url_open(f"{url}?{metrika_capture.YCLID_PARAM}={yclid}")
        self.assertEqual(response.status_code, 200)
        return response

    def queries_of(self, request):
        """SQL queries the server ran for ``request()``: the test server shares our cursor."""
        before = self.cr.sql_log_count
        request()
        return self.cr.sql_log_count - before

    def added_queries(self, what, with_identifiers, without):
        """Queries ``with_identifiers()`` costs more than ``without()``; logged as measured."""
        counts = self.queries_of(with_identifiers), self.queries_of(without)
        _logger.info("Metrica capture, %s: %s queries with identifiers, %s without", what, *counts)
        return counts[0] - counts[1]


class RussianTranslationChecks:
    """Every term a bridge exports is translated in its i18n/ru.po, placeholders intact.

    A test class sets ``module`` and ``min_terms`` (how many terms the module is known to
    export, so that a reader that finds nothing fails instead of passing).
    """

    module = None
    min_terms = 0
    # Odoo's own test loader runs only the test methods a class defines itself, unless told
    # otherwise; these come from this mixin.
    allow_inherited_tests_method = True

    def test_every_exported_term_has_a_russian_translation(self):
        from odoo.addons.metrika_offline_conversions.tests import catalogue

        # On this series (catalogue.py: the entries of one series only say so).
        sources, problems = catalogue.problems(self.env, self.module)
        self.assertGreaterEqual(len(sources), self.min_terms)
        for kind, msgids in problems.items():
            self.assertEqual(msgids, [], kind)
        for entry in catalogue.catalogue(self.module):
            self.assertEqual(
                sorted(catalogue.PLACEHOLDER.findall(entry.msgstr)),
                sorted(catalogue.PLACEHOLDER.findall(entry.msgid)),
            )
