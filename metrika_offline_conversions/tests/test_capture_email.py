from odoo.tests import tagged
from odoo.tools import mute_logger

from odoo.addons.crm.tests.common import TestCrmCommon

from .common import CLIENT_ID

YCLID = "6754821930114400255"

# What another site's form service sends to the CRM alias (README.rst, "Leads from other sites").
FORM_EMAIL = """From: {email_from}
To: {to}
Subject: {subject}
Message-ID: {msg_id}
Date: Tue, 01 Dec 2026 10:00:00 +0300
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

Name: Anna Smirnova
Phone: +7 999 555-11-11
ClientID: {client_id}
yclid: {yclid}
Message: a sofa for the office, please
"""


@tagged("post_install", "-at_install")
class TestEmailCapture(TestCrmCommon):
    def receive(self, subject, client_id=CLIENT_ID, yclid=YCLID):
        template = FORM_EMAIL.replace("{client_id}", client_id).replace("{yclid}", yclid)
        return self.format_and_process(
            template,
            "forms@other-site.example.ru",
            self.sales_team_1.alias_email,
            subject=subject,
            target_model="crm.lead",
        )

    @mute_logger("odoo.addons.mail.models.mail_thread")
    def test_email_to_the_lead_alias_with_identifier_lines(self):
        lead = self.receive("Website request 1")
        self.assertRecordValues(
            lead,
            [
                {
                    "team_id": self.sales_team_1.id,
                    "metrika_client_id": CLIENT_ID,
                    "metrika_yclid": YCLID,
                }
            ],
        )

    @mute_logger("odoo.addons.mail.models.mail_thread")
    def test_junk_lines_are_ignored_and_the_lead_is_created(self):
        lead = self.receive("Website request 2", client_id="12ab", yclid="-1")
        self.assertEqual(len(lead), 1)
        self.assertRecordValues(lead, [{"metrika_client_id": False, "metrika_yclid": False}])

    def test_values_the_alias_sets_are_kept(self):
        lead = self.env["crm.lead"].message_new(
            {"subject": "Request", "body": f"<p>ClientID: {CLIENT_ID}</p><p>yclid: {YCLID}</p>"},
            custom_values={"metrika_client_id": "1700000000123456789"},
        )
        self.assertRecordValues(
            lead, [{"metrika_client_id": "1700000000123456789", "metrika_yclid": YCLID}]
        )
