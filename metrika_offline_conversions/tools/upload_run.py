"""What one call of the upload cron does; the sending itself is left to one sender per upload
method (``senders``).

A call of the cron (``UploadRun.run``):

1. settles the uploads left open by a worker that died (killed, restarted, cut off by the cron
   time limit or a lost database connection) or whose answer was lost: goal-based ones are looked
   up in Metrica by their reference before anything is sent again; detailed CRM orders are
   looked up in Metrica's upload history; CRM orders not found are sent again, which ``SAVE``
   with stable order ids makes harmless;
2. polls goal-based uploads until Metrica has processed them;
3. sends one batch: the upload (its file, its reference, its rows marked as being sent) is
   committed before the request, and the outcome after the answer. While the request runs, the
   worker holds a row lock on the upload, so no other worker settles it under its feet.
   A file an administrator released from a dry run ("Send for real") goes first, by the same
   two phases, exactly as it was kept; in a company's dry run, the batch's file is kept on its
   upload instead of sent (its rows wait, kept, for an administrator).

Odoo's scheduler calls the cron again while its progress report says work is left
(``odoo_compat.report_cron_progress``), and commits between calls. Everything Metrica or the
settings can cause is recorded on the rows and uploads; nothing here raises for it.
"""

import logging
import time
from datetime import timedelta

from odoo import fields
from odoo.tools import SQL

from .. import const
from ..metrika_core import errors as metrika_errors
from . import metrika_messages, odoo_compat
from .senders import SENDERS

_logger = logging.getLogger(__name__)

# Goal-based uploads polled per cron call: each is one GET.
POLL_BATCH = 50


def retry_delay(attempt, error=None):
    """How long to wait after the ``attempt``-th failed attempt (1-based), in seconds."""
    schedule = const.RETRY_DELAY_MINUTES
    minutes = schedule[min(max(attempt, 1), len(schedule)) - 1]
    wait = minutes * 60
    # Metrica's own word (Retry-After, a daily quota) when it asks for longer.
    asked = getattr(error, "retry_after", None)
    if asked:
        wait = max(wait, int(asked) + 1)
    return wait


def commit(env):
    """Commit the upload path's own transaction step.

    The upload is made durable before its request and its outcome after the answer: that is
    what lets a dead worker's upload be found again. Under Odoo's test runner the test owns the
    transaction, so nothing is committed there.
    """
    if not odoo_compat.test_owns_transaction(env.cr):
        env.cr.commit()  # pylint: disable=invalid-commit


