"""Who may change a conversion, and how: managers through Resend and Cancel only."""

from odoo.exceptions import AccessError
from odoo.tests import new_test_user, tagged
from odoo.tools import mute_logger

from odoo.addons.metrika_offline_conversions import const

from .common import MetrikaCase


@tagged("post_install", "-at_install")
class TestConversionAccess(MetrikaCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.manager = new_test_user(
            cls.env,
            login="metrika_access_manager",
            groups="base.group_user,metrika_offline_conversions.group_metrika_manager",
        )

    def failed_conversion(self):
        conversion = self.conversions(self.make_order())
        conversion.sudo().write(
            {
                "state": const.STATE_ERROR,
                "failure_reason": "invalid_data",
                "last_error": "Rejected by Metrica",
                "attempt_count": 3,
            }
        )
        return conversion

    def test_manager_cannot_write_a_conversion_directly(self):
        conversion = self.failed_conversion()
        as_manager = conversion.with_user(self.manager)
        for values in ({"state": const.STATE_SENT}, {"attempt_count": 0}):
            with (
                self.subTest(values=values),
                mute_logger("odoo.addons.base.models.ir_model"),
                self.assertRaises(AccessError),
            ):
                as_manager.write(values)
        self.assertRecordValues(conversion, [{"state": const.STATE_ERROR, "attempt_count": 3}])

    def test_manager_resends_and_cancels_through_the_actions(self):
        conversion = self.failed_conversion()
        as_manager = conversion.with_user(self.manager)
        # The manager reads the log: read access is what the actions check.
        self.assertEqual(as_manager.state, const.STATE_ERROR)

        as_manager.action_resend()
        self.assertRecordValues(
            conversion,
            [
                {
                    "state": const.STATE_PENDING,
                    "failure_reason": False,
                    "last_error": False,
                    "attempt_count": 0,
                }
            ],
        )
        as_manager.action_cancel()
        self.assertEqual(conversion.state, const.STATE_CANCELLED)
