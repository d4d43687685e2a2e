/**
 * The pure logic of the Playground's workflow view: reading and laying out a document
 * (web/src/lib/workflow-graph.ts), node states from events and statuses (workflow-run.ts), problems
 * placed on nodes (workflow-problems.ts), JSON syntax errors with their line and column
 * (json-syntax.ts).
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { jsonSyntaxError, lineColumnAt } from "../../web/src/lib/json-syntax.js";
import { layersOf, layoutWorkflow, NODE_HEIGHT, NODE_WIDTH, workflowNodesOf, type WorkflowNodeSpec } from "../../web/src/lib/workflow-graph.js";
import { graphProblems, placeProblem, problemsByNode, problemsOf } from "../../web/src/lib/workflow-problems.js";
import {
  applyNodeStatus,
  applyWorkflowEvent,
  finishWorkflowRun,
  nodesToWatch,
  parseWorkflowEvent,
  resolveReferences,
  startWorkflowRun,
  type WorkflowRunState,
  withDisplayFields,
} from "../../web/src/lib/workflow-run.js";
import { REPO_ROOT } from "../helpers/platform.js";

/** input → a, input → b, (a, b) → joined → output: a diamond with a display node. */
const DIAMOND = {
  name: "diamond",
  contents: {
    nodes: {
      input: { id: "input", type: "input", depends: [], input: { text: "" } },
      a: { id: "a", type: "run", depends: ["input"], app: "darkroom/echo", input: { message: "$input.text" } },
      b: { id: "b", type: "run", depends: ["input"], app: "darkroom/echo", input: { message: "b" } },
      joined: { id: "joined", type: "run", depends: ["a", "b"], app: "darkroom/echo", input: { message: ["$a.message", "$b.message"] } },
      output: { id: "output", type: "display", depends: ["joined"], fields: { both: "$joined.message", first: "$joined.message.0" } },
    },
  },
};

const nodesOf = (doc: unknown): WorkflowNodeSpec[] => workflowNodesOf(doc) ?? assert.fail("no nodes");

