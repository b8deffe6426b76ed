from odoo import api, models
from odoo.exceptions import UserError

from .. import const


class MailActivityType(models.Model):
    _inherit = "mail.activity.type"

    @api.ondelete(at_uninstall=False)
    def _unlink_except_metrika_settings_alert(self):
        # The upload cron alerts the administrators with this type and finds its alerts by it:
        # without it, a paused company could not alert anybody.
        alert_type = self.env.ref(const.SETTINGS_ALERT_ACTIVITY_TYPE, raise_if_not_found=False)
        if alert_type and alert_type in self:
            raise UserError(
                self.env._(
                    'The activity type "%s" is how Yandex Metrica alerts administrators that its '
                    "settings need fixing: it cannot be deleted.",
                    alert_type.name,
                )
            )
