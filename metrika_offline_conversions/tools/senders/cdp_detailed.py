"""CRM contacts and orders, detailed (``data/contacts`` + ``data/orders``): a contact per
customer with every identifier known for them, sent before the orders that point at it, and
the order status mapping (``schema/order_statuses``) pushed before the orders that use it.

One upload of the sync log is the pair: its contacts (kept on the upload, with Metrica's id of
their upload, once answered) and its orders (the upload's own file and answer). Both go with
``SAVE`` and stable ids, so sending them again replaces what Metrica has; an orders upload whose
answer was lost is still looked for in Metrica's upload history before anything goes again, so
that the verdict kept is Metrica's own.
"""

import hashlib
import logging
from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal

import psycopg2.errors

from odoo import fields
from odoo.tools import SQL

from ... import const
from ...metrika_core import formats, preflight
from ...metrika_core.formats import cdp_detailed as detailed_format
from ...metrika_core.identifiers import InvalidIdentifier, normalize_email, normalize_phone
from .. import odoo_compat, preflight_messages
from .base import PreparedFile, aware_utc, written_indexes
from .simple_orders import SimpleOrdersSender, _crm_window_closed

_logger = logging.getLogger(__name__)

IDENTIFIER_KINDS = ("client_ids", "emails", "phones")
# Metrica's subtype of an orders upload in its upload history.
ORDERS_SUBTYPE = "ORDERS"


class DetailedFile(PreparedFile):
    """The orders file (``data``) with the contacts file its orders need and the status
    mapping they use."""

    def __init__(self, data, conversions, row_count, orders_mapping, contacts, mapping):
        super().__init__(data, conversions, row_count)
        self.orders_mapping = orders_mapping
        # (csv bytes, columns_mapping, number of contacts)
        self.contacts_data, self.contacts_mapping, self.contact_count = contacts
        # (JSON body of schema/order_statuses, its fingerprint)
        self.statuses_body, self.statuses_fingerprint = mapping


