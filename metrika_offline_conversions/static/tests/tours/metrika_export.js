/** @odoo-module **/

import { registry } from "@web/core/registry";

/**
 * An administrator exports a CSV from the sync log: selects a conversion, picks "Export CSV"
 * among the list's actions, exports it as CRM orders and gets the file to download. The
 * download itself is not followed (the test browser refuses downloads); the Python test
 * checks the file. Nothing here leaves the page, so one tour serves 18.0 and 19.0.
 */
registry.category("web_tour.tours").add("metrika_export_csv", {
    steps: () => [
        {
            content: "Select the first conversion of the sync log",
            trigger: ".o_list_view .o_data_row:first .o_list_record_selector input",
            run: "click",
        },
        {
            content: "Open the actions of the selection",
            trigger: ".o_cp_action_menus .dropdown-toggle:has(.fa-cog)",
            run: "click",
        },
        {
            content: "Export CSV",
            trigger: ".o-dropdown-item:contains('Export CSV')",
            run: "click",
        },
        {
            content: "Export in the CRM orders format",
            trigger: ".modal .o_field_widget[name=file_format] select",
            run: "select \"simple_orders\"",
        },
        {
            content: "Build the file",
            trigger: ".modal button[name=action_export]",
            run: "click",
        },
        {
            content: "The file is offered for download",
            trigger: ".modal .o_field_widget[name=file_data]:contains('metrika_simple_orders')",
        },
        {
            content: "with the number of its rows",
            trigger: ".modal .o_field_widget[name=row_count]:contains('1')",
        },
    ],
});