describe("workflow graph layout", () => {
  it("reads the nodes of a document, or of its contents, in the document's order", () => {
    const nodes = nodesOf(DIAMOND);
    assert.deepEqual(
      nodes.map((n) => [n.id, n.type, n.app, n.depends]),
      [
        ["input", "input", null, []],
        ["a", "run", "darkroom/echo", ["input"]],
        ["b", "run", "darkroom/echo", ["input"]],
        ["joined", "run", "darkroom/echo", ["a", "b"]],
        ["output", "display", null, ["joined"]],
      ],
    );
    assert.deepEqual(nodesOf(DIAMOND.contents).map((n) => n.id), ["input", "a", "b", "joined", "output"]);
    assert.deepEqual(nodes.find((n) => n.id === "output")?.input, { both: "$joined.message", first: "$joined.message.0" }, "a display node's fields are where its references are");
    assert.equal(workflowNodesOf({ contents: { nodes: [] } }), null);
    assert.equal(workflowNodesOf("text"), null);
    assert.deepEqual(nodesOf({ contents: { nodes: { odd: 3 } } }), [{ id: "odd", type: "unknown", app: null, depends: [], input: {} }], "a malformed node is still drawn");
  });

  it("puts each node one layer after the deepest node it depends on", () => {
    assert.deepEqual(Object.fromEntries(layersOf(nodesOf(DIAMOND))), { input: 0, a: 1, b: 1, joined: 2, output: 3 });
    // A skip connection: c depends on the input and on b, so it goes after b.
    const skip = nodesOf({ contents: { nodes: { i: { type: "input" }, b: { type: "run", depends: ["i"] }, c: { type: "run", depends: ["i", "b"] } } } });
    assert.deepEqual(Object.fromEntries(layersOf(skip)), { i: 0, b: 1, c: 2 });
  });

  it("lays out a cycle, a self-dependency and a missing node without looping or throwing", () => {
    const nodes = nodesOf({ contents: { nodes: { a: { type: "run", depends: ["c", "ghost", "a"] }, b: { type: "run", depends: ["a"] }, c: { type: "run", depends: ["b"] } } } });
    const layout = layoutWorkflow(nodes);
    assert.equal(layout.nodes.length, 3);
    assert.deepEqual(
      layout.edges.map((e) => [e.from, e.to]).sort(),
      [
        ["a", "b"],
        ["b", "c"],
        ["c", "a"],
      ],
      "no arrow to a missing node nor from a node to itself",
    );
    assert.equal(layout.edges.filter((e) => e.backwards).length, 1, "one arrow of the cycle points back");
  });

  it("places boxes left to right by layer without overlaps, arrows from right edge to left edge", () => {
    const layout = layoutWorkflow(nodesOf(DIAMOND));
    const at = Object.fromEntries(layout.nodes.map((n) => [n.id, n]));
    const x = (id: string): number => at[id]?.x ?? NaN;
    const y = (id: string): number => at[id]?.y ?? NaN;
    assert.ok(x("input") < x("a") && x("a") === x("b") && x("b") < x("joined") && x("joined") < x("output"));
    assert.ok(Math.abs(y("a") - y("b")) >= NODE_HEIGHT, "a and b are stacked, not overlapping");
    // The chain through the middle runs straight: input, joined and output are centred on the pair.
    assert.equal(y("input"), (y("a") + y("b")) / 2);
    assert.equal(y("joined"), y("input"));
    for (const n of layout.nodes) assert.ok(n.x >= 0 && n.y >= 0 && n.x + NODE_WIDTH <= layout.width && n.y + NODE_HEIGHT <= layout.height, `${n.id} inside the drawing`);
    assert.equal(layout.edges.length, 5);
    const edge = layout.edges.find((e) => e.from === "input" && e.to === "a");
    assert.ok(edge?.path.startsWith(`M ${x("input") + NODE_WIDTH} ${y("input") + NODE_HEIGHT / 2} C`), edge?.path);
    assert.ok(edge?.path.endsWith(`${x("a")} ${y("a") + NODE_HEIGHT / 2}`), edge?.path);
  });

  it("orders a layer to avoid crossed arrows", () => {
    // Written in an order that would cross: x2 feeds the top node of the next layer, x1 the bottom one.
    const nodes = nodesOf({
      contents: {
        nodes: {
          x1: { type: "run" },
          x2: { type: "run" },
          y2: { type: "run", depends: ["x2"] },
          y1: { type: "run", depends: ["x1"] },
        },
      },
    });
    const layout = layoutWorkflow(nodes);
    const y = (id: string): number => layout.nodes.find((n) => n.id === id)?.y ?? NaN;
    assert.equal(Math.sign(y("x1") - y("x2")), Math.sign(y("y1") - y("y2")), "each follows its source's side");
  });

  it("lays out the example workflows shipped in workflows/darkroom", () => {
    for (const name of ["cutout-and-upscale", "speech-round-trip", "upscale-to-video"]) {
      const doc = JSON.parse(readFileSync(path.join(REPO_ROOT, "workflows", "darkroom", `${name}.json`), "utf8")) as unknown;
      const layout = layoutWorkflow(nodesOf(doc));
      assert.equal(layout.nodes.length, 4, name);
      assert.deepEqual(layout.nodes.map((n) => n.layer), [0, 1, 2, 3], name);
      assert.equal(graphProblems(layout.nodes).length, 0, `${name} has no problem a browser can see`);
    }
  });
});

