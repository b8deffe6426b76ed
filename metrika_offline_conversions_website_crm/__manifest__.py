{
    "name": "Yandex Metrica Offline Conversions: Website Forms",
    "summary": "Leads from website forms get the visitor's Metrica ClientID and yclid",
    "version": "1.0.0",
    "category": "Website/Website",
    "license": "LGPL-3",
    "author": "metrika_offline_conversions contributors",
    "depends": ["metrika_offline_conversions_website", "website_crm"],
    "data": [
        "data/ir_model_data.xml",
    ],
    "assets": {
        "web.assets_tests": [
            "metrika_offline_conversions_website_crm/static/tests/tours/*.js",
        ],
    },
    "auto_install": True,
    "installable": True,
}
