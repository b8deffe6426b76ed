"""A company's "Connect to Yandex": its own OAuth application, the token pair Yandex issued and
its refresh. The token lands in ``metrika_token``, where a pasted one goes too."""

import logging
from datetime import timedelta

from odoo import api, fields, models
from odoo.exceptions import UserError, ValidationError

from .. import const
from ..metrika_core import oauth
from ..metrika_core.client import is_valid_api_url
from ..metrika_core.errors import MetrikaConfigError, MetrikaError
from .metrika_oauth_request import session_hash
from .res_company import UPLOAD_SETTINGS

_logger = logging.getLogger(__name__)


class ResCompany(models.Model):
    _inherit = "res.company"

    # Read by the settings form and the daily cron only: out of the company's default
    # prefetch group, which every transaction reads (see res_company.py).
    metrika_oauth_client_id = fields.Char(
        string="Yandex OAuth application ID",
        groups="base.group_system",
        copy=False,
        prefetch=UPLOAD_SETTINGS,
    )
    metrika_oauth_client_secret = fields.Char(
        string="Yandex OAuth application secret",
        groups="base.group_system",
        copy=False,
        prefetch=UPLOAD_SETTINGS,
    )
    metrika_refresh_token = fields.Char(
        string="Metrica refresh token",
        groups="base.group_system",
        copy=False,
        readonly=True,
        prefetch=UPLOAD_SETTINGS,
    )
    metrika_token_expires_at = fields.Datetime(
        string="Metrica token expires on",
        groups="base.group_system",
        copy=False,
        readonly=True,
        prefetch=UPLOAD_SETTINGS,
    )
    metrika_oauth_url = fields.Char(
        string="Yandex OAuth URL",
        default=const.DEFAULT_OAUTH_URL,
        groups="base.group_system",
        prefetch=UPLOAD_SETTINGS,
    )

    @api.constrains("metrika_oauth_url")
    def _check_metrika_oauth_url(self):
        for company in self.sudo():
            if company.metrika_oauth_url and not is_valid_api_url(company.metrika_oauth_url):
                raise ValidationError(
                    self.env._(
                        "The Yandex OAuth URL must be an http(s) address without a query, such "
                        "as %s.",
                        const.DEFAULT_OAUTH_URL,
                    )
                )

    def write(self, vals):
        if "metrika_token" in vals and "metrika_refresh_token" not in vals:
            # A token pasted by hand: the refresh token and expiry of an earlier connection
            # belong to another token, and refreshing would replace the pasted one.
            vals = dict(vals, metrika_refresh_token=False, metrika_token_expires_at=False)
        return super().write(vals)

    def _metrika_goal_identifiers(self):
        """The goals the settings name, for the goal-based upload method."""
        self.ensure_one()
        company = self.sudo()
        return [
            goal
            for goal in (
                company.metrika_goal_in_progress,
                company.metrika_goal_paid,
                company.metrika_goal_cancelled,
            )
            if goal
        ]

    def _metrika_oauth_client(self):
        """The only place a Yandex OAuth client is built from settings (MetrikaConfigError
        when the application's id or secret is missing)."""
        self.ensure_one()
        company = self.sudo()
        return oauth.YandexOAuthClient(
            company.metrika_oauth_client_id or "",
            company.metrika_oauth_client_secret or "",
            base_url=company.metrika_oauth_url or const.DEFAULT_OAUTH_URL,
            timeout=const.HTTP_TIMEOUT,
        )

    def _metrika_oauth_error(self, error):
        """A UserError saying what went wrong with Yandex OAuth, in the user's language."""
        if isinstance(error, MetrikaConfigError):
            return UserError(
                self.env._("Enter the ID and the secret of your Yandex OAuth application first.")
            )
        if isinstance(error, oauth.OAuthClientError):
            return UserError(
                self.env._(
                    "Yandex refused the OAuth application (%s): check its ID and secret, and "
                    "that it is not blocked or awaiting moderation.",
                    error.message,
                )
            )
        if isinstance(error, oauth.OAuthGrantError):
            return UserError(
                self.env._(
                    "Yandex refused the code (%s): it expired or was already used. Press "
                    '"Connect to Yandex" again.',
                    error.message,
                )
            )
        return UserError(
            self.env._("Yandex OAuth could not be reached (%s). Try again later.", str(error))
        )

    def _metrika_store_tokens(self, tokens):
        """Keep what Yandex issued; a new token unpauses sending (res.company.write)."""
        self.ensure_one()
        expires_at = tokens.expires_at and tokens.expires_at.replace(tzinfo=None)
        self.sudo().write(
            {
                "metrika_token": tokens.access_token,
                "metrika_refresh_token": tokens.refresh_token or False,
                "metrika_token_expires_at": expires_at or False,
            }
        )
        _logger.info("Metrica: company %s connected to Yandex, token until %s", self.id, expires_at)

    # ---------------------------------------------------------------- authorization-code flow

    def _metrika_oauth_start_code_flow(self, redirect_uri, session_key):
        """Remember a new PKCE verifier and state for this administrator and session; return
        the Yandex page to send them to."""
        self.ensure_one()
        client_id = self.sudo().metrika_oauth_client_id
        if not (client_id and self.sudo().metrika_oauth_client_secret):
            raise self._metrika_oauth_error(MetrikaConfigError("no application"))
        Request = self.env["metrika.oauth.request"].sudo()
        Request.search([("company_id", "=", self.id)]).unlink()
        verifier, challenge = oauth.new_pkce_pair()
        state = oauth.new_state()
        Request.create(
            {
                "company_id": self.id,
                "user_id": self.env.uid,
                "flow": const.OAUTH_FLOW_CODE,
                "state_token": state,
                "session_hash": session_hash(session_key),
                "code_verifier": verifier,
                "redirect_uri": redirect_uri,
                "expires_at": Request._metrika_expiry(),
            }
        )
        try:
            return oauth.authorize_url(
                self.sudo().metrika_oauth_url or const.DEFAULT_OAUTH_URL,
                client_id,
                redirect_uri=redirect_uri,
                state=state,
                code_challenge=challenge,
            )
        except MetrikaConfigError as error:
            raise self._metrika_oauth_error(error) from None

    @api.model
    def _metrika_oauth_finish_code_flow(self, state, code, session_key, error=None):
        """The callback: the state must be one this administrator started in this session and
        not used yet; the code is exchanged with the verifier kept here. Returns the company."""
        request = self.env["metrika.oauth.request"]._metrika_live(
            [
                ("flow", "=", const.OAUTH_FLOW_CODE),
                ("state_token", "=", state or "-"),
                ("user_id", "=", self.env.uid),
            ]
        )
        if not request or not session_key or request.session_hash != session_hash(session_key):
            raise UserError(
                self.env._(
                    'This answer from Yandex does not belong to a "Connect to Yandex" you '
                    "started in this browser, or it came too late. Press Connect again."
                )
            )
        company, verifier, redirect_uri = (
            request.company_id,
            request.code_verifier,
            request.redirect_uri,
        )
        request.unlink()  # single use, whatever Yandex answers
        if error or not code:
            raise UserError(self.env._("Yandex did not allow the access (%s).", error or "no code"))
        try:
            with company._metrika_oauth_client() as client:
                tokens = client.exchange_code(
                    code, code_verifier=verifier, redirect_uri=redirect_uri
                )
        except (MetrikaConfigError, MetrikaError) as failure:
            raise company._metrika_oauth_error(failure) from None
        company._metrika_store_tokens(tokens)
        return company

    # ---------------------------------------------------------------- device flow

    def _metrika_oauth_start_device_flow(self):
        """Ask Yandex for a code the administrator types at its page; remember the device code."""
        self.ensure_one()
        try:
            with self._metrika_oauth_client() as client:
                device = client.request_device_code()
        except (MetrikaConfigError, MetrikaError) as failure:
            raise self._metrika_oauth_error(failure) from None
        Request = self.env["metrika.oauth.request"].sudo()
        Request.search([("company_id", "=", self.id)]).unlink()
        return Request.create(
            {
                "company_id": self.id,
                "user_id": self.env.uid,
                "flow": const.OAUTH_FLOW_DEVICE,
                "device_code": device.device_code,
                "user_code": device.user_code,
                "verification_url": device.verification_url,
                "expires_at": device.expires_at.replace(tzinfo=None),
            }
        )

    def _metrika_oauth_device_request(self):
        self.ensure_one()
        return self.env["metrika.oauth.request"]._metrika_live(
            [("company_id", "=", self.id), ("flow", "=", const.OAUTH_FLOW_DEVICE)]
        )[:1]

    def _metrika_oauth_poll_device(self):
        """Ask Yandex once whether the code was entered: True once the token is stored, False
        while Yandex still waits for the administrator."""
        self.ensure_one()
        request = self._metrika_oauth_device_request()
        if not request:
            raise UserError(
                self.env._('No code is waiting to be entered: press "Connect with a code" again.')
            )
        try:
            with self._metrika_oauth_client() as client:
                tokens = client.poll_device_token(request.device_code)
        except oauth.OAuthPendingError:
            return False
        except (MetrikaConfigError, MetrikaError) as failure:
            if isinstance(failure, oauth.OAuthGrantError):
                request.unlink()
            raise self._metrika_oauth_error(failure) from None
        request.unlink()
        self._metrika_store_tokens(tokens)
        return True

    # ---------------------------------------------------------------- refresh

    def _metrika_refresh_token_if_due(self):
        """Refresh the token once it is const.TOKEN_REFRESH_DAYS from its expiry. Returns the
        health problem ``{"code", "values"}`` when it expires within const.TOKEN_WARNING_DAYS
        and cannot be refreshed, else None."""
        self.ensure_one()
        company = self.sudo()
        expires_at = company.metrika_token_expires_at
        if not expires_at or not company.metrika_token:
            return None
        left = expires_at - fields.Datetime.now()
        if left > timedelta(days=const.TOKEN_REFRESH_DAYS):
            return None
        if company.metrika_refresh_token:
            try:
                with company._metrika_oauth_client() as client:
                    tokens = client.refresh(company.metrika_refresh_token)
            except oauth.OAuthGrantError as failure:
                # Revoked or expired: asking again will not help; only a new connection will.
                company.metrika_refresh_token = False
                detail = failure.message
            except (MetrikaConfigError, MetrikaError) as failure:
                detail = str(failure)
            else:
                company._metrika_store_tokens(tokens)
                return None
            _logger.warning("Metrica: the token of company %s could not be refreshed", self.id)
        else:
            detail = self.env._("no refresh token")
        if left > timedelta(days=const.TOKEN_WARNING_DAYS):
            return None
        return {
            "code": const.PROBLEM_TOKEN_EXPIRING,
            "values": {"expires": fields.Date.to_string(expires_at), "detail": detail},
        }
