/**
 * The playground's schema-to-form mapping (web/src/lib/schema-form.ts). Schemas are the ones the
 * built-in apps publish in `/v1/models` (copied from a running server), plus fal's own shapes
 * (`image_size` behind a `$ref`, nullable unions) that Darkroom apps do not use yet.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  blankNumberLabel,
  buildInput,
  draftsFromInput,
  fieldsFor,
  humanize,
  jsonError,
  jsonShapeError,
  parseInputJson,
  initialDrafts,
  locToPath,
  randomSeed,
  sliderRange,
  type DraftObject,
  type Field,
  type JsonSchema,
  type NumberField,
  type PresetDraft,
} from "../../web/src/lib/schema-form.js";

const FILE = { type: "string", pattern: "^(https?:\\/\\/|data:)", "x-darkroom-file": true } as const;

const ECHO: JsonSchema = {
  type: "object",
  properties: {
    message: { description: "Any JSON value; returned unchanged" },
    sleep_ms: { default: 0, type: "integer", minimum: 0, maximum: 600000 },
    logs: { default: [], maxItems: 1000, type: "array", items: { type: "string", maxLength: 10000 } },
    progress_steps: { default: 0, type: "integer", minimum: 0, maximum: 1000 },
    fail: { type: "string", enum: ["error", "crash", "hang", "validation"] },
    file_url: { ...FILE, description: "A file to fetch" },
    sync_mode: { default: false, type: "boolean" },
  },
};

const UPSCALE: JsonSchema = {
  type: "object",
  properties: {
    image_url: { ...FILE, description: "Image to upscale" },
    scale: { default: 2, type: "number", enum: [2, 4] },
    model: { default: "slim", type: "string", enum: ["slim", "medium", "thick"] },
    output_format: { default: "png", type: "string", enum: ["png", "jpeg", "webp"] },
    enable_safety_checker: { default: false, type: "boolean" },
  },
  required: ["image_url"],
};

const IMAGE_TO_VIDEO: JsonSchema = {
  type: "object",
  properties: {
    image_url: FILE,
    duration: { default: 4, type: "number", minimum: 1, maximum: 20 },
    fps: { default: 24, type: "integer", minimum: 6, maximum: 60 },
    resolution: {
      default: "720p",
      anyOf: [
        { type: "string", enum: ["480p", "720p", "1080p"] },
        { type: "object", properties: { width: { type: "integer", minimum: 64, maximum: 1920 }, height: { type: "integer", minimum: 64, maximum: 1080 } }, required: ["width", "height"] },
      ],
    },
  },
  required: ["image_url"],
};

/** fal's flux/dev input, as its OpenAPI document has it. */
const FAL_FLUX: JsonSchema = {
  type: "object",
  properties: {
    prompt: { type: "string", title: "Prompt" },
    image_size: {
      anyOf: [{ $ref: "#/components/schemas/ImageSize" }, { enum: ["square_hd", "square", "portrait_4_3", "portrait_16_9", "landscape_4_3", "landscape_16_9"], type: "string" }],
      default: "landscape_4_3",
    },
    num_inference_steps: { type: "integer", minimum: 1, maximum: 50, default: 28 },
    seed: { anyOf: [{ type: "integer" }, { type: "null" }], title: "Seed" },
    guidance_scale: { type: "number", minimum: 1, maximum: 20, default: 3.5 },
    mask_url: { type: "string" },
  },
  required: ["prompt"],
  components: {
    schemas: {
      ImageSize: {
        type: "object",
        properties: { width: { type: "integer", default: 512, exclusiveMinimum: 0, maximum: 14142 }, height: { type: "integer", default: 512, exclusiveMinimum: 0, maximum: 14142 } },
      },
    },
  },
};

const byKey = (fields: readonly Field[], key: string): Field => {
  const f = fields.find((x) => x.key === key);
  assert.ok(f, `no field ${key}`);
  return f;
};

