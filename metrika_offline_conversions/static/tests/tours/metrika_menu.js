/** @odoo-module **/

/**
 * The steps that open an entry of the Yandex Metrica menu (in the Sales app) from any page of the
 * web client: the apps menu, Sales, the Metrica menu, then the entry.
 */
export function openMetricaMenuSteps(entryXmlid, entryName) {
    return [
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
            content: `Open ${entryName}`,
            trigger: `[data-menu-xmlid='metrika_offline_conversions.${entryXmlid}']`,
            run: "click",
        },
    ];
}
