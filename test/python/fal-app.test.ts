/**
 * A fal app, written with fal's SDK (`python/examples/fal_text_card.py`: `fal.App`, pydantic models,
 * `fal.toolkit.Image`), served unchanged by Darkroom's Python runner
 * (`python -m darkroom_runner --app file.py::Class`) and called with the official `@fal-ai/client`.
 * It runs under every Python of the machine that has pydantic, 1.x (Debian's python3-pydantic, which
 * .ci/run installs) and 2.x (pip's) alike.
 * @module
 */
import assert from "node:assert/strict";
import { execFile, spawn, type ChildProcess } from "node:child_process";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { createFalClient, ValidationError, type FalClient } from "@fal-ai/client";
import { encode } from "@msgpack/msgpack";
import { ADMIN_KEY, eventually, http, REPO_ROOT, startTestPlatform, type TestPlatform } from "../helpers/platform.js";
import { pngSize, pythonsWithPydantic } from "../helpers/python.js";
import { openRealtime } from "../helpers/realtime-socket.js";

const APP = "local/text-card";
const NEEDS_PACKAGES = "tests/needs-packages";
const CHORES = "tests/chores";

const interpreters = pythonsWithPydantic();

describe("fal apps on Darkroom's Python runner", { skip: interpreters.length === 0 ? "no Python with pydantic here (.ci/run installs python3-pydantic)" : false }, () => {
  for (const { python, pydantic } of interpreters) {
    describe(`${python}, pydantic ${pydantic}`, () => {
      let p: TestPlatform;
      let fal: FalClient;
      let runner: ChildProcess | undefined;
      let runnerLog = "";
      let token = "";

      function startRunner(app: string): { child: ChildProcess; log: () => string } {
        let log = "";
        const child = spawn(python, ["-m", "darkroom_runner", "--gateway", p.url, "--token", token, "--app", app], {
          cwd: REPO_ROOT,
          env: { ...process.env, PYTHONPATH: path.join(REPO_ROOT, "python"), PYTHONUNBUFFERED: "1", PYTHONDONTWRITEBYTECODE: "1" },
          stdio: ["ignore", "ignore", "pipe"],
        });
        child.stderr?.setEncoding("utf8").on("data", (chunk: string) => (log += chunk));
        return { child, log: () => log };
      }

      async function stop(child: ChildProcess | undefined): Promise<void> {
        if (!child || child.exitCode !== null || child.signalCode !== null) return;
        const exited = new Promise((resolve) => child.once("exit", resolve));
        child.kill("SIGKILL");
        await exited;
      }

      before(async () => {
        p = await startTestPlatform({ env: { DARKROOM_LOCAL_RUNNERS: "false" } });
        fal = createFalClient({ credentials: ADMIN_KEY, proxyUrl: { url: `${p.url}/api/fal/proxy`, when: "always" } });
        const minted = await http(p, "POST", "/v1/runner-tokens", { apps: [APP, NEEDS_PACKAGES, CHORES] });
        assert.equal(minted.status, 201, JSON.stringify(minted.body));
        token = minted.body.token as string;
        const started = startRunner("python/examples/fal_text_card.py::TextCard");
        runner = started.child;
        await eventually(() => ((runnerLog = started.log()) && /runner ready:/.test(runnerLog) ? true : runner?.exitCode !== null ? Promise.reject(new Error(`runner exited: ${runnerLog}`)) : null), 20_000);
      });

      after(async () => {
        await stop(runner);
        await p?.close();
      });

      it("passes the fal package's unittest suite", async () => {
        const { stderr } = await promisify(execFile)(python, ["-m", "unittest", "tests.test_fal"], { cwd: path.join(REPO_ROOT, "python"), env: { ...process.env, PYTHONDONTWRITEBYTECODE: "1" }, timeout: 60_000 });
        assert.match(stderr, /\nOK/);
      });

      it("lists the app with the options and pydantic schemas of its class", async () => {
        const models = await http(p, "GET", "/v1/models");
        const model = (models.body.models as any[]).find((m) => m.endpoint_id === APP);
        assert.ok(model, `models: ${(models.body.models as any[]).map((m) => m.endpoint_id).join(", ")}`);
        assert.equal(model.metadata.display_name, "TextCard");
        assert.equal(model.metadata.description, "Counts a text's words and draws a card for it.");
        assert.equal(model.knobs.keep_alive, 120, "keep_alive from the class keywords");
        assert.equal(model.knobs.max_runners, 2, "max_concurrency → max_runners");
        assert.equal(model.knobs.max_multiplexing, 2);
        const root = (model.endpoints as any[]).find((e) => e.path === "");
        assert.deepEqual(root.input_schema.required, ["text"]);
        assert.deepEqual(root.input_schema.properties.color.enum, ["red", "green", "blue"]);
        assert.equal(root.input_schema.properties.color.default, "blue");
        assert.equal(root.input_schema.properties.text.maxLength, 2000);
        assert.ok(root.input_schema.$defs.ImageSize, "nested models under $defs");
      });

      it("serves a call through the fal client: logs from print, the output model, the image stored and fetched", async () => {
        const logs: string[] = [];
        const result = await fal.subscribe(APP, {
          input: { text: "hello brave new world", color: "red", image_size: { width: 40, height: 24 } },
          logs: true,
          onQueueUpdate: (update) => {
            if ("logs" in update) for (const line of update.logs ?? []) logs.push(line.message);
          },
        });
        const output = result.data as { text: string; words: number; image: { url: string; content_type: string; width: number; height: number; file_size: number } };
        assert.equal(output.words, 4);
        assert.equal(output.text, "hello brave new world");
        assert.equal(output.image.content_type, "image/png");
        assert.deepEqual([output.image.width, output.image.height], [40, 24]);
        const res = await fetch(output.image.url);
        assert.equal(res.status, 200);
        const bytes = Buffer.from(await res.arrayBuffer());
        assert.equal(bytes.length, output.image.file_size);
        assert.deepEqual(pngSize(bytes), { width: 40, height: 24 });
        const status = await fal.queue.status(APP, { requestId: result.requestId, logs: true });
        const lines = ((status as { logs?: { message: string }[] }).logs ?? []).map((l) => l.message);
        assert.ok([...logs, ...lines].includes("drawing a card of 4 words"), `logs: ${JSON.stringify([...logs, ...lines])}`);
      });

      it("reports the Python runner's start phase by phase in /v1/ops, its first request included", async () => {
        const ops = await http(p, "GET", "/v1/ops");
        const app = (ops.body.apps as any[]).find((a) => a.app === APP);
        const start = (app?.recent_cold_starts as any[] | undefined)?.at(-1);
        assert.ok(start, JSON.stringify(app));
        assert.equal(start.spawn_ms, null);
        assert.ok(start.runtime_ms > 0, "Python and the runner's modules took time to load");
        assert.ok(start.import_ms > 0, "importing the app file and pydantic took time");
        assert.ok(start.setup_ms >= 0);
        assert.ok(start.ready_ms >= start.runtime_ms + start.import_ms + start.setup_ms - 1, JSON.stringify(start));
        assert.ok(start.first_request_ms > 0, "the call above was its first request");
      });

      it("takes fal's named image sizes and its other options", async () => {
        const result = await fal.run(APP, { input: { text: "one two", image_size: "landscape_4_3", shout: true } });
        const output = result.data as { text: string; image: { width: number; height: number } };
        assert.equal(output.text, "ONE TWO");
        assert.deepEqual([output.image.width, output.image.height], [1024, 768]);
      });

      it("refuses input with fal's 422: what the schema says at the gateway, what only pydantic knows from the runner", async () => {
        const bySchema = await fal.run(APP, { input: { text: "x", color: "purple" } }).then(
          () => assert.fail("a colour outside the enum should be refused"),
          (err: unknown) => err,
        );
        assert.ok(bySchema instanceof ValidationError, String(bySchema));
        assert.equal(bySchema.status, 422);
        assert.deepEqual(bySchema.fieldErrors[0]?.loc, ["body", "color"]);

        const byPydantic = await fal.run(APP, { input: { text: "   " } }).then(
          () => assert.fail("a blank text should be refused by the model's validator"),
          (err: unknown) => err,
        );
        assert.ok(byPydantic instanceof ValidationError, String(byPydantic));
        assert.equal(byPydantic.status, 422);
        assert.deepEqual(byPydantic.fieldErrors[0]?.loc, ["body", "text"]);
        assert.match(byPydantic.fieldErrors[0]?.msg ?? "", /text must have a word in it/);
        assert.equal(byPydantic.fieldErrors[0]?.type, "value_error");
      });

      it("serves @fal.realtime from a remote runner: messages carried over the runner protocol, answered in order", async () => {
        const chores = startRunner("test/fixtures/python/fal_chores.py::Chores");
        try {
          await eventually(() => (/runner ready:/.test(chores.log()) ? true : chores.child.exitCode !== null ? Promise.reject(new Error(`runner exited: ${chores.log()}`)) : null), 20_000);
          const { socket, answers } = await openRealtime(p.url, CHORES, `Key ${ADMIN_KEY}`);
          socket.send(JSON.stringify({ text: "one", request_id: "a" }));
          socket.send(Buffer.from(encode({ text: 2, request_id: "b" })));
          socket.send(Buffer.from(encode({ text: "three", request_id: "c" })));
          await eventually(() => answers().length >= 3, 20_000);
          socket.close();
          const [first, refused, third] = answers();
          assert.deepEqual([first?.value.text, first?.value.request_id, third?.value.text, third?.value.request_id], ["ONE", "a", "THREE", "c"]);
          assert.equal(first?.value.pid, chores.child.pid, "the remote runner answered");
          assert.equal(refused?.value.error, "VALIDATION_ERROR");
        } finally {
          await stop(chores.child);
        }
      });

      it("lists an app whose requirements are missing as unavailable, with pip's command as the remedy, and refuses calls", async () => {
        const needy = startRunner("test/fixtures/python/fal_missing_requirements.py::NeedsPackages");
        try {
          await eventually(() => (/runner ready:/.test(needy.log()) ? true : needy.child.exitCode !== null ? Promise.reject(new Error(`runner exited: ${needy.log()}`)) : null), 20_000);
          const models = await http(p, "GET", "/v1/models");
          const model = (models.body.models as any[]).find((m) => m.endpoint_id === NEEDS_PACKAGES);
          assert.ok(model, "listed");
          assert.equal(model.availability.available, false);
          assert.match(model.availability.reason, /darkroom-test-missing-package>=1\.0/);
          assert.equal(model.availability.remedy, "pip install 'darkroom-test-missing-package>=1.0'");
          assert.equal(model.metadata.machine_type, "GPU-H100");
          assert.equal(model.metadata.num_gpus, 1);
          assert.deepEqual(model.metadata.requirements, ["pydantic", "darkroom-test-missing-package>=1.0"]);
          const refused = await http(p, "POST", `/queue/${NEEDS_PACKAGES}`, { prompt: "a cat" });
          assert.equal(refused.status, 503, JSON.stringify(refused.body));
          assert.match(JSON.stringify(refused.body), /pip install/);
          assert.equal(needy.child.exitCode, null, "the runner stays up, it does not crash");
          assert.doesNotMatch(needy.log(), /setup must not run/);
        } finally {
          await stop(needy.child);
        }
      });
    });
  }
});
