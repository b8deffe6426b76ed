"""The state transitions of conversions on their way to Metrica and back.

Each is one UPDATE of the whole batch, whatever its size: Odoo's ``write()`` would flush a
recordset in UPDATEs of 100 rows, and the upload cron's queries per batch must not grow with
the batch (benchmarks/bench_drain_queue.py checks it).
"""

from datetime import timedelta

from odoo import fields, models
from odoo.tools import SQL

from .. import const


class MetrikaConversion(models.Model):
    _inherit = "metrika.conversion"

    def _metrika_set(self, values, attempted=False):
        """Set ``values`` (field name → value) on every row of ``self`` in one UPDATE;
        ``attempted`` counts one more attempt on each row."""
        if not self:
            return
        # The rows' pending ORM writes first: the UPDATE must not be overwritten by them.
        self.flush_recordset()
        assignments = [
            SQL("%s = %s", SQL.identifier(name), None if value is False else value)
            for name, value in values.items()
        ]
        if attempted:
            assignments.append(SQL("attempt_count = COALESCE(attempt_count, 0) + 1"))
        self.env.cr.execute(
            SQL(
                "UPDATE metrika_conversion SET %s, write_date = %s, write_uid = %s "
                "WHERE id = ANY(%s)",
                SQL(", ").join(assignments),
                fields.Datetime.now(),
                self.env.uid,
                self.ids,
            )
        )
        self.invalidate_recordset([*values, "attempt_count", "write_date", "write_uid"])

    def _metrika_mark_sending(self, upload, state=const.STATE_SENDING):
        """Part of ``upload``, committed before its request: no other run takes them. One
        statement marks them and lists them among the upload's conversions. (``state`` is
        ``STATE_KEPT`` for the rows of a dry run's file, kept instead of sent.)"""
        if not self:
            return
        self.flush_recordset()
        self.env.cr.execute(
            SQL(
                """WITH marked AS (
                       UPDATE metrika_conversion
                          SET state = %(sending)s, upload_id = %(upload)s,
                              metrika_result = NULL, metrika_result_detail = NULL,
                              write_date = %(now)s, write_uid = %(uid)s
                        WHERE id = ANY(%(ids)s)
                    RETURNING id)
                   INSERT INTO metrika_conversion_metrika_upload_rel (upload_id, conversion_id)
                   SELECT %(upload)s, id FROM marked
                   ON CONFLICT DO NOTHING""",
                sending=state,
                upload=upload.id,
                now=fields.Datetime.now(),
                uid=self.env.uid,
                ids=self.ids,
            )
        )
        self.invalidate_recordset()
        upload.invalidate_recordset(["conversion_ids"])

    def _metrika_mark_sent(self, result, detail=None):
        self._metrika_set(
            {
                "state": const.STATE_SENT,
                "sent_at": fields.Datetime.now(),
                "failure_reason": False,
                "last_error": False,
                "metrika_result": result,
                "metrika_result_detail": detail,
            },
            attempted=True,
        )

    def _metrika_mark_result(self, result, detail):
        """What Metrica did with the file of these sent conversions, once it says."""
        self._metrika_set({"metrika_result": result, "metrika_result_detail": detail})

    def _metrika_mark_final(self, state, reason, message, attempted=False):
        """Settle rows that will not be retried by themselves; ``message=None`` keeps theirs."""
        values = {"state": state, "failure_reason": reason, "upload_id": False}
        if message is not None:
            values["last_error"] = message
        self._metrika_set(values, attempted=attempted)
        if state == const.STATE_ERROR:
            self._metrika_note_window()

    def _metrika_mark_retry(self, reason, message, when):
        """A failed attempt: back to the queue until ``when``."""
        self._metrika_set(
            {
                "state": const.STATE_PENDING,
                "upload_id": False,
                "failure_reason": reason,
                "last_error": message,
                "next_attempt_at": when,
            },
            attempted=True,
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
        self._metrika_set(values)
        self._metrika_note_window()

    def _metrika_mark_waiting_on_upload(self, reason, message):
        """Their upload's answer was lost: they stay with it until Metrica says whether it
        stored the file."""
        self._metrika_set({"failure_reason": reason, "last_error": message})

    def _metrika_mark_pending_again(self):
        """Their upload was not stored (or is harmless to repeat): they go out again now."""
        self._metrika_set(
            {
                "state": const.STATE_PENDING,
                "upload_id": False,
                "next_attempt_at": fields.Datetime.now(),
            }
        )

    def _metrika_note_goal(self, goals):
        """The goal each goal-based conversion is sent with (a goal hit is one per goal)."""
        for event, goal in goals.items():
            rows = self.filtered(lambda c, event=event: c.event == event)
            rows._metrika_set({"metrika_goal": goal})

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
