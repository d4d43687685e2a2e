/**
 * fal's hosts as route tables (src/gateway/fal-host.ts): how a table matches paths (no server), and,
 * on a real server, that a host's direct routes and the proxy's `x-fal-target-url` answer the same
 * paths the same way, 404s included.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { GatewayContext } from "../../src/gateway/context.js";
import type { FalCall } from "../../src/gateway/fal-call.js";
import { FalHost, appIdOf, appRoutes, restOf, type FalRouteParams } from "../../src/gateway/fal-host.js";
import { PlatformError } from "../../src/core/errors.js";
import { http, startTestPlatform, type TestPlatform } from "../helpers/platform.js";

describe("a fal host's route table", () => {
  const seen: { route: string; params: FalRouteParams }[] = [];
  const record = (route: string) => async (_ctx: GatewayContext, _call: FalCall, params: FalRouteParams) => void seen.push({ route, params });
  const host = new FalHost({
    hostnames: ["queue.example"],
    prefix: "queue",
    shape: "/{owner}/{alias}[/path]",
    routes: [
      ...appRoutes("POST", "", record("submit")),
      ...appRoutes("POST", "/*", record("submit-path")),
      ...appRoutes(["GET", "HEAD"], "/requests/:id/status", record("status")),
      { method: "POST", path: "/tokens", handler: record("tokens") },
    ],
  });
  const ctx = {} as GatewayContext;
  async function serve(method: string, segments: string[]): Promise<{ route: string; params: FalRouteParams }> {
    seen.length = 0;
    await host.serve(ctx, { method, segments, query: new URLSearchParams(), request: {} as FalCall["request"], reply: {} as FalCall["reply"] });
    const match = seen[0];
    assert.ok(match, `${method} /${segments.join("/")} matched nothing`);
    return match;
  }
  async function notFound(method: string, segments: string[]): Promise<PlatformError> {
    try {
      await host.serve(ctx, { method, segments, query: new URLSearchParams(), request: {} as FalCall["request"], reply: {} as FalCall["reply"] });
    } catch (error) {
      assert.ok(error instanceof PlatformError);
      return error;
    }
    assert.fail(`${method} /${segments.join("/")} was served`);
  }

  it("names the app by owner and alias, with or without a namespace, and keeps the rest as the endpoint path", async () => {
    const bare = await serve("POST", ["darkroom", "echo"]);
    assert.equal(bare.route, "submit");
    assert.equal(appIdOf(bare.params), "darkroom/echo");
    const deep = await serve("POST", ["darkroom", "echo", "a", "b"]);
    assert.equal(deep.route, "submit-path");
    assert.equal(restOf(deep.params), "a/b");
    for (const namespace of ["workflows", "comfy"]) {
      const named = await serve("POST", [namespace, "me", "flow", "run"]);
      assert.equal(appIdOf(named.params), "me/flow");
      assert.equal(restOf(named.params), "run");
    }
    // Two segments after a namespace's name are an app whose owner is called "workflows".
    assert.equal(appIdOf((await serve("POST", ["workflows", "flow"])).params), "workflows/flow");
  });

  it("decodes each segment once and keeps an encoded slash inside its segment", async () => {
    const status = await serve("GET", ["darkroom", "echo", "requests", "a/b c%", "status"]);
    assert.equal(status.route, "status");
    assert.equal(status.params["id"], "a/b c%");
    assert.equal((await serve("HEAD", ["darkroom", "echo", "requests", "x", "status"])).route, "status");
    assert.equal((await serve("POST", ["tokens"])).route, "tokens");
  });

  it("answers every other method and path with one 404 that names the host and its shape", async () => {
    for (const [method, segments] of [
      ["GET", ["darkroom", "echo"]],
      ["PUT", ["darkroom", "echo", "requests", "x", "status"]],
      ["GET", ["darkroom", "echo", "requests", "x", "status", "more"]],
      ["POST", ["only-one"]],
      ["GET", []],
      ["BREW", ["darkroom", "echo"]],
    ] as const) {
      const error = await notFound(method, [...segments]);
      assert.equal(error.code, "ERR_PATH_NOT_FOUND");
      assert.match(error.message, new RegExp(`^${method} /.* not found on queue\\.example \\(expected /\\{owner\\}/\\{alias\\}\\[/path\\]\\)$`));
    }
  });
});

describe("fal's hosts, direct and through the proxy", () => {
  let p: TestPlatform;
  before(async () => {
    p = await startTestPlatform();
  });
  after(async () => {
    await p.close();
  });

  const viaProxy = (method: string, target: string, body?: unknown) =>
    http(p, method, "/api/fal/proxy", body, { "x-fal-target-url": target });

  it("serve the same calls the same way", async () => {
    const direct = await http(p, "POST", "/run/darkroom/echo", { message: "direct" });
    const proxied = await viaProxy("POST", "https://fal.run/darkroom/echo", { message: "proxied" });
    assert.equal(direct.status, 200);
    assert.equal(proxied.status, 200);
    assert.equal(direct.body.message, "direct");
    assert.equal(proxied.body.message, "proxied");
    // A namespace names the same app; `//` and a trailing slash change nothing.
    const namespaced = await http(p, "POST", "/queue//workflows/darkroom/echo/", { message: "ns" });
    assert.equal(namespaced.status, 200, JSON.stringify(namespaced.body));
    const id = namespaced.body.request_id as string;
    const viaStatus = await viaProxy("GET", `https://queue.fal.run/darkroom/echo/requests/${id}/status`);
    assert.ok([200, 202].includes(viaStatus.status));
    assert.equal(viaStatus.body.request_id ?? id, id);
    // The run host's OpenAPI document, on both.
    const openapi = await viaProxy("GET", "https://fal.run/darkroom/echo/openapi.json");
    assert.equal(openapi.status, 200);
    assert.equal(openapi.body.openapi, (await http(p, "GET", "/run/darkroom/echo/openapi.json")).body.openapi);
  });

  it("answer an unknown path with the same 404 in fal's shape", async () => {
    for (const [host, prefix, method, path] of [
      ["queue.fal.run", "queue", "GET", "/darkroom/echo/requests/x/nothing"],
      ["queue.fal.run", "queue", "DELETE", "/darkroom/echo/requests/x"],
      ["rest.fal.ai", "rest", "POST", "/storage/nothing"],
      ["fal.run", "run", "PUT", "/darkroom/echo"],
    ] as const) {
      const proxied = await viaProxy(method, `https://${host}${path}`);
      assert.equal(proxied.status, 404, `${method} ${host}${path}`);
      assert.equal(proxied.body.error_type, "not_found");
      assert.match(proxied.body.detail, new RegExp(`not found on ${host.replace(/\./g, "\\.")}`));
      const direct = await http(p, method, `/${prefix}${path}`);
      assert.equal(direct.status, 404);
      assert.equal(direct.body.detail, proxied.body.detail);
    }
  });
});
