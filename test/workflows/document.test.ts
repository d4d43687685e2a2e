/**
 * Workflow documents in fal's format (src/workflows/document.ts): parsing, the checks made before a
 * workflow may be registered, and references resolved against node outputs.
 * @module
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { AppManifest } from "../../src/core/types.js";
import { checkWorkflow, resolveReferences, schemaAt, topologicalOrder, workflowInputSchema, WorkflowDocument } from "../../src/workflows/document.js";

const IMAGE_FILE = { type: "object", properties: { url: { type: "string" }, width: { type: "integer" } }, required: ["url"] };

function app(id: string, endpoints: AppManifest["endpoints"]): AppManifest {
  return { id, version: "1", metadata: { display_name: id, category: "other", description: "", tags: [] }, knobs: {} as AppManifest["knobs"], endpoints, modulePath: "", unavailable: null };
}

const APPS = new Map<string, AppManifest>([
  ["darkroom/remove-background", app("darkroom/remove-background", [{ path: "", kind: "http", input: { type: "object", properties: { image_url: { type: "string" } }, required: ["image_url"], additionalProperties: false }, output: { type: "object", properties: { image: { $ref: "#/$defs/File" } }, $defs: { File: IMAGE_FILE } } }])],
  ["darkroom/upscale", app("darkroom/upscale", [{ path: "", kind: "http", input: { type: "object", properties: { image_url: { type: "string" }, scale: { type: "integer" } }, required: ["image_url"] }, output: { type: "object", properties: { image: IMAGE_FILE } } }])],
  ["darkroom/text-to-image", app("darkroom/text-to-image", [{ path: "", kind: "http", input: { type: "object", properties: { prompt: { type: "string" } }, required: ["prompt"] }, output: { type: "object", properties: { images: { type: "array", items: IMAGE_FILE } } } }])],
]);
const appOf = (id: string): AppManifest | undefined => APPS.get(id);

/** fal's template: input → text-to-image → remove background → display. */
function cutout(): WorkflowDocument {
  return WorkflowDocument.parse({
    name: "cutout",
    title: "Generate, then cut out",
    contents: {
      name: "cutout",
      nodes: {
        input: { id: "input", type: "input", depends: [], input: { prompt: "" } },
        node_1: { id: "node_1", type: "run", depends: ["input"], app: "darkroom/text-to-image", input: { prompt: "$input.prompt" } },
        node_2: { id: "node_2", type: "run", depends: ["node_1"], app: "darkroom/remove-background", input: { image_url: "$node_1.images.0.url" }, position: { x: 10, y: 20 } },
        output: { id: "output", type: "display", depends: ["node_2"], fields: { image: "$node_2.image" } },
      },
    },
  });
}