class UploadRun:
    """What one call of the upload cron does (see the module docstring)."""

    def __init__(self, env):
        self.env = env
        self.Conversion = env["metrika.conversion"].sudo()
        self.Upload = env["metrika.upload"].sudo()

    def run(self):
        """Settle, poll, send one batch; returns the number of conversions and uploads handled."""
        done = self._settle_open_uploads()
        done += self._poll_uploads()
        sent = self._send_released_upload()
        return done + (sent or self._send_one_batch())

    # -- clients -------------------------------------------------------------------------------

    def _client(self, company, rows=None):
        """The company's client, or None with the rows told why (settings to complete)."""
        settings_message = self.env._(
            "Set the Metrica counter ID and OAuth token in Settings to send conversions."
        )
        if not company._metrika_is_configured():
            if rows:
                rows._metrika_mark_waiting(const.REASON_SETTINGS, settings_message, hours=1)
            return None
        try:
            return company._metrika_client()
        except metrika_errors.MetrikaConfigError as err:
            # e.g. a token pasted with a space or a line break inside; never echo the value.
            _logger.warning("Metrica settings of company %s are unusable: %s", company.id, err)
            if rows:
                rows._metrika_mark_waiting(
                    const.REASON_SETTINGS,
                    self.env._(
                        "The Metrica settings cannot be used (%(reason)s). %(hint)s",
                        reason=err,
                        hint=settings_message,
                    ),
                    hours=1,
                )
            return None

    # -- 1. open uploads -----------------------------------------------------------------------

    def _settle_open_uploads(self):
        uploads = self._lock_uploads(
            SQL(
                "state IN %s AND settle_after <= %s",
                const.UPLOAD_OPEN_STATES,
                fields.Datetime.now(),
            ),
            limit=200,
        )
        return self._for_each_group(
            uploads, lambda sender, group: sender.settle(group), self._settle_later
        )

    def _settle_later(self, company, uploads, error):
        when = self._after_error(company, uploads, error, "open uploads cannot be checked now")
        uploads.write({"settle_after": when})
        self._trigger(when)

    # -- 2. polling ----------------------------------------------------------------------------

    def _poll_uploads(self):
        uploads = self._lock_uploads(
            SQL("next_poll_at <= %s", fields.Datetime.now()), limit=POLL_BATCH
        )
        return self._for_each_group(
            uploads, lambda sender, group: sender.poll(group), self._poll_later
        )

    def _poll_later(self, company, uploads, error):
        when = self._after_error(company, uploads, error, "status of uploads unavailable")
        uploads.write({"next_poll_at": when})

    # -- open uploads and polling alike --------------------------------------------------------

    def _for_each_group(self, uploads, action, on_error):
        """``action(sender, group)`` for each company × method group of ``uploads``, with the
        company's client; a Metrica error goes to ``on_error(company, group, error)``.

        Groups of a paused company, or of one that does not send or cannot connect, wait as they
        are. What was done is committed; returns the number of uploads handled.
        """
        done = 0
        for (company, method), group in _grouped(uploads):
            client = None if company.metrika_paused else self._client(company)
            if client is None:
                continue
            with client:
                try:
                    done += action(SENDERS[method](self.env, company, client), group)
                except metrika_errors.MetrikaError as error:
                    on_error(company, group, error)
        if uploads:
            commit(self.env)
        return done

    def _after_error(self, company, uploads, error, what):
        """Log ``error``, which kept ``uploads`` of ``company`` from Metrica, and pause the company
        if the error calls for it; returns when to ask Metrica again."""
        _logger.warning(
            "Metrica: %s for company %s: %s (HTTP %s)",
            what,
            company.id,
            type(error).__name__,
            error.status,
        )
        if error.pauses_sending:
            self._pause(company, error, uploads[:1])
        return fields.Datetime.now() + timedelta(seconds=retry_delay(1, error))

    # -- 3. one batch --------------------------------------------------------------------------

    def _send_one_batch(self):
        for company, method in self.Conversion._metrika_due_groups():
            batch = self.Conversion._metrika_lock_due_batch(company, method)
            if batch:
                return self._send(company, method, batch)
        return 0

    def _send(self, company, method, batch):
        client = self._client(company, batch)
        if client is None:
            return len(batch)
        with client:
            sender = SENDERS[method](self.env, company, client)
            prepared = self._prepare(sender, batch)
            if prepared is None:
                # Every row of the batch is settled (skipped, refused or failed): nothing goes.
                commit(self.env)
                return len(batch)
            upload = self._new_upload(company, method, prepared.row_count)
            sender.attach_files(upload, prepared)
            if company.metrika_dry_run:
                self._keep(upload, prepared)
                commit(self.env)
                return len(batch)
            self._send_prepared(sender, upload, prepared)
        return len(batch)

    def _send_prepared(self, sender, upload, prepared):
        """The two phases of sending ``upload``, whose file is attached already."""
        prepared.conversions._metrika_mark_sending(upload)
        # Phase one: the upload and its rows are durable before Metrica sees the file.
        commit(self.env)
        self._hold(upload)
        self._upload(sender, upload, prepared)
        # Phase two: the outcome.
        commit(self.env)

    # -- dry run -------------------------------------------------------------------------------

    def _keep(self, upload, prepared):
        """Dry run: the file stays on its upload, its rows with it, and nothing is sent."""
        upload.write(
            {
                "state": const.UPLOAD_KEPT,
                "settle_after": False,
                "result_summary": self.env._(
                    "Dry run: %s rows built and checked, kept here and not sent.",
                    prepared.row_count,
                ),
            }
        )
        prepared.conversions._metrika_mark_sending(upload, state=const.STATE_KEPT)
        _logger.info(
            "Metrica dry run: upload %s of company %s kept with %s rows, not sent",
            upload.id,
            upload.company_id.id,
            prepared.row_count,
        )

    def _send_released_upload(self):
        """Send one kept file an administrator released: the kept bytes, once, by the two
        phases of any upload (its state moves from released to sending in phase one, so
        another run never takes it again)."""
        uploads = self._lock_uploads(
            SQL(
                "state = %s AND company_id IN (SELECT id FROM res_company "
                "WHERE metrika_enabled AND NOT COALESCE(metrika_paused, FALSE))",
                const.UPLOAD_RELEASED,
            ),
            limit=1,
        )
        if not uploads:
            return 0
        upload = uploads
        company = upload.company_id
        rows = upload._metrika_kept_rows()
        client = self._client(company)
        if client is None:
            return 0
        with client:
            sender = SENDERS[upload.transport](self.env, company, client)
            prepared = sender.kept_file(upload, rows)
            upload.write(
                {
                    "state": const.UPLOAD_SENDING,
                    "result_summary": False,
                    "settle_after": fields.Datetime.now()
                    + timedelta(seconds=const.IN_FLIGHT_GRACE_SECONDS),
                }
            )
            self._send_prepared(sender, upload, prepared)
        # Released files are not counted among the rows due: the next one wakes the cron itself.
        self.env.cr.execute(
            SQL("SELECT 1 FROM metrika_upload WHERE state = %s LIMIT 1", const.UPLOAD_RELEASED)
        )
        if self.env.cr.fetchone():
            self._trigger(fields.Datetime.now())
        return max(len(rows), 1)

    def _prepare(self, sender, batch):
        """The batch's file, or None when nothing goes; a failure settles the whole batch."""
        company, method = sender.company, sender.method
        try:
            with self.env.cr.savepoint():
                return sender.prepare(batch)
        except metrika_errors.MetrikaError as error:
            # Reading the counter (time zone) failed before any file was sent: log the
            # attempt, so that the failure is visible and an alert has a record to live on.
            upload = self._new_upload(company, method, row_count=0)
            upload.conversion_ids = batch
            upload._metrika_record_failure(error, sender.client.last_elapsed or 0.0)
            self._record_failure(company, method, upload, batch, error)
        except Exception as err:  # noqa: BLE001 - one broken batch must not stop the queue
            _logger.exception(
                "Metrica: a batch of %s conversions of company %s failed unexpectedly",
                len(batch),
                company.id,
            )
            batch._metrika_mark_final(
                const.STATE_ERROR,
                const.REASON_UNEXPECTED,
                self.env._(
                    "Sending failed on an unexpected error (%s); see the server log, then resend.",
                    type(err).__name__,
                ),
            )
        return None

    def _upload(self, sender, upload, prepared):
        """The one request, and what its answer or its failure means for the upload and rows."""
        started = time.monotonic()
        try:
            answer = sender.send(upload, prepared)
        except metrika_errors.MetrikaError as error:
            # A file Metrica may have stored is looked up before its rows go again, unless
            # sending it again is harmless.
            maybe_stored = sender.lost_answer_needs_lookup(upload, error)
            upload._metrika_record_failure(
                error,
                time.monotonic() - started,
                state=const.UPLOAD_UNCONFIRMED if maybe_stored else const.UPLOAD_FAILED,
            )
            self._record_failure(sender.company, sender.method, upload, prepared.conversions, error)
            return
        sender.record_success(upload, prepared, answer, time.monotonic() - started)
        _logger.info(
            "Metrica upload %s for company %s: %s conversions sent in %.2fs",
            upload.id,
            sender.company.id,
            len(prepared.conversions),
            time.monotonic() - started,
        )

    def _new_upload(self, company, method, row_count):
        """The log entry of a file; its conversions are linked by the caller. (No "created"
        note in its chatter: the sync log has one entry per file already.)"""
        return self.Upload.with_context(mail_create_nolog=True).create(
            {
                "company_id": company.id,
                "transport": method,
                "row_count": row_count,
                "comment": self.Upload._metrika_new_reference(),
                "settle_after": fields.Datetime.now()
                + timedelta(seconds=const.IN_FLIGHT_GRACE_SECONDS),
            }
        )

    def _hold(self, upload):
        """Lock the upload while its request runs: a worker that settles open uploads skips it
        (SKIP LOCKED) for as long as this one is alive."""
        self.env.cr.execute(
            SQL("SELECT id FROM metrika_upload WHERE id = %s FOR UPDATE", upload.id)
        )

    def _record_failure(self, company, method, upload, rows, error):
        """Settle ``rows`` after ``error`` kept their file from Metrica."""
        message = metrika_messages.error_text(self.env, error)
        reason = metrika_messages.error_reason(error)
        _logger.warning(
            "Metrica upload %s for company %s failed: %s (HTTP %s, retryable %s)",
            upload.id,
            company.id,
            type(error).__name__,
            error.status,
            error.retryable,
        )
        if error.pauses_sending:
            # Not the rows' fault: they wait, untouched, until an administrator fixes it.
            self._pause(company, error, upload)
            rows._metrika_mark_waiting(reason, message)
            # The company's other rows wait for the same fix, and say so.
            self.Conversion._metrika_postpone_due(
                company, method, reason, message, fields.Datetime.now()
            )
            return
        if not error.retryable:
            rows._metrika_mark_final(const.STATE_ERROR, reason, message, attempted=True)
            return
        if upload.state == const.UPLOAD_UNCONFIRMED:
            # Its rows stay with it until Metrica says whether it stored the file.
            when = fields.Datetime.now() + timedelta(seconds=retry_delay(1, error))
            upload.settle_after = when
            rows._metrika_mark_waiting_on_upload(reason, message)
            self._trigger(when)
            return
        attempt = max(rows.mapped("attempt_count") or [0]) + 1
        when = fields.Datetime.now() + timedelta(seconds=retry_delay(attempt, error))
        rows._metrika_mark_retry(reason, message, when)
        # Metrica, the network or the quota is down for every request: the rest of the queue
        # waits as long, instead of being sent into the same wall by the next calls.
        self.Conversion._metrika_postpone_due(company, method, reason, message, when)
        self._trigger(when)

    def _pause(self, company, error, upload):
        message = metrika_messages.error_text(self.env, error)
        if not company.metrika_paused:
            company._metrika_pause(message)
        upload._metrika_alert_administrators(company, message)

    # -- helpers -------------------------------------------------------------------------------

    def _lock_uploads(self, condition, limit):
        """Lock and return the uploads matching ``condition``; those another worker holds (it is
        alive and on them) are skipped, not waited for."""
        rows = self.Conversion._metrika_execute_locking(
            SQL(
                "SELECT id FROM metrika_upload WHERE %s "
                "ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED",
                condition,
                limit,
            )
        )
        return self.Upload.browse(row_id for (row_id,) in rows)

    def _trigger(self, when):
        self.Conversion._metrika_trigger_at(when)


def _grouped(uploads):
    groups = {}
    for upload in uploads:
        key = (upload.company_id, upload.transport)
        groups[key] = groups.get(key, upload.browse()) | upload
    return groups.items()
