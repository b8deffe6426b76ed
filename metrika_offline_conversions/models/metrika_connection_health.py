"""The last connection check of each company, and the administrators' activity while it fails."""

import logging

from odoo import api, fields, models
from odoo.tools import plaintext2html

from .. import const
from ..metrika_core import health
from ..metrika_core.errors import MetrikaConfigError, MetrikaError
from ..tools import metrika_health_messages, metrika_messages, odoo_compat

_logger = logging.getLogger(__name__)


@odoo_compat.sql_constraints(
    ("company_unique", "UNIQUE(company_id)", "A company has one connection health record."),
)
class MetrikaConnectionHealth(models.Model):
    _name = "metrika.connection.health"
    _description = "Yandex Metrica connection health"
    _inherit = ["mail.thread", "mail.activity.mixin"]
    _rec_name = "company_id"

    company_id = fields.Many2one(
        "res.company", required=True, readonly=True, index=True, ondelete="cascade"
    )
    state = fields.Selection(
        [
            (const.HEALTH_OK, "Working"),
            (const.HEALTH_FAILED, "Needs attention"),
            (const.HEALTH_UNREACHABLE, "Not checked: Metrica unreachable"),
        ],
        readonly=True,
    )
    checked_at = fields.Datetime(string="Last checked", readonly=True)
    # What failed, as codes and values ({"code", "values"} each): worded for each reader, in
    # their language, by tools/metrika_health_messages.py.
    problems = fields.Json(readonly=True)
    problem_codes = fields.Char(string="Failed checks", readonly=True)
    # Why the check could not run, as the error said it in the checker's language.
    unreachable_reason = fields.Text(string="Why it could not be checked", readonly=True)
    message = fields.Text(string="What to do", compute="_compute_message")

    @api.depends("state", "problems", "unreachable_reason")
    @api.depends_context("lang")
    def _compute_message(self):
        for record in self:
            if record.state == const.HEALTH_FAILED:
                record.message = "\n".join(
                    metrika_health_messages.problem_text(self.env, item["code"], item["values"])
                    for item in record.problems or ()
                )
            elif record.state == const.HEALTH_UNREACHABLE:
                record.message = record.unreachable_reason
            else:
                record.message = False

    @api.model
    def _metrika_of(self, company):
        """The company's health record, created on first use."""
        record = self.sudo().search([("company_id", "=", company.id)], limit=1)
        return record or self.sudo().create({"company_id": company.id})

    # ---------------------------------------------------------------- the check

    @api.model
    def _cron_check_connections(self):
        """Daily: refresh the tokens about to expire, then check every company that sends."""
        for company in self.env["res.company"].sudo().search([("metrika_token", "!=", False)]):
            if company.metrika_enabled and company.metrika_counter_id and company.metrika_token:
                self._metrika_check(company)
            else:
                company._metrika_refresh_token_if_due()

    @api.model
    def _metrika_check(self, company):
        """Check ``company``'s connection now, keep the result and alert or stand down the
        administrators. Returns the health record."""
        company = company.sudo()
        record = self._metrika_of(company)
        problems = []
        expiring = company._metrika_refresh_token_if_due()
        if expiring:
            problems.append(expiring)
        try:
            with company._metrika_client() as client:
                report = health.check_connection(
                    client,
                    transport=company.metrika_transport,
                    goals=company._metrika_goal_identifiers(),
                    files_time_zone=company.metrika_counter_time_zone or None,
                )
        except MetrikaConfigError as error:
            report = health.HealthReport(
                None, [health.Problem(health.PROBLEM_TOKEN, detail=str(error))]
            )
        except MetrikaError as error:
            _logger.info(
                "Metrica: connection check of company %s could not run (%s)",
                company.id,
                type(error).__name__,
            )
            record.write(
                {
                    "state": const.HEALTH_UNREACHABLE,
                    "checked_at": fields.Datetime.now(),
                    "unreachable_reason": metrika_messages.error_text(self.env, error),
                }
            )
            return record
        counter = company.metrika_counter_id
        problems += [
            {"code": problem.code, "values": {"counter": counter, **problem.values}}
            for problem in report.problems
        ]
        record.write(
            {
                "state": const.HEALTH_FAILED if problems else const.HEALTH_OK,
                "checked_at": fields.Datetime.now(),
                "problems": problems,
                "problem_codes": ",".join(item["code"] for item in problems) or False,
                "unreachable_reason": False,
            }
        )
        if problems:
            _logger.warning(
                "Metrica: connection check of company %s failed: %s",
                company.id,
                record.problem_codes,
            )
            record._metrika_alert_administrators()
        else:
            record._metrika_alerts().unlink()
        return record

    # ---------------------------------------------------------------- the alert

    def _metrika_alert_administrators(self):
        """One activity per administrator of the company while the check fails: a check that
        fails again adds none, it brings the note of the open ones up to date. Each is written
        in its administrator's language; they are found again by their type, never by text."""
        self.ensure_one()
        alert_type = self.env.ref(const.HEALTH_ALERT_ACTIVITY_TYPE)
        company = self.company_id
        admins = odoo_compat.group_users(self.env.ref("base.group_system")).filtered(
            lambda user: not user.share and company in user.company_ids
        )
        alerts = self._metrika_alerts()
        for alert in alerts:
            alert.note = plaintext2html(self.with_context(lang=alert.user_id.lang).message)
        for user in admins - alerts.user_id:
            self.activity_schedule(
                activity_type_id=alert_type.id,
                summary=alert_type.with_context(lang=user.lang).summary,
                note=plaintext2html(self.with_context(lang=user.lang).message),
                user_id=user.id,
            )

    def _metrika_alerts(self):
        """The open activities of the health alert type on these records."""
        alert_type = self.env.ref(const.HEALTH_ALERT_ACTIVITY_TYPE)
        return (
            self.env["mail.activity"]
            .sudo()
            .search(
                [
                    ("activity_type_id", "=", alert_type.id),
                    ("res_model", "=", self._name),
                    ("res_id", "in", self.ids),
                ]
            )
        )

    def action_metrika_check_again(self):
        self.ensure_one()
        self.env["res.config.settings"]._metrika_check_administrator()
        self._metrika_check(self.company_id)
        return True
