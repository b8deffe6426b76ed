import json

from odoo.tests import tagged

from odoo.addons.metrika_offline_conversions.tools import metrika_capture
from odoo.addons.metrika_offline_conversions_website.tests.common import (
    CLIENT_ID,
    MALFORMED,
    OTHER_CLIENT_ID,
    YCLID,
    MetrikaWebsiteCase,
)


@tagged("post_install", "-at_install")
class TestFormCapture(MetrikaWebsiteCase):
    def post_form(self, **fields):
        values = {
            "contact_name": "Anna Smirnova",
            "email_from": "anna@example.ru",
            "name": "A sofa for the office",
            "description": "Please call me",
            **fields,
        }
        response = self.url_open("/website/form/crm.lead", data=values)
        self.assertEqual(response.status_code, 200)
        answer = json.loads(response.text)
        self.assertTrue(answer.get("id"), f"the form did not go through: {answer}")
        return self.env["crm.lead"].browse(answer["id"])

    def test_public_visitor_after_a_direct_landing_gets_both(self):
        self.land("/contactus")
        self.set_cookies(_ym_uid=CLIENT_ID)
        lead = self.post_form()
        self.assertRecordValues(lead, [{"metrika_client_id": CLIENT_ID, "metrika_yclid": YCLID}])
        self.assertNotIn("metrika", lead.description or "", "nothing leaks into the message")

    def test_the_tag_answer_posted_by_the_page_wins_over_the_cookie(self):
        self.set_cookies(_ym_uid=CLIENT_ID)
        lead = self.post_form(metrika_client_id=OTHER_CLIENT_ID)
        self.assertEqual(lead.metrika_client_id, OTHER_CLIENT_ID)
        self.assertFalse(lead.metrika_yclid)

    def test_portal_customer_is_captured(self):
        self.authenticate(self.portal_user.login, self.portal_user.login)
        self.set_cookies(_ym_uid=CLIENT_ID)
        self.assertEqual(self.post_form(csrf_token=self.csrf_token()).metrika_client_id, CLIENT_ID)

    def csrf_token(self):
        # A logged-in session's form needs the page's CSRF token, as the browser sends it.
        page = self.url_open("/contactus").text
        marker = 'csrf_token: "'
        start = page.index(marker) + len(marker)
        return page[start : page.index('"', start)]

    def test_an_employee_cookie_or_field_is_never_captured(self):
        self.authenticate(self.employee.login, self.employee.login)
        self.land("/contactus")
        self.set_cookies(_ym_uid=CLIENT_ID, **{metrika_capture.YCLID_COOKIE: YCLID})
        lead = self.post_form(csrf_token=self.csrf_token(), metrika_client_id=OTHER_CLIENT_ID)
        self.assertRecordValues(lead, [{"metrika_client_id": False, "metrika_yclid": False}])

    def test_declined_consent_captures_nothing(self):
        self.set_consent(optional=False)
        self.set_cookies(_ym_uid=CLIENT_ID, **{metrika_capture.YCLID_COOKIE: YCLID})
        lead = self.post_form(metrika_client_id=OTHER_CLIENT_ID)
        self.assertRecordValues(lead, [{"metrika_client_id": False, "metrika_yclid": False}])
        self.set_consent(optional=True)
        self.assertEqual(self.post_form().metrika_client_id, CLIENT_ID)

    def test_malformed_cookie_or_field_is_ignored_and_the_form_works(self):
        for junk in MALFORMED:
            with self.subTest(junk=junk):
                self.set_cookies(_ym_uid=junk, **{metrika_capture.YCLID_COOKIE: junk})
                lead = self.post_form(metrika_client_id=junk, metrika_yclid=junk)
                self.assertRecordValues(
                    lead, [{"metrika_client_id": False, "metrika_yclid": False}]
                )
        # A forged field next to a good cookie: the cookie still counts.
        self.set_cookies(_ym_uid=CLIENT_ID)
        lead = self.post_form(metrika_client_id="12ab")
        self.assertEqual(lead.metrika_client_id, CLIENT_ID)

    def test_a_form_builder_form_for_leads_is_captured_too(self):
        # Any form whose target is a lead posts to the same route, with its own fields.
        self.set_cookies(_ym_uid=CLIENT_ID)
        lead = self.post_form(contact_name=None, description=None, phone="+7 999 555 11 11")
        self.assertEqual(lead.metrika_client_id, CLIENT_ID)

    def test_capture_adds_no_query_to_a_page_and_at_most_one_to_a_lead(self):
        cookies = {"_ym_uid": CLIENT_ID, metrika_capture.YCLID_COOKIE: YCLID}

        def with_cookies(request):
            def run():
                self.set_cookies(**cookies)
                request()
                for name in cookies:
                    self.opener.cookies.pop(name, None)

            return run

        def page():
            self.assertEqual(self.url_open("/contactus").status_code, 200)

        def lead():
            self.post_form()

        for _warm_up in range(2):
            page()
            with_cookies(page)()
            lead()
            with_cookies(lead)()
        self.assertEqual(self.added_queries("contact page", with_cookies(page), page), 0)
        self.assertLessEqual(self.added_queries("lead form sent", with_cookies(lead), lead), 1)
        self.assertEqual(
            self.env["crm.lead"].search([], order="id desc", limit=2).mapped("metrika_client_id"),
            [False, CLIENT_ID],
        )
