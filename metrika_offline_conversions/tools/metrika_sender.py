"""The upload path: what one call of the upload cron does, and one sender per upload method.

A call of the cron (``UploadRun.run``):

1. settles the uploads left open by a worker that died (killed, restarted, cut off by the cron
   time limit or a lost database connection) or whose answer was lost: goal-based ones are looked
   up in Metrica by their reference before anything is sent again; CRM orders are sent again,
   which ``SAVE`` with stable order ids makes harmless;
2. polls goal-based uploads until Metrica has processed them;
3. sends one batch: the upload (its file, its reference, its rows marked as being sent) is
   committed before the request, and the outcome after the answer. While the request runs, the
   worker holds a row lock on the upload, so no other worker settles it under its feet.

Odoo's scheduler calls the cron again while ``_notify_progress`` reports work left, and commits
between calls. Everything Metrica or the settings can cause is recorded on the rows and uploads;
nothing here raises for it.
"""

import logging
import threading
import time
from datetime import timedelta, timezone
from decimal import Decimal

from odoo import fields
from odoo.tools import SQL

from .. import const
from ..metrika_core import errors as metrika_errors
from ..metrika_core import formats, outcomes
from . import metrika_messages

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


def _in_test_mode():
    return bool(getattr(threading.current_thread(), "testing", False))


def commit(env):
    """Commit the upload path's own transaction step.

    The upload is made durable before its request and its outcome after the answer: that is
    what lets a dead worker's upload be found again. Under Odoo's test runner the test owns the
    transaction, so nothing is committed there.
    """
    if not _in_test_mode():
        env.cr.commit()  # pylint: disable=invalid-commit


# ----------------------------------------------------------------------------------------------
# Senders
# ----------------------------------------------------------------------------------------------


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

    def __init__(self, env, company, client):
        self.env = env
        self.company = company
        self.client = client
        self.Conversion = env["metrika.conversion"].sudo()

    def prepare(self, conversions):
        """Settle the rows that cannot go (with their reason) and build the file of the others;
        None when nothing is left to send."""
        raise NotImplementedError

    def send(self, upload, prepared):
        """The one HTTP request; returns Metrica's ``uploading`` answer."""
        raise NotImplementedError

    def record_success(self, upload, prepared, answer, duration):
        raise NotImplementedError

    def settle(self, uploads):
        """Uploads whose worker or answer was lost: find out, or make it harmless, before their
        rows are sent again."""
        raise NotImplementedError

    def poll(self, uploads):
        """Ask Metrica what became of accepted uploads (only where Metrica tells it)."""

    # -- shared ------------------------------------------------------------------------------

    def _skip_by_reason(self, skipped):
        """``skipped``: (state, reason) → ids of the conversions that do not go, and why."""
        for (state, reason), row_ids in skipped.items():
            self.Conversion.browse(row_ids)._metrika_mark_final(
                state, reason, SKIP_MESSAGES[reason](self)
            )

    def _mark_rejected(self, rows, rejected):
        """Rows the file builder left out, each with the builder's reason."""
        for conversion, reason in zip(rows, rejected, strict=True):
            conversion._metrika_mark_final(
                const.STATE_ERROR,
                const.REASON_INVALID_DATA,
                self.env._("Metrica would refuse this conversion: %s", reason),
            )

    @staticmethod
    def _decimal_revenue(conversion):
        revenue = conversion.revenue
        if not revenue:
            return None
        currency = conversion.currency_id
        return Decimal(str(currency.round(revenue) if currency else revenue))


def _fetch_records(conversions):
    """The batch's orders and leads, read at once with what their identifiers come from."""
    conversions.sale_order_id._metrika_fetch_identifiers()
    conversions.lead_id._metrika_fetch_identifiers()


def _aware(value):
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


