/**
 * Running workflows (src/scheduler/workflow-executor.ts) with the official fal client on a real
 * server: `subscribe` gives the final output, `stream` fal's events in order; each run node is a
 * request of its app; independent nodes run at once; a failing node ends the workflow naming it;
 * cancelling the workflow cancels its running node.
 * @module
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createFalClient, type FalClient } from "@fal-ai/client";
import { nodeRequestId } from "../../src/scheduler/workflow-executor.js";
import { ADMIN_KEY, eventually, http, startTestPlatform, type TestPlatform } from "../helpers/platform.js";

type Json = Record<string, any>;

function node(id: string, depends: string[], input: Json): Json {
  return { id, type: "run", depends, app: "darkroom/echo", input };
}

describe("running workflows", () => {
  let p: TestPlatform;
  let fal: FalClient;

  before(async () => {
    // Two echo runners, so that independent nodes can run at the same time.
    p = await startTestPlatform({ env: { DARKROOM_APP_KNOBS: "darkroom/echo:min_runners=2,max_runners=2" } });
    fal = createFalClient({ credentials: ADMIN_KEY, proxyUrl: { url: `${p.url}/api/fal/proxy`, when: "always" } });
    const register = async (name: string, nodes: Json, output?: Json): Promise<void> => {
      const res = await http(p, "PUT", `/v1/workflows/acme/${name}`, { contents: { nodes: { input: { id: "input", type: "input", depends: [], input: { text: "" } }, ...nodes }, ...(output ? { output } : {}) } });
      assert.equal(res.status, 201, JSON.stringify(res.body));
    };
    await register("chain", {
      first: node("first", ["input"], { message: { said: "$input.text" } }),
      second: node("second", ["first"], { message: "$first.message.said" }),
      output: { id: "output", type: "display", depends: ["second"], fields: { text: "$second.message", first_attempt: "$first.attempt" } },
    });
    await register(
      "fan-out",
      {
        left: node("left", ["input"], { message: "left", sleep_ms: 400 }),
        right: node("right", ["input"], { message: "right", sleep_ms: 400 }),
        join: node("join", ["left", "right"], { message: ["$left.message", "$right.message", "$input.text"] }),
      },
      { joined: "$join.message" },
    );
    await register("breaks", { ok: node("ok", ["input"], { message: 1 }), bad: node("bad", ["ok"], { fail: "error" }), after: node("after", ["bad"], { message: 2 }) }, { x: "$after.message" });
    await register("slow", { nap: node("nap", ["input"], { sleep_ms: 60_000 }) }, { x: "$nap.message" });
  });

  after(async () => {
    await p.close();
  });

  it("is listed as an app, and subscribe returns the workflow's output; its nodes are requests of their app", async () => {
    const models = await http(p, "GET", "/v1/models");
    const listed = (models.body.models as Json[]).find((m) => m.endpoint_id === "acme/chain");
    assert.ok(listed, "in /v1/models");
    assert.equal(listed.metadata.category, "workflow");
    const result = await fal.subscribe("workflows/acme/chain", { input: { text: "hello" } });
    assert.deepEqual(result.data, { text: "hello", first_attempt: 1 });
    const first = await p.store.get(nodeRequestId(result.requestId, "first"));
    const second = await p.store.get(nodeRequestId(result.requestId, "second"));
    assert.equal(first?.appId, "darkroom/echo");
    assert.deepEqual(first?.input, { message: { said: "hello" } });
    assert.equal(second?.state, "SUCCEEDED");
    assert.ok((first?.finishedAt ?? 0) <= (second?.startedAt ?? 0), "second ran after first");
  });

  it("bills a workflow's nodes, not the workflow's own run time again: without a price of its own it costs nothing", async () => {
    const since = Date.now() - 1000;
    const result = await fal.subscribe("acme/chain", { input: { text: "billed" } });
    assert.ok(result.requestId);
    const pricing = await http(p, "GET", "/v1/models/pricing?endpoint_id=acme/chain");
    assert.deepEqual(pricing.body.prices, [{ endpoint_id: "acme/chain", unit_price: 0, unit: "request", currency: "USD", source: "default", effective_from: null }]);
    const usage = await http(p, "GET", `/v1/models/usage?${new URLSearchParams({ expand: "summary", start: new Date(since).toISOString(), bound_to_timeframe: "false" })}`);
    assert.equal(usage.status, 200, JSON.stringify(usage.body));
    const lines = usage.body.summary as { endpoint_id: string; cost: number; compute_seconds: number; unit: string }[];
    const workflow = lines.find((l) => l.endpoint_id === "acme/chain");
    const echo = lines.find((l) => l.endpoint_id === "darkroom/echo");
    assert.ok(workflow && echo, JSON.stringify(lines));
    assert.equal(workflow.cost, 0);
    assert.ok(workflow.compute_seconds > 0, "its run time is still shown");
    assert.ok(echo.cost > 0 && echo.unit === "compute_second", "its nodes are billed at the default compute price");
  });

  it("streams fal's events in order: submit and completion per node, then output; done() is the output", async () => {
    const stream = await fal.stream("workflows/acme/chain", { input: { text: "streamed" } });
    const events: Json[] = [];
    for await (const event of stream) events.push(event as Json);
    const final = await stream.done();
    const typed = events.filter((e) => typeof e["type"] === "string");
    assert.deepEqual(
      typed.map((e) => `${e["type"]}:${e["node_id"] ?? ""}`),
      ["submit:first", "completion:first", "submit:second", "completion:second", "output:"],
    );
    assert.equal(typed[0]?.["app_id"], "darkroom/echo");
    assert.match(typed[0]?.["request_id"], /^[0-9a-f]{8}-/);
    assert.deepEqual(typed[3]?.["output"], { message: "streamed", attempt: 1 });
    assert.deepEqual(typed[4]?.["output"], { text: "streamed", first_attempt: 1 });
    assert.deepEqual(final, { text: "streamed", first_attempt: 1 });
  });

  it("runs independent nodes at the same time and joins them", async () => {
    const result = await fal.subscribe("acme/fan-out", { input: { text: "both" } });
    assert.deepEqual(result.data, { joined: ["left", "right", "both"] });
    const left = await p.store.get(nodeRequestId(result.requestId, "left"));
    const right = await p.store.get(nodeRequestId(result.requestId, "right"));
    assert.ok(left?.startedAt && right?.startedAt && left.finishedAt && right.finishedAt);
    assert.ok(left.startedAt < right.finishedAt && right.startedAt < left.finishedAt, "the two 400 ms nodes overlapped");
  });

  it("ends the workflow with an error naming the failed node; the nodes after it never run", async () => {
    const submitted = await http(p, "POST", "/queue/acme/breaks", { text: "x" });
    assert.equal(submitted.status, 200, JSON.stringify(submitted.body));
    const id = submitted.body.request_id as string;
    const ended = await eventually(async () => {
      const record = await p.store.get(id);
      return record && record.state !== "QUEUED" && record.state !== "RUNNING" ? record : null;
    }, 20_000);
    assert.equal(ended.state, "FAILED");
    assert.match(ended.error ?? "", /Node bad failed: echo failed on request/);
    assert.equal((await p.store.get(nodeRequestId(id, "ok")))?.state, "SUCCEEDED");
    assert.equal(await p.store.get(nodeRequestId(id, "after")), null, "never submitted");
  });

  it("cancelling the workflow cancels its running node and ends it CANCELLED", async () => {
    const submitted = await http(p, "POST", "/queue/acme/slow", { text: "x" });
    const id = submitted.body.request_id as string;
    const napId = nodeRequestId(id, "nap");
    await eventually(async () => ((await p.store.get(napId))?.state === "RUNNING" ? true : null), 20_000);
    const cancelled = await http(p, "PUT", `/queue/acme/slow/requests/${id}/cancel`);
    assert.equal(cancelled.status, 202, JSON.stringify(cancelled.body));
    const ended = await eventually(async () => {
      const record = await p.store.get(id);
      return record?.state === "CANCELLED" ? record : null;
    }, 20_000);
    assert.equal(ended.state, "CANCELLED");
    await eventually(async () => ((await p.store.get(napId))?.state === "CANCELLED" ? true : null), 20_000);
  });
});
