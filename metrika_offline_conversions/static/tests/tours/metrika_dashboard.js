/** @odoo-module **/

import { registry } from "@web/core/registry";

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
        {
            content: "Open the apps menu",
            trigger: ".o_navbar_apps_menu button:enabled",
            run: "click",
        },
        {
            content: "Open Sales",
            trigger: ".o_app[data-menu-xmlid='sale.sale_menu_root']",
            run: "click",
        },
        {
            content: "Open the Yandex Metrica menu",
            trigger: ".o_menu_sections [data-menu-xmlid='metrika_offline_conversions.menu_metrika_root']",
            run: "click",
        },
        {
            content: "Open the dashboard",
            trigger: "[data-menu-xmlid='metrika_offline_conversions.menu_metrika_dashboard']",
            run: "click",
        },
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