class CdpDetailedSender(SimpleOrdersSender):
    """CRM contacts and orders, detailed: see the module docstring."""

    method = const.TRANSPORT_CDP_DETAILED
    # Looked up first: see the module docstring.
    resend_is_harmless = False

    # -- the files -----------------------------------------------------------------------------

    def prepare(self, conversions):
        now = fields.Datetime.now()
        latest, already_sent = self._orders_state(conversions)
        latest_prefetch = self.Conversion.browse(latest.values())._prefetch_ids
        skipped = {}  # reason → conversion ids
        orders = {}  # Metrica order id → [current conversion, its record, conversion ids]
        own = {}  # record → its own identifiers
        region = self.company._metrika_phone_region()
        for conversion, record in self._live_rows(conversions, skipped):
            order_id = conversion.metrika_order_id
            reason = _crm_window_closed(conversion, order_id in already_sent, now)
            if reason:
                skipped.setdefault(reason, []).append(conversion.id)
                continue
            if order_id in orders:
                orders[order_id][2].append(conversion.id)
                continue
            current = conversion
            if latest.get(order_id, conversion.id) != conversion.id:
                current = current.browse(latest[order_id]).with_prefetch(latest_prefetch)
            current_record = current._metrika_record() or record
            orders[order_id] = [current, current_record, [conversion.id]]
            own.setdefault(current_record, current_record._metrika_identifiers(phone_region=region))
        contacts = self._contacts(own, region)
        for order_id, (_current, record, row_ids) in list(orders.items()):
            if not any(contacts[_contact_key(record)].values()):
                skipped.setdefault(const.REASON_NO_IDENTIFIER, []).extend(row_ids)
                del orders[order_id]
        self._skip_by_reason(skipped)
        if not orders:
            return None
        return self._build_files(orders, contacts)

    def _build_files(self, orders, contacts):
        """The contacts and orders files of ``orders``; None when Metrica would refuse every
        order (or the contact of every order). The preflight check goes first (orders, then
        the contacts of the orders left), the builders' own checks stay a safety net."""
        time_zone = self.company._metrika_counter_time_zone(self.client)
        statuses = self._status_mapping()
        mapped = {status.id for status in statuses}
        groups = self._preflight(  # (conversions, Order)
            preflight.FORMAT_CDP_ORDERS,
            [
                (self.Conversion.browse(row_ids), self._order(order_id, current, record, mapped))
                for order_id, (current, record, row_ids) in orders.items()
            ],
        )
        used = {order.client_uniq_id for _rows, order in groups}
        passed, refused = preflight.check(
            preflight.FORMAT_CDP_CONTACTS,
            [(key, formats.Contact(key, **contacts[key])) for key in contacts if key in used],
            datetime.now(timezone.utc),
        )
        refused_contacts = {key: (rule, detail) for key, rule, detail in refused}
        for rows, order in groups:
            if order.client_uniq_id in refused_contacts:
                rule, detail = refused_contacts[order.client_uniq_id]
                rows._metrika_mark_final(
                    const.STATE_ERROR,
                    const.REASON_PREFLIGHT,
                    preflight_messages.refusal_text(self.env, rule, detail),
                )
        groups = [group for group in groups if group[1].client_uniq_id not in refused_contacts]
        if not groups:
            return None
        keys = [key for key, _contact in passed]
        built_contacts, contacts_mapping = formats.build_contacts_file(
            [contact for _key, contact in passed],
            time_zone,
            hashed=self.company.metrika_hash_identifiers,
        )
        refused_by_builder = {
            keys[index]: reason for index, reason in built_contacts.rejected.items()
        }
        for rows, order in groups:
            if order.client_uniq_id in refused_by_builder:
                self._mark_rejected(rows, [refused_by_builder[order.client_uniq_id]] * len(rows))
        groups = [
            (order, rows)
            for rows, order in groups
            if order.client_uniq_id not in refused_by_builder
        ]
        if not groups:
            return None
        built, orders_mapping = formats.build_orders_file(
            [order for order, _rows in groups], time_zone
        )
        for index, reason in built.rejected.items():
            rows = groups[index][1]
            self._mark_rejected(rows, [reason] * len(rows))
        if not built.data:
            return None
        accepted = self.Conversion.browse(
            row_id
            for index in written_indexes(built, len(groups))
            for row_id in groups[index][1].ids
        )
        body = formats.build_status_mapping_json(statuses)
        fingerprint = self._fingerprint(body)
        return DetailedFile(
            built.data,
            accepted,
            built.row_count,
            orders_mapping,
            (built_contacts.data, contacts_mapping, built_contacts.row_count),
            (body, fingerprint),
        )

    def _order(self, order_id, conversion, record, mapped):
        revenue = self._decimal_revenue(conversion)
        cost = self._cost(record)
        return formats.Order(
            id=order_id,
            client_uniq_id=_contact_key(record),
            create_date_time=aware_utc(conversion.order_create_date),
            order_status=self._status_id(conversion, record, mapped),
            revenue=revenue,
            cost=cost,
            currency=conversion.currency_id.name if revenue is not None or cost else None,
            products=self._products(record),
        )

    @staticmethod
    def _products(record):
        """``(name, quantity)`` of a sale order's products; a lead has none. Names lose the
        characters the products cell uses as separators; quantities are whole numbers (at least
        one), as Metrica's examples write them."""
        if record._name != "sale.order":
            return ()
        products = []
        for line in record.order_line:
            if line.display_type or not line.product_id or line.product_uom_qty <= 0:
                continue
            name = " ".join(
                line.product_id.display_name.replace(",", " ").replace(":", " ").split()
            )
            quantity = Decimal(str(line.product_uom_qty)).to_integral_value(ROUND_HALF_UP)
            products.append((name or "product-%d" % line.product_id.id, max(quantity, 1)))
        return tuple(products)

    @staticmethod
    def _cost(record):
        """What a sale order cost the shop, where Odoo knows it (the lines' cost, kept by the
        margins module); None otherwise."""
        if record._name != "sale.order" or "purchase_price" not in record.order_line._fields:
            return None
        cost = sum(line.purchase_price * line.product_uom_qty for line in record.order_line)
        if not cost or cost < 0:
            return None
        return Decimal(str(record.currency_id.round(cost)))

    # -- the contacts --------------------------------------------------------------------------

    def _contacts(self, own, region):
        """``{uniq_id: {"client_ids": [...], "emails": [...], "phones": [...]}}`` of the
        customers of ``own`` (record → its own identifiers, which come first): everything known
        of each customer, from the partner and its contacts, and their orders and leads."""
        contacts = {}
        partners = set()
        for record, identifiers in own.items():
            key = _contact_key(record)
            contact = contacts.setdefault(key, {kind: [] for kind in IDENTIFIER_KINDS})
            for kind in IDENTIFIER_KINDS:
                _add(contact[kind], identifiers[kind])
            if key.startswith(const.CONTACT_PARTNER_PREFIX):
                partners.add(record.partner_id.commercial_partner_id.id)
        if partners:
            for partner_id, kind, values in self._partner_identifiers(sorted(partners), region):
                _add(contacts[const.CONTACT_PARTNER_PREFIX + str(partner_id)][kind], values)
        return contacts

    def _partner_identifiers(self, partner_ids, region):
        """``(commercial partner id, kind, normalised values)`` of everything the database
        knows of these customers, newest records first."""
        env = self.env
        for model in ("res.partner", "sale.order", "crm.lead"):
            env[model].flush_model()
        cr = env.cr
        cr.execute(
            SQL(
                "SELECT partner.commercial_partner_id, record.metrika_client_id FROM ("
                "  SELECT partner_id, metrika_client_id, create_date FROM sale_order"
                "   WHERE metrika_client_id IS NOT NULL"
                "  UNION ALL"
                "  SELECT partner_id, metrika_client_id, create_date FROM crm_lead"
                "   WHERE metrika_client_id IS NOT NULL) record"
                " JOIN res_partner partner ON partner.id = record.partner_id"
                " WHERE partner.commercial_partner_id = ANY(%s)"
                " ORDER BY record.create_date DESC",
                partner_ids,
            )
        )
        for partner_id, client_id in cr.fetchall():
            yield partner_id, "client_ids", [client_id]
        partner_phones = _phone_columns(env["res.partner"])
        lead_phones = _phone_columns(env["crm.lead"])
        cr.execute(
            SQL(
                "SELECT commercial_partner_id, email, %s FROM res_partner"
                " WHERE commercial_partner_id = ANY(%s)"
                " ORDER BY id = commercial_partner_id DESC, id",
                SQL(", ").join(SQL.identifier(name) for name in partner_phones),
                partner_ids,
            )
        )
        rows = cr.fetchall()
        cr.execute(
            SQL(
                "SELECT partner.commercial_partner_id, lead.email_from, %s"
                " FROM crm_lead lead JOIN res_partner partner ON partner.id = lead.partner_id"
                " WHERE partner.commercial_partner_id = ANY(%s) ORDER BY lead.id DESC",
                SQL(", ").join(SQL.identifier("lead", name) for name in lead_phones),
                partner_ids,
            )
        )
        rows += cr.fetchall()
        for partner_id, email, *phones in rows:
            yield partner_id, "emails", _normalized([email], normalize_email)
            yield partner_id, "phones", _normalized(phones, normalize_phone, region)

    # -- the order status mapping --------------------------------------------------------------

    def _status_mapping(self):
        """Our order statuses for Metrica's mapping: the sale orders' states, and the CRM stages
        when leads are sent, named in the company's language."""
        company = self.company.sudo()
        env = self.env(context=dict(self.env.context, lang=company.partner_id.lang or "en_US"))
        statuses = [
            formats.OrderStatusMapping(
                const.STATUS_QUOTATION, formats.IN_PROGRESS, env._("Quotation")
            ),
            formats.OrderStatusMapping(
                const.STATUS_SALES_ORDER, formats.IN_PROGRESS, env._("Sales order")
            ),
            formats.OrderStatusMapping(const.STATUS_PAID, formats.PAID, env._("Paid order")),
            formats.OrderStatusMapping(
                const.STATUS_CANCELLED, formats.CANCELLED, env._("Cancelled order")
            ),
        ]
        if company.metrika_send_leads:
            for stage in env["crm.stage"].sudo().search([]):
                statuses.append(
                    formats.OrderStatusMapping(
                        f"{const.STATUS_STAGE_PREFIX}{stage.id}",
                        formats.PAID if stage.is_won else formats.IN_PROGRESS,
                        env._("Lead: %s", stage.name),
                    )
                )
            statuses += [
                formats.OrderStatusMapping(
                    const.STATUS_LEAD_LOST, formats.CANCELLED, env._("Lost lead")
                ),
                formats.OrderStatusMapping(
                    const.STATUS_LEAD_SPAM, formats.SPAM, env._("Spam lead")
                ),
            ]
        return statuses

    @staticmethod
    def _status_id(conversion, record, mapped):
        """Our status of the order, of the type its conversion carries; the type itself (one of
        Metrica's four defaults) where the mapping has no status for it."""
        status = conversion.order_status
        chosen = None
        if record._name == "sale.order":
            if status == formats.IN_PROGRESS:
                quotation = record.state in ("draft", "sent")
                chosen = const.STATUS_QUOTATION if quotation else const.STATUS_SALES_ORDER
            elif status == formats.PAID:
                chosen = const.STATUS_PAID
            elif status == formats.CANCELLED:
                chosen = const.STATUS_CANCELLED
        elif status == formats.CANCELLED:
            chosen = const.STATUS_LEAD_LOST
        elif status == formats.SPAM:
            chosen = const.STATUS_LEAD_SPAM
        elif record.active and record.stage_id:
            # The lead's stage, when it says what the conversion says (won and paid, open and
            # in progress).
            if bool(record.stage_id.is_won) == (status == formats.PAID):
                chosen = f"{const.STATUS_STAGE_PREFIX}{record.stage_id.id}"
        return chosen if chosen in mapped else status

    def _fingerprint(self, body):
        """What the counter's mapping is remembered by: the counter and the mapping's body."""
        return hashlib.sha256(
            b"%d\n%s" % (int(self.company.sudo().metrika_counter_id), body)
        ).hexdigest()

    def _push_status_mapping(self, prepared):
        """Push the mapping unless the counter has it already (same fingerprint)."""
        company = self.company.sudo()
        if company.metrika_status_mapping_fingerprint == prepared.statuses_fingerprint:
            return
        self.client.set_order_statuses(prepared.statuses_body)
        _logger.info("Metrica: order status mapping pushed for company %s", company.id)
        # Only a memo: a concurrent run that wrote it first (or a settings form holding the
        # row) costs nothing but a second push, which changes nothing.
        self.env.flush_all()
        try:
            with self.env.cr.savepoint(flush=False):
                self.env.cr.execute(
                    SQL(
                        "UPDATE res_company SET metrika_status_mapping_fingerprint = %s "
                        "WHERE id = %s",
                        prepared.statuses_fingerprint,
                        company.id,
                    ),
                    log_exceptions=False,
                )
        except (psycopg2.errors.SerializationFailure, psycopg2.errors.LockNotAvailable):
            _logger.info(
                "Metrica: status mapping of company %s noted by a concurrent run", company.id
            )
        company.invalidate_recordset(["metrika_status_mapping_fingerprint"])

    # -- sending -------------------------------------------------------------------------------

    def attach_files(self, upload, prepared):
        result = super().attach_files(upload, prepared)
        upload._metrika_attach_contacts(prepared.contacts_data, prepared.contact_count)
        return result

    def kept_file(self, upload, rows):
        """Both kept files, their column mappings read from their headers; the status mapping
        as it is now (it is pushed first if it changed since the batch was kept)."""
        orders_data = upload.attachment_id.raw
        contacts_data = upload.contacts_attachment_id.raw
        body = formats.build_status_mapping_json(self._status_mapping())
        return DetailedFile(
            orders_data,
            rows,
            upload.row_count,
            detailed_format.header_columns_mapping(orders_data),
            (
                contacts_data,
                detailed_format.header_columns_mapping(contacts_data),
                upload.contacts_count,
            ),
            (body, self._fingerprint(body)),
        )

    def export_files(self, prepared):
        # Named as Metrica's two upload pages name them; contacts first, as they are sent.
        return [("contacts", prepared.contacts_data), ("orders", prepared.data)]

    def send(self, upload, prepared):
        """The mapping if it changed, the contacts, then the orders. The contacts' answer is
        committed before the orders go, with the time they go: a worker that dies, or an answer
        lost, leaves a trace to look the orders up by."""
        self._push_status_mapping(prepared)
        contacts = self.client.upload_contacts(
            prepared.contacts_data, columns_mapping=prepared.contacts_mapping
        )
        upload._metrika_record_contacts(contacts)
        self._checkpoint(upload)
        return self.client.upload_orders(prepared.data, columns_mapping=prepared.orders_mapping)

    def _checkpoint(self, upload):
        """Commit what the upload has so far, and hold it again (see ``UploadRun._hold``)."""
        if odoo_compat.test_owns_transaction(self.env.cr):
            return
        self.env.cr.commit()  # pylint: disable=invalid-commit
        self.env.cr.execute(
            SQL("SELECT id FROM metrika_upload WHERE id = %s FOR UPDATE", upload.id)
        )

    def lost_answer_needs_lookup(self, upload, error):
        # The mapping and the contacts go again harmlessly: only sent orders are looked up.
        return bool(upload.orders_sent_at) and super().lost_answer_needs_lookup(upload, error)

    def record_success(self, upload, prepared, answer, duration):
        upload._metrika_record_answer(answer, duration, const.UPLOAD_ACCEPTED)
        upload.result_summary = self.env._(
            "%(contacts)s contacts and %(orders)s orders accepted (validation %(status)s). "
            "Metrica does not report which orders it linked to visits.",
            contacts=upload.contacts_count,
            orders=prepared.row_count,
            status=answer.get("api_validation_status") or "-",
        )
        prepared.conversions._metrika_mark_sent(const.RESULT_ACCEPTED)

    def settle(self, uploads):
        """An orders upload sent (its contacts answered) is looked for in Metrica's upload
        history; one found is accepted, the others go again (contacts and orders alike: ``SAVE``
        with stable ids replaces what Metrica may have)."""
        known = self._known_uploading_ids()
        for upload in uploads:
            rows = upload._metrika_open_rows()
            found = None
            if upload.contacts_uploading_id and upload.orders_sent_at:
                found = self.client.find_cdp_uploading(
                    since=aware_utc(upload.orders_sent_at)
                    - timedelta(seconds=const.CDP_LOOKUP_CLOCK_MARGIN_SECONDS),
                    elements_count=upload.row_count,
                    entity_subtype=ORDERS_SUBTYPE,
                    exclude_ids=known,
                )
            if (
                found
                and found.get("api_validation_status") == "PASSED"
                and not self._others_unanswered(upload)
            ):
                _logger.info("Metrica upload %s was stored although its answer was lost", upload.id)
                known.add(str(found.get("uploading_id")))
                self.record_success(
                    upload, PreparedFile(None, rows, upload.row_count), found, upload.duration
                )
                continue
            self._mark_lost(
                upload,
                rows,
                self.env._(
                    "The answer was lost and Metrica's upload history does not list these orders; "
                    "they are sent again with their contacts (Metrica replaces what it has, so "
                    "nothing is counted twice)."
                ),
            )
        return len(uploads)

    def _others_unanswered(self, upload):
        """Whether another upload of the company sent its orders in the same window and has no
        answer recorded yet: Metrica's history does not name uploads, so a match could be that
        one's (two workers at once), and accepting it would lose these rows. Such an upload is
        sent again instead, which ``SAVE`` with stable ids makes harmless."""
        since = upload.orders_sent_at - timedelta(seconds=const.CDP_LOOKUP_CLOCK_MARGIN_SECONDS)
        return bool(
            self.env["metrika.upload"]
            .sudo()
            .search_count(
                [
                    ("company_id", "=", self.company.id),
                    ("id", "!=", upload.id),
                    ("orders_sent_at", ">=", since),
                    ("uploading_id", "in", (False, "")),
                ],
                limit=1,
            )
        )

    def _known_uploading_ids(self):
        """Metrica's ids of the company's uploads already accounted for (recent ones: the
        history is read from the lost upload's time on)."""
        since = fields.Datetime.now() - timedelta(days=2)
        uploads = (
            self.env["metrika.upload"]
            .sudo()
            .search([("company_id", "=", self.company.id), ("create_date", ">=", since)])
        )
        return {
            str(value)
            for value in uploads.mapped("uploading_id") + uploads.mapped("contacts_uploading_id")
            if value
        }


def _contact_key(record):
    """The contact of a lead or a sale order: its commercial partner, or the lead itself."""
    partner = record.partner_id.commercial_partner_id
    if partner:
        return f"{const.CONTACT_PARTNER_PREFIX}{partner.id}"
    return f"{const.CONTACT_LEAD_PREFIX}{record.id}"


def _add(known, values):
    for value in values:
        if value and value not in known and len(known) < const.CONTACT_MAX_IDENTIFIERS:
            known.append(value)


def _normalized(values, normalize, *args):
    result = []
    for value in values:
        if not value:
            continue
        try:
            normalized = normalize(value, *args)
        except InvalidIdentifier:
            continue
        if normalized:
            result.append(normalized)
    return result


def _phone_columns(model):
    """The phone columns of a partner or a lead (``mobile`` is gone on 19.0)."""
    return [name for name in ("phone", "mobile") if name in model._fields]