describe("fieldsFor maps each schema shape to a widget", () => {
  it("echo: any-JSON, bounded integers as sliders, string lists, enums, files, booleans", () => {
    const fields = fieldsFor(ECHO);
    assert.deepEqual(
      fields.map((f) => [f.key, f.kind]),
      [
        ["message", "json"],
        ["sleep_ms", "number"],
        ["logs", "array"],
        ["progress_steps", "number"],
        ["fail", "enum"],
        ["file_url", "file"],
        ["sync_mode", "boolean"],
      ],
    );
    const sleep = byKey(fields, "sleep_ms") as NumberField;
    assert.equal(sleep.integer, true);
    assert.equal(sleep.slider, true);
    assert.equal(sleep.step, 1);
    assert.deepEqual(sliderRange(sleep), { min: 0, max: 600000 });
    const logs = byKey(fields, "logs");
    assert.ok(logs.kind === "array" && logs.item.kind === "text");
    // Lines of a list stay one-line inputs even when each may be long.
    assert.equal(logs.item.kind === "text" && logs.item.multiline, false);
    const fail = byKey(fields, "fail");
    assert.ok(fail.kind === "enum");
    assert.deepEqual(
      fail.options.map((o) => o.value),
      ['"error"', '"crash"', '"hang"', '"validation"'],
    );
    const message = byKey(fields, "message");
    assert.ok(message.kind === "json" && message.strict === false);
    assert.equal(message.description, "Any JSON value; returned unchanged");
  });

  it("upscale: the required image comes first, numeric enums keep their type", () => {
    const fields = fieldsFor(UPSCALE);
    assert.equal(fields[0]?.key, "image_url");
    const image = byKey(fields, "image_url");
    assert.ok(image.kind === "file");
    assert.equal(image.media, "image");
    assert.equal(image.accept, "image/*");
    assert.equal(image.required, true);
    const scale = byKey(fields, "scale");
    assert.ok(scale.kind === "enum");
    assert.deepEqual(
      scale.options.map((o) => o.value),
      ["2", "4"],
    );
  });

  it("media kinds come from the field name or contentMediaType", () => {
    const fields = fieldsFor({
      type: "object",
      properties: {
        audio_url: FILE,
        video_url: FILE,
        clip: { type: "string", contentMediaType: "video/mp4" },
        document_url: FILE,
        image_urls: { type: "array", minItems: 1, maxItems: 16, items: FILE },
      },
    });
    assert.deepEqual(
      fields.map((f) => (f.kind === "file" ? f.media : f.kind === "array" && f.item.kind === "file" ? `[${f.item.media}]` : f.kind)),
      ["audio", "video", "video", "any", "[image]"],
    );
  });

  it("a preset-or-object union (image-to-video resolution) becomes presets with a custom size", () => {
    const resolution = byKey(fieldsFor(IMAGE_TO_VIDEO), "resolution");
    assert.ok(resolution.kind === "preset");
    assert.deepEqual(
      resolution.options.map((o) => o.label),
      ["480p", "720p", "1080p"],
    );
    assert.deepEqual(
      resolution.custom.map((f) => [f.key, f.kind, f.required]),
      [
        ["width", "number", true],
        ["height", "number", true],
      ],
    );
    const duration = byKey(fieldsFor(IMAGE_TO_VIDEO), "duration") as NumberField;
    // 1..20 seconds: whole steps are too coarse for a float, tiny ones useless.
    assert.equal(duration.step, 0.1);
  });

  it("fal's image_size: $ref resolved, presets labelled with their sizes; nullable seed gets the dice", () => {
    const fields = fieldsFor(FAL_FLUX);
    const size = byKey(fields, "image_size");
    assert.ok(size.kind === "preset");
    assert.equal(size.options.find((o) => o.value === '"square_hd"')?.label, "Square HD (1024×1024)");
    assert.equal(size.options.find((o) => o.value === '"landscape_16_9"')?.label, "Landscape 16:9 (1024×576)");
    const width = size.custom[0];
    assert.ok(width?.kind === "number" && width.exclusiveMin && width.min === 0);
    const seed = byKey(fields, "seed");
    assert.ok(seed.kind === "number" && seed.seed && !seed.slider);
    assert.equal(seed.required, false);
    const prompt = byKey(fields, "prompt");
    assert.ok(prompt.kind === "text" && prompt.multiline);
    // fal marks files by name only.
    assert.equal(byKey(fields, "mask_url").kind, "file");
  });

  it("nested objects become groups; structure it cannot show becomes strict JSON", () => {
    const fields = fieldsFor({
      type: "object",
      properties: {
        box: { type: "object", properties: { x: { type: "number" }, y: { type: "number" } }, required: ["x"] },
        extra: { type: "object", additionalProperties: true },
        pair: { type: "array", prefixItems: [{ type: "number" }, { type: "number" }] },
        either: { anyOf: [{ type: "string" }, { type: "number" }] },
      },
    });
    const box = byKey(fields, "box");
    assert.ok(box.kind === "object");
    assert.deepEqual(
      box.fields.map((f) => [f.key, f.required]),
      [
        ["x", true],
        ["y", false],
      ],
    );
    assert.deepEqual(
      fields.slice(1).map((f) => [f.kind, f.kind === "json" && f.strict]),
      [
        ["json", true],
        ["json", true],
        ["json", false],
      ],
    );
  });

  it("free-form shapes get a JSON editor: maps, lists of shapeless objects, unions of shapes, objects without properties", () => {
    // As zod's toJSONSchema publishes `record`, `array(object({}).passthrough())` and a union.
    const fields = fieldsFor({
      type: "object",
      properties: {
        weights: { type: "object", propertyNames: { type: "string" }, additionalProperties: { type: "number" } } as JsonSchema,
        items: { type: "array", items: { type: "object", properties: {}, additionalProperties: {} } },
        value: { anyOf: [{ type: "string" }, { type: "array", items: { type: "number" } }] },
        anything: {},
        bag: { type: "object" },
        // Letting extra keys through does not hide the named fields: still a fieldset.
        open: { type: "object", properties: { a: { type: "string" } }, additionalProperties: {} },
        // A list of objects the form can lay out stays a list of fieldsets.
        boxes: { type: "array", items: { type: "object", properties: { x: { type: "number" } } } },
        // Nullable is not a union of shapes.
        maybe: { anyOf: [{ type: "integer" }, { type: "null" }] },
      },
    });
    assert.deepEqual(
      fields.map((f) => [f.key, f.kind, f.kind === "json" ? [f.strict, f.expects ?? null] : null]),
      [
        ["weights", "json", [true, "object"]],
        ["items", "json", [true, "array"]],
        ["value", "json", [false, null]],
        ["anything", "json", [false, null]],
        ["bag", "json", [true, "object"]],
        ["open", "object", null],
        ["boxes", "array", null],
        ["maybe", "number", null],
      ],
    );
  });

  it("a schema that refers to itself stops at a depth limit instead of recursing forever", () => {
    const node: JsonSchema = { type: "object", properties: { child: { $ref: "#" }, name: { type: "string" } } };
    const fields = fieldsFor(node);
    let depth = 0;
    let f: Field | undefined = byKey(fields, "child");
    while (f?.kind === "object") {
      depth++;
      f = f.fields.find((x) => x.key === "child");
    }
    assert.ok(depth > 2 && depth < 20, `depth ${depth}`);
    assert.equal(f?.kind, "json");
  });
});