describe("workflow documents", () => {
  it("accepts fal's template, keeps editors' fields on nodes, and finds nothing wrong", () => {
    const doc = cutout();
    assert.deepEqual((doc.contents.nodes["node_2"] as Record<string, unknown>)["position"], { x: 10, y: 20 });
    assert.deepEqual(checkWorkflow(doc, appOf), []);
    assert.deepEqual(topologicalOrder(doc.contents.nodes), ["input", "node_1", "node_2", "output"]);
    assert.deepEqual(workflowInputSchema(doc), { type: "object", properties: { prompt: {} }, required: ["prompt"] });
  });

  it("names each problem's node and field: unknown apps, missing and non-upstream references, fields the output schema lacks", () => {
    const doc = cutout();
    const nodes = doc.contents.nodes;
    nodes["node_1"]!.app = "darkroom/nope";
    nodes["node_2"]!.input = { image_url: "$node_9.images.0.url" };
    nodes["output"]!.fields = { image: "$node_2.picture", extra: "$input.prompt", far: "$node_1.images" };
    nodes["output"]!.depends = ["node_2"];
    const problems = checkWorkflow(doc, appOf);
    const byLoc = new Map(problems.map((p) => [p.loc.join("."), p.msg]));
    assert.match(byLoc.get("body.contents.nodes.node_1.app") ?? "", /no app endpoint "darkroom\/nope"/);
    assert.match(byLoc.get("body.contents.nodes.node_2.input.image_url") ?? "", /\$node_9: no such node/);
    assert.match(byLoc.get("body.contents.nodes.output.fields.image") ?? "", /darkroom\/remove-background's output has no field picture/);
    assert.equal(byLoc.has("body.contents.nodes.output.fields.extra"), false, "the input node is upstream of everything that depends on it transitively");
    assert.equal(byLoc.has("body.contents.nodes.output.fields.far"), false, "node_1 is upstream through node_2");
  });

  it("refuses a reference to a node that is not upstream, and a cycle", () => {
    const doc = cutout();
    doc.contents.nodes["node_1"]!.depends = [];
    doc.contents.nodes["node_1"]!.input = { prompt: "a cat" };
    doc.contents.nodes["node_2"]!.depends = ["input"];
    const problems = checkWorkflow(doc, appOf);
    assert.ok(problems.some((p) => p.loc.join(".") === "body.contents.nodes.node_2.input.image_url" && /not upstream of "node_2": add it to depends/.test(p.msg)), JSON.stringify(problems));

    const cyclic = cutout();
    cyclic.contents.nodes["node_1"]!.depends = ["input", "node_2"];
    assert.equal(topologicalOrder(cyclic.contents.nodes), null);
    assert.ok(checkWorkflow(cyclic, appOf).some((p) => /cycle/.test(p.msg)));
  });

  it("checks a run node's literal input against its app: required fields and fields it does not take", () => {
    const doc = cutout();
    doc.contents.nodes["node_2"]!.input = { mask: true };
    const problems = checkWorkflow(doc, appOf).map((p) => `${p.loc.slice(3).join(".")}: ${p.msg}`);
    assert.ok(problems.includes("node_2.input.image_url: darkroom/remove-background requires image_url"), problems.join("\n"));
    assert.ok(problems.includes("node_2.input.mask: darkroom/remove-background takes no field mask"), problems.join("\n"));
  });

  it("refuses malformed documents in the parse: node types, ids, names", () => {
    assert.equal(WorkflowDocument.safeParse({ name: "x", contents: { nodes: { a: { type: "loop" } } } }).success, false);
    assert.equal(WorkflowDocument.safeParse({ name: "x", contents: { nodes: { "bad id": { type: "run" } } } }).success, false);
    assert.equal(WorkflowDocument.safeParse({ name: "Has Spaces", contents: { nodes: {} } }).success, false);
  });

  it("walks output schemas through $ref, arrays and anyOf", () => {
    const schema = APPS.get("darkroom/remove-background")!.endpoints[0]!.output;
    assert.deepEqual(schemaAt(schema, ["image", "url"]), { type: "string" });
    assert.equal(schemaAt(schema, ["image", "size"]), undefined);
    const images = APPS.get("darkroom/text-to-image")!.endpoints[0]!.output;
    assert.deepEqual(schemaAt(images, ["images", "3", "width"]), { type: "integer" });
    assert.equal(schemaAt(images, ["images", "url"]), undefined, "an array has indexes, not fields");
    assert.deepEqual(schemaAt({ anyOf: [{ type: "object", properties: { a: { type: "string" } } }, { type: "null" }] }, ["a"]), { type: "string" });
    assert.deepEqual(schemaAt({ type: "object" }, ["anything", "deep"]), {}, "a schema that says nothing allows anything");
  });

  it("resolves references to whole values, deep paths and array items, leaving literals", () => {
    const values = { input: { prompt: "a fox" }, node_1: { images: [{ url: "http://x/1.png", width: 64 }] } };
    assert.deepEqual(
      resolveReferences({ prompt: "$input.prompt", image_url: "$node_1.images.0.url", both: ["$node_1.images.0", 3, "plain $text"], missing: "$node_1.images.5.url" }, values),
      { prompt: "a fox", image_url: "http://x/1.png", both: [{ url: "http://x/1.png", width: 64 }, 3, "plain $text"], missing: undefined },
    );
  });
});
