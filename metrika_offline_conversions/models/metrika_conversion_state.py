"""The state transitions of conversions on their way to Metrica and back, as writes: a batch
costs the same queries whatever its size (Odoo writes a recordset's equal values in one UPDATE).
"""

from collections import defaultdict
from datetime import timedelta

from odoo import Command, fields, models
from odoo.tools import SQL

from .. import const


class MetrikaConversion(models.Model):
    _inherit = "metrika.conversion"

    def _metrika_write_attempted(self, values):
        """``write(values)``, and count one more attempt on each row (one write per number of
        attempts the rows have had: a batch's rows mostly have the same)."""
        by_count = defaultdict(list)
        for conversion in self:
            by_count[conversion.attempt_count].append(conversion.id)
        for count, ids in by_count.items():
            self.browse(ids).write({**values, "attempt_count": count + 1})

    def _metrika_mark_sending(self, upload):
        """Part of ``upload``, committed before its request: no other run takes them."""
        self.write(
            {
                "state": const.STATE_SENDING,
                "upload_id": upload.id,
                "upload_ids": [Command.link(upload.id)],
                "metrika_result": False,
                "metrika_result_detail": False,
            }
        )

    def _metrika_mark_sent(self, result, detail=None):
        self._metrika_write_attempted(
            {
                "state": const.STATE_SENT,
                "sent_at": fields.Datetime.now(),
                "failure_reason": False,
                "last_error": False,
                "metrika_result": result,
                "metrika_result_detail": detail,
            }
        )

    def _metrika_mark_result(self, result, detail):
        """What Metrica did with the file of these sent conversions, once it says."""
        self.write({"metrika_result": result, "metrika_result_detail": detail})

    def _metrika_mark_final(self, state, reason, message, attempted=False):
        """Settle rows that will not be retried by themselves; ``message=None`` keeps theirs."""
        values = {"state": state, "failure_reason": reason, "upload_id": False}
        if message is not None:
            values["last_error"] = message
        if attempted:
            self._metrika_write_attempted(values)
        else:
            self.write(values)
        if state == const.STATE_ERROR:
            self._metrika_note_window()

    def _metrika_mark_retry(self, reason, message, when):
        """A failed attempt: back to the queue until ``when``."""
        self._metrika_write_attempted(
            {
                "state": const.STATE_PENDING,
                "upload_id": False,
                "failure_reason": reason,
                "last_error": message,
                "next_attempt_at": when,
            }
        )
        self._metrika_note_window()

    def _metrika_mark_waiting(self, reason, message, hours=0):
        """Not the rows' fault (settings, access): they wait, attempts untouched, until an
        administrator fixes it (the fix wakes them) or ``hours`` have passed."""
        values = {
            "state": const.STATE_PENDING,
            "upload_id": False,
            "failure_reason": reason,
            "last_error": message,
        }
        if hours:
            values["next_attempt_at"] = fields.Datetime.now() + timedelta(hours=hours)
        self.write(values)
        self._metrika_note_window()

    def _metrika_mark_waiting_on_upload(self, reason, message):
        """Their upload's answer was lost: they stay with it until Metrica says whether it
        stored the file."""
        self.write({"failure_reason": reason, "last_error": message})

    def _metrika_mark_pending_again(self):
        """Their upload was not stored (or is harmless to repeat): they go out again now."""
        self.write(
            {
                "state": const.STATE_PENDING,
                "upload_id": False,
                "next_attempt_at": fields.Datetime.now(),
            }
        )

    def _metrika_note_goal(self, goals):
        """The goal each goal-based conversion is sent with (a goal hit is one per goal)."""
        for event, goal in goals.items():
            self.filtered(lambda c, event=event: c.event == event).write({"metrika_goal": goal})

    def _metrika_note_window(self):
        """Until when Metrica takes each of these rows, after the rules in const.py."""
        if not self:
            return
        # One statement for the batch, from the rows' own dates as the ORM last wrote them.
        self.flush_model()
        self.env.cr.execute(
            SQL(
                """UPDATE metrika_conversion AS conversion
                      SET window_closes_at = CASE
                          WHEN conversion.transport = %(offline)s
                              THEN conversion.event_date + %(visit)s * INTERVAL '1 day'
                          WHEN EXISTS (
                              SELECT 1 FROM metrika_conversion sent
                               WHERE sent.metrika_order_id = conversion.metrika_order_id
                                 AND sent.sent_at IS NOT NULL)
                              THEN conversion.order_create_date + %(update)s * INTERVAL '1 day'
                          ELSE conversion.order_create_date + %(link)s * INTERVAL '1 day'
                      END
                    WHERE conversion.id = ANY(%(ids)s)""",
                offline=const.TRANSPORT_OFFLINE,
                visit=const.OFFLINE_VISIT_WINDOW_DAYS,
                update=const.CRM_LINKED_ORDER_UPDATE_DAYS,
                link=const.CRM_NEW_ORDER_LINK_DAYS,
                ids=self.ids,
            )
        )
        self.invalidate_recordset(["window_closes_at"])
