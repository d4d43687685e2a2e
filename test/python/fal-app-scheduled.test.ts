/**
 * Python apps under the gateway's own scheduler (`darkroom serve --apps path/app.py::Class`): the
 * fal example and a fixture app are probed through their runner's `--manifest`, and their runners are
 * started, scaled, cancelled, replaced after a crash and stopped by the scheduler as TypeScript
 * runners are, over the JSON-lines channel (python/darkroom_runner/ipc.py). Called with the official
 * `@fal-ai/client`, under each Python of the machine with pydantic (1.x from Debian, 2.x from pip).
 * @module
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { createFalClient, ValidationError, type FalClient } from "@fal-ai/client";
import { ADMIN_KEY, ECHO_APP, eventually, http, REPO_ROOT, startTestPlatform, type TestPlatform } from "../helpers/platform.js";
import { pngSize, pythonsWithPydantic } from "../helpers/python.js";
import { withFalRealtimeAt } from "../helpers/realtime-socket.js";

const CARD = "local/text-card";
const CHORES = "tests/chores";
const NEEDS_PACKAGES = "tests/needs-packages";

interface OpsApp {
  app: string;
  runners: { id: string; state: string; pid: number; in_flight: number }[];
  recent_cold_starts: { runner: string; spawn_ms: number | null; runtime_ms: number | null; import_ms: number | null; setup_ms: number; ready_ms: number; first_request_ms: number | null }[];
}

async function opsOf(p: TestPlatform, appId: string): Promise<OpsApp> {
  const ops = await http(p, "GET", "/v1/ops");
  const app = (ops.body.apps as OpsApp[]).find((a) => a.app === appId);
  assert.ok(app, `${appId} in /v1/ops`);
  return app;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const interpreters = pythonsWithPydantic();

describe("Python apps under the scheduler (--apps file.py::Class)", { skip: interpreters.length === 0 ? "no Python with pydantic here (.ci/run installs python3-pydantic)" : false }, () => {
  for (const { python, pydantic } of interpreters) {
    describe(`${python}, pydantic ${pydantic}`, () => {
      let p: TestPlatform;
      let fal: FalClient;
      let scratch: string;
      const previousPython = process.env["DARKROOM_PYTHON"];

      before(async () => {
        scratch = mkdtempSync(path.join(tmpdir(), "darkroom-py-sched-"));
        // The probe and the runners read it from the gateway's environment.
        process.env["DARKROOM_PYTHON"] = python;
        p = await startTestPlatform({
          appModules: [
            ECHO_APP,
            path.join(REPO_ROOT, "python/examples/fal_text_card.py::TextCard"),
            path.join(REPO_ROOT, "test/fixtures/python/fal_chores.py::Chores"),
            path.join(REPO_ROOT, "test/fixtures/python/fal_missing_requirements.py::NeedsPackages"),
          ],
          // The card app scales to zero a second after its last request.
          env: { DARKROOM_APP_KNOBS: `${CARD}:keep_alive=1` },
        });
        fal = createFalClient({ credentials: ADMIN_KEY, proxyUrl: { url: `${p.url}/api/fal/proxy`, when: "always" } });
      });

      after(async () => {
        await p?.close();
        if (previousPython === undefined) delete process.env["DARKROOM_PYTHON"];
        else process.env["DARKROOM_PYTHON"] = previousPython;
        rmSync(scratch, { recursive: true, force: true });
      });

      it("lists the Python apps beside the Node ones, with their class options and pydantic schemas", async () => {
        const models = await http(p, "GET", "/v1/models");
        const ids = (models.body.models as any[]).map((m) => m.endpoint_id);
        assert.ok(ids.includes("darkroom/echo") && ids.includes(CARD) && ids.includes(CHORES), ids.join(", "));
        const card = (models.body.models as any[]).find((m) => m.endpoint_id === CARD);
        assert.equal(card.metadata.description, "Counts a text's words and draws a card for it.");
        assert.equal(card.knobs.max_runners, 2, "max_concurrency → max_runners");
        assert.equal(card.knobs.keep_alive, 1, "the operator's --app-knobs override the class's keep_alive=120");
        const root = (card.endpoints as any[]).find((e) => e.path === "");
        assert.deepEqual(root.input_schema.properties.color.enum, ["red", "green", "blue"]);
        assert.equal((await opsOf(p, CARD)).runners.length, 0, "no runner before the first request (min_concurrency 0)");
      });

      it("starts a runner for the first call and serves it through the fal client: logs, output model, stored image", async () => {
        const logs: string[] = [];
        const result = await fal.subscribe(CARD, {
          input: { text: "one small step", color: "green", image_size: { width: 30, height: 20 } },
          logs: true,
          onQueueUpdate: (update) => {
            if ("logs" in update) for (const line of update.logs ?? []) logs.push(line.message);
          },
        });
        const output = result.data as { words: number; image: { url: string; content_type: string; file_size: number } };
        assert.equal(output.words, 3);
        assert.equal(output.image.content_type, "image/png");
        const res = await fetch(output.image.url);
        assert.equal(res.status, 200);
        const bytes = Buffer.from(await res.arrayBuffer());
        assert.equal(bytes.length, output.image.file_size);
        assert.deepEqual(pngSize(bytes), { width: 30, height: 20 });
        const status = await fal.queue.status(CARD, { requestId: result.requestId, logs: true });
        const lines = ((status as { logs?: { message: string }[] }).logs ?? []).map((l) => l.message);
        assert.ok([...logs, ...lines].includes("drawing a card of 3 words"), JSON.stringify([...logs, ...lines]));

        const ops = await opsOf(p, CARD);
        const start = ops.recent_cold_starts.at(-1);
        assert.ok(start, "the runner's start is recorded");
        assert.ok(start.spawn_ms !== null && start.spawn_ms >= 0, "the scheduler spawned it, so it saw the spawn");
        assert.ok((start.runtime_ms ?? 0) > 0 && (start.import_ms ?? 0) > 0, JSON.stringify(start));
        assert.ok(start.first_request_ms !== null && start.first_request_ms > 0);
      });

      it("refuses what pydantic refuses with fal's 422, from the scheduled runner", async () => {
        const refused = await fal.run(CARD, { input: { text: "   " } }).then(
          () => assert.fail("a blank text should be refused by the model's validator"),
          (err: unknown) => err,
        );
        assert.ok(refused instanceof ValidationError, String(refused));
        assert.deepEqual(refused.fieldErrors[0]?.loc, ["body", "text"]);
        assert.match(refused.fieldErrors[0]?.msg ?? "", /text must have a word in it/);
      });

      it("returns an output inline with sync_mode through /run", async () => {
        const res = await http(p, "POST", `/run/${CARD}`, { text: "a b", image_size: { width: 8, height: 8 }, sync_mode: true });
        assert.equal(res.status, 200, JSON.stringify(res.body));
        const url = (res.body.image as { url: string }).url;
        assert.match(url, /^data:image\/png;base64,/);
        assert.deepEqual(pngSize(Buffer.from(url.split(",")[1] as string, "base64")), { width: 8, height: 8 });
      });

      it("scales the app to zero after keep_alive, and its runner process exits", async () => {
        const before = await opsOf(p, CARD);
        const pids = before.runners.map((r) => r.pid);
        assert.ok(pids.length > 0, "a runner was up after the calls");
        await eventually(async () => ((await opsOf(p, CARD)).runners.length === 0 ? true : null), 15_000);
        await eventually(() => (pids.every((pid) => !alive(pid)) ? true : null), 10_000);
      });

      it("cancels a running request: the handler's runner is told at once, the request ends CANCELLED once", async () => {
        const submitted = await http(p, "POST", `/queue/${CHORES}/nap`, { seconds: 30 });
        assert.equal(submitted.status, 200, JSON.stringify(submitted.body));
        const id = submitted.body.request_id as string;
        await eventually(async () => ((await http(p, "GET", `/queue/${CHORES}/requests/${id}/status`)).body.status === "IN_PROGRESS" ? true : null), 20_000);
        const cancel = await http(p, "PUT", `/queue/${CHORES}/requests/${id}/cancel`);
        assert.equal(cancel.status, 202, JSON.stringify(cancel.body));
        const ended = await eventually(async () => {
          const record = await p.store.get(id);
          return record && record.state !== "RUNNING" && record.state !== "QUEUED" ? record : null;
        }, 10_000);
        assert.equal(ended.state, "CANCELLED");
        assert.equal(ended.attempt, 1, "not retried");
      });

      it("serves a realtime endpoint (@fal.realtime) through the fal client's realtime connection", async () => {
        await withFalRealtimeAt(p.url, async () => {
          const results: { text: string; request_id: string; pid: number }[] = [];
          const errors: unknown[] = [];
          const connection = fal.realtime.connect(CHORES, { onResult: (r) => results.push(r as (typeof results)[number]), onError: (e) => errors.push(e) });
          connection.send({ text: "first", request_id: "a" });
          await eventually(() => results.length >= 1, 20_000);
          connection.send({ text: "second", request_id: "b" });
          await eventually(() => results.length >= 2, 10_000);
          assert.deepEqual(results.map((r) => [r.text, r.request_id]), [["FIRST", "a"], ["SECOND", "b"]]);
          assert.deepEqual(errors, []);
          assert.ok((await opsOf(p, CHORES)).runners.some((r) => r.pid === results[0]?.pid), "answered by a runner the scheduler started");
          connection.close();
        });
      });

      it("replaces a runner that dies mid-request, and the request is retried to its end", async () => {
        const marker = path.join(scratch, "crashed-once");
        // Through the queue: a sync /run is tried once, as on fal; a queued request has attempts left.
        const submitted = await http(p, "POST", `/queue/${CHORES}/crash-once`, { marker });
        assert.equal(submitted.status, 200, JSON.stringify(submitted.body));
        const id = submitted.body.request_id as string;
        const ended = await eventually(async () => {
          const record = await p.store.get(id);
          return record && (record.state === "SUCCEEDED" || record.state === "FAILED") ? record : null;
        }, 30_000);
        assert.equal(ended.state, "SUCCEEDED", JSON.stringify(ended));
        assert.equal(ended.attempt, 2, "the first attempt died with its runner");
        const output = ended.output as { survived: boolean; pid: number };
        assert.equal(output.survived, true);
        const crashedPid = Number(readFileSync(marker, "utf8"));
        assert.notEqual(output.pid, crashedPid, "a new runner answered");
        assert.equal(alive(crashedPid), false);
        const ops = await opsOf(p, CHORES);
        assert.ok(ops.recent_cold_starts.length >= 2, "the replacement's start is recorded too");
      });

      it("lists an app whose requirements are missing as unavailable with pip's remedy, and starts no runner for it", async () => {
        const models = await http(p, "GET", "/v1/models");
        const model = (models.body.models as any[]).find((m) => m.endpoint_id === NEEDS_PACKAGES);
        assert.ok(model, "listed");
        assert.equal(model.availability.available, false);
        assert.equal(model.availability.remedy, "pip install 'darkroom-test-missing-package>=1.0'");
        const refused = await http(p, "POST", `/queue/${NEEDS_PACKAGES}`, { prompt: "a cat" });
        assert.equal(refused.status, 503, JSON.stringify(refused.body));
        assert.equal((await opsOf(p, NEEDS_PACKAGES)).runners.length, 0);
      });
    });
  }
});

describe("DARKROOM_APPS names a fal app file as the configuration does", { skip: interpreters.length === 0 ? "no Python with pydantic here" : false }, () => {
  it("serves a relative path::Class from DARKROOM_APPS, beside no built-ins", async () => {
    const previous = process.env["DARKROOM_PYTHON"];
    process.env["DARKROOM_PYTHON"] = interpreters[0]!.python;
    const cwd = process.cwd();
    process.chdir(REPO_ROOT);
    let p: TestPlatform | undefined;
    try {
      p = await startTestPlatform({ configuredApps: true, env: { DARKROOM_BUILTIN_APPS: "false", DARKROOM_APPS: "python/examples/fal_text_card.py::TextCard" } });
      const models = await http(p, "GET", "/v1/models");
      assert.deepEqual((models.body.models as any[]).map((m) => m.endpoint_id), [CARD]);
      const res = await http(p, "POST", `/run/${CARD}`, { text: "from the configuration", image_size: { width: 8, height: 8 } });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.equal(res.body.words, 3);
    } finally {
      await p?.close();
      process.chdir(cwd);
      if (previous === undefined) delete process.env["DARKROOM_PYTHON"];
      else process.env["DARKROOM_PYTHON"] = previous;
    }
  });
});
