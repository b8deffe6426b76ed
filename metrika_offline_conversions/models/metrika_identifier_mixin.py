import logging

from odoo import _, api, fields, models
from odoo.exceptions import AccessError, ValidationError

from .. import const
from ..metrika_core.identifiers import (
    InvalidIdentifier,
    normalize_client_id,
    normalize_email,
    normalize_phone,
    normalize_yclid,
)
from ..tools.metrika_messages import NO_CLIENT_ID_OR_YCLID
from .metrika_conversion import EVENT_STATUS

# _metrika_identifiers' default: local phone numbers are read in the record's company's country.
COMPANY_REGION = object()

_logger = logging.getLogger(__name__)

ATTRIBUTION_SELECTION = [
    (const.ATTRIBUTION_MAXIMUM, "Maximum"),
    (const.ATTRIBUTION_GOOD, "Good"),
    (const.ATTRIBUTION_MEDIUM, "Medium"),
    (const.ATTRIBUTION_NONE, "None"),
]


class MetrikaIdentifierMixin(models.AbstractModel):
    """Metrica identifiers of a lead or a sale order, validated and stored normalised."""

    _name = "metrika.identifier.mixin"
    _description = "Yandex Metrica identifiers"
    # The one2many to metrika.conversion on the concrete model, for counts and lists.
    _metrika_conversion_field = None
    # Fields of the record whose new value may give it a phone or an e-mail.
    _metrika_contact_fields = ()

    metrika_client_id = fields.Char(
        string="Metrica ClientID",
        index="btree_not_null",
        copy=False,
        help="The visitor's Yandex Metrica ClientID (the _ym_uid cookie), digits only. It is "
        "captured from the website; paste one that came by another channel.",
    )
    metrika_yclid = fields.Char(
        string="yclid",
        index="btree_not_null",
        copy=False,
        help="The Yandex Direct click ID from the landing page address (?yclid=...).",
    )
    metrika_attribution = fields.Selection(
        ATTRIBUTION_SELECTION,
        string="Attribution quality",
        compute="_compute_metrika_attribution",
        help="How well Metrica can link this record to a visit: maximum with a ClientID and a "
        "phone or e-mail, good with a ClientID only, medium with a phone or e-mail only.",
    )
    metrika_conversion_count = fields.Integer(
        string="Metrica conversions",
        compute="_compute_metrika_conversion_count",
    )

    @api.model_create_multi
    def create(self, vals_list):
        for vals in vals_list:
            self._metrika_normalize_vals(vals)
        return super().create(vals_list)

    def write(self, vals):
        self._metrika_normalize_vals(vals)
        result = super().write(vals)
        if vals.get("metrika_client_id") or vals.get("metrika_yclid"):
            self._metrika_retry_skipped()
        elif any(vals.get(fname) for fname in self._metrika_contact_fields):
            self._metrika_retry_skipped(contact_only=True)
        return result

    @api.model
    def _metrika_normalize_vals(self, vals):
        checks = (
            (
                "metrika_client_id",
                normalize_client_id,
                lambda value: self.env._(
                    "A Metrica ClientID is a number of up to 20 digits, as Metrica's getClientID "
                    'returns it; "%s" is not one.',
                    value,
                ),
            ),
            (
                "metrika_yclid",
                normalize_yclid,
                lambda value: self.env._(
                    "A yclid is a number of up to 25 digits, taken from the ?yclid= parameter "
                    'of the landing page address; "%s" is not one.',
                    value,
                ),
            ),
        )
        for fname, normalize, message in checks:
            if fname in vals and vals[fname]:
                try:
                    vals[fname] = normalize(vals[fname]) or False
                except InvalidIdentifier:
                    raise ValidationError(message(str(vals[fname])[:64])) from None

    def _metrika_retry_skipped(self, contact_only=False):
        """Conversions skipped for want of an identifier go out once one arrives."""
        self.env["metrika.conversion"]._metrika_retry_skipped(
            [(self._metrika_conversion_field, "in", self.ids)], contact_only=contact_only
        )

    # ------------------------------------------------------------------
    # What a conversion of this record carries
    # ------------------------------------------------------------------

    def _metrika_company(self):
        return self.company_id or self.env.company

    def _metrika_sends(self, event, company):
        """Whether the company's settings send ``event`` for this kind of record."""
        raise NotImplementedError

    def _metrika_order_reference(self):
        """(Metrica order id, creation datetime): stable, unique across companies."""
        raise NotImplementedError

    def _metrika_revenue(self):
        """(amount, currency) this record is worth."""
        raise NotImplementedError

    def _metrika_conversion_base_values(self, event, company=None):
        """The row's description of the record (its event date is the caller's, see
        _metrika_enqueue); ``company`` is its ``_metrika_company()``, when the caller has read
        it already."""
        self.ensure_one()
        # The row describes the record, whoever's action queued it: an accountant paying an
        # invoice may not read the order's opportunity, a salesperson may not read a colleague's.
        record = self.sudo()
        company = company or record._metrika_company()
        order_id, created = record._metrika_order_reference()
        amount, currency = record._metrika_revenue()
        return {
            "company_id": company.id,
            record._metrika_conversion_field: record.id,
            "record_name": record.display_name,
            "event": event,
            "order_status": record._metrika_order_status(event),
            "metrika_order_id": order_id,
            "order_create_date": created,
            "revenue": amount,
            "currency_id": currency.id,
            "transport": company.metrika_transport,
            "state": const.STATE_PENDING,
        }

    def _metrika_order_status(self, event):
        return EVENT_STATUS[event]

    def _metrika_conversion_values(self, event):
        """Values of the conversion row for ``event``, or None when settings do not send it.

        Only the goal-based transport's need of a ClientID or a yclid is checked here (from the
        record itself); contact data and all values are normalised and checked at upload time.
        """
        self.ensure_one()
        record = self.sudo()  # see _metrika_conversion_base_values
        company = record._metrika_company()
        serves_centre = company.metrika_centre_link_enabled
        if not (
            (company.metrika_enabled or serves_centre) and record._metrika_sends(event, company)
        ):
            return None
        values = record._metrika_conversion_base_values(event, company)
        if not company.metrika_enabled:
            # Only the Conversion Centre link serves this company: the row tells the link the
            # order's current status, and is never uploaded (nor left pending forever).
            values.update(
                state=const.STATE_SKIPPED,
                failure_reason=const.REASON_CENTRE_ONLY,
                last_error=record.env._(
                    "Sending to Metrica is off: the Conversion Centre link serves this order."
                ),
            )
            return values
        # Goal-based conversions need a click; whether a customer without one has a phone or an
        # e-mail is left to the upload, which reads them anyway (a query less on confirming).
        if values["transport"] == const.TRANSPORT_OFFLINE and not (
            record.metrika_client_id or record.metrika_yclid
        ):
            values.update(
                state=const.STATE_SKIPPED,
                failure_reason=const.REASON_NO_IDENTIFIER,
                last_error=record.env._(NO_CLIENT_ID_OR_YCLID),
            )
        return values

    def _metrika_contact_values(self):
        """The raw (e-mails, phones) of the record's customer; each model says where they are."""
        raise NotImplementedError

    def _metrika_identifiers(self, phone_region=COMPANY_REGION):
        """Normalised identifiers; contact data that cannot be normalised is left out.

        ``phone_region`` is the country local numbers are read in; by default the company's
        (see ``res.company._metrika_phone_region``), which an upload reads once per batch.
        """
        self.ensure_one()
        emails, phones = self._metrika_contact_values()
        region = phone_region
        if region is COMPANY_REGION:
            # A lead may have no company: read local numbers in the country of the one it goes to.
            region = self._metrika_company()._metrika_phone_region()
        client_id, yclid = self.metrika_client_id, self.metrika_yclid
        return {
            "client_ids": [client_id] if client_id else [],
            "yclids": [yclid] if yclid else [],
            "emails": _normalized(emails, normalize_email),
            "phones": _normalized(phones, normalize_phone, region),
        }

    def _metrika_attribution_depends(self):
        return ["metrika_client_id"]

    def _metrika_fetch_identifiers(self):
        """Read, for all of ``self`` at once (an upload's batch), only the fields identifiers
        come from: the yclid and what the attribution quality depends on (ClientID, phones,
        e-mails). Reading every column of 1,000 orders and their customers took a third of the
        time the upload spent on identifiers. (The batch gives ``_metrika_identifiers`` its
        phone region, so the records' companies are not read.)"""
        fields_by_record = {"metrika_yclid": []}
        for path in self._metrika_attribution_depends():
            name, _dot, rest = path.partition(".")
            fields_by_record.setdefault(name, [])
            if rest:
                fields_by_record[name].append(rest)
        self.fetch(list(fields_by_record))
        for name, related in fields_by_record.items():
            if related:
                self.mapped(name).fetch(related)

    @api.depends(lambda self: self._metrika_attribution_depends())
    def _compute_metrika_attribution(self):
        for record in self:
            identifiers = record._metrika_identifiers()
            contact = bool(identifiers["emails"] or identifiers["phones"])
            if identifiers["client_ids"]:
                record.metrika_attribution = (
                    const.ATTRIBUTION_MAXIMUM if contact else const.ATTRIBUTION_GOOD
                )
            else:
                record.metrika_attribution = (
                    const.ATTRIBUTION_MEDIUM if contact else const.ATTRIBUTION_NONE
                )

    def _compute_metrika_conversion_count(self):
        field = self._metrika_conversion_field
        counts = dict(
            self.env["metrika.conversion"]
            .sudo()
            ._read_group(
                [(field, "in", self.ids)],
                [field],
                ["__count"],
            )
        )
        for record in self:
            record.metrika_conversion_count = counts.get(record._origin, 0)

    def action_metrika_conversions(self):
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "metrika_offline_conversions.metrika_conversion_action"
        )
        action["domain"] = [(self._metrika_conversion_field, "=", self.id)]
        action["context"] = {"create": False}
        return action

    def action_metrika_send_now(self):
        """Queue what is due for these records and wake the upload at once; never sends inline.

        It changes what is sent (errors go back to the queue): managers only, checked here and
        not only by the button's groups. The records must be readable by the manager.
        """
        if not self.env.user.has_group("metrika_offline_conversions.group_metrika_manager"):
            raise AccessError(
                self.env._("Only Yandex Metrica managers may send conversions by hand.")
            )
        self.check_access("read")
        self._metrika_enqueue_current_state()
        conversions = (
            self.env["metrika.conversion"]
            .sudo()
            .search(
                [
                    (self._metrika_conversion_field, "in", self.ids),
                    ("state", "in", (const.STATE_PENDING, const.STATE_ERROR)),
                ]
            )
        )
        conversions._metrika_reset_to_pending()
        return {
            "type": "ir.actions.client",
            "tag": "display_notification",
            "params": {
                "type": "info",
                "message": _(
                    "%s conversions will be sent to Yandex Metrica in a moment.", len(conversions)
                ),
                "next": {"type": "ir.actions.act_window_close"},
            },
        }

    def _metrika_enqueue_current_state(self):
        """Queue the events the records' current state implies (idempotent)."""
        raise NotImplementedError


def _normalized(values, normalize, *args):
    result = []
    for value in values:
        if not value:
            continue
        try:
            normalized = normalize(value, *args)
        except InvalidIdentifier:
            continue
        if normalized and normalized not in result:
            result.append(normalized)
    return result
