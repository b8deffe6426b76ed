/** @odoo-module **/

import { registry } from "@web/core/registry";
import { openMetricaMenuSteps } from "@metrika_offline_conversions/../tests/tours/metrika_menu";

// The dashboard from the Metrica menu, in the Sales app: the graph it opens with, then the pivot and its figure.
// No step leaves the page, so one variant serves both series.
registry.category("web_tour.tours").add("metrika_dashboard", {
    url: "/odoo",
    steps: () => [
        {
            // The web client opens its first app by itself: wait for it, or its navbar could
            // close the apps menu opened meanwhile.
            content: "The first app is open",
            trigger: ".o_main_navbar .o_menu_brand",
        },
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
    ],
});
