/**
 * The playground's usage and limits pages in Chromium against a real server with echo: the Usage
 * page's summary and charts against what `GET /v1/models/usage` answers for priced echo requests
 * made here (per app and per tenant), its loading progress over a long range, fal's `detail` on an
 * error, and its CSV download against the API's export; limits and tenants edited on the Keys page
 * against `GET /v1/keys` and `GET /v1/tenants`, checks before sending and the server's 422 beside
 * its field; and the app page's banner when a key's requests_per_minute or apps limit refuses a run.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import type { Browser, Page } from "playwright-core";
import { formatSeconds } from "../../web/src/lib/format.js";
import { formatAmount, type UsageLine as SummaryLine } from "../../web/src/lib/usage.js";
import { ADMIN_KEY, http, startTestPlatform, eventually, type TestPlatform } from "../helpers/platform.js";
import { ARTIFACTS, ensureWebBuild, launchChromium, openPlaygroundTab, signInAsAdmin } from "./browser.js";

interface CreatedKey {
  id: string;
  key: string;
}

const ECHO = "darkroom/echo";

describe("playground usage and limits in Chromium", { timeout: 150_000 }, () => {
  let p: TestPlatform;
  let browser: Browser;
  let page: Page;
  let teamA: CreatedKey;
  let teamB: CreatedKey;
  const pageErrors: string[] = [];

  const shot = (name: string): Promise<Buffer> => page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
  const nav = (name: string) => page.getByRole("navigation", { name: "Main" }).getByRole("link", { name, exact: true });
  const as = (key: CreatedKey) => ({ url: p.url, auth: { authorization: `Key ${key.key}` } });
  // From the gallery: an app page's URL may name a request of the key signed in before, which another key may not read.
  const signInAs = async (key: string): Promise<void> => {
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.goto("/");
    await page.getByLabel("API key").fill(key);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("navigation", { name: "Main" }).waitFor();
  };

  async function createKey(body: Record<string, unknown>): Promise<CreatedKey> {
    const res = await http(p, "POST", "/v1/keys", body);
    assert.equal(res.status, 201, JSON.stringify(res.body));
    return res.body as CreatedKey;
  }

  before(async () => {
    ensureWebBuild();
    [p, browser] = await Promise.all([startTestPlatform(), launchChromium()]);
    page = await openPlaygroundTab(browser, p.url, pageErrors, { report404: true });
    // Echo at a price per request, on both its endpoints, so that every request has a cost.
    const priced = await http(p, "PUT", "/v1/models/pricing", {
      prices: [
        { endpoint_id: ECHO, unit_price: 0.002, unit: "request", currency: "USD" },
        { endpoint_id: `${ECHO}/stream`, unit_price: 0.0035, unit: "request", currency: "USD" },
      ],
    });
    assert.equal(priced.status, 200, JSON.stringify(priced.body));
    teamA = await createKey({ name: "team a ci", tenant: "team-a" });
    teamB = await createKey({ name: "team b laptop", tenant: "team-b" });
    // Three requests of team-a, two of team-b (one on the stream endpoint), one of the admin key.
    const calls = [
      [as(teamA), ECHO],
      [as(teamA), ECHO],
      [as(teamA), ECHO],
      [as(teamB), ECHO],
      [as(teamB), `${ECHO}/stream`],
      [p, ECHO],
    ] as const;
    for (const [caller, endpoint] of calls) {
      const res = await http(caller, "POST", `/run/${endpoint}`, { message: "usage" });
      assert.equal(res.status, 200, JSON.stringify(res.body));
    }
    await signInAsAdmin(page);
    await nav("Usage").waitFor();
  });

  after(async () => {
    await browser?.close();
    await p?.close();
  });

  /** The API's summary for the last 24 hours by the hour, summed per endpoint and price (no keys). */
  async function apiSummary(): Promise<SummaryLine[]> {
    const end = new Date().toISOString();
    const start = new Date(Date.now() - 86_400_000).toISOString();
    const res = await http(p, "GET", `/v1/models/usage?start=${start}&end=${end}&timeframe=hour&expand=summary`);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res.body.summary as SummaryLine[];
  }

  it("shows the summary per endpoint that the usage API gives for the requests made", async () => {
    const expected = await eventually(async () => {
      const summary = await apiSummary();
      return summary.reduce((n, l) => n + l.request_count, 0) === 6 ? summary : null;
    });
    await nav("Usage").click();
    await page.getByRole("heading", { name: "Usage", level: 1 }).waitFor();
    const table = page.getByRole("region", { name: "Usage per endpoint" });
    await table.waitFor();
    const rows = table.locator("tbody tr");
    assert.equal(await rows.count(), expected.length);
    for (const line of expected) {
      const row = table.locator(`tr[data-endpoint="${line.endpoint_id}"]`);
      const cell = (stat: string) => row.locator(`[data-stat=${stat}]`).innerText();
      assert.equal(await cell("requests"), String(line.request_count), line.endpoint_id);
      assert.equal(await cell("quantity"), formatAmount(line.quantity));
      assert.equal(await cell("unit"), line.unit);
      assert.equal(await cell("unit_price"), `${formatAmount(line.unit_price)} ${line.currency}`);
      assert.equal(await cell("cost"), `${formatAmount(line.cost)} ${line.currency}`);
      assert.equal(await cell("compute"), formatSeconds(line.compute_seconds));
    }
    // Five echo requests at 0.002 and one stream request at 0.0035.
    assert.deepEqual(
      expected.map((l) => [l.endpoint_id, l.request_count, formatAmount(l.cost)]).sort(),
      [
        [ECHO, 5, "0.01"],
        [`${ECHO}/stream`, 1, "0.0035"],
      ],
    );
    const totals = page.locator(".usage-totals");
    assert.equal(await totals.locator("[data-stat=requests]").innerText(), "6");
    assert.equal(await totals.locator("[data-stat=cost]").innerText(), "0.0135 USD");
    await page.getByTestId("usage-chart").locator("canvas").first().waitFor();
    await shot("usage");
  });

  it("charts requests and cost per app and per tenant", async () => {
    // The chart's numbers are in a table under it (closed: its text, not what shows).
    const totalOf = async (series: string) => (await page.locator(`.chart-data tfoot td[data-series="${series}"]`).textContent()) ?? "";
    // Per app (the default): both echo endpoints are one app.
    assert.equal(await totalOf(ECHO), "6");
    await page.getByLabel("Per", { exact: true }).selectOption("tenant");
    await page.waitForURL(/group=tenant/);
    assert.equal(await totalOf("team-a"), "3");
    assert.equal(await totalOf("team-b"), "2");
    assert.equal(await totalOf("dk_testadmin"), "1", "the admin key is a tenant of its own");
    assert.match(await page.getByTestId("usage-chart").innerText(), /team-a[\s\S]*team-b/, "the legend names the series");
    await page.getByLabel("Metric", { exact: true }).selectOption("cost");
    assert.equal(await totalOf("team-a"), "0.006");
    assert.equal(await totalOf("team-b"), "0.0055");
    await page.getByLabel("Chart", { exact: true }).selectOption("stacked");
    await page.waitForURL(/chart=stacked/);
    assert.equal(await totalOf("team-b"), "0.0055", "stacking draws sums, the numbers stay each series' own");
    await shot("usage-tenant-cost-stacked");
  });

  it("shows its progress while a long range loads, and fal's detail when the API fails", async () => {
    // Hold each page of the answer a moment, so that the progress can be seen between pages.
    let pages = 0;
    await page.route("**/v1/models/usage?*", async (route) => {
      pages++;
      await new Promise((r) => setTimeout(r, 400));
      await route.continue();
    });
    await page.getByLabel("Period", { exact: true }).selectOption("30d");
    await page.getByLabel("Buckets", { exact: true }).selectOption("hour");
    const progress = page.getByTestId("usage-progress");
    await progress.filter({ hasText: /Loading usage: 250 of 72\d buckets/ }).waitFor();
    assert.equal(await progress.locator("progress").getAttribute("max"), (await progress.innerText()).match(/of (\d+)/)?.[1]);
    await page.getByRole("region", { name: "Usage per endpoint" }).waitFor();
    assert.equal(await progress.count(), 0);
    assert.ok(pages >= 3, `a month of hours comes in pages of 250 buckets (${pages} requests)`);
    assert.equal(await page.locator(".usage-totals [data-stat=requests]").innerText(), "6");
    await page.unroute("**/v1/models/usage?*");

    await page.route("**/v1/models/usage?*", (route) =>
      route.fulfill({ status: 503, contentType: "application/json", body: JSON.stringify({ detail: "The store is unreachable (test)", error_type: "store_unavailable" }) }),
    );
    await page.getByRole("button", { name: "Refresh" }).click();
    const alert = page.getByRole("alert").filter({ hasText: "The store is unreachable (test)" });
    await alert.waitFor();
    await page.unroute("**/v1/models/usage?*");
    await alert.getByRole("button", { name: "Try again" }).click();
    await page.getByRole("region", { name: "Usage per endpoint" }).waitFor();
  });

  it("downloads the API's CSV export of the period", async () => {
    await page.getByLabel("Period", { exact: true }).selectOption("24h");
    await page.getByRole("region", { name: "Usage per endpoint" }).waitFor();
    const [request, download] = await Promise.all([page.waitForRequest(/\/v1\/models\/usage\?.*format=csv/), page.waitForEvent("download"), page.getByRole("button", { name: "Download CSV" }).click()]);
    assert.match(download.suggestedFilename(), /^darkroom-usage-\d{4}-\d\d-\d\d-\d{4}-\d\d-\d\d\.csv$/);
    const saved = readFileSync(await download.path(), "utf8");
    const direct = await http(p, "GET", new URL(request.url()).pathname + new URL(request.url()).search);
    assert.equal(direct.status, 200);
    assert.equal(saved, direct.body, "the file is the API's export, byte for byte");
    const lines = saved.trim().split(/\r?\n/);
    assert.equal(lines[0], "bucket,endpoint_id,key_id,unit,quantity,unit_price,cost,currency,request_count,billed_request_count,compute_seconds");
    const requests = lines.slice(1).reduce((n, l) => n + Number(l.split(",")[8]), 0);
    assert.equal(requests, 6);
    assert.ok(lines.some((l) => l.includes(`,${teamA.id},`)), "one row per key");
  });

  it("edits a key's tenant and limits: checked before sending, saved as GET /v1/keys then shows, the server's 422 beside its field", async () => {
    await nav("Keys").click();
    const row = page.locator(`tr[data-key-id="${teamA.id}"]`);
    assert.equal(await row.locator("[data-stat=tenant]").innerText(), "team-a");
    assert.equal(await row.locator("[data-stat=limits]").innerText(), "none");
    await row.getByRole("button", { name: /^Edit limits of team a ci/ }).click();
    const form = page.getByRole("form", { name: /Tenant and limits of team a ci/ });
    await form.waitFor();
    const field = (label: string) => form.getByLabel(label, { exact: true });
    assert.equal(await field("Tenant").inputValue(), "team-a");

    // Checked here first: nothing is sent while a value is wrong.
    let patches = 0;
    page.on("request", (r) => {
      if (r.method() === "PATCH") patches++;
    });
    await field("Requests per minute").fill("lots");
    await field("Apps").fill("darkroom/echo\nNot An App");
    await form.getByRole("button", { name: "Save" }).click();
    await form.locator('[data-field$="-requests_per_minute"] .field-error').waitFor();
    assert.match(await form.locator('[data-field$="-requests_per_minute"] .field-error').innerText(), /whole number above 0/);
    assert.match(await form.locator('[data-field$="-apps"] .field-error').innerText(), /Not, An, App/);
    assert.equal(await field("Requests per minute").getAttribute("aria-invalid"), "true");
    assert.equal(await field("Requests per minute").evaluate((el) => el === document.activeElement), true, "the focus goes to the first wrong field");
    assert.equal(patches, 0);

    // What only the server knows: at most 100 apps. Its 422 goes next to the field it names.
    const tooMany = Array.from({ length: 101 }, (_, i) => `acme/app-${i}`);
    const refused = await http(p, "PATCH", `/v1/keys/${teamA.id}`, { limits: { apps: tooMany } });
    assert.equal(refused.status, 422);
    const serverMessage = refused.body.detail[0].msg as string;
    await field("Requests per minute").fill("30");
    await field("Apps").fill(tooMany.join("\n"));
    await form.getByRole("button", { name: "Save" }).click();
    await form.locator('[data-field$="-apps"] .field-error').filter({ hasText: serverMessage }).waitFor();
    assert.equal(patches, 1);
    assert.equal(await form.locator('[data-field$="-requests_per_minute"] .field-error').count(), 0);
    await shot("keys-limits-422");

    await field("Tenant").fill("team-c");
    await field("Max concurrency").fill("2");
    await field("Max queued").fill("5");
    await field("Monthly budget").fill("12.5");
    await field("Apps").fill("darkroom/echo\ndarkroom-test/*");
    await form.getByRole("button", { name: "Save" }).click();
    await page.getByRole("status").filter({ hasText: "Saved the tenant and limits of key team a ci" }).waitFor();
    const listed = (await http(p, "GET", "/v1/keys")).body.keys.find((k: { id: string }) => k.id === teamA.id);
    assert.equal(listed.tenant, "team-c");
    assert.deepEqual(listed.limits, { max_concurrency: 2, requests_per_minute: 30, apps: ["darkroom/echo", "darkroom-test/*"], monthly_budget: 12.5, max_queued: 5 });
    await row.locator("[data-stat=tenant]").filter({ hasText: "team-c" }).waitFor();
    assert.equal(await row.locator("[data-stat=limits]").innerText(), "2 at once · 30/min · 5 queued · 12.5/month · apps: darkroom/echo, darkroom-test/*");

    // Blank fields remove limits; a blank tenant makes the key its own tenant again.
    await row.getByRole("button", { name: /^Edit limits of team a ci/ }).click();
    await field("Tenant").fill("");
    for (const label of ["Max concurrency", "Max queued", "Monthly budget", "Apps"]) await field(label).fill("");
    await form.getByRole("button", { name: "Save" }).click();
    await page.getByRole("status").filter({ hasText: "Saved the tenant and limits" }).waitFor();
    const cleared = (await http(p, "GET", "/v1/keys")).body.keys.find((k: { id: string }) => k.id === teamA.id);
    assert.equal(cleared.tenant, teamA.id);
    assert.deepEqual(cleared.limits, { max_concurrency: null, requests_per_minute: 30, apps: null, monthly_budget: null, max_queued: null });
  });

  it("shows tenants and sets a tenant's weight and limits; the server's 422 beside the weight", async () => {
    const tenants = page.getByRole("region", { name: "Tenants" });
    const row = tenants.locator('tr[data-tenant="team-b"]');
    await row.waitFor();
    assert.match(await row.innerText(), /team-b[\s\S]*1[\s\S]*1[\s\S]*none/);
    // Keys that are tenants of their own with the defaults (the admin key, team a's key since the last test) are counted, not listed.
    assert.equal(await tenants.locator('tr[data-tenant="dk_testadmin"]').count(), 0);
    assert.match(await page.getByTestId("own-tenants").innerText(), /^Not listed: 2 keys that are tenants of their own with the defaults/);
    await row.getByRole("button", { name: "Edit tenant team-b" }).click();
    const form = page.getByRole("form", { name: "Tenant team-b" });
    const weight = form.getByLabel("Weight", { exact: true });
    // The server's own bound on weights (at most 1000).
    const refused = await http(p, "PUT", "/v1/tenants/team-b", { weight: 5000 });
    assert.equal(refused.status, 422);
    await weight.fill("5000");
    await form.getByRole("button", { name: "Save" }).click();
    await form.locator('[data-field$="-weight"] .field-error').filter({ hasText: refused.body.detail[0].msg as string }).waitFor();
    assert.equal(await weight.getAttribute("aria-invalid"), "true");

    await weight.fill("3");
    await form.getByLabel("Requests per minute", { exact: true }).fill("100");
    await form.getByLabel("Max queued", { exact: true }).fill("20");
    await form.getByRole("button", { name: "Save" }).click();
    await page.getByRole("status").filter({ hasText: "Saved tenant team-b" }).waitFor();
    const shown = await http(p, "GET", "/v1/tenants/team-b");
    assert.equal(shown.body.weight, 3);
    assert.deepEqual(shown.body.limits, { max_concurrency: null, requests_per_minute: 100, apps: null, monthly_budget: null, max_queued: 20 });
    assert.equal(shown.body.configured, true);
    await row.locator("[data-stat=weight]").filter({ hasText: "3" }).waitFor();
    assert.equal(await row.locator("[data-stat=limits]").innerText(), "100/min · 20 queued");

    // A new tenant, set up by name before any key names it.
    await page.getByRole("button", { name: "Set up a tenant" }).click();
    const fresh = page.getByRole("form", { name: "New tenant" });
    await fresh.getByLabel("Name", { exact: true }).fill("has space");
    await fresh.getByRole("button", { name: "Save" }).click();
    await fresh.locator('[data-field$="-name"] .field-error').filter({ hasText: "letters, digits" }).waitFor();
    await fresh.getByLabel("Name", { exact: true }).fill("research");
    await fresh.getByLabel("Weight", { exact: true }).fill("0.5");
    await fresh.getByRole("button", { name: "Save" }).click();
    await tenants.locator('tr[data-tenant="research"]').waitFor();
    assert.equal((await http(p, "GET", "/v1/tenants/research")).body.weight, 0.5);
    await shot("keys-tenants");
  });

  it("shows a banner naming the limit when a key's requests per minute refuse a run, with the retry time", async () => {
    const limited = await createKey({ name: "one a minute", limits: { requests_per_minute: 1 } });
    await signInAs(limited.key);
    await page.goto(`/app?id=${ECHO}`);
    await page.getByRole("heading", { name: "Echo", level: 1 }).waitFor();
    await page.getByRole("button", { name: "Run" }).click();
    await page.getByTestId("run-status").filter({ hasText: "Completed" }).waitFor({ timeout: 30_000 });

    const [answer] = await Promise.all([page.waitForResponse((r) => r.url().endsWith(`/queue/${ECHO}`) && r.request().method() === "POST"), page.getByRole("button", { name: "Run" }).click()]);
    assert.equal(answer.status(), 429);
    const retryAfter = Number(await answer.headerValue("retry-after"));
    const detail = ((await answer.json()) as { detail: string }).detail;
    // A sliding window estimated from two fixed ones (src/auth/request-rate-limiter.ts): up to two minutes.
    assert.ok(retryAfter >= 1 && retryAfter <= 120, `Retry-After ${retryAfter}`);
    const banner = page.getByTestId("limit-banner");
    await banner.waitFor();
    assert.equal(await banner.getAttribute("role"), "alert");
    assert.equal(await banner.getAttribute("data-limit"), "requests_per_minute");
    assert.match(await banner.innerText(), /Refused by a limit: Requests per minute \(requests_per_minute\)/);
    assert.equal(await banner.getByTestId("limit-detail").innerText(), detail);
    assert.match(detail, /This key may make 1 requests per minute; try again in \d+ s/);
    const retry = banner.getByTestId("retry-after");
    assert.equal(await retry.getAttribute("data-seconds"), String(retryAfter));
    assert.match(await retry.innerText(), new RegExp(`Try again at \\d\\d:\\d\\d:\\d\\d \\(in [^)]+\\)\\. The server asked to wait ${retryAfter} s`));
    assert.equal(await page.getByText("This needs an admin key").count(), 0, "not the generic 403/429 notice");
    await shot("app-limit-banner");

    // The apps limit: a 403 naming the app.
    const noEcho = await createKey({ name: "no echo", limits: { apps: ["darkroom-test/*"] } });
    await signInAs(noEcho.key);
    await page.goto(`/app?id=${ECHO}`);
    await page.getByRole("button", { name: "Run" }).click();
    const apps = page.getByTestId("limit-banner");
    await apps.filter({ hasText: "darkroom/echo is not in the apps limit of this key" }).waitFor();
    assert.equal(await apps.getAttribute("data-limit"), "apps");
    assert.equal(await apps.getByTestId("retry-after").count(), 0);
    assert.match(await apps.innerText(), /An admin can change the limits/);
  });

  it("fits a 390 px wide screen", async () => {
    await signInAs(ADMIN_KEY);
    await page.setViewportSize({ width: 390, height: 844 });
    for (const [link, heading, name] of [
      ["Usage", "Usage", "usage-390"],
      ["Keys", "API keys", "keys-390"],
    ] as const) {
      await nav(link).click();
      await page.getByRole("heading", { name: heading, level: 1 }).waitFor();
      await page.waitForLoadState("networkidle");
      if (link === "Usage") await page.getByTestId("usage-chart").locator("canvas").first().waitFor();
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `${link} is ${overflow} px wider than the screen`);
      await shot(name);
    }
  });

  it("the page logged no errors", () => {
    assert.deepEqual(pageErrors, []);
  });
});
