from odoo.tests import Form, tagged

from odoo.addons.metrika_offline_conversions.tools import metrika_capture

from .. import const
from .common import COUNTER_ID, MALFORMED, YCLID, MetrikaWebsiteCase

NINETY_DAYS = 90 * 24 * 3600


@tagged("post_install", "-at_install")
class TestYclidLanding(MetrikaWebsiteCase):
    def yclid_cookie_header(self, response):
        headers = [
            value
            for name, value in response.raw.headers.items()
            if name.lower() == "set-cookie" and value.startswith(metrika_capture.YCLID_COOKIE)
        ]
        self.assertLessEqual(len(headers), 1, headers)
        return headers[0] if headers else None

    def test_a_landing_from_a_direct_ad_is_remembered_for_90_days(self):
        response = self.land("/contactus")
        header = self.yclid_cookie_header(response)
        self.assertIn(f"{metrika_capture.YCLID_COOKIE}={YCLID};", header)
        self.assertIn(f"Max-Age={NINETY_DAYS}", header)
        self.assertIn("HttpOnly", header)
        self.assertEqual(self.opener.cookies.get(metrika_capture.YCLID_COOKIE), YCLID)
        # Already remembered: the next page says nothing more.
        self.assertIsNone(self.yclid_cookie_header(self.land("/")))

    def test_junk_in_the_address_is_ignored(self):
        for junk in MALFORMED:
            with self.subTest(junk=junk):
                self.assertIsNone(self.yclid_cookie_header(self.land("/", yclid=junk)))
        self.assertIsNone(self.opener.cookies.get(metrika_capture.YCLID_COOKIE))

    def test_declined_consent_keeps_no_yclid(self):
        self.set_consent(optional=False)
        header = self.yclid_cookie_header(self.land("/"))
        # Odoo sends an optional cookie the visitor declined already expired.
        self.assertIn("Max-Age=0", header)
        self.assertIsNone(self.opener.cookies.get(metrika_capture.YCLID_COOKIE))

    def test_accepted_consent_keeps_the_yclid(self):
        self.set_consent(optional=True)
        self.land("/")
        self.assertEqual(self.opener.cookies.get(metrika_capture.YCLID_COOKIE), YCLID)

    def test_an_employee_browsing_the_site_is_not_marked(self):
        self.authenticate(self.employee.login, self.employee.login)
        self.assertIsNone(self.yclid_cookie_header(self.land("/")))
        self.assertIsNone(self.opener.cookies.get(metrika_capture.YCLID_COOKIE))

    def test_portal_customer_is_a_visitor(self):
        self.authenticate(self.portal_user.login, self.portal_user.login)
        self.land("/")
        self.assertEqual(self.opener.cookies.get(metrika_capture.YCLID_COOKIE), YCLID)

    def test_landing_adds_no_query(self):
        def valid():
            self.url_open(f"/?yclid={YCLID}")
            self.opener.cookies.pop(metrika_capture.YCLID_COOKIE, None)

        def junk():
            self.url_open("/?yclid=not-a-click")

        for _warm_up in range(3):
            valid()
            junk()
        self.assertEqual(self.added_queries("page landed on with a yclid", valid, junk), 0)


@tagged("post_install", "-at_install")
class TestMetrikaTag(MetrikaWebsiteCase):
    def page(self):
        response = self.url_open("/")
        self.assertEqual(response.status_code, 200)
        return response.text

    def test_tag_is_off_by_default(self):
        self.assertFalse(self.company.metrika_website_tag)
        html = self.page()
        self.assertNotIn('id="metrika_tag"', html)
        # The counter is still on the page, for a tag the site brings itself.
        self.assertIn(f'id="o_metrika_counter" class="d-none" data-counter="{COUNTER_ID}"', html)

    def test_tag_carries_the_company_counter(self):
        self.company.metrika_website_tag = True
        html = self.page()
        self.assertIn(f'id="metrika_tag" data-counter="{COUNTER_ID}" data-consent="1"', html)
        self.assertIn("https://mc.yandex.ru/metrika/tag.js", html)

    def test_tag_waits_for_consent_where_the_website_asks(self):
        self.company.metrika_website_tag = True
        self.set_consent(optional=False)
        html = self.page()
        self.assertIn(f'id="metrika_tag" data-counter="{COUNTER_ID}">', html)
        self.assertIn("optionalCookiesAccepted", html)
        self.set_consent(optional=True)
        self.assertIn('data-consent="1"', self.page())

    def test_nothing_without_a_counter(self):
        self.company.metrika_website_tag = True
        self.company.metrika_counter_id = False
        html = self.page()
        self.assertNotIn("o_metrika_counter", html)
        self.assertNotIn("metrika_tag", html)


@tagged("post_install", "-at_install")
class TestWebsiteSettings(MetrikaWebsiteCase):
    def test_settings_show_the_consent_rule_in_force(self):
        self.website.cookies_bar = False
        settings = Form(self.env["res.config.settings"])
        self.assertEqual(settings.website_id, self.website)
        self.assertEqual(settings.metrika_consent_rule, const.CONSENT_RULE_NOT_ASKED)
        settings.website_cookies_bar = True
        self.assertEqual(settings.metrika_consent_rule, const.CONSENT_RULE_ASKED)
        settings.metrika_website_tag = True
        settings.save().execute()
        self.assertTrue(self.company.metrika_website_tag)
        self.assertTrue(self.website.cookies_bar)
