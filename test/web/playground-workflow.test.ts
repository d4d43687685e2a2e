/**
 * A workflow app's page in Chromium against a real server with echo: the graph draws every node
 * and arrow of the registered document in dependency layers; a run moves the nodes through queued
 * and running (with the progress echo reports) to done, each node's output and request viewable and
 * equal to what `/v1/requests/{id}` says; a document saved with a reference to a field echo does
 * not return is refused and the registry's message shows on the node it names (and in the list),
 * a reference to a missing node is marked while typing, a JSON syntax error names its line and
 * column; a failing node shows as failed with its error, the nodes after it idle; an api key sees
 * the document read-only; at 390 px the page is no wider than the screen. Screenshots go to
 * test-artifacts/playground/.
 */
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import type { Browser, Locator, Page } from "playwright-core";
import { http, startTestPlatform, type TestPlatform } from "../helpers/platform.js";
import { ARTIFACTS, ensureWebBuild, launchChromium, openPlaygroundTab, signInAsAdmin } from "./browser.js";

const WORKFLOW = "acme/echo-join";

/** input → left (slow, with progress) and right → joined (both messages) → output. */
function echoJoin(): { title: string; contents: { nodes: Record<string, Record<string, unknown>>; schema: unknown } } {
  return {
    title: "Echo, joined",
    contents: {
      nodes: {
        input: { id: "input", type: "input", depends: [], input: { text: "" } },
        left: { id: "left", type: "run", depends: ["input"], app: "darkroom/echo", input: { message: "$input.text", sleep_ms: 2400, progress_steps: 6 } },
        right: { id: "right", type: "run", depends: ["input"], app: "darkroom/echo", input: { message: "right side", sleep_ms: 300 } },
        joined: { id: "joined", type: "run", depends: ["left", "right"], app: "darkroom/echo", input: { message: ["$left.message", "$right.message"] } },
        output: { id: "output", type: "display", depends: ["joined"], fields: { both: "$joined.message" } },
      },
      schema: { input: { type: "object", properties: { text: { type: "string" } }, required: ["text"] } },
    },
  };
}