describe("workflow node states", () => {
  const nodes = nodesOf(DIAMOND);
  const started = (): WorkflowRunState => startWorkflowRun("wf-1", nodes, { text: "hi" });
  const phases = (s: WorkflowRunState): Record<string, string> => Object.fromEntries(Object.entries(s.nodes).map(([id, n]) => [id, n.phase]));

  it("parses fal's workflow events and ignores anything else a stream may carry", () => {
    assert.deepEqual(parseWorkflowEvent({ type: "submit", node_id: "a", app_id: "darkroom/echo", request_id: "r-a" }), { type: "submit", node_id: "a", app_id: "darkroom/echo", request_id: "r-a" });
    assert.deepEqual(parseWorkflowEvent({ type: "completion", node_id: "a", output: { message: 1 } }), { type: "completion", node_id: "a", output: { message: 1 } });
    assert.deepEqual(parseWorkflowEvent({ type: "error", node_id: "a", message: "boom", error: "FAILED" }), { type: "error", node_id: "a", message: "boom", error: "FAILED" });
    assert.deepEqual(parseWorkflowEvent({ type: "output", output: null }), { type: "output", output: null });
    assert.equal(parseWorkflowEvent({ type: "submit", node_id: "a" }), null, "a submit without its request");
    assert.equal(parseWorkflowEvent({ image: "preview" }), null, "an app's own partial result");
    assert.equal(parseWorkflowEvent("text"), null);
  });

  it("starts with the input node done (holding the request's body) and the rest idle", () => {
    const s = started();
    assert.deepEqual(phases(s), { input: "done", a: "idle", b: "idle", joined: "idle", output: "idle" });
    assert.deepEqual(s.nodes["input"]?.output, { value: { text: "hi" } });
  });

  it("follows a run: submitted nodes queue, their status runs them with progress, completions finish them, the output shows on display nodes", () => {
    let s = started();
    s = applyWorkflowEvent(s, { type: "submit", node_id: "a", app_id: "darkroom/echo", request_id: "r-a" }, nodes);
    s = applyWorkflowEvent(s, { type: "submit", node_id: "b", app_id: "darkroom/echo", request_id: "r-b" }, nodes);
    assert.deepEqual(phases(s), { input: "done", a: "queued", b: "queued", joined: "idle", output: "idle" });
    assert.equal(s.nodes["a"]?.requestId, "r-a");
    s = applyNodeStatus(s, "b", { status: "IN_QUEUE", queue_position: 2 });
    assert.equal(s.nodes["b"]?.queuePosition, 2);
    s = applyNodeStatus(s, "a", { status: "IN_PROGRESS", progress: { step: 1, total: 4, fraction: 0.25, message: "step 1/4" } });
    assert.equal(s.nodes["a"]?.phase, "running");
    assert.deepEqual(s.nodes["a"]?.progress, { step: 1, total: 4, fraction: 0.25, message: "step 1/4" });
    // A status without progress keeps the last progress seen.
    s = applyNodeStatus(s, "a", { status: "IN_PROGRESS" });
    assert.equal(s.nodes["a"]?.progress?.fraction, 0.25);
    s = applyWorkflowEvent(s, { type: "completion", node_id: "a", output: { message: "hi", attempt: 1 } }, nodes);
    s = applyWorkflowEvent(s, { type: "completion", node_id: "b", output: { message: "b", attempt: 1 } }, nodes);
    assert.deepEqual(s.nodes["a"]?.output, { value: { message: "hi", attempt: 1 } });
    assert.equal(s.nodes["a"]?.progress?.fraction, 1, "a finished node's bar is full");
    s = applyWorkflowEvent(s, { type: "submit", node_id: "joined", app_id: "darkroom/echo", request_id: "r-j" }, nodes);
    s = applyWorkflowEvent(s, { type: "completion", node_id: "joined", output: { message: ["hi", "b"], attempt: 1 } }, nodes);
    s = applyWorkflowEvent(s, { type: "output", output: { both: ["hi", "b"], first: "hi" } }, nodes);
    assert.deepEqual(phases(s), { input: "done", a: "done", b: "done", joined: "done", output: "done" });
    assert.deepEqual(withDisplayFields(s, nodes).nodes["output"]?.output, { value: { both: ["hi", "b"], first: "hi" } }, "the display node's fields, resolved");
    assert.equal(s.ended, "succeeded");
    assert.deepEqual(s.output, { value: { both: ["hi", "b"], first: "hi" } });
  });

  it("never takes a node back: late statuses and repeated events leave a finished node as it finished", () => {
    let s = started();
    s = applyWorkflowEvent(s, { type: "submit", node_id: "a", app_id: "darkroom/echo", request_id: "r-a" }, nodes);
    // A status poll sees it finish before the completion event, with no output yet.
    s = applyNodeStatus(s, "a", { status: "COMPLETED" });
    assert.equal(s.nodes["a"]?.phase, "done");
    assert.equal(s.nodes["a"]?.output, null);
    s = applyNodeStatus(s, "a", { status: "IN_PROGRESS", progress: { step: 1, total: 2, fraction: 0.5 } });
    s = applyWorkflowEvent(s, { type: "submit", node_id: "a", app_id: "darkroom/echo", request_id: "r-a" }, nodes);
    assert.equal(s.nodes["a"]?.phase, "done");
    s = applyWorkflowEvent(s, { type: "completion", node_id: "a", output: { message: "hi" } }, nodes);
    assert.deepEqual(s.nodes["a"]?.output, { value: { message: "hi" } }, "the completion fills in the output it lacked");
    const again = applyWorkflowEvent(s, { type: "completion", node_id: "a", output: { message: "hi" } }, nodes);
    assert.deepEqual(again, s, "a repeated event changes nothing");
  });

  it("marks a failing node failed with its message, cancels what ran beside it, leaves the rest idle", () => {
    let s = started();
    s = applyWorkflowEvent(s, { type: "submit", node_id: "a", app_id: "darkroom/echo", request_id: "r-a" }, nodes);
    s = applyWorkflowEvent(s, { type: "submit", node_id: "b", app_id: "darkroom/echo", request_id: "r-b" }, nodes);
    s = applyNodeStatus(s, "b", { status: "IN_PROGRESS" });
    s = applyWorkflowEvent(s, { type: "error", node_id: "a", message: "echo failed on request (fail: error)", error: "FAILED" }, nodes);
    s = finishWorkflowRun(s, "failed", nodes);
    assert.deepEqual(phases(s), { input: "done", a: "failed", b: "cancelled", joined: "idle", output: "idle" });
    assert.equal(s.nodes["a"]?.error, "echo failed on request (fail: error)");
    assert.equal(s.ended, "failed");
    // A node request's own status says how it ended, too.
    const viaStatus = applyNodeStatus(started(), "a", { status: "COMPLETED", error: "boom", error_type: "runner_server_error" });
    assert.deepEqual([viaStatus.nodes["a"]?.phase, viaStatus.nodes["a"]?.error], ["failed", "boom"]);
    const viaDetail = applyNodeStatus(started(), "a", { state: "SUCCEEDED", output: { message: 3 } });
    assert.deepEqual(viaDetail.nodes["a"]?.output, { value: { message: 3 } });
  });

  it("works out a display node's fields from outputs read after the workflow ended", () => {
    let s = started();
    s = applyWorkflowEvent(s, { type: "output", output: { both: ["hi", "b"] } }, nodes);
    assert.deepEqual(phases(s), { input: "done", a: "done", b: "done", joined: "done", output: "done" });
    assert.deepEqual(withDisplayFields(s, nodes).nodes["output"]?.output, { value: { both: undefined, first: undefined } });
    s = applyNodeStatus(s, "joined", { state: "SUCCEEDED", request_id: "r-j", app_id: "darkroom/echo", output: { message: ["hi", "b"] } });
    assert.equal(s.nodes["joined"]?.requestId, "r-j", "a node read by its derived id learns its request");
    assert.deepEqual(withDisplayFields(s, nodes).nodes["output"]?.output, { value: { both: ["hi", "b"], first: "hi" } });
  });

  it("watches the nodes that run and those the executor submits next", () => {
    let s = started();
    assert.deepEqual(nodesToWatch(s, nodes), ["a", "b"]);
    s = applyWorkflowEvent(s, { type: "submit", node_id: "a", app_id: "darkroom/echo", request_id: "r-a" }, nodes);
    s = applyWorkflowEvent(s, { type: "completion", node_id: "b", output: {} }, nodes);
    assert.deepEqual(nodesToWatch(s, nodes), ["a"], "joined waits for a");
    s = applyWorkflowEvent(s, { type: "completion", node_id: "a", output: {} }, nodes);
    assert.deepEqual(nodesToWatch(s, nodes), ["joined"]);
  });

  it("resolves references as the executor does: fields, list indices, whole values, literals kept", () => {
    const outputs = { a: { images: [{ url: "u0" }, { url: "u1" }], n: 3 }, input: { text: "hi" } };
    assert.deepEqual(resolveReferences({ x: "$a.images.1.url", y: ["$input.text", "$a.n"], z: "$a", lit: "costs $5", deep: { v: "$a.missing" } }, outputs), {
      x: "u1",
      y: ["hi", 3],
      z: outputs.a,
      lit: "costs $5",
      deep: { v: undefined },
    });
  });
});

