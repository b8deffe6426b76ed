"""Goal-based offline conversions: one goal hit per row, one file per identifier column."""

import logging
from datetime import timedelta

from odoo import fields

from ... import const
from ...metrika_core import errors as metrika_errors
from ...metrika_core import formats, outcomes, preflight
from .. import metrika_messages
from .base import PreparedFile, UploadSender, aware_utc, written_indexes

_logger = logging.getLogger(__name__)


class OfflineConversionsSender(UploadSender):
    """Goal-based offline conversions: one goal hit per row, one file per identifier column."""

    method = const.TRANSPORT_OFFLINE
    COLUMNS = ("ClientId", "Yclid")

    def no_identifier_message(self):
        return self.env._(metrika_messages.NO_CLIENT_ID_OR_YCLID)

    def _goals(self):
        company = self.company
        return {
            const.EVENT_IN_PROGRESS: company.metrika_goal_in_progress,
            const.EVENT_PAID: company.metrika_goal_paid,
            const.EVENT_CANCELLED: company.metrika_goal_cancelled,
        }

    def prepare(self, conversions):
        """One file per call: the column of the first row that can go; rows of the other column
        stay pending for the next call, which Odoo's scheduler makes at once."""
        goals = self._goals()
        limit = fields.Datetime.now() - timedelta(days=const.OFFLINE_VISIT_WINDOW_DAYS)
        skipped = {}  # reason → conversion ids, see SimpleOrdersSender.prepare
        items = {column: [] for column in self.COLUMNS}
        region = self.company._metrika_phone_region()
        for conversion, record in self._live_rows(conversions, skipped):
            reason = None
            if conversion.event_date and conversion.event_date < limit:
                reason = const.REASON_VISIT_WINDOW
            elif not goals.get(conversion.event):
                reason = const.REASON_NO_GOAL
            else:
                identifiers = record._metrika_identifiers(phone_region=region)
                if identifiers["client_ids"]:
                    column, identifier = "ClientId", identifiers["client_ids"][0]
                elif identifiers["yclids"]:
                    column, identifier = "Yclid", identifiers["yclids"][0]
                else:
                    reason = const.REASON_NO_IDENTIFIER
            if reason:
                skipped.setdefault(reason, []).append(conversion.id)
                continue
            items[column].append(
                (conversion, self._offline_conversion(conversion, identifier, goals))
            )
        self._skip_by_reason(skipped)
        return self._first_file(items, goals)

    def _offline_conversion(self, conversion, identifier, goals):
        paid = conversion.event == const.EVENT_PAID
        return formats.OfflineConversion(
            identifier=identifier,
            target=goals[conversion.event],
            date_time=aware_utc(conversion.event_date),
            price=self._decimal_revenue(conversion) if paid else None,
            currency=conversion.currency_id.name if paid and conversion.revenue else None,
        )

    def _first_file(self, items, goals):
        """The file of the first column with rows Metrica would take; None when there is none."""
        for column in self.COLUMNS:
            pairs = self._preflight(preflight.offline_format(column), items[column])
            if not pairs:
                continue
            built = formats.build_offline_conversions_file([item for _c, item in pairs], column)
            self._mark_rejected(
                self.Conversion.browse(pairs[index][0].id for index in built.rejected),
                list(built.rejected.values()),
            )
            if built.data:
                accepted = self.Conversion.browse(
                    pairs[index][0].id for index in written_indexes(built, len(pairs))
                )
                accepted._metrika_note_goal(goals)
                return PreparedFile(built.data, accepted, built.row_count)
        return None

    def send(self, upload, prepared):
        return self.client.upload_offline_conversions(prepared.data, comment=upload.comment)

    def record_success(self, upload, prepared, answer, duration):
        now = fields.Datetime.now()
        upload._metrika_record_answer(answer, duration, const.UPLOAD_ACCEPTED)
        upload.write(
            {
                "next_poll_at": now + timedelta(minutes=const.POLL_INTERVAL_MINUTES),
                "poll_deadline": now + timedelta(hours=const.PROCESSING_DEADLINE_HOURS),
            }
        )
        self._record_counts(upload, prepared.conversions)

    def _record_counts(self, upload, rows):
        """What the answer's counts say of the rows: refused, accepted and being processed."""
        received = upload.source_quantity or upload.row_count
        accepted = upload.line_quantity if upload.line_quantity or upload.source_quantity else None
        if accepted == 0 and received:
            upload.write(
                {
                    "next_poll_at": False,
                    "result_summary": self.env._("Metrica refused every row of this file."),
                }
            )
            rows._metrika_mark_final(
                const.STATE_ERROR,
                const.REASON_REFUSED,
                self.env._(
                    "Metrica refused every row of its file (a goal, date or identifier it does "
                    "not accept); see the upload."
                ),
            )
            return
        if accepted is not None and accepted < received:
            upload.result_summary = self.env._(
                "%(refused)s of %(received)s rows refused by Metrica; the others are being "
                "processed.",
                refused=received - accepted,
                received=received,
            )
            rows._metrika_mark_sent(
                const.RESULT_PARTLY_REFUSED,
                self.env._(
                    "Metrica refused %(refused)s of the %(received)s rows of this file (it does "
                    "not say which).",
                    refused=received - accepted,
                    received=received,
                ),
            )
            return
        upload.result_summary = self.env._(
            "%s rows accepted; Metrica is processing them.", received
        )
        rows._metrika_mark_sent(const.RESULT_PROCESSING)

    def settle(self, uploads):
        found = self.client.find_offline_uploadings([upload.comment for upload in uploads])
        for upload in uploads:
            uploading = found.get(upload.comment)
            rows = upload._metrika_open_rows()
            if uploading:
                _logger.info("Metrica upload %s was stored although its answer was lost", upload.id)
                self.record_success(
                    upload, PreparedFile(None, rows, upload.row_count), uploading, upload.duration
                )
                continue
            self._mark_lost(
                upload,
                rows,
                self.env._(
                    "Metrica did not store this file (its reference is not among the counter's "
                    "uploads); its rows are sent again."
                ),
            )
        return len(uploads)

    def poll(self, uploads):
        now = fields.Datetime.now()
        for upload in uploads:
            rows = upload.conversion_ids.filtered(lambda c, u=upload: c.upload_id == u)
            try:
                uploading = self.client.get_offline_uploading(int(upload.uploading_id))
            except metrika_errors.MetrikaSettingsError as error:
                if error.status != 404:
                    raise
                # Metrica no longer knows this upload (the counter itself answered the upload,
                # so it is the upload that is gone): stop asking, say so.
                self._record_unconfirmed(
                    upload,
                    rows,
                    self.env._(
                        "Metrica no longer knows this upload (HTTP 404); whether its rows were "
                        "linked is unknown."
                    ),
                )
                continue
            outcome = outcomes.offline_uploading_outcome(uploading)
            upload.write(upload._metrika_uploading_counts(uploading))
            if outcome.is_final:
                self._record_outcome(upload, rows, outcome)
            elif upload.poll_deadline and now >= upload.poll_deadline:
                self._record_unconfirmed(
                    upload,
                    rows,
                    self.env._(
                        "Metrica had not processed this file %(hours)s hours after it was sent "
                        "(status %(status)s); whether its rows were linked is unknown.",
                        hours=const.PROCESSING_DEADLINE_HOURS,
                        status=outcome.status,
                    ),
                )
            else:
                upload.next_poll_at = now + timedelta(minutes=const.POLL_INTERVAL_MINUTES)
        return len(uploads)

    def _record_outcome(self, upload, rows, outcome):
        linked = outcome.linked_quantity or 0
        accepted = outcome.line_quantity or 0
        reasons = []
        if outcome.user_not_found_quantity:
            reasons.append(
                self.env._(
                    "%s ClientIDs or yclids unknown to Metrica (no visit within the window)",
                    outcome.user_not_found_quantity,
                )
            )
        if outcome.goal_not_found_quantity:
            reasons.append(
                self.env._("%s goals not found on the counter", outcome.goal_not_found_quantity)
            )
        why = "; ".join(reasons)
        if outcome.succeeded and accepted and linked >= accepted:
            state, result = const.UPLOAD_PROCESSED, const.RESULT_LINKED
            summary = self.env._("Processed: all %s rows linked to visits.", linked)
        elif outcome.succeeded and linked:
            state, result = const.UPLOAD_PROCESSED, const.RESULT_PARTLY_LINKED
            summary = self.env._(
                "Processed: %(linked)s of %(accepted)s rows linked to visits. %(why)s",
                linked=linked,
                accepted=accepted,
                why=why,
            )
        else:
            state, result = const.UPLOAD_NOT_LINKED, const.RESULT_NOT_LINKED
            summary = self.env._(
                "Metrica could not link these conversions to visits (%(status)s). %(why)s",
                status=outcome.status,
                why=why,
            )
        self._record_verdict(upload, rows, state, result, summary.strip())

    def _record_unconfirmed(self, upload, rows, summary):
        """Metrica will not say what became of ``upload``: it is no longer polled."""
        self._record_verdict(
            upload, rows, const.UPLOAD_PROCESSING_TIMEOUT, const.RESULT_UNCONFIRMED, summary
        )

    def _record_verdict(self, upload, rows, state, result, summary):
        """The last word on ``upload``: polling stops, and its rows show what Metrica did."""
        upload.write({"state": state, "next_poll_at": False, "result_summary": summary})
        rows._metrika_mark_result(result, upload.result_summary)
