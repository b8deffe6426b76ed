import logging
import secrets

import psycopg2.errors

from odoo import _, api, fields, models
from odoo.exceptions import ValidationError
from odoo.tools import SQL

from .. import const
from ..metrika_core import formats
from ..metrika_core.client import is_valid_api_url
from ..metrika_core.client_cdp import MetrikaCdpClient

_logger = logging.getLogger(__name__)

# Every transaction reads its company (record rules, currency, ...) with all the columns of
# the default prefetch group. Only the settings read where a user confirms, pays or cancels
# stay in it; the upload's settings are fetched together, by the cron and the settings form,
# when first read: 13 columns less (and no group check for the token) in every company read.
UPLOAD_SETTINGS = "metrika_upload_settings"
# Changing any of these points the company at another account or counter.
CONNECTION_FIELDS = ("metrika_counter_id", "metrika_token", "metrika_api_url")


class ResCompany(models.Model):
    _inherit = "res.company"

    metrika_enabled = fields.Boolean(string="Send to Yandex Metrica")
    metrika_counter_id = fields.Char(string="Metrica counter ID", prefetch=UPLOAD_SETTINGS)
    metrika_token = fields.Char(
        string="Metrica OAuth token",
        groups="base.group_system",
        copy=False,
        prefetch=UPLOAD_SETTINGS,
    )
    metrika_api_url = fields.Char(
        string="Metrica API URL",
        default=const.DEFAULT_API_URL,
        groups="base.group_system",
        prefetch=UPLOAD_SETTINGS,
    )
    metrika_order_event = fields.Selection(
        [
            (const.ORDER_EVENT_CONFIRMED, "When the order is confirmed"),
            (const.ORDER_EVENT_CREATED, "When the order is created"),
        ],
        string="Send orders",
        default=const.ORDER_EVENT_CONFIRMED,
        required=True,
    )
    metrika_send_paid = fields.Boolean(string="Send paid orders", default=True)
    metrika_send_cancelled = fields.Boolean(string="Send cancelled orders", default=True)
    metrika_send_leads = fields.Boolean(string="Send CRM leads")
    metrika_spam_lost_reason_ids = fields.Many2many(
        "crm.lost.reason",
        "res_company_metrika_spam_lost_reason_rel",
        "company_id",
        "lost_reason_id",
        string="Lost reasons sent as spam",
    )
    metrika_transport = fields.Selection(
        const.TRANSPORT_SELECTION,
        string="Upload method",
        default=const.TRANSPORT_SIMPLE_ORDERS,
        required=True,
    )
    metrika_goal_in_progress = fields.Char(
        string="Goal for created orders and leads", prefetch=UPLOAD_SETTINGS
    )
    metrika_goal_paid = fields.Char(
        string="Goal for paid orders and won leads", prefetch=UPLOAD_SETTINGS
    )
    metrika_goal_cancelled = fields.Char(
        string="Goal for cancelled orders and lost leads", prefetch=UPLOAD_SETTINGS
    )
    metrika_hash_identifiers = fields.Boolean(
        string="Send phones and e-mails as MD5 only", prefetch=UPLOAD_SETTINGS
    )
    metrika_batch_size = fields.Integer(
        string="Conversions per upload",
        default=const.DEFAULT_BATCH_SIZE,
        prefetch=UPLOAD_SETTINGS,
    )
    metrika_upload_retention_days = fields.Integer(
        string="Keep uploaded files (days)",
        default=const.DEFAULT_UPLOAD_RETENTION_DAYS,
        prefetch=UPLOAD_SETTINGS,
    )
    metrika_log_retention_days = fields.Integer(
        string="Keep the sync log for (days)",
        default=const.DEFAULT_LOG_RETENTION_DAYS,
        prefetch=UPLOAD_SETTINGS,
        help="Conversions no longer waiting to be sent, and uploads Metrica has answered, are "
        "deleted once they have not changed for this many days. At least %s days: as long as "
        "Metrica accepts updates of an order, the log tells what it already has."
        % const.MIN_LOG_RETENTION_DAYS,
    )
    metrika_paused = fields.Boolean(
        string="Metrica sending paused", readonly=True, copy=False, prefetch=UPLOAD_SETTINGS
    )
    metrika_pause_reason = fields.Text(
        string="Why sending is paused", readonly=True, copy=False, prefetch=UPLOAD_SETTINGS
    )
    metrika_counter_name = fields.Char(
        string="Metrica counter name", readonly=True, copy=False, prefetch=UPLOAD_SETTINGS
    )
    metrika_counter_time_zone = fields.Char(
        string="Metrica counter time zone", readonly=True, copy=False, prefetch=UPLOAD_SETTINGS
    )
    metrika_status_mapping_fingerprint = fields.Char(
        string="Order status mapping last pushed",
        readonly=True,
        copy=False,
        prefetch=UPLOAD_SETTINGS,
        help="A fingerprint of the order status mapping last pushed to the counter: the detailed "
        "method pushes it again when it changes.",
    )
    # -- Conversion Centre link (controllers/centre_link.py) --
    # Read where a user confirms an order (whether to queue it): in the default prefetch group.
    metrika_centre_link_enabled = fields.Boolean(string="Conversion Centre link", copy=False)
    # The secret is the link: administrators only, never copied, wiped on neutralisation.
    metrika_centre_secret = fields.Char(
        string="Conversion Centre link secret",
        readonly=True,
        copy=False,
        groups="base.group_system",
        prefetch=UPLOAD_SETTINGS,
    )
    metrika_dry_run = fields.Boolean(
        string="Dry run: build files, send nothing",
        prefetch=UPLOAD_SETTINGS,
        help="Every batch is built, checked and kept as a file on its upload in the sync log, "
        "exactly as it would have been sent, and nothing is sent. An administrator can download "
        "a kept file, or send it for real.",
    )
    # The history offered once, after sending is turned on for the first time (see
    # res_config_settings.py); later, the history is a button.
    metrika_history_offer = fields.Selection(
        [
            (const.HISTORY_TO_OFFER, "To offer at the next save of Settings"),
            (const.HISTORY_OFFERED, "Offered"),
        ],
        string="History sent at connection",
        readonly=True,
        copy=False,
    )

    @api.constrains("metrika_counter_id")
    def _check_metrika_counter_id(self):
        for company in self:
            value = company.metrika_counter_id
            if value and not (value.strip().isdigit() and 0 < int(value) < 2**31):
                raise ValidationError(
                    _(
                        "The Metrica counter ID is the number shown in the counter's list in "
                        'Yandex Metrica, for example 12345678; "%s" is not one.',
                        value,
                    )
                )

    @api.constrains("metrika_goal_in_progress", "metrika_goal_paid", "metrika_goal_cancelled")
    def _check_metrika_goals(self):
        for company in self:
            for goal in (
                company.metrika_goal_in_progress,
                company.metrika_goal_paid,
                company.metrika_goal_cancelled,
            ):
                if goal and not formats.is_valid_goal_identifier(goal):
                    raise ValidationError(
                        _(
                            "A Metrica goal identifier cannot contain spaces or any of "
                            '/ \\ & # ? = "; "%s" does. Use the identifier of a '
                            "JavaScript-event goal, not its name.",
                            goal,
                        )
                    )

    @api.constrains(
        "metrika_batch_size", "metrika_upload_retention_days", "metrika_log_retention_days"
    )
    def _check_metrika_numbers(self):
        for company in self:
            if not 1 <= company.metrika_batch_size <= const.MAX_BATCH_SIZE:
                raise ValidationError(
                    _("Conversions per upload must be between 1 and %s.", const.MAX_BATCH_SIZE)
                )
            if company.metrika_upload_retention_days < 1:
                raise ValidationError(_("Uploaded files must be kept at least one day."))
            if company.metrika_log_retention_days < const.MIN_LOG_RETENTION_DAYS:
                raise ValidationError(
                    self.env._(
                        "The sync log must be kept at least %s days: as long as Metrica accepts "
                        "updates of an order, the log tells what it already has.",
                        const.MIN_LOG_RETENTION_DAYS,
                    )
                )

    @api.constrains("metrika_api_url")
    def _check_metrika_api_url(self):
        for company in self.sudo():
            url = company.metrika_api_url
            if url and not is_valid_api_url(url):
                raise ValidationError(
                    _(
                        "The Metrica API URL must be an http(s) address without a query, "
                        "such as %s.",
                        const.DEFAULT_API_URL,
                    )
                )

    def write(self, vals):
        changed = self.browse()
        if any(name in vals for name in CONNECTION_FIELDS):
            changed = self.sudo().filtered(
                lambda company: any(
                    (company[name] or False) != (vals[name] or False)
                    for name in CONNECTION_FIELDS
                    if name in vals
                )
            )
        first_enabled = self.browse()
        if vals.get("metrika_enabled"):
            first_enabled = self.sudo().filtered(lambda company: not company.metrika_history_offer)
        result = super().write(vals)
        if vals.get("metrika_centre_link_enabled"):
            self._metrika_centre_ensure_secret()
        if first_enabled:
            super(ResCompany, first_enabled).write(
                {"metrika_history_offer": const.HISTORY_TO_OFFER}
            )
        if changed:
            # Another token or counter: forget the old counter's time zone, and give sending
            # another chance after an authentication pause.
            super(ResCompany, changed).write(
                {
                    "metrika_paused": False,
                    "metrika_pause_reason": False,
                    "metrika_counter_name": False,
                    "metrika_counter_time_zone": False,
                }
            )
            # Rows that waited for these settings or this access go out at once, and the
            # administrators' activities asking for the fix are done.
            self.env["metrika.conversion"]._metrika_wake_companies(changed)
            for company in changed:
                self.env["metrika.upload"]._metrika_close_alerts(company)
        return result

    @api.model_create_multi
    def create(self, vals_list):
        companies = super().create(vals_list)
        companies.filtered("metrika_centre_link_enabled")._metrika_centre_ensure_secret()
        return companies

    def _metrika_centre_ensure_secret(self):
        """A link turned on gets its secret; a secret already there is kept (the Centre uses it)."""
        for company in self.sudo():
            if not company.metrika_centre_secret:
                company._metrika_centre_rotate_secret()
        # Its phone numbers normalised before the Centre's first poll, not during it.
        cron = self.env.ref(
            "metrika_offline_conversions.ir_cron_metrika_centre_phones", raise_if_not_found=False
        )
        if cron and self:
            cron.sudo()._trigger()

    def _metrika_centre_rotate_secret(self):
        """A new secret: the old link answers 404 from now on. Callers check the group."""
        for company in self.sudo():
            company.metrika_centre_secret = secrets.token_urlsafe(const.CENTRE_SECRET_BYTES)

    def _metrika_is_configured(self):
        self.ensure_one()
        company = self.sudo()
        return bool(
            company.metrika_enabled and company.metrika_counter_id and company.metrika_token
        )

    def _metrika_phone_region(self):
        """The country (ISO code, or None) that phone numbers without a country code are read
        in for this company's customers."""
        self.ensure_one()
        return self.sudo().country_id.code or None

    def _metrika_client(self, timeout=None):
        """The only place a Metrica client is built from settings.

        Raises MetrikaConfigError for settings the client cannot use (e.g. a token with a space).
        """
        self.ensure_one()
        company = self.sudo()
        return MetrikaCdpClient(
            company.metrika_token,
            int(company.metrika_counter_id),
            base_url=company.metrika_api_url or const.DEFAULT_API_URL,
            timeout=timeout or const.HTTP_TIMEOUT,
        )

    def _metrika_counter_time_zone(self, client):
        """The counter's time zone, read once from Metrica and kept on the company."""
        self.ensure_one()
        company = self.sudo()
        if company.metrika_counter_time_zone:
            return company.metrika_counter_time_zone
        counter = client.get_counter()
        time_zone = counter.get("time_zone_name") or "UTC"
        # Only a cache: written only where still empty and in a savepoint, so that a concurrent
        # upload that cached it first (or a settings form holding the row) costs nothing.
        self.env.flush_all()
        try:
            with self.env.cr.savepoint(flush=False):
                self.env.cr.execute(
                    SQL(
                        "UPDATE res_company SET metrika_counter_name = %s, "
                        "metrika_counter_time_zone = %s "
                        "WHERE id = %s AND metrika_counter_time_zone IS NULL",
                        counter.get("name") or None,
                        time_zone,
                        company.id,
                    ),
                    log_exceptions=False,
                )
        except (psycopg2.errors.SerializationFailure, psycopg2.errors.LockNotAvailable):
            _logger.info("Metrica: time zone of company %s cached by a concurrent run", company.id)
        company.invalidate_recordset(["metrika_counter_name", "metrika_counter_time_zone"])
        return time_zone

    def _metrika_pause(self, reason):
        """Stop sending for this company until an administrator fixes the settings or the access."""
        self.ensure_one()
        self.sudo().write({"metrika_paused": True, "metrika_pause_reason": reason})
        _logger.warning(
            "Metrica sending paused for company %s: settings or access refused", self.id
        )
