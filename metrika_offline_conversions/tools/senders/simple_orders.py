"""CRM orders, simplified (``simple_orders``): one row per order with its latest status."""

from datetime import timedelta

from odoo import fields
from odoo.tools import SQL

from ... import const
from ...metrika_core import formats, preflight
from .base import PreparedFile, UploadSender, aware_utc, written_indexes


class SimpleOrdersSender(UploadSender):
    """CRM orders, simplified (``simple_orders``): one row per order with its latest status."""

    method = const.TRANSPORT_SIMPLE_ORDERS
    # SAVE with stable order ids: Metrica replaces an order it already has.
    resend_is_harmless = True

    def no_identifier_message(self):
        return self.env._("Neither a ClientID nor a phone or e-mail is known for this record.")

    def prepare(self, conversions):
        now = fields.Datetime.now()
        latest, already_sent = self._orders_state(conversions)
        # An order's latest row outside the batch is read with the others, if any is needed.
        latest_prefetch = self.Conversion.browse(latest.values())._prefetch_ids
        # Rows are gathered as ids and made recordsets once: a union per row would copy the
        # ids gathered so far every time (quadratic in the batch).
        skipped = {}  # reason → conversion ids
        orders = {}  # Metrica order id → [SimpleOrder, conversion ids]
        region = self.company._metrika_phone_region()
        for conversion, record in self._live_rows(conversions, skipped):
            order_id = conversion.metrika_order_id
            reason = _crm_window_closed(conversion, order_id in already_sent, now)
            if reason is None:
                identifiers = record._metrika_identifiers(phone_region=region)
                if not (
                    identifiers["client_ids"] or identifiers["emails"] or identifiers["phones"]
                ):
                    reason = const.REASON_NO_IDENTIFIER
            if reason:
                skipped.setdefault(reason, []).append(conversion.id)
                continue
            if order_id in orders:
                orders[order_id][1].append(conversion.id)
                continue
            current = conversion
            if latest.get(order_id, conversion.id) != conversion.id:
                current = current.browse(latest[order_id]).with_prefetch(latest_prefetch)
            orders[order_id] = [self._simple_order(current, identifiers), [conversion.id]]
        self._skip_by_reason(skipped)
        return self._build_file(orders.values()) if orders else None

    def _build_file(self, orders):
        """The file of ``orders`` ([SimpleOrder, conversion ids] each); None when Metrica would
        refuse every one of them."""
        checked = self._preflight(
            preflight.FORMAT_SIMPLE_ORDERS,
            [(self.Conversion.browse(ids), order) for order, ids in orders],
        )
        if not checked:
            return None
        groups = [(order, rows) for rows, order in checked]
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
            row_id
            for index in written_indexes(built, len(groups))
            for row_id in groups[index][1].ids
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
            create_date_time=aware_utc(conversion.order_create_date),
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
        summary = self.env._(
            "The answer was lost; the orders are sent again (Metrica replaces an order it already "
            "has, so nothing is counted twice)."
        )
        for upload in uploads:
            self._mark_lost(upload, upload._metrika_open_rows(), summary)
        return len(uploads)


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