describe("buildInput turns drafts into the input", () => {
  it("untouched defaults are left out, so the input is what the user chose", () => {
    const fields = fieldsFor(ECHO);
    assert.deepEqual(buildInput(fields, initialDrafts(fields)), { input: {}, errors: [] });
  });

  it("echo: JSON or text for any-value fields, numbers parsed, list rows, booleans", () => {
    const fields = fieldsFor(ECHO);
    const drafts: DraftObject = { ...initialDrafts(fields), message: '{"hello": "world"}', sleep_ms: "250", logs: ["a", "", "b"], fail: '"error"', sync_mode: true };
    assert.deepEqual(buildInput(fields, drafts), {
      input: { message: { hello: "world" }, sleep_ms: 250, logs: ["a", "b"], fail: "error", sync_mode: true },
      errors: [],
    });
    // As on the command line: text that is not JSON is sent as a string.
    assert.deepEqual(buildInput(fields, { ...drafts, message: "plain words" }).input["message"], "plain words");
  });

  it("reports missing, malformed and out-of-range values by path", () => {
    const fields = fieldsFor(ECHO);
    const { errors } = buildInput(fields, { ...initialDrafts(fields), sleep_ms: "-5", progress_steps: "1.5", file_url: "ftp://x" });
    assert.deepEqual(errors, [
      { path: "sleep_ms", message: "Must be at least 0" },
      { path: "progress_steps", message: "Must be a whole number" },
      { path: "file_url", message: "Must be an http(s) URL or a data: URI" },
    ]);
    const upscale = fieldsFor(UPSCALE);
    assert.deepEqual(buildInput(upscale, initialDrafts(upscale)).errors, [{ path: "image_url", message: "Choose a file or enter a URL" }]);
    assert.deepEqual(buildInput(upscale, { ...initialDrafts(upscale), image_url: "https://x/cat.png", scale: "4" }), {
      input: { image_url: "https://x/cat.png", scale: 4 },
      errors: [],
    });
  });

  it("presets: a named preset, the default (left out), or a custom size", () => {
    const fields = fieldsFor(FAL_FLUX);
    const drafts: DraftObject = { ...initialDrafts(fields), prompt: "a fox" };
    assert.deepEqual(buildInput(fields, drafts).input, { prompt: "a fox" });
    const size = drafts["image_size"] as PresetDraft;
    assert.equal(size.preset, '"landscape_4_3"');
    assert.deepEqual(buildInput(fields, { ...drafts, image_size: { ...size, preset: '"square_hd"' } }).input["image_size"], "square_hd");
    assert.deepEqual(buildInput(fields, { ...drafts, image_size: { preset: "", custom: { width: "640", height: "480" } } }).input["image_size"], { width: 640, height: 480 });
    assert.deepEqual(buildInput(fields, { ...drafts, image_size: { preset: "", custom: { width: "0", height: "480" } } }).errors, [{ path: "image_size.width", message: "Must be more than 0" }]);
  });

  it("list length limits and strict JSON are checked", () => {
    const fields = fieldsFor({
      type: "object",
      properties: { image_urls: { type: "array", minItems: 1, maxItems: 2, items: FILE }, extra: { type: "object", additionalProperties: true } },
      required: ["image_urls"],
    });
    const { errors } = buildInput(fields, { image_urls: ["https://a/1.png", "https://a/2.png", "https://a/3.png"], extra: "{oops" });
    assert.equal(errors.length, 2);
    assert.deepEqual(errors[0], { path: "image_urls", message: "At most 2 items" });
    // The parser's own words, so that the place of the mistake is named.
    assert.equal(errors[1]?.path, "extra");
    assert.match(errors[1]?.message ?? "", /^Not valid JSON: .*JSON/);
    assert.deepEqual(buildInput(fields, { image_urls: [], extra: "" }).errors, [{ path: "image_urls", message: "At least 1 item" }]);
  });

  it("JSON editors send parsed JSON, refuse what does not parse or has the wrong shape, and let loose fields take text", () => {
    const fields = fieldsFor({
      type: "object",
      properties: {
        weights: { type: "object", additionalProperties: { type: "number" } },
        items: { type: "array", items: { type: "object", properties: {}, additionalProperties: {} } },
        value: { anyOf: [{ type: "string" }, { type: "array", items: { type: "number" } }] },
      },
      required: ["weights"],
    });
    assert.deepEqual(buildInput(fields, { weights: '{"a": 1, "b": 2.5}', items: '[{"k": [1, 2]}]', value: "[1, 2]" }), {
      input: { weights: { a: 1, b: 2.5 }, items: [{ k: [1, 2] }], value: [1, 2] },
      errors: [],
    });
    assert.deepEqual(buildInput(fields, { weights: '{"a": 1}', items: "", value: "plain words" }).input, { weights: { a: 1 }, value: "plain words" });
    const { errors } = buildInput(fields, { weights: "[1]", items: '{"k": 1}', value: "" });
    assert.deepEqual(errors, [
      { path: "weights", message: "Must be a JSON object ({…})" },
      { path: "items", message: "Must be a JSON array ([…])" },
    ]);
    assert.deepEqual(buildInput(fields, { weights: "", items: "", value: "" }).errors, [{ path: "weights", message: "Required" }]);
    // Reopening shows stored values as JSON text that builds the same input.
    const input = { weights: { a: 1 }, items: [{ k: "v" }], value: "text" };
    assert.deepEqual(buildInput(fields, draftsFromInput(fields, input)).input, input);
  });

  it("jsonError, jsonShapeError and the whole-input JSON view", () => {
    assert.equal(jsonError('{"a": 1}'), null);
    assert.match(jsonError('{"a": ') ?? "", /JSON/);
    assert.equal(jsonShapeError({ expects: "object" }, { a: 1 }), null);
    assert.equal(jsonShapeError({ expects: "object" }, null), "Must be a JSON object ({…})");
    assert.equal(jsonShapeError({}, 5), null);
    assert.deepEqual(parseInputJson('{"message": 1}'), { input: { message: 1 }, errors: [] });
    assert.deepEqual(parseInputJson("[1]"), { input: {}, errors: [{ path: "", message: "The input must be a JSON object ({…})" }] });
    assert.match(parseInputJson("{oops").errors[0]?.message ?? "", /^Not valid JSON: /);
  });

  it("optional nested objects with nothing filled in are left out", () => {
    const fields = fieldsFor({ type: "object", properties: { box: { type: "object", properties: { x: { type: "number" } } } } });
    assert.deepEqual(buildInput(fields, initialDrafts(fields)).input, {});
    assert.deepEqual(buildInput(fields, { box: { x: "3" } }).input, { box: { x: 3 } });
  });
});

