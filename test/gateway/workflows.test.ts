/**
 * The workflow registry on a real server (`/v1/workflows`, src/gateway/routes/workflows.ts):
 * documents in fal's format checked against the apps served, fal's 422 naming the node and field,
 * admin keys to write, any key to read.
 * @module
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { http, startTestPlatform, type TestPlatform } from "../helpers/platform.js";

/** echo → echo: the second echoes the first's message. */
function twoEchoes(): Record<string, unknown> {
  return {
    title: "Echo twice",
    contents: {
      nodes: {
        input: { id: "input", type: "input", depends: [], input: { text: "" } },
        first: { id: "first", type: "run", depends: ["input"], app: "darkroom/echo", input: { message: "$input.text" } },
        second: { id: "second", type: "run", depends: ["first"], app: "darkroom/echo", input: { message: "$first.message" } },
        output: { id: "output", type: "display", depends: ["second"], fields: { text: "$second.message", attempts: "$first.attempt" } },
      },
    },
  };
}

describe("the workflow registry", () => {
  let p: TestPlatform;
  let apiKey: { url: string; auth: Record<string, string> };

  before(async () => {
    p = await startTestPlatform();
    const created = await http(p, "POST", "/v1/keys", { name: "caller", scope: "api" });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    apiKey = { url: p.url, auth: { authorization: `Key ${created.body.key as string}` } };
  });

  after(async () => {
    await p.close();
  });

  it("registers a workflow in fal's format, lists it and reads it back with no problems", async () => {
    const put = await http(p, "PUT", "/v1/workflows/acme/two-echoes", twoEchoes());
    assert.equal(put.status, 201, JSON.stringify(put.body));
    assert.equal(put.body.id, "acme/two-echoes");
    assert.equal(put.body.name, "two-echoes", "named by the path");
    const again = await http(p, "PUT", "/v1/workflows/acme/two-echoes", { ...twoEchoes(), title: "Echo, twice" });
    assert.equal(again.status, 200, "a replacement");
    const listed = await http(apiKey, "GET", "/v1/workflows");
    assert.equal(listed.status, 200);
    assert.deepEqual((listed.body.workflows as any[]).map((w) => [w.id, w.title]), [["acme/two-echoes", "Echo, twice"]]);
    const read = await http(apiKey, "GET", "/v1/workflows/acme/two-echoes");
    assert.equal(read.status, 200);
    assert.deepEqual(read.body.problems, []);
    assert.equal(read.body.contents.nodes.second.input.message, "$first.message");
  });

  it("refuses a document with fal's 422, each problem at its node and field", async () => {
    const doc = twoEchoes() as { contents: { nodes: Record<string, any> } };
    doc.contents.nodes["first"].app = "darkroom/missing";
    doc.contents.nodes["second"].depends = ["input"];
    doc.contents.nodes["output"].fields = { text: "$second.mesage" };
    const res = await http(p, "PUT", "/v1/workflows/acme/broken", doc);
    assert.equal(res.status, 422, JSON.stringify(res.body));
    const detail = res.body.detail as { loc: string[]; msg: string }[];
    const at = (loc: string): string | undefined => detail.find((d) => d.loc.join(".") === loc)?.msg;
    assert.match(at("body.contents.nodes.first.app") ?? "", /no app endpoint "darkroom\/missing"/);
    assert.match(at("body.contents.nodes.second.input.message") ?? "", /\$first is not upstream of "second"/);
    assert.match(at("body.contents.nodes.output.fields.text") ?? "", /darkroom\/echo's output has no field mesage/);
    assert.equal((await http(p, "GET", "/v1/workflows/acme/broken")).status, 404, "nothing kept");

    const malformed = await http(p, "PUT", "/v1/workflows/acme/odd", { contents: { nodes: { a: { type: "loop" } } } });
    assert.equal(malformed.status, 422);
    assert.deepEqual(malformed.body.detail[0].loc, ["body", "contents", "nodes", "a", "type"]);
    const badPath = await http(p, "PUT", "/v1/workflows/Acme/x", twoEchoes());
    assert.equal(badPath.status, 422);
    assert.deepEqual(badPath.body.detail[0].loc, ["path", "owner"]);
  });

  it("does not let a workflow take an app's id, nor call a workflow (two calling each other would never end)", async () => {
    const taken = await http(p, "PUT", "/v1/workflows/darkroom/echo", twoEchoes());
    assert.equal(taken.status, 422, JSON.stringify(taken.body));
    assert.match(JSON.stringify(taken.body.detail), /an app is served as darkroom\/echo/);
    assert.equal((await http(p, "PUT", "/v1/workflows/acme/inner", twoEchoes())).status, 201);
    const outer = twoEchoes() as { contents: { nodes: Record<string, any> } };
    outer.contents.nodes["first"].app = "acme/inner";
    outer.contents.nodes["first"].input = { text: "$input.text" };
    const nested = await http(p, "PUT", "/v1/workflows/acme/outer", outer);
    assert.equal(nested.status, 422, JSON.stringify(nested.body));
    assert.deepEqual(nested.body.detail[0].loc, ["body", "contents", "nodes", "first", "app"]);
    assert.match(nested.body.detail[0].msg, /acme\/inner is a workflow/);
    assert.equal((await http(p, "DELETE", "/v1/workflows/acme/inner")).status, 204);
    const gone = await http(p, "POST", "/run/acme/inner", { text: "x" });
    assert.equal(gone.status, 503, "a deleted workflow is unavailable");
    assert.equal((await http(p, "PUT", "/v1/workflows/acme/inner", twoEchoes())).status, 201, "and may be registered again");
    const back = await http(p, "POST", "/run/acme/inner", { text: "back" });
    assert.equal(back.status, 200, JSON.stringify(back.body));
    assert.equal(back.body.text, "back");
  });

  it("lets only admin keys register and delete; deleting twice is 404", async () => {
    const refused = await http(apiKey, "PUT", "/v1/workflows/acme/mine", twoEchoes());
    assert.equal(refused.status, 403, JSON.stringify(refused.body));
    assert.equal((await http(apiKey, "DELETE", "/v1/workflows/acme/two-echoes")).status, 403);
    assert.equal((await http(p, "DELETE", "/v1/workflows/acme/two-echoes")).status, 204);
    const gone = await http(p, "DELETE", "/v1/workflows/acme/two-echoes");
    assert.equal(gone.status, 404);
    assert.equal(gone.body.error_type, "not_found");
  });
});