describe("workflow problems on the graph", () => {
  it("reads fal's 422 body and a document's problems, and places each on its node and field", () => {
    const detail = [
      { loc: ["body", "contents", "nodes", "node_2", "input", "image_url"], msg: "darkroom/x's output has no field url", type: "value_error" },
      { loc: ["body", "contents", "nodes", "node_2", "depends", 0], msg: 'no node "ghost"', type: "value_error" },
      { loc: ["body", "contents", "nodes"], msg: "the nodes' depends form a cycle", type: "value_error" },
      { loc: ["body", "name"], msg: 'the path names the workflow "a"', type: "value_error" },
      { loc: "not a list", msg: "kept, with no place" },
      { msg: 3 },
    ];
    const problems = problemsOf({ detail });
    assert.equal(problems.length, 5);
    assert.deepEqual(problemsOf({ problems: detail.slice(0, 1) }).length, 1);
    assert.deepEqual(placeProblem(problems[0] ?? assert.fail()), { nodeId: "node_2", field: "input.image_url", message: "darkroom/x's output has no field url" });
    const { byNode, general } = problemsByNode(problems);
    assert.deepEqual([...byNode.keys()], ["node_2"]);
    assert.deepEqual(byNode.get("node_2")?.map((p) => p.field), ["input.image_url", "depends.0"]);
    assert.deepEqual(general.map((p) => [p.field, p.message]), [
      ["contents.nodes", "the nodes' depends form a cycle"],
      ["name", 'the path names the workflow "a"'],
      ["", "kept, with no place"],
    ]);
    assert.deepEqual(placeProblem({ loc: ["contents", "nodes", "a", "app"], msg: "m" }), { nodeId: "a", field: "app", message: "m" }, "a loc without body is placed the same");
  });

  it("finds what a browser can tell wrong, in the registry's words and places", () => {
    const broken = structuredClone(DIAMOND) as { contents: { nodes: Record<string, { depends: string[]; input?: Record<string, unknown>; fields?: Record<string, unknown> }> } };
    const nodes = broken.contents.nodes;
    (nodes["b"] ?? assert.fail()).depends = ["input", "ghost"];
    (nodes["a"] ?? assert.fail()).input = { message: "$nowhere.text", other: "$b.message" };
    const found = graphProblems(nodesOf(broken)).map((p) => [p.loc.join("."), p.msg]);
    assert.deepEqual(found, [
      ["body.contents.nodes.b.depends.1", 'no node "ghost"'],
      ["body.contents.nodes.a.input.message", "$nowhere: no such node"],
      ["body.contents.nodes.a.input.other", '$b is not upstream of "a": add it to depends'],
    ]);
    (nodes["input"] ?? assert.fail()).depends = ["joined"];
    assert.ok(graphProblems(nodesOf(broken)).some((p) => p.msg === "the nodes' depends form a cycle"));
    assert.deepEqual(graphProblems(nodesOf(DIAMOND)), []);
  });
});

