"""Export CSV: the file of any selection of the sync log, in any upload format, built by the
format's sender exactly as an upload would build it (same rows, preflight check and builder)."""

import base64
import io
import zipfile

from odoo import api, fields, models
from odoo.exceptions import AccessError, UserError

from .. import const
from ..tools.senders import SENDERS


class _DiscardChanges(Exception):
    """Raised to roll back the sender's marks after the files were built."""

    def __init__(self, files, row_count, kept_back):
        super().__init__()
        self.files = files
        self.row_count = row_count
        self.kept_back = kept_back


class MetrikaConversionExport(models.TransientModel):
    _name = "metrika.conversion.export"
    _description = "Export Metrica conversions as a file"

    conversion_ids = fields.Many2many("metrika.conversion", string="Conversions", readonly=True)
    conversion_count = fields.Integer(string="Conversions selected", readonly=True)
    file_format = fields.Selection(
        const.TRANSPORT_SELECTION,
        string="Format",
        required=True,
        default=const.TRANSPORT_SIMPLE_ORDERS,
    )
    file_data = fields.Binary(string="File", readonly=True, attachment=True)
    file_name = fields.Char(readonly=True)
    row_count = fields.Integer(string="Rows in the file", readonly=True)
    kept_back = fields.Text(string="Not in the file", readonly=True)

    @api.model
    def default_get(self, fields_list):
        values = super().default_get(fields_list)
        if self.env.context.get("active_model") == "metrika.conversion":
            conversions = self.env["metrika.conversion"].browse(
                self.env.context.get("active_ids") or []
            )
            values["conversion_ids"] = [fields.Command.set(conversions.ids)]
            values["conversion_count"] = len(conversions)
            if conversions and "file_format" in fields_list:
                values["file_format"] = conversions[0].transport
        return values

    def _metrika_check_access(self, conversions):
        """Managers export; the file carries the customers' identifiers, so the user must be
        allowed to read the conversions and their leads and orders too."""
        if not self.env.user.has_group("metrika_offline_conversions.group_metrika_manager"):
            raise AccessError(self.env._("Only Yandex Metrica managers may export conversions."))
        conversions.check_access("read")
        conversions.sale_order_id.check_access("read")
        conversions.lead_id.check_access("read")

    def action_export(self):
        self.ensure_one()
        conversions = self.conversion_ids
        self._metrika_check_access(conversions)
        if not conversions:
            raise UserError(self.env._("Select the conversions to export in the sync log."))
        company = conversions.company_id
        if len(company) > 1:
            raise UserError(self.env._("Export the conversions of one company at a time."))
        if (
            self.file_format in (const.TRANSPORT_SIMPLE_ORDERS, const.TRANSPORT_CDP_DETAILED)
            and not company.sudo().metrika_counter_time_zone
        ):
            # The CRM file's dates are in the counter's time zone, read from Metrica at the
            # first upload or by Test connection: an export makes no request of its own.
            raise UserError(
                self.env._(
                    "The counter's time zone is not known yet: click Test connection in the "
                    "Metrica settings, then export again."
                )
            )
        files, row_count, kept_back = self._metrika_build_files(company, conversions.sudo())
        if not files:
            raise UserError(
                self.env._("None of these conversions would be sent:\n%s", "\n".join(kept_back))
            )
        name = "metrika_%s_%s" % (self.file_format, fields.Date.context_today(self))
        if len(files) == 1:
            data, name = files[0][1], name + ".csv"
        else:
            data, name = _zip(name, files), name + ".zip"
        self.write(
            {
                "file_data": base64.b64encode(data),
                "file_name": name,
                "row_count": row_count,
                "kept_back": "\n".join(kept_back) or False,
            }
        )
        return {
            "type": "ir.actions.act_window",
            "res_model": self._name,
            "res_id": self.id,
            "view_mode": "form",
            "target": "new",
        }

    def _metrika_build_files(self, company, conversions):
        """``([(name, bytes)], rows, kept back lines)``: the files the sender of the chosen
        format makes of ``conversions`` if they were all queued now (``sender.export_files``:
        one per identifier column of a goal-based file; contacts and orders of the detailed
        method), and the number of rows (orders, goal hits) they carry.

        The sender settles the rows it leaves out as an upload would (skipped, kept back by the
        preflight check): inside a savepoint that is rolled back, so that the sync log is left
        as it was and the files are byte for byte what an upload would send.
        """
        sender = SENDERS[self.file_format](self.env, company, None)
        try:
            with self.env.cr.savepoint():
                conversions._metrika_set(
                    {
                        "state": const.STATE_PENDING,
                        "failure_reason": False,
                        "last_error": False,
                        "upload_id": False,
                    }
                )
                files, kept_back = [], []
                row_count = 0
                remaining = conversions
                while remaining:
                    prepared = sender.prepare(remaining)
                    remaining.invalidate_recordset()
                    settled = remaining.filtered(lambda c: c.state != const.STATE_PENDING)
                    kept_back += [
                        "%s: %s" % (conversion.record_name, conversion.last_error)
                        for conversion in settled
                    ]
                    if not prepared or not prepared.conversions:
                        break
                    files += sender.export_files(prepared)
                    row_count += prepared.row_count
                    remaining -= settled | prepared.conversions
                raise _DiscardChanges(files, row_count, kept_back)
        except _DiscardChanges as built:
            files, row_count, kept_back = built.files, built.row_count, built.kept_back
        self.env.invalidate_all()
        return files, row_count, kept_back


def _zip(name, files):
    """One archive of the files of an export: one per identifier column of a goal-based
    export, the contacts and the orders of a detailed one."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for part, data in files:
            archive.writestr("%s_%s.csv" % (name, part), data)
    return buffer.getvalue()