class SimpleOrdersSender(UploadSender):
    """CRM orders, simplified (``simple_orders``): one row per order with its latest status."""

    method = const.TRANSPORT_SIMPLE_ORDERS

    def no_identifier_message(self):
        return self.env._("Neither a ClientID nor a phone or e-mail is known for this record.")

    def prepare(self, conversions):
        now = fields.Datetime.now()
        latest, already_sent = self._orders_state(conversions)
        # An order's latest row outside the batch is read with the others, if any is needed.
        latest_prefetch = self.Conversion.browse(latest.values())._prefetch_ids
        # Rows are gathered as ids and made recordsets once: a union per row would copy the
        # ids gathered so far every time (quadratic in the batch).
        skipped = {}  # (state, reason) → conversion ids
        orders = {}  # Metrica order id → [SimpleOrder, conversion ids]
        region = self.company._metrika_phone_region()
        _fetch_records(conversions)
        for conversion in conversions:
            record = conversion._metrika_record()
            if not record:
                skipped.setdefault((const.STATE_ERROR, const.REASON_RECORD_DELETED), []).append(
                    conversion.id
                )
                continue
            order_id = conversion.metrika_order_id
            reason = _crm_window_closed(conversion, order_id in already_sent, now)
            if reason is None:
                identifiers = record._metrika_identifiers(phone_region=region)
                if not (
                    identifiers["client_ids"] or identifiers["emails"] or identifiers["phones"]
                ):
                    reason = const.REASON_NO_IDENTIFIER
            if reason:
                skipped.setdefault((const.STATE_SKIPPED, reason), []).append(conversion.id)
                continue
            if order_id in orders:
                orders[order_id][1].append(conversion.id)
                continue
            current = conversion
            if latest.get(order_id, conversion.id) != conversion.id:
                current = current.browse(latest[order_id]).with_prefetch(latest_prefetch)
            orders[order_id] = [self._simple_order(current, identifiers), [conversion.id]]
        self._skip_by_reason(skipped)
        if not orders:
            return None
        groups = [(order, self.Conversion.browse(ids)) for order, ids in orders.values()]
        # Read once from Metrica (then kept on the company): only when something goes.
        time_zone = self.company._metrika_counter_time_zone(self.client)
        built = formats.build_simple_orders_file(
            [order for order, _rows in groups],
            time_zone,
            hashed=self.company.metrika_hash_identifiers,
        )
        refused = [groups[index][1] for index in built.rejected]
        for rows, reason in zip(refused, built.rejected.values(), strict=True):
            self._mark_rejected(rows, [reason] * len(rows))
        if not built.data:
            return None
        accepted = self.Conversion.browse(
            row_id for index in _written(built, len(groups)) for row_id in groups[index][1].ids
        )
        return PreparedFile(built.data, accepted, built.row_count)

    def _orders_state(self, conversions):
        """For each Metrica order of the batch: the id of the conversion carrying its current
        status, and whether Metrica already has the order (one of its conversions was sent)."""
        self.env.cr.execute(
            SQL(
                "SELECT DISTINCT ON (metrika_order_id) metrika_order_id, id, "
                "       bool_or(sent_at IS NOT NULL) OVER (PARTITION BY metrika_order_id) "
                "FROM metrika_conversion WHERE metrika_order_id = ANY(%s) "
                "AND state IN %s "
                "ORDER BY metrika_order_id, queued_sequence DESC, id DESC",
                list(set(conversions.mapped("metrika_order_id"))),
                (const.STATE_PENDING, const.STATE_SENDING, const.STATE_SENT),
            )
        )
        rows = self.env.cr.fetchall()
        latest = {order_id: row_id for order_id, row_id, _sent in rows}
        # Rows of orders sent before but now in error or skipped are not in the query above.
        already_sent = {order_id for order_id, _id, sent in rows if sent}
        already_sent.update(
            order_id
            for order_id, sent_at in zip(
                conversions.mapped("metrika_order_id"), conversions.mapped("sent_at"), strict=True
            )
            if sent_at
        )
        return latest, already_sent

    def _simple_order(self, conversion, identifiers):
        revenue = self._decimal_revenue(conversion)
        return formats.SimpleOrder(
            id=conversion.metrika_order_id,
            create_date_time=_aware(conversion.order_create_date),
            order_status=conversion.order_status,
            client_ids=tuple(identifiers["client_ids"]),
            emails=tuple(identifiers["emails"]),
            phones=tuple(identifiers["phones"]),
            revenue=revenue,
            currency=conversion.currency_id.name if revenue is not None else None,
        )

    def send(self, upload, prepared):
        # SAVE with stable order ids: sending again after a lost answer changes nothing.
        return self.client.upload_simple_orders(prepared.data)

    def record_success(self, upload, prepared, answer, duration):
        upload._metrika_record_answer(answer, duration, const.UPLOAD_ACCEPTED)
        upload.result_summary = self.env._(
            "%(count)s orders accepted (validation %(status)s). Metrica does not report which "
            "orders it linked to visits.",
            count=prepared.row_count,
            status=answer.get("api_validation_status") or "-",
        )
        prepared.conversions._metrika_mark_sent(const.RESULT_ACCEPTED)

    def settle(self, uploads):
        for upload in uploads:
            upload.write(
                {
                    "state": const.UPLOAD_LOST,
                    "settle_after": False,
                    "result_summary": self.env._(
                        "The answer was lost; the orders are sent again (Metrica replaces an "
                        "order it already has, so nothing is counted twice)."
                    ),
                }
            )
            upload._metrika_open_rows()._metrika_mark_pending_again()
        return len(uploads)


