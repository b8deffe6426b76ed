from odoo.tests import TransactionCase, tagged

from odoo.addons.metrika_offline_conversions.tools import metrika_capture

from .common import CLIENT_ID

YCLID = "6754821930114400255"
OTHER_CLIENT_ID = "1700000000123456789"


@tagged("post_install", "-at_install")
class TestCaptureRules(TransactionCase):
    def test_junk_is_dropped_quietly(self):
        for junk in (
            None,
            "",
            "  ",
            "abc",
            "12ab34",
            "0123",
            "-5",
            "1.6711067211040564e+19",
            "1" * 21,
            "1" * 5000,
            ["1"],
            1628529640459314054,
            b"1628529640459314054",
            "<script>1</script>",
        ):
            with self.subTest(junk=str(junk)[:30]):
                self.assertIsNone(metrika_capture.clean_client_id(junk))
        self.assertEqual(metrika_capture.clean_client_id(f" {CLIENT_ID} "), CLIENT_ID)
        self.assertEqual(metrika_capture.clean_yclid("1" * 25), "1" * 25)
        self.assertIsNone(metrika_capture.clean_yclid("1" * 26))

    def test_lines_in_a_text(self):
        text = f"Name: Anna\nClientID: {CLIENT_ID}\nyclid = {YCLID}\nMessage: call me"
        self.assertEqual(
            metrika_capture.text_identifiers(text),
            {"metrika_client_id": CLIENT_ID, "metrika_yclid": YCLID},
        )
        html = f"<p>Name: Anna</p><p><b>Client ID:</b> {CLIENT_ID}</p><div>YCLID: {YCLID}</div>"
        self.assertEqual(
            metrika_capture.text_identifiers(html),
            {"metrika_client_id": CLIENT_ID, "metrika_yclid": YCLID},
        )
        self.assertEqual(
            metrika_capture.text_identifiers(f"_ym_uid: {CLIENT_ID}"),
            {"metrika_client_id": CLIENT_ID},
        )

    def test_junk_or_prose_in_a_text_gives_nothing(self):
        for text in (
            None,
            "",
            "ClientID: 12ab",
            "ClientID: 0123",
            "My ClientID: is unknown",
            f"I was told my ClientID: {CLIENT_ID} would help",
            f"yclid: {'1' * 26}",
        ):
            with self.subTest(text=text):
                self.assertEqual(metrika_capture.text_identifiers(text), {})
        # The first valid line of each kind counts.
        self.assertEqual(
            metrika_capture.text_identifiers(
                f"ClientID: 12ab\nClientID: {CLIENT_ID}\nClientID: {OTHER_CLIENT_ID}"
            ),
            {"metrika_client_id": CLIENT_ID},
        )

    def test_an_identifier_already_there_is_never_overwritten(self):
        lead = self.env["crm.lead"].create({"name": "Sofa", "metrika_client_id": CLIENT_ID})
        metrika_capture.fill_missing(
            lead, {"metrika_client_id": OTHER_CLIENT_ID, "metrika_yclid": YCLID}
        )
        self.assertRecordValues(lead, [{"metrika_client_id": CLIENT_ID, "metrika_yclid": YCLID}])

    def test_no_request_no_capture(self):
        # Model code runs from cron, RPC and tests too, outside any web request.
        self.assertEqual(metrika_capture.request_identifiers(None), {})
