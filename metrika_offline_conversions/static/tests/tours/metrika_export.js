/** @odoo-module **/

import { registry } from "@web/core/registry";

/**
 * An administrator exports a CSV from the sync log: selects a conversion, picks "Export CSV"
 * among the list's actions, exports it as CRM orders and gets the file to download. The
 * download itself is not followed (the test browser refuses downloads); the Python test
 * checks the file. The format is chosen in a <select> on 18.0 and in a select menu on 19.0:
 * one tour per series, the test picks it.
 */
function exportSteps({ series19 }) {
    const chooseFormat = series19
        ? [
              {
                  content: "Open the formats",
                  trigger: ".modal .o_field_widget[name=file_format] .o_select_menu_toggler",
                  run: "click",
              },
              {
                  content: "Export in the CRM orders format",
                  trigger: ".o_select_menu_item:contains('CRM orders (simplified)')",
                  run: "click",
              },
          ]
        : [
              {
                  content: "Export in the CRM orders format",
                  trigger: ".modal .o_field_widget[name=file_format] select",
                  run: 'select "simple_orders"',
              },
          ];
    return [
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
        ...chooseFormat,
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
    ];
}

registry.category("web_tour.tours").add("metrika_export_csv", {
    steps: () => exportSteps({ series19: false }),
});

registry.category("web_tour.tours").add("metrika_export_csv_19", {
    steps: () => exportSteps({ series19: true }),
});
