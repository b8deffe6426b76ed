"""The dry run's side of an upload: a kept file, downloaded or sent for real by an
administrator. The cron sends a released file (tools/upload_run.py)."""

from odoo import fields, models
from odoo.exceptions import AccessError, UserError
from odoo.tools import SQL

from .. import const


class MetrikaUpload(models.Model):
    _inherit = "metrika.upload"

    def _metrika_check_administrator(self):
        """Kept files carry the customers' identifiers, and sending one is a settings matter:
        administrators only, checked here because the buttons run as the clicking user."""
        if not self.env.user.has_group("base.group_system"):
            raise AccessError(self.env._("Only administrators may download or send kept files."))
        self.check_access("read")

    def _metrika_kept_rows(self):
        """The conversions still kept with this upload (a dry run's file)."""
        self.ensure_one()
        return self.conversion_ids.filtered(
            lambda conversion: conversion.upload_id == self and conversion.state == const.STATE_KEPT
        )

    def action_download_file(self):
        self.ensure_one()
        self._metrika_check_administrator()
        if not self.sudo().attachment_id:
            raise UserError(self.env._("This upload has no file any more."))
        return {
            "type": "ir.actions.act_url",
            "url": "/web/content/%s?download=true" % self.sudo().attachment_id.id,
            "target": "download",
        }

    def action_send_for_real(self):
        """Release kept files: the cron sends each once, as kept. A file already released (a
        second click, another administrator) is left alone."""
        self._metrika_check_administrator()
        for upload in self.sudo():
            if upload.state != const.UPLOAD_KEPT:
                continue
            if not upload.attachment_id or upload.conversion_ids != upload._metrika_kept_rows():
                raise UserError(
                    self.env._(
                        "Upload #%s cannot be sent as it was kept: some of its conversions were "
                        "resent or cancelled since (or its file is gone). Resend the conversions "
                        "instead.",
                        upload.id,
                    )
                )
            # One statement decides: of two clicks, only one finds the upload still kept.
            self.env.flush_all()
            self.env.cr.execute(
                SQL(
                    "UPDATE metrika_upload SET state = %s, write_date = %s, write_uid = %s "
                    "WHERE id = %s AND state = %s RETURNING id",
                    const.UPLOAD_RELEASED,
                    fields.Datetime.now(),
                    self.env.uid,
                    upload.id,
                    const.UPLOAD_KEPT,
                )
            )
            released = self.env.cr.fetchone()
            upload.invalidate_recordset(["state", "write_date", "write_uid"])
            if released:
                upload.message_post(
                    body=self.env._(
                        "Released by %s: the kept file is sent at the next upload.",
                        self.env.user.name,
                    )
                )
                self.env["metrika.conversion"]._metrika_trigger_upload()
        return True
