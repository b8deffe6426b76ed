/** @odoo-module **/

import { openMetricaMenuSteps } from "@metrika_offline_conversions/../tests/tours/metrika_menu";

/**
 * The dashboard from the Metrica menu, in the Sales app: the graph it opens with, then the
 * pivot and its figure (the Python test's log: seven conversions queued). No step leaves the
 * page. Part of the Connect tour (metrika_connect.js).
 */
export function dashboardSteps() {
    return [
        ...openMetricaMenuSteps("menu_metrika_dashboard", "the dashboard"),
        {
            content: "The dashboard opens on its graph",
            trigger: ".o_graph_view .o_graph_renderer canvas",
        },
        {
            content: "Switch to the pivot",
            trigger: ".o_switch_view.o_pivot",
            run: "click",
        },
        {
            content: "The pivot shows what was queued and what was sent",
            trigger: ".o_pivot thead:contains('Queued'):contains('Sent')",
        },
        {
            // The test's log: seven queued, three sent, two skipped; only "Queued" reads 7.
            content: "Seven conversions queued",
            trigger: ".o_pivot td.o_pivot_cell_value:contains('7')",
        },
        {
            content: "Back to the graph",
            trigger: ".o_switch_view.o_graph",
            run: "click",
        },
        {
            content: "The graph again",
            trigger: ".o_graph_view .o_graph_renderer canvas",
        },
    ];
}