class OfflineConversionsSender(UploadSender):
    """Goal-based offline conversions: one goal hit per row, one file per identifier column."""

    method = const.TRANSPORT_OFFLINE
    COLUMNS = ("ClientId", "Yclid")

    def no_identifier_message(self):
        return self.env._(
            "Goal-based conversions need a ClientID or a yclid; this record has neither."
        )

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
        skipped = {}  # (state, reason) → conversion ids, see SimpleOrdersSender.prepare
        items = {column: [] for column in self.COLUMNS}
        region = self.company._metrika_phone_region()
        _fetch_records(conversions)
        for conversion in conversions:
            record = conversion._metrika_record()
            state, reason = const.STATE_SKIPPED, None
            if not record:
                state, reason = const.STATE_ERROR, const.REASON_RECORD_DELETED
            elif conversion.event_date and conversion.event_date < limit:
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
                skipped.setdefault((state, reason), []).append(conversion.id)
                continue
            paid = conversion.event == const.EVENT_PAID
            items[column].append(
                (
                    conversion,
                    formats.OfflineConversion(
                        identifier=identifier,
                        target=goals[conversion.event],
                        date_time=_aware(conversion.event_date),
                        price=self._decimal_revenue(conversion) if paid else None,
                        currency=conversion.currency_id.name
                        if paid and conversion.revenue
                        else None,
                    ),
                )
            )
        self._skip_by_reason(skipped)
        for column in self.COLUMNS:
            pairs = items[column]
            if not pairs:
                continue
            built = formats.build_offline_conversions_file([item for _c, item in pairs], column)
            self._mark_rejected(
                self.Conversion.browse(pairs[index][0].id for index in built.rejected),
                list(built.rejected.values()),
            )
            if built.data:
                accepted = self.Conversion.browse(
                    pairs[index][0].id for index in _written(built, len(pairs))
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
            upload.write(
                {
                    "state": const.UPLOAD_LOST,
                    "settle_after": False,
                    "result_summary": self.env._(
                        "Metrica did not store this file (its reference is not among the "
                        "counter's uploads); its rows are sent again."
                    ),
                }
            )
            rows._metrika_mark_pending_again()
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
                upload.write(
                    {
                        "state": const.UPLOAD_PROCESSING_TIMEOUT,
                        "next_poll_at": False,
                        "result_summary": self.env._(
                            "Metrica no longer knows this upload (HTTP 404); whether its rows "
                            "were linked is unknown."
                        ),
                    }
                )
                rows._metrika_mark_result(const.RESULT_UNCONFIRMED, upload.result_summary)
                continue
            outcome = outcomes.offline_uploading_outcome(uploading)
            upload.write(upload._metrika_uploading_counts(uploading))
            if outcome.is_final:
                self._record_outcome(upload, rows, outcome)
            elif upload.poll_deadline and now >= upload.poll_deadline:
                upload.write(
                    {
                        "state": const.UPLOAD_PROCESSING_TIMEOUT,
                        "next_poll_at": False,
                        "result_summary": self.env._(
                            "Metrica had not processed this file %(hours)s hours after it was "
                            "sent (status %(status)s); whether its rows were linked is unknown.",
                            hours=const.PROCESSING_DEADLINE_HOURS,
                            status=outcome.status,
                        ),
                    }
                )
                rows._metrika_mark_result(const.RESULT_UNCONFIRMED, upload.result_summary)
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
        upload.write({"state": state, "next_poll_at": False, "result_summary": summary.strip()})
        rows._metrika_mark_result(result, upload.result_summary)


def _written(built, count):
    """Indexes of the input rows the file carries: written, or replaced by a later row with the
    same key that was written in their place."""
    return [
        index
        for index in range(count)
        if index not in built.rejected and built.superseded.get(index, index) not in built.rejected
    ]


def _crm_window_closed(conversion, already_sent, now):
    """The rule that keeps this CRM order from Metrica now, or None."""
    created = conversion.order_create_date
    if not created:
        return None
    if already_sent:
        if created < now - timedelta(days=const.CRM_LINKED_ORDER_UPDATE_DAYS):
            return const.REASON_UPDATE_WINDOW
    elif created < now - timedelta(days=const.CRM_NEW_ORDER_LINK_DAYS):
        return const.REASON_LINK_WINDOW
    return None


SENDERS = {sender.method: sender for sender in (SimpleOrdersSender, OfflineConversionsSender)}


# ----------------------------------------------------------------------------------------------
# One call of the cron
# ----------------------------------------------------------------------------------------------


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
        done += self._send_one_batch()
        return done

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
        uploads = self._lock(
            "metrika_upload",
            SQL(
                "state IN %s AND settle_after <= %s",
                const.UPLOAD_OPEN_STATES,
                fields.Datetime.now(),
            ),
            limit=200,
        )
        done = 0
        for (company, method), group in _grouped(uploads):
            if company.metrika_paused or not company.metrika_enabled:
                continue
            client = self._client(company)
            if client is None:
                continue
            with client:
                try:
                    done += SENDERS[method](self.env, company, client).settle(group)
                except metrika_errors.MetrikaError as error:
                    self._settle_later(company, group, error)
        if uploads:
            commit(self.env)
        return done

    def _settle_later(self, company, uploads, error):
        _logger.warning(
            "Metrica: open uploads of company %s cannot be checked now: %s (HTTP %s)",
            company.id,
            type(error).__name__,
            error.status,
        )
        if error.pauses_sending:
            self._pause(company, error, uploads[:1])
        when = fields.Datetime.now() + timedelta(seconds=retry_delay(1, error))
        uploads.write({"settle_after": when})
        self._trigger(when)

    # -- 2. polling ----------------------------------------------------------------------------

    def _poll_uploads(self):
        uploads = self._lock(
            "metrika_upload",
            SQL("next_poll_at <= %s", fields.Datetime.now()),
            limit=POLL_BATCH,
        )
        done = 0
        for (company, method), group in _grouped(uploads):
            client = None if company.metrika_paused else self._client(company)
            if client is None:
                continue
            with client:
                try:
                    done += SENDERS[method](self.env, company, client).poll(group)
                except metrika_errors.MetrikaError as error:
                    _logger.warning(
                        "Metrica: status of uploads of company %s unavailable: %s (HTTP %s)",
                        company.id,
                        type(error).__name__,
                        error.status,
                    )
                    if error.pauses_sending:
                        self._pause(company, error, group[:1])
                    group.write(
                        {
                            "next_poll_at": fields.Datetime.now()
                            + timedelta(seconds=retry_delay(1, error))
                        }
                    )
        if uploads:
            commit(self.env)
        return done

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
            try:
                with self.env.cr.savepoint():
                    prepared = SENDERS[method](self.env, company, client).prepare(batch)
            except metrika_errors.MetrikaError as error:
                # Reading the counter (time zone) failed before any file was sent: log the
                # attempt, so that the failure is visible and an alert has a record to live on.
                upload = self._new_upload(company, method, row_count=0)
                upload.conversion_ids = batch
                upload._metrika_record_failure(error, client.last_elapsed or 0.0)
                self._record_failure(company, method, upload, batch, error)
                commit(self.env)
                return len(batch)
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
                        "Sending failed on an unexpected error (%s); see the server log, then "
                        "resend.",
                        type(err).__name__,
                    ),
                )
                commit(self.env)
                return len(batch)
            if prepared is None:
                commit(self.env)
                return len(batch)
            upload = self._new_upload(company, method, prepared.row_count)
            upload._metrika_attach_file(prepared.data)
            prepared.conversions._metrika_mark_sending(upload)
            # Phase one: the upload and its rows are durable before Metrica sees the file.
            commit(self.env)
            self._hold(upload)
            started = time.monotonic()
            sender = SENDERS[method](self.env, company, client)
            try:
                answer = sender.send(upload, prepared)
            except metrika_errors.MetrikaError as error:
                upload._metrika_record_failure(
                    error,
                    time.monotonic() - started,
                    state=const.UPLOAD_UNCONFIRMED
                    if self._maybe_stored(method, error)
                    else const.UPLOAD_FAILED,
                )
                self._record_failure(company, method, upload, prepared.conversions, error)
            else:
                sender.record_success(upload, prepared, answer, time.monotonic() - started)
                _logger.info(
                    "Metrica upload %s for company %s: %s conversions sent in %.2fs",
                    upload.id,
                    company.id,
                    len(prepared.conversions),
                    time.monotonic() - started,
                )
            # Phase two: the outcome.
            commit(self.env)
        return len(batch)

    @staticmethod
    def _maybe_stored(method, error):
        """A goal-based file Metrica may have stored: looked up before its rows go again."""
        return method == const.TRANSPORT_OFFLINE and error.retryable and error.maybe_accepted

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

    def _lock(self, table, condition, limit):
        """Lock and return the uploads matching ``condition``; those another worker holds (it is
        alive and on them) are skipped, not waited for."""
        rows = self.Conversion._metrika_execute_locking(
            SQL(
                "SELECT id FROM %s WHERE %s ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED",
                SQL.identifier(table),
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