describe("draftsFromInput reopens a stored input", () => {
  it("round-trips: the drafts of an input build the same input", () => {
    const cases: [JsonSchema, Record<string, unknown>][] = [
      [ECHO, { message: { hello: "world" }, sleep_ms: 250, logs: ["a", "b"], fail: "error", sync_mode: true }],
      [ECHO, { message: "plain words" }],
      // A string that reads as JSON must come back a string, not a number.
      [ECHO, { message: "42" }],
      [UPSCALE, { image_url: "https://x/cat.png", scale: 4, model: "thick" }],
      [IMAGE_TO_VIDEO, { image_url: "data:image/png;base64,AAAA", resolution: { width: 640, height: 360 }, duration: 2.5 }],
      [IMAGE_TO_VIDEO, { image_url: "https://x/a.png", resolution: "1080p" }],
      [FAL_FLUX, { prompt: "a fox", image_size: "square", seed: 1234 }],
    ];
    for (const [schema, input] of cases) {
      const fields = fieldsFor(schema);
      assert.deepEqual(buildInput(fields, draftsFromInput(fields, input)), { input, errors: [] }, JSON.stringify(input));
    }
  });
});

describe("helpers", () => {
  it("randomSeed stays within the field's bounds", () => {
    const seed = byKey(fieldsFor(FAL_FLUX), "seed") as NumberField;
    assert.equal(randomSeed(seed, () => 0), 0);
    assert.equal(randomSeed(seed, () => 1 - Number.EPSILON), 2 ** 31 - 1);
    const bounded: NumberField = { ...seed, min: 10, max: 12 };
    const seen = new Set(Array.from({ length: 50 }, (_, i) => randomSeed(bounded, () => i / 50)));
    assert.deepEqual([...seen].sort(), [10, 11, 12]);
  });

  it("blankNumberLabel: a blank slider without a default is auto (optional) or not set (required), never its minimum", () => {
    // remove-background's input, as /v1/models publishes it: downsample_ratio has bounds and no default.
    const fields = fieldsFor({
      type: "object",
      properties: {
        image_url: FILE,
        refine_foreground: { default: true, type: "boolean" },
        downsample_ratio: { type: "number", minimum: 0.05, maximum: 1, description: "Default: chosen from the size" },
        strength: { type: "number", minimum: 0, maximum: 1 },
      },
      required: ["image_url", "strength"],
    });
    const ratio = byKey(fields, "downsample_ratio") as NumberField;
    assert.equal(ratio.slider, true);
    assert.equal(blankNumberLabel(ratio), "auto");
    assert.equal(blankNumberLabel(byKey(fields, "strength") as NumberField), "not set");
    assert.equal(blankNumberLabel(byKey(fieldsFor(IMAGE_TO_VIDEO), "duration") as NumberField), null);
    // Blank is left out of the input, set is sent, blank again is left out again.
    const drafts = initialDrafts(fields);
    assert.equal(drafts["downsample_ratio"], "");
    const withImage: DraftObject = { ...drafts, image_url: "https://example.com/a.png", strength: "0.5" };
    assert.deepEqual(buildInput(fields, withImage).input, { image_url: "https://example.com/a.png", strength: 0.5 });
    assert.equal(buildInput(fields, { ...withImage, downsample_ratio: "0.25" }).input["downsample_ratio"], 0.25);
    assert.ok(!("downsample_ratio" in buildInput(fields, { ...withImage, downsample_ratio: " " }).input));
  });

  it("locToPath reads fal's validation locations", () => {
    assert.equal(locToPath(["body", "image_url"]), "image_url");
    assert.equal(locToPath(["body", "image_size", "width"]), "image_size.width");
    assert.equal(locToPath(["body", "logs", 2]), "logs[2]");
    assert.equal(locToPath(["body"]), "");
  });

  it("humanize makes labels of keys", () => {
    assert.equal(humanize("sleep_ms"), "Sleep ms");
    assert.equal(humanize("image_url"), "Image URL");
    assert.equal(humanize("numInferenceSteps"), "Num inference steps");
  });
});
