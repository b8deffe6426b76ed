from odoo.tests import tagged

from odoo.addons.metrika_offline_conversions.tools import odoo_compat
from odoo.addons.metrika_offline_conversions_website.tests.common import (
    CLIENT_ID,
    OTHER_CLIENT_ID,
    MetrikaWebsiteCase,
)

TAG_URL = "https://mc.yandex.ru/metrika/tag.js"
# Stands in for Yandex's tag.js in the browser: takes the calls queued before it loaded and
# answers getClientID, as the real tag does.
TAG_STAND_IN = """
(function () {
    var queued = (window.ym && window.ym.a) || [];
    function ym(counter, method, callback) {
        if (method === "getClientID") {
            callback("%s");
        }
    }
    window.ym = ym;
    queued.forEach(function (args) { ym.apply(null, args); });
})();
"""


@tagged("post_install", "-at_install")
class TestContactFormTour(MetrikaWebsiteCase):
    """The real "Contact us" page in headless Chromium, its form set to create leads.

    Odoo ships the form sending an e-mail; a site owner switches it to "Create an Opportunity"
    in the editor, which renames its fields as done here.
    """

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        view = cls.env.ref("website.contactus")
        arch = view.arch
        for shipped, for_leads in (
            ('data-model_name="mail.mail"', 'data-model_name="crm.lead"'),
            ('name="name" required=""', 'name="contact_name" required=""'),
            ('name="company"', 'name="partner_name"'),
            ('name="subject"', 'name="name"'),
        ):
            assert shipped in arch, shipped
            arch = arch.replace(shipped, for_leads)
        view.arch = arch

    def setUp(self):
        super().setUp()
        self.assert_browser_available()
        self.tag_requests = []

    def fetch_proxy(self, url):
        # What the browser asks outside the test server: the Metrica tag gets its stand-in.
        if url.startswith(TAG_URL):
            self.tag_requests.append(url)
            response = self.make_fetch_proxy_response(TAG_STAND_IN % OTHER_CLIENT_ID)
            response["responseHeaders"].append({"name": "content-type", "value": "text/javascript"})
            return response
        return super().fetch_proxy(url)

    def test_contact_form_with_a_metrica_cookie(self):
        self.start_tour(
            "/contactus",
            odoo_compat.tour_variant("metrika_contact_form_cookie"),
            cookies={"_ym_uid": CLIENT_ID},
        )
        lead = self.env["crm.lead"].search([("description", "ilike", "METRIKA COOKIE")])
        self.assertEqual(len(lead), 1)
        self.assertRecordValues(
            lead, [{"contact_name": "Anna Smirnova", "metrika_client_id": CLIENT_ID}]
        )

    def test_contact_form_gets_the_client_id_from_the_tag(self):
        self.start_tour(
            "/contactus", odoo_compat.tour_variant("metrika_contact_form_get_client_id")
        )
        lead = self.env["crm.lead"].search([("description", "ilike", "METRIKA GETCLIENTID")])
        self.assertEqual(len(lead), 1)
        self.assertEqual(lead.metrika_client_id, OTHER_CLIENT_ID)

    def test_contact_form_with_the_inserted_tag(self):
        self.company.metrika_website_tag = True
        self.start_tour("/contactus", odoo_compat.tour_variant("metrika_contact_form_inserted_tag"))
        self.assertTrue(self.tag_requests, "the page did not load the Metrica tag")
        lead = self.env["crm.lead"].search([("description", "ilike", "METRIKA TAG")])
        self.assertEqual(len(lead), 1)
        self.assertEqual(lead.metrika_client_id, OTHER_CLIENT_ID)
