/**
 * The platform API: `/v1/models` in fal's shape, each app's OpenAPI 3.1 document (checked by
 * compiling its schemas and validating real inputs against them), and unavailable apps.
 */
import assert from "node:assert/strict";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { Ajv2020 } from "ajv/dist/2020.js";
import { ECHO_APP, TEST_APPS, http, startTestPlatform, type TestPlatform } from "../helpers/platform.js";

describe("platform API", () => {
  let p: TestPlatform;
  before(async () => {
    p = await startTestPlatform({ appModules: [ECHO_APP, path.join(TEST_APPS, "unavailable.ts")] });
  });
  after(async () => {
    await p.close();
  });

  it("lists apps with metadata and JSON Schema 2020-12 inputs, and filters them", async () => {
    const res = await http(p, "GET", "/v1/models");
    assert.equal(res.status, 200);
    assert.equal(res.body.has_more, false);
    const echo = res.body.models.find((m: { endpoint_id: string }) => m.endpoint_id === "darkroom/echo");
    assert.equal(echo.metadata.display_name, "Echo");
    assert.equal(echo.metadata.category, "utility");
    assert.equal(echo.metadata.status, "active");
    assert.equal(echo.metadata.license, "MIT");
    assert.deepEqual(echo.availability, { available: true });
    const root = echo.endpoints.find((e: { path: string }) => e.path === "");
    assert.equal(root.input_schema.$schema, "https://json-schema.org/draft/2020-12/schema");
    assert.equal(root.input_schema.properties.sleep_ms.default, 0);
    assert.ok(!(root.input_schema.required ?? []).includes("sleep_ms"), "fields with defaults are optional on the wire");
    assert.deepEqual(
      echo.endpoints.map((e: { path: string; kind: string }) => `${e.path}:${e.kind}`).sort(),
      [":http", "realtime:realtime", "stream:stream"],
    );

    const found = await http(p, "GET", "/v1/models?endpoint_id=darkroom/echo");
    assert.deepEqual(found.body.models.map((m: { endpoint_id: string }) => m.endpoint_id), ["darkroom/echo"]);
    const searched = await http(p, "GET", "/v1/models?q=missing%20program");
    assert.deepEqual(searched.body.models.map((m: { endpoint_id: string }) => m.endpoint_id), ["darkroom-test/unavailable"]);
    const byCategory = await http(p, "GET", "/v1/models?category=utility");
    assert.deepEqual(byCategory.body.models.map((m: { endpoint_id: string }) => m.endpoint_id), ["darkroom/echo"]);
    const paged = await http(p, "GET", "/v1/models?limit=1");
    assert.equal(paged.body.models.length, 1);
    assert.equal(paged.body.has_more, true);
    const next = await http(p, "GET", `/v1/models?limit=1&cursor=${paged.body.next_cursor}`);
    assert.notEqual(next.body.models[0].endpoint_id, paged.body.models[0].endpoint_id);
    const expanded = await http(p, "GET", "/v1/models?endpoint_id=darkroom/echo&expand=openapi-3.0");
    assert.equal(expanded.body.models[0].openapi.openapi, "3.1.0");
    assert.equal((await http({ url: p.url, auth: {} }, "GET", "/v1/models")).status, 401);
  });

  it("serves an OpenAPI 3.1 document whose schemas validate real inputs", async () => {
    const res = await fetch(`${p.url}/run/darkroom/echo/openapi.json`);
    assert.equal(res.status, 200);
    const doc = (await res.json());
    assert.equal(doc.openapi, "3.1.0");
    assert.equal(doc.info.title, "Echo");
    assert.equal(doc.servers[0].url, `${p.url}/queue`);
    const submit = doc.paths["/darkroom/echo"].post;
    const ref: string = submit.requestBody.content["application/json"].schema.$ref;
    const name = ref.split("/").pop()!;
    assert.ok(doc.paths["/darkroom/echo/requests/{request_id}/status"].get);
    assert.ok(doc.paths["/darkroom/echo/requests/{request_id}/cancel"].put);
    assert.equal(doc.paths["/darkroom/echo/realtime"].get["x-fal-protocol"], "websocket");

    const ajv = new Ajv2020({ strict: false });
    for (const [key, schema] of Object.entries(doc.components.schemas)) ajv.addSchema(schema as object, `#/components/schemas/${key}`);
    const validate = ajv.getSchema(`#/components/schemas/${name}`)!;
    assert.equal(validate({ message: { any: "json" }, sleep_ms: 10, logs: ["a"] }), true);
    assert.equal(validate({ sleep_ms: "slow" }), false);
    assert.equal(validate({ fail: "explode" }), false);
    assert.equal((await fetch(`${p.url}/run/darkroom/nope/openapi.json`)).status, 404);
  });

  it("lists an unavailable app with its reason and refuses calls with a 503 naming the remedy", async () => {
    const res = await http(p, "GET", "/v1/models?endpoint_id=darkroom-test/unavailable");
    assert.deepEqual(res.body.models[0].availability, {
      available: false,
      reason: "the program 'frobnicate' is not installed",
      remedy: "apt-get install frobnicate",
    });
    for (const route of ["/run/darkroom-test/unavailable", "/queue/darkroom-test/unavailable"]) {
      const call = await http(p, "POST", route, {});
      assert.equal(call.status, 503);
      assert.equal(call.body.error_type, "app_unavailable");
      assert.match(call.body.detail, /frobnicate.*apt-get install frobnicate/);
    }
    const ops = await http(p, "GET", "/v1/ops");
    const entry = ops.body.apps.find((a: { app: string }) => a.app === "darkroom-test/unavailable");
    assert.deepEqual(entry.runners, [], "no runner is ever started for it");
  });
});
