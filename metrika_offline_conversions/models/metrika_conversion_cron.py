"""The upload cron: which companies and upload methods have rows due, the batch a call takes
(locked, so that two workers never send the same row), and when to wake up next. What one call
sends is tools/upload_run.py's UploadRun.
"""

import logging
from datetime import timedelta

import psycopg2.errors

from odoo import api, fields, models
from odoo.tools import SQL

from .. import const
from ..tools import odoo_compat
from ..tools.upload_run import UploadRun

_logger = logging.getLogger(__name__)


class MetrikaConversion(models.Model):
    _inherit = "metrika.conversion"

    @api.model
    def _metrika_wake_companies(self, companies):
        """Rows of ``companies`` that wait for their settings or access become due now.

        For ``res.company.write`` when the connection settings change: without it, rows
        postponed for incomplete settings wait up to an hour after the fix.
        """
        if not companies:
            return
        now = fields.Datetime.now()
        self.env.flush_all()
        self.env.cr.execute(
            SQL(
                "UPDATE metrika_conversion SET next_attempt_at = %s "
                "WHERE company_id = ANY(%s) AND state = %s "
                "AND failure_reason IN %s AND next_attempt_at > %s",
                now,
                companies.ids,
                const.STATE_PENDING,
                const.WAITING_FOR_ADMIN_REASONS,
                now,
            )
        )
        if self.env.cr.rowcount:
            self.invalidate_model(["next_attempt_at"])
            self._metrika_trigger_upload()

    @api.model
    def _cron_upload(self):
        """One step of the upload: settle open uploads, poll, send one batch (UploadRun).

        Odoo's scheduler calls it again at once while the progress report says work is left
        (committing after each call: ten calls a run on 18.0; on 19.0 at least ten, and more
        while the run is under ten seconds), and the cron is triggered for the next retry or
        check that falls due.
        """
        done = UploadRun(self.env).run()
        # The scheduler only needs to know whether to call again: a large queue is not counted
        # whole after every batch.
        remaining = self._metrika_due_count(limit=const.MAX_BATCH_SIZE) if done else 0
        odoo_compat.report_cron_progress(self.env, done, remaining)
        if not remaining:
            # The last call of the run: wake the cron for what falls due later.
            self._metrika_schedule_next()
        return done

    @api.model
    def _metrika_schedule_next(self):
        """Trigger the cron when the earliest retry, settlement or status check falls due."""
        now = fields.Datetime.now()
        self.env.flush_all()
        self.env.cr.execute(
            SQL(
                """SELECT MIN(at) FROM (
                       SELECT MIN(next_attempt_at) AS at FROM metrika_conversion
                        WHERE state = %(pending)s AND next_attempt_at > %(now)s
                       UNION ALL
                       SELECT MIN(settle_after) FROM metrika_upload
                        WHERE state IN %(open)s AND settle_after > %(now)s
                       UNION ALL
                       SELECT MIN(next_poll_at) FROM metrika_upload
                        WHERE next_poll_at > %(now)s) AS due""",
                now=now,
                pending=const.STATE_PENDING,
                open=const.UPLOAD_OPEN_STATES,
            )
        )
        when = self.env.cr.fetchone()[0]
        if when:
            self._metrika_trigger_at(when)

    def _metrika_due_where(self):
        return SQL(
            "conversion.state = %s AND conversion.next_attempt_at <= %s "
            "AND company.metrika_enabled AND NOT COALESCE(company.metrika_paused, FALSE)",
            const.STATE_PENDING,
            fields.Datetime.now(),
        )

    @api.model
    def _metrika_due_groups(self):
        """(company, upload method) of the rows due now, the group whose oldest due row has
        waited longest first: a large backlog of one company does not hold up the rows another
        company queued before most of that backlog."""
        self.env.flush_all()
        # One probe per company and upload method (the due condition leaves out the companies
        # that do not send), each stopping at its first due row on the due index: a large
        # queue is not read whole on every call of the cron.
        # (LATERAL ... LIMIT 1, because PostgreSQL plans an EXISTS on a large queue as a hash
        # of every pending row; ordered as the index is, so that rows waiting for a later retry
        # are not read either.)
        self.env.cr.execute(
            SQL(
                "SELECT company.id, method.transport "
                "FROM res_company company CROSS JOIN (VALUES %s) AS method(transport) "
                "CROSS JOIN LATERAL (SELECT conversion.next_attempt_at "
                "FROM metrika_conversion conversion "
                "WHERE conversion.company_id = company.id "
                "AND conversion.transport = method.transport AND %s "
                "ORDER BY conversion.next_attempt_at LIMIT 1) AS due "
                "ORDER BY due.next_attempt_at, 1, 2",
                SQL(", ").join(SQL("(%s)", method) for method, _label in const.TRANSPORT_SELECTION),
                self._metrika_due_where(),
            )
        )
        companies = self.env["res.company"].sudo()
        return [
            (companies.browse(company_id), transport)
            for company_id, transport in self.env.cr.fetchall()
        ]

    @api.model
    def _metrika_due_count(self, limit=None):
        """How many conversions are due now (counting no further than ``limit``)."""
        self.env.flush_all()
        self.env.cr.execute(
            SQL(
                "SELECT COUNT(*) FROM (SELECT 1 FROM metrika_conversion conversion "
                "JOIN res_company company ON company.id = conversion.company_id WHERE %s%s) due",
                self._metrika_due_where(),
                SQL(" LIMIT %s", limit) if limit else SQL(),
            )
        )
        return self.env.cr.fetchone()[0]

    @api.model
    def _metrika_lock_due_batch(self, company, transport):
        """Take and lock the next batch; rows another worker holds are skipped, not waited for.

        The rows due first go first, in the order of the due index: ordered by id, PostgreSQL
        walked the primary key through every row already sent when its statistics were older
        than the drain of a large queue (a batch took 70 ms instead of 2 at 100,000 rows).
        """
        rows = self._metrika_execute_locking(
            SQL(
                "SELECT id FROM metrika_conversion "
                "WHERE company_id = %s AND transport = %s AND state = %s "
                "AND next_attempt_at <= %s "
                "ORDER BY next_attempt_at, id LIMIT %s FOR UPDATE SKIP LOCKED",
                company.id,
                transport,
                const.STATE_PENDING,
                fields.Datetime.now(),
                company.metrika_batch_size or const.DEFAULT_BATCH_SIZE,
            )
        )
        return self.sudo().browse(row_id for (row_id,) in rows)

    @api.model
    def _metrika_execute_locking(self, query):
        """Run a row-locking query; ``[]`` when a concurrent run changed those rows meanwhile.

        Odoo's transactions are REPEATABLE READ: a row that another worker updated and committed
        after this transaction's snapshot cannot be locked here ("could not serialize access").
        That worker has settled the row, so there is nothing for us to take now; the next call
        (a fresh snapshot) will see the queue as it is.
        """
        self.env.flush_all()
        try:
            with self.env.cr.savepoint(flush=False):
                self.env.cr.execute(query, log_exceptions=False)
                return self.env.cr.fetchall()
        except (psycopg2.errors.SerializationFailure, psycopg2.errors.LockNotAvailable):
            _logger.info(
                "Metrica: conversions were changed by a concurrent upload; left to the next run"
            )
            return []

    @api.model
    def _metrika_postpone_due(self, company, transport, reason, message, when):
        """The rest of the company's due rows wait until ``when`` too (Metrica, the network or
        the quota refuses every request for now); the failed batch already waits."""
        rows = self._metrika_execute_locking(
            SQL(
                "SELECT id FROM metrika_conversion "
                "WHERE company_id = %s AND transport = %s AND state = %s "
                "AND next_attempt_at <= %s FOR UPDATE SKIP LOCKED",
                company.id,
                transport,
                const.STATE_PENDING,
                fields.Datetime.now(),
            )
        )
        waiting = self.sudo().browse(row_id for (row_id,) in rows)
        waiting._metrika_set(
            {"failure_reason": reason, "last_error": message, "next_attempt_at": when}
        )
        waiting._metrika_note_window()

    @api.model
    def _metrika_trigger_at(self, when):
        """Wake the cron at ``when`` (a retry or a check that falls due), unless a trigger for
        about that time is already waiting (Odoo's triggers are precise to a minute anyway)."""
        cron = self.env.ref(const.CRON_XMLID, raise_if_not_found=False)
        if not cron:
            return
        self.env.cr.execute(
            SQL(
                "SELECT 1 FROM ir_cron_trigger WHERE cron_id = %s AND call_at > %s "
                "AND call_at <= %s LIMIT 1",
                cron.id,
                max(fields.Datetime.now(), when - timedelta(seconds=30)),
                when,
            )
        )
        if not self.env.cr.fetchone():
            cron.sudo()._trigger(at=when)
