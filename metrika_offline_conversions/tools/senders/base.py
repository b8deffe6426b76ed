"""What every upload method's sender has: the interface the upload run calls, the file it
prepares, and the rows it leaves out, each with its reason."""

from datetime import datetime, timezone
from decimal import Decimal

from ... import const
from ...metrika_core import preflight
from .. import preflight_messages


class PreparedFile:
    """A file ready to send: its bytes, the conversions it carries and its number of rows."""

    def __init__(self, data, conversions, row_count):
        self.data = data
        self.conversions = conversions
        self.row_count = row_count


class UploadSender:
    """One upload method. The cron only calls ``prepare``, ``send``, ``record_success``,
    ``settle`` and ``poll``; subclasses say how each is done for their method."""

    method = None
    # Whether sending a file again after its answer was lost changes nothing at Metrica. If it
    # could count rows twice, a file Metrica may have stored is looked up (``settle``) before its
    # rows go again.
    resend_is_harmless = False

    def __init__(self, env, company, client):
        self.env = env
        self.company = company
        self.client = client
        self.Conversion = env["metrika.conversion"].sudo()

    def prepare(self, conversions):
        """Settle the rows that cannot go (with their reason) and build the file of the others;
        None when nothing is left to send."""
        raise NotImplementedError

    def attach_files(self, upload, prepared):
        """Keep the files of ``prepared`` on ``upload`` (committed before anything is sent)."""
        upload._metrika_attach_file(prepared.data)

    def kept_file(self, upload, rows):
        """The file a dry run kept on ``upload``, rebuilt to be sent for real: the kept bytes,
        carrying ``rows``."""
        return PreparedFile(upload.attachment_id.raw, rows, upload.row_count)

    def export_files(self, prepared):
        """``[(name, bytes)]``: the files of ``prepared`` as an export writes them, each named
        after its first column (a goal-based file's identifier column)."""
        return [(prepared.data.split(b",", 1)[0].decode(), prepared.data)]

    def lost_answer_needs_lookup(self, upload, error):
        """Whether ``error`` may have left Metrica with ``upload``'s file stored, so that it is
        looked up (``settle``) before its rows go again."""
        return not self.resend_is_harmless and error.retryable and error.maybe_accepted

    def send(self, upload, prepared):
        """The upload's request(s); returns Metrica's ``uploading`` answer to its file."""
        raise NotImplementedError

    def record_success(self, upload, prepared, answer, duration):
        raise NotImplementedError

    def settle(self, uploads):
        """Uploads whose worker or answer was lost: find out, or make it harmless, before their
        rows are sent again; returns the number of uploads settled."""
        raise NotImplementedError

    def poll(self, uploads):
        """Ask Metrica what became of accepted uploads (only where Metrica tells it); returns the
        number of uploads polled."""
        return 0

    def no_identifier_message(self):
        """Why a row is skipped when its record has none of the identifiers this method needs."""
        raise NotImplementedError

    # -- shared ------------------------------------------------------------------------------

    def _mark_lost(self, upload, rows, summary):
        """``upload`` is not at Metrica, or sending it again is harmless: its ``rows`` go again
        now, and ``summary`` says why."""
        upload.write({"state": const.UPLOAD_LOST, "settle_after": False, "result_summary": summary})
        rows._metrika_mark_pending_again()

    def _live_rows(self, conversions, skipped):
        """Each of ``conversions`` with its lead or order, all read at once with what their
        identifiers come from; the conversions whose record was deleted go to ``skipped``."""
        conversions.sale_order_id._metrika_fetch_identifiers()
        conversions.lead_id._metrika_fetch_identifiers()
        for conversion in conversions:
            record = conversion._metrika_record()
            if record:
                yield conversion, record
            else:
                # Nothing to fix and nothing to send: skipped, not an error.
                skipped.setdefault(const.REASON_RECORD_DELETED, []).append(conversion.id)

    def _skip_by_reason(self, skipped):
        """``skipped``: reason → ids of the conversions that do not go for that reason."""
        for reason, row_ids in skipped.items():
            self.Conversion.browse(row_ids)._metrika_mark_final(
                const.STATE_SKIPPED, reason, SKIP_MESSAGES[reason](self)
            )

    def _mark_rejected(self, rows, rejected):
        """Rows the file builder left out, each with the builder's reason."""
        for conversion, reason in zip(rows, rejected, strict=True):
            conversion._metrika_mark_final(
                const.STATE_ERROR,
                const.REASON_INVALID_DATA,
                self.env._("Metrica would refuse this conversion: %s", reason),
            )

    def _preflight(self, file_format, items):
        """The ``(rows, row)`` pairs of ``items`` that pass the preflight check; the rows of the
        others are kept back, each with the rule its row breaks."""
        passed, refused = preflight.check(file_format, items, datetime.now(timezone.utc))
        for rows, rule, detail in refused:
            rows._metrika_mark_final(
                const.STATE_ERROR,
                const.REASON_PREFLIGHT,
                preflight_messages.refusal_text(self.env, rule, detail),
            )
        return passed

    @staticmethod
    def _decimal_revenue(conversion):
        revenue = conversion.revenue
        if not revenue:
            return None
        currency = conversion.currency_id
        return Decimal(str(currency.round(revenue) if currency else revenue))


def aware_utc(value):
    return value.replace(tzinfo=timezone.utc)


SKIP_MESSAGES = {
    const.REASON_NO_IDENTIFIER: lambda sender: sender.no_identifier_message(),
    const.REASON_NO_GOAL: lambda sender: sender.env._(
        "No Metrica goal is set in Settings for this event."
    ),
    const.REASON_LINK_WINDOW: lambda sender: sender.env._(
        "Metrica links a new CRM order to a visit only within %s days of the order's creation "
        "date; this order was created earlier. To send long sales cycles in time, choose to send "
        "orders when they are created in Settings.",
        const.CRM_NEW_ORDER_LINK_DAYS,
    ),
    const.REASON_UPDATE_WINDOW: lambda sender: sender.env._(
        "Metrica changes an order it linked for %s days after the visit only; this order is older.",
        const.CRM_LINKED_ORDER_UPDATE_DAYS,
    ),
    const.REASON_VISIT_WINDOW: lambda sender: sender.env._(
        "Metrica adds a goal-based conversion to a visit at most %s days old; this conversion "
        "happened earlier.",
        const.OFFLINE_VISIT_WINDOW_DAYS,
    ),
    const.REASON_RECORD_DELETED: lambda sender: sender.env._(
        "The lead or sale order was deleted before it could be sent."
    ),
}


def written_indexes(built, count):
    """Indexes of the input rows the file carries: written, or replaced by a later row with the
    same key that was written in their place."""
    return [
        index
        for index in range(count)
        if index not in built.rejected and built.superseded.get(index, index) not in built.rejected
    ]