describe("playground workflow graph in Chromium", { timeout: 240_000 }, () => {
  let p: TestPlatform;
  let browser: Browser;
  let page: Page;
  const pageErrors: string[] = [];

  const shot = (name: string): Promise<Buffer> => page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
  const node = (id: string): Locator => page.locator(`[data-testid="workflow-node"][data-node-id="${id}"]`);
  const stateOf = (id: string): Promise<string | null> => node(id).getAttribute("data-state");
  const editor = (): Locator => page.locator("#wf-document");
  const status = (): Locator => page.getByTestId("run-status");
  const waitForState = (id: string, state: string, timeout = 30_000): Promise<void> =>
    page.locator(`[data-testid="workflow-node"][data-node-id="${id}"][data-state="${state}"]`).waitFor({ timeout });
  /** Replaces the editor's text with `doc`, as a person would (select all, type over). */
  const typeDocument = async (doc: unknown): Promise<void> => {
    await editor().fill(JSON.stringify({ name: "echo-join", ...(doc as object) }, null, 2));
  };

  before(async () => {
    ensureWebBuild();
    mkdirSync(ARTIFACTS, { recursive: true });
    [p, browser] = await Promise.all([startTestPlatform(), launchChromium()]);
    const put = await http(p, "PUT", `/v1/workflows/${WORKFLOW}`, echoJoin());
    assert.equal(put.status, 201, JSON.stringify(put.body));
    page = await openPlaygroundTab(browser, p.url, pageErrors);
    await signInAsAdmin(page);
    await page.getByRole("navigation", { name: "Main" }).waitFor();
  });

  after(async () => {
    await browser?.close();
    await p?.close();
  });

  it("draws every node and arrow of the document, left to right in dependency layers", async () => {
    await page.goto(`/app?id=${WORKFLOW}`);
    await page.getByRole("heading", { name: "Echo, joined" }).waitFor();
    const graph = page.getByTestId("workflow-graph");
    await graph.waitFor();
    const ids = await page.getByTestId("workflow-node").evaluateAll((els) => els.map((el) => el.getAttribute("data-node-id")));
    assert.deepEqual(ids, ["input", "left", "right", "joined", "output"]);
    const edges = await page.getByTestId("workflow-edge").evaluateAll((els) => els.map((el) => `${el.getAttribute("data-from")}->${el.getAttribute("data-to")}`).sort());
    assert.deepEqual(edges, ["input->left", "input->right", "joined->output", "left->joined", "right->joined"]);
    // Each box says its id and what it calls, and is idle before a run.
    assert.match(await node("left").innerText(), /^left\s+darkroom\/echo\s+idle$/);
    assert.match(await node("input").innerText(), /^input\s+the request's input\s+input$/);
    assert.match(await node("output").innerText(), /^output\s+display\s+idle$/);
    const box = async (id: string): Promise<{ x: number; y: number; right: number; bottom: number }> =>
      node(id).evaluate((el) => {
        const r = el.getBoundingClientRect();
        return { x: r.left, y: r.top, right: r.right, bottom: r.bottom };
      });
    const [input, left, right, joined, output] = await Promise.all(["input", "left", "right", "joined", "output"].map(box));
    assert.ok(input && left && right && joined && output);
    assert.ok(input.right < left.x && left.x === right.x && left.right < joined.x && joined.right < output.x, "layers left to right");
    assert.ok(left.bottom <= right.y || right.bottom <= left.y, "left and right do not overlap");
    // Every arrow ends at the left edge of the box it points to.
    const ends = await page.getByTestId("workflow-edge").evaluateAll((els) =>
      els.map((el) => {
        const path = el as SVGPathElement;
        const end = path.getPointAtLength(path.getTotalLength());
        const svg = path.ownerSVGElement?.getBoundingClientRect();
        return { to: el.getAttribute("data-to"), x: end.x + (svg?.left ?? 0), y: end.y + (svg?.top ?? 0) };
      }),
    );
    for (const end of ends) {
      const target = await box(end.to ?? "");
      assert.ok(Math.abs(end.x - target.x) < 1 && end.y > target.y && end.y < target.bottom, `the arrow to ${end.to} ends at its box: ${JSON.stringify(end)}`);
    }
    // The editor shows the document as registered.
    const shown = JSON.parse(await editor().inputValue()) as ReturnType<typeof echoJoin> & { name: string };
    assert.equal(shown.name, "echo-join");
    assert.deepEqual(shown.contents.nodes, echoJoin().contents.nodes);
  });

  it("runs it: nodes go through queued and running with progress to done, each output and request viewable", async () => {
    await page.locator("#in-text").fill("hello graph");
    await page.getByRole("button", { name: "Run" }).click();
    // left reports progress while it sleeps: its box shows the percentage and a bar.
    await page.locator('[data-node-id="left"][data-state="running"] progress[value]').waitFor({ timeout: 30_000 });
    assert.match((await node("left").getByTestId("node-state").innerText()) ?? "", /^running · \d+%$/);
    assert.equal(await stateOf("joined"), "idle", "joined waits for left");
    await shot("workflow-running");
    await status().filter({ hasText: "Completed" }).waitFor({ timeout: 30_000 });
    for (const id of ["input", "left", "right", "joined", "output"]) await waitForState(id, "done", 10_000);
    for (const id of ["left", "right", "joined", "output"]) assert.equal(await node(id).getByTestId("node-state").innerText(), "done");

    // The joined node's output, its request id, and the same request as the API has it.
    await node("joined").click();
    const detail = page.getByTestId("node-detail");
    await detail.getByTestId("node-output").waitFor();
    const requestId = await detail.getByTestId("node-request-id").innerText();
    assert.match(requestId, /^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    const fromApi = await http(p, "GET", `/v1/requests/${requestId}`);
    assert.equal(fromApi.status, 200);
    assert.equal(fromApi.body.app_id, "darkroom/echo");
    assert.deepEqual(fromApi.body.output.message, ["hello graph", "right side"]);
    const shownOutput = JSON.parse(await detail.locator("pre.code.json").first().innerText()) as unknown;
    assert.deepEqual(shownOutput, fromApi.body.output);
    assert.equal(await detail.getByTestId("node-detail-state").innerText(), "done");
    assert.equal(await node("joined").getAttribute("aria-pressed"), "true");

    // The display node shows its fields resolved, the input node the request's input.
    await node("output").click();
    assert.deepEqual(JSON.parse(await detail.locator("pre.code.json").first().innerText()), { both: ["hello graph", "right side"] });
    await node("input").click();
    assert.deepEqual(JSON.parse(await detail.locator("pre.code.json").first().innerText()), { text: "hello graph" });
    await node("left").click();
    assert.deepEqual((JSON.parse(await detail.locator("pre.code.json").first().innerText()) as { message: unknown }).message, "hello graph");
    await shot("workflow-done");

    // Reopened from its URL, a past run shows the same states and outputs (read by the nodes' ids).
    await page.reload();
    for (const id of ["left", "right", "joined", "output"]) await waitForState(id, "done");
    await node("joined").click();
    await detail.getByTestId("node-output").waitFor();
    assert.equal(await detail.getByTestId("node-request-id").innerText(), requestId);
  });

  it("marks a syntax error with its line and column, a missing node while typing, and the registry's refusal on the node it names", async () => {
    await editor().fill('{\n  "name": "echo-join",\n  "contents": {\n    "nodes": {}\n    "output": {}\n  }\n}');
    assert.match(await page.getByTestId("json-syntax-error").innerText(), /^Not JSON at line 5, column 5: Expected ',' or '}'/);
    assert.equal(await page.getByRole("button", { name: "Save" }).isDisabled(), true);

    // A reference to a node that does not exist: marked at once, before any Save.
    const ghost = echoJoin();
    (ghost.contents.nodes["right"] as { input: Record<string, unknown> }).input = { message: "$ghost.text" };
    await typeDocument(ghost);
    await node("right").getByTestId("node-problem").waitFor();
    assert.equal(await node("right").getByTestId("node-problem").innerText(), "$ghost: no such node");
    assert.equal(await node("right").getAttribute("title"), "input.message: $ghost: no such node");

    // A field echo's output does not have: only the registry knows; Save is refused with its 422.
    const broken = echoJoin();
    (broken.contents.nodes["joined"] as { input: Record<string, unknown> }).input = { message: ["$left.mesage", "$right.message"] };
    await typeDocument(broken);
    assert.equal(await page.getByTestId("node-problem").count(), 0, "nothing a browser can see");
    const refused = page.waitForResponse((res) => res.request().method() === "PUT" && res.url().endsWith(`/v1/workflows/${WORKFLOW}`));
    await page.getByRole("button", { name: "Save" }).click();
    assert.equal((await refused).status(), 422);
    await node("joined").getByTestId("node-problem").waitFor();
    assert.equal(await node("joined").getByTestId("node-problem").innerText(), "darkroom/echo's output has no field mesage");
    assert.match((await node("joined").getAttribute("aria-label")) ?? "", /problem at input\.message\.0: darkroom\/echo's output has no field mesage$/);
    // The whole message shows in the box, not cut.
    assert.ok(await node("joined").getByTestId("node-problem").evaluate((el) => el.scrollHeight <= el.clientHeight + 1), "the message is clipped in its box");
    assert.match((await node("joined").getAttribute("class")) ?? "", /has-problem/);
    assert.equal(await node("joined").evaluate((el) => getComputedStyle(el).borderTopColor), await page.evaluate(() => getComputedStyle(document.documentElement).getPropertyValue("--bad").trim()).then(hexToRgb));
    assert.match(await page.getByTestId("workflow-problems").innerText(), /joined\s+input\.message\.0: darkroom\/echo's output has no field mesage/);
    assert.match(await page.getByTestId("workflow-save-note").innerText(), /^Not saved: 1 problem\. The registered document is unchanged\.$/);
    for (const id of ["input", "left", "right", "output"]) assert.equal(await node(id).getByTestId("node-problem").count(), 0, `${id} is not marked`);
    await node("joined").click();
    assert.match(await page.getByTestId("node-detail").getByRole("list", { name: "Problems of joined" }).innerText(), /input\.message\.0: darkroom\/echo's output has no field mesage/);
    await shot("workflow-refused");
    const kept = await http(p, "GET", `/v1/workflows/${WORKFLOW}`);
    assert.deepEqual(kept.body.contents.nodes.joined.input, { message: ["$left.message", "$right.message"] }, "the registered document is unchanged");

    // Fixing it clears the mark (only a Save can tell for sure, so the registry's verdict goes with the edit).
    await page.getByRole("button", { name: "Revert" }).click();
    assert.equal(await page.getByTestId("node-problem").count(), 0);
  });

  it("shows a failing node as failed with its error, the node after it never started", async () => {
    const failing = echoJoin();
    (failing.contents.nodes["right"] as { input: Record<string, unknown> }).input = { message: "right side", fail: "error" };
    await typeDocument(failing);
    await page.getByRole("button", { name: "Save" }).click();
    await page.getByTestId("workflow-save-note").filter({ hasText: "Saved" }).waitFor();
    assert.deepEqual((await http(p, "GET", `/v1/workflows/${WORKFLOW}`)).body.contents.nodes.right.input, { message: "right side", fail: "error" });

    await page.locator("#in-text").fill("will fail");
    await page.getByRole("button", { name: "Run" }).click();
    await status().filter({ hasText: "Failed" }).waitFor({ timeout: 30_000 });
    assert.match(await status().innerText(), /Node right failed: .*echo failed on request \(fail: error\)/);
    await waitForState("right", "failed");
    assert.equal(await node("right").getByTestId("node-state").innerText(), "failed");
    // left was still running when right failed: the workflow cancelled it.
    assert.equal(await stateOf("left"), "cancelled");
    assert.equal(await stateOf("joined"), "idle");
    assert.equal(await stateOf("output"), "idle");
    await node("right").click();
    assert.match(await page.getByTestId("node-error").innerText(), /echo failed on request \(fail: error\)/);
    await shot("workflow-failed");
  });

  it("shows the document read-only to an api key, and fits a 390 px screen", async () => {
    const created = await http(p, "POST", "/v1/keys", { name: "viewer", scope: "api" });
    assert.equal(created.status, 201);
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.goto("/");
    await page.getByLabel("API key").fill(created.body.key as string);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("navigation", { name: "Main" }).waitFor();
    await page.goto(`/app?id=${WORKFLOW}`);
    await page.getByTestId("workflow-graph").waitFor();
    assert.equal(await editor().getAttribute("readonly"), "");
    assert.equal(await page.getByRole("button", { name: "Save" }).count(), 0);
    assert.match(await page.locator(".wf-editor").innerText(), /Only admin keys can change a workflow\./);

    await page.setViewportSize({ width: 390, height: 844 });
    await page.getByTestId("workflow-graph").scrollIntoViewIfNeeded();
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `the page is ${overflow} px wider than the screen`);
    const panel = await page.locator("section.workflow-panel").evaluate((el) => el.getBoundingClientRect().right);
    assert.ok(panel <= 390.5, `the workflow panel ends at ${panel}`);
    await page.locator("section.workflow-panel").screenshot({ path: path.join(ARTIFACTS, "workflow-390.png") });
    await page.setViewportSize({ width: 1280, height: 900 });
    assert.deepEqual(pageErrors, []);
  });
});

/** `#rrggbb` as getComputedStyle writes a colour. */
function hexToRgb(hex: string): string {
  const n = parseInt(hex.replace("#", ""), 16);
  return `rgb(${(n >> 16) & 255}, ${(n >> 8) & 255}, ${n & 255})`;
}
