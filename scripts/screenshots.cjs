// Logs in to Odoo with headless Chromium and saves one PNG per shot (driven by
// scripts/screenshots.py, which passes the path of a JSON file of what to take).
// playwright-core drives the system's Chromium: no browser is downloaded.
"use strict";

const fs = require("fs");
const path = require("path");
const { chromium } = require("playwright-core");

const CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
];

async function main() {
    const config = JSON.parse(fs.readFileSync(process.argv[2], "utf-8"));
    const context = await chromium.launchPersistentContext(config.userDataDir, {
        executablePath: config.chromium,
        headless: true,
        args: CHROMIUM_FLAGS,
        viewport: { width: 1280, height: 820 },
        locale: "en-US",
        timezoneId: "Europe/Moscow",
    });
    // The first pages build Odoo's asset bundles: minutes on a busy machine, not playwright's 30 s.
    context.setDefaultTimeout(180000);
    context.setDefaultNavigationTimeout(180000);
    try {
        const page = context.pages()[0] || (await context.newPage());
        await page.goto(`${config.baseUrl}/web/login`);
        await page.fill("input[name='login']", config.login);
        await page.fill("input[name='password']", config.password);
        await Promise.all([page.waitForURL(/\/odoo/), page.click("button[type='submit']")]);
        for (const shot of config.shots) {
            await page.goto(`${config.baseUrl}${shot.path}`);
            await page.waitForSelector(shot.waitFor, { state: "visible" });
            if (shot.click) {
                await page.click(shot.click);
            }
            if (shot.thenWaitFor) {
                // What the click opens (a dialog), once rendered.
                await page.waitForSelector(shot.thenWaitFor, { state: "visible", timeout: 60000 });
            }
            if (shot.show) {
                await page.locator(shot.show).first().scrollIntoViewIfNeeded();
            }
            if (shot.centre) {
                // A panel further down a long page: in the middle of the picture, with its context.
                await page
                    .locator(shot.centre)
                    .first()
                    .evaluate((element) => element.scrollIntoView({ block: "center" }));
            }
            // Let the web client finish rendering (fonts, badges, lazy widgets).
            await page.waitForTimeout(1500);
            const file = path.join(config.out, `${shot.name}.png`);
            await page.screenshot({ path: file });
            console.log(`screenshot ${file}`);
        }
    } finally {
        await context.close();
    }
}

main().catch((error) => {
    console.error(error);
    process.exit(1);
});
