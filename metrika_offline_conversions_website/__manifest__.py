{
    "name": "Yandex Metrica Offline Conversions: Website",
    "summary": "Metrica tag on the website; ClientID and yclid of website visitors",
    "version": "1.0.0",
    "category": "Website/Website",
    "license": "LGPL-3",
    "author": "metrika_offline_conversions contributors",
    "depends": ["metrika_offline_conversions", "website"],
    "data": [
        "views/res_config_settings_views.xml",
        "views/website_templates.xml",
    ],
    "assets": {
        "web.assets_frontend": [
            "metrika_offline_conversions_website/static/src/js/metrika_client_id.js",
        ],
    },
    "auto_install": True,
    "installable": True,
}
