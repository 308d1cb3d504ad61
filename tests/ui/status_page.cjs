// Drives the worker's /ui page in headless Chromium (Debian's, through
// playwright-core): waits for the connector to show RUNNING, clicks its pause
// button, waits for PAUSED, and prints what it saw as one JSON line.
//
//   NODE_PATH=<playwright-core's node_modules> node status_page.cjs URL CONNECTOR PROFILE_DIR
"use strict";
const { chromium } = require("playwright-core");

const [url, connector, profile] = process.argv.slice(2);
const TIMEOUT = 30000;

(async () => {
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
  });
  try {
    const page = context.pages()[0] || (await context.newPage());
    const errors = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    await page.goto(url, { timeout: TIMEOUT });
    const card = page.locator(`[data-connector="${connector}"]`);
    const state = card.locator(".connector-state");
    await card.locator(".task .state", { hasText: "RUNNING" }).first().waitFor({ timeout: TIMEOUT });
    // Lag rows appear once the worker has refreshed the partitions.
    await card.locator(".lag-row").first().waitFor({ timeout: TIMEOUT });
    const before = (await state.textContent()).trim();
    await card.locator('button[data-action="pause"]').click();
    await card.locator(".task .state", { hasText: "PAUSED" }).first().waitFor({ timeout: TIMEOUT });
    await card.locator(".connector-state", { hasText: "PAUSED" }).waitFor({ timeout: TIMEOUT });
    const seen = {
      before,
      after: (await state.textContent()).trim(),
      task_states: (await card.locator(".task .state").allTextContents()).map((s) => s.trim()),
      lag_rows: await card.locator(".lag-row").count(),
      lag_bars: await card.locator("svg.lag-chart rect").count(),
      dlq: (await card.locator(".dlq-count").textContent()).trim(),
      page_errors: errors,
    };
    if (errors.length) throw new Error("errors on the page: " + errors.join("; "));
    console.log(JSON.stringify(seen));
  } finally {
    await context.close();
  }
})().catch((e) => {
  console.error(e && e.stack ? e.stack : String(e));
  process.exit(1);
});