describe("JSON syntax errors with line and column", () => {
  it("says nothing of valid JSON", () => {
    for (const text of ['{"a": [1, 2.5e3, -0, true, false, null, "\\u00e9\\n"]}', " 3 ", '"x"']) assert.equal(jsonSyntaxError(text), null, text);
  });

  it("places each kind of mistake where an editor shows it", () => {
    const cases: [string, number, number, RegExp][] = [
      ['{\n  "a": 1\n  "b": 2\n}', 3, 3, /Expected ',' or '}'/],
      ['{\n  "a": 1,\n}', 3, 1, /another property/],
      ['{"a": [1, 2,]}', 1, 13, /another value/],
      ["{\n  a: 1\n}", 2, 3, /property name in double quotes/],
      ['{"a": tru}', 1, 7, /"true"/],
      ['{"a": "x', 1, 9, /Unterminated string/],
      ['{"a": "x\ny"}', 1, 9, /control character/],
      ['{"a": 1} x', 1, 10, /after the JSON value/],
      ["", 1, 1, /a value/],
      ['{"a": "\\q"}', 1, 8, /Not an escape/],
    ];
    for (const [text, line, column, message] of cases) {
      const err = jsonSyntaxError(text);
      assert.ok(err, `${JSON.stringify(text)} is not JSON`);
      assert.deepEqual([err.line, err.column], [line, column], `${JSON.stringify(text)}: ${err.message}`);
      assert.match(err.message, message);
    }
    assert.deepEqual(lineColumnAt("ab\ncd", 4), { line: 2, column: 2 });
  });
});

