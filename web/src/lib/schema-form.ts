/**
 * Maps an endpoint's input JSON Schema to form fields, form drafts back to the input object, and a
 * stored input to drafts (reopening a request). No DOM and no React here, so node:test covers it.
 *
 * A draft is what a widget edits: numbers stay the text the user typed until the input is built, an
 * enum holds the JSON of the chosen value (so `2` and `"2"` stay apart), an unset boolean is `null`.
 * Building the input leaves out optional values that equal the schema default, which keeps the
 * request, and the code snippets made from it, down to what the user actually chose.
 * @module
 */

/** The subset of JSON Schema (draft 2020-12 and OpenAPI 3.0 flavours) that the form understands. */
export interface JsonSchema {
  type?: string | string[];
  title?: string;
  description?: string;
  default?: unknown;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  additionalProperties?: boolean | JsonSchema;
  items?: JsonSchema | boolean;
  prefixItems?: JsonSchema[];
  minItems?: number;
  maxItems?: number;
  enum?: unknown[];
  const?: unknown;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  allOf?: JsonSchema[];
  $ref?: string;
  $defs?: Record<string, JsonSchema>;
  definitions?: Record<string, JsonSchema>;
  components?: { schemas?: Record<string, JsonSchema> };
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number | boolean;
  exclusiveMaximum?: number | boolean;
  multipleOf?: number;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  format?: string;
  contentMediaType?: string;
  nullable?: boolean;
  "x-darkroom-file"?: boolean;
}

export type MediaKind = "image" | "audio" | "video" | "any";

export interface EnumOption {
  /** The JSON text of the value: what a `<select>` holds. */
  value: string;
  label: string;
}

interface FieldBase {
  /** Property name; for array items, the array's name. */
  key: string;
  label: string;
  description: string | null;
  required: boolean;
  /** The schema's default, `undefined` when it has none. */
  default: unknown;
}

export interface TextField extends FieldBase {
  kind: "text";
  multiline: boolean;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
}

export interface NumberField extends FieldBase {
  kind: "number";
  integer: boolean;
  min?: number;
  max?: number;
  exclusiveMin: boolean;
  exclusiveMax: boolean;
  step: number;
  /** Bounded on both sides within a range a slider can show. */
  slider: boolean;
  /** A seed: the form offers a dice button. */
  seed: boolean;
}

export interface BooleanField extends FieldBase {
  kind: "boolean";
}

export interface EnumField extends FieldBase {
  kind: "enum";
  options: EnumOption[];
}

export interface FileField extends FieldBase {
  kind: "file";
  media: MediaKind;
  /** For `<input type=file accept>`. */
  accept: string;
  pattern?: string;
}

/** A choice of named presets or a custom object, like fal's `image_size`. */
export interface PresetField extends FieldBase {
  kind: "preset";
  options: EnumOption[];
  custom: Field[];
}

export interface ArrayField extends FieldBase {
  kind: "array";
  item: Field;
  minItems: number;
  maxItems?: number;
}

export interface ObjectField extends FieldBase {
  kind: "object";
  fields: Field[];
}

/** Anything the other widgets cannot show (free-form objects and maps, tuples, unions), edited as JSON text. */
export interface JsonField extends FieldBase {
  kind: "json";
  /** The schema demands an object or array: text that is not JSON is an error, not a string. */
  strict: boolean;
  /** What the value must be, when the schema says: checked before sending. */
  expects?: "object" | "array";
}

export type Field = TextField | NumberField | BooleanField | EnumField | FileField | PresetField | ArrayField | ObjectField | JsonField;

export interface DraftObject {
  [key: string]: Draft;
}
export interface PresetDraft {
  /** The chosen option's JSON, "" for the custom object, or null when nothing is chosen. */
  preset: string | null;
  custom: DraftObject;
}
export type Draft = string | boolean | null | Draft[] | DraftObject | PresetDraft;

export interface FieldError {
  /** `name`, `size.width`, `logs[2]`. */
  path: string;
  message: string;
}

/** fal's `image_size` presets, with the sizes fal renders them at. */
export const IMAGE_SIZE_PRESETS: Readonly<Record<string, { width: number; height: number }>> = {
  square_hd: { width: 1024, height: 1024 },
  square: { width: 512, height: 512 },
  portrait_4_3: { width: 768, height: 1024 },
  portrait_16_9: { width: 576, height: 1024 },
  landscape_4_3: { width: 1024, height: 768 },
  landscape_16_9: { width: 1024, height: 576 },
};

/** Seeds are drawn from the range every backend accepts. */
const MAX_SEED = 2 ** 31 - 1;
/** Slider ranges beyond this are a schema's way of saying "any integer", not a range to slide over. */
const MAX_SLIDER_BOUND = 1e9;
/** Schemas that refer to themselves would recurse forever; deeper nesting is edited as JSON. */
const MAX_DEPTH = 8;

// --- Schema normalisation ---

function resolveRef(ref: string, root: JsonSchema): JsonSchema | null {
  if (ref === "#") return root;
  if (!ref.startsWith("#/")) return null;
  let node: unknown = root;
  for (const raw of ref.slice(2).split("/")) {
    const part = raw.replace(/~1/g, "/").replace(/~0/g, "~");
    if (typeof node !== "object" || node === null) return null;
    node = (node as Record<string, unknown>)[part];
  }
  return typeof node === "object" && node !== null ? node : null;
}

function isNullSchema(s: JsonSchema): boolean {
  return s.type === "null" || (Array.isArray(s.enum) && s.enum.length === 1 && s.enum[0] === null);
}

/**
 * Resolves `$ref`, single-member `allOf` (how pydantic attaches a description to a reference) and
 * nullable unions, keeping the outer schema's description and default.
 */
export function normalizeSchema(schema: JsonSchema, root: JsonSchema, depth = 0): JsonSchema {
  if (depth > MAX_DEPTH) return schema;
  const { $ref, allOf, ...outer } = schema;
  if ($ref) {
    const target = resolveRef($ref, root);
    if (target) return normalizeSchema({ ...target, ...outer }, root, depth + 1);
  }
  if (allOf && allOf.length === 1 && allOf[0]) {
    return normalizeSchema({ ...normalizeSchema(allOf[0], root, depth + 1), ...outer }, root, depth + 1);
  }
  const union = schema.anyOf ?? schema.oneOf;
  if (union) {
    const members = union.filter((m) => !isNullSchema(m));
    if (members.length === 1 && members[0]) {
      const { anyOf: _a, oneOf: _o, ...rest } = schema;
      return normalizeSchema({ ...normalizeSchema(members[0], root, depth + 1), ...rest }, root, depth + 1);
    }
  }
  if (Array.isArray(schema.type)) {
    const types = schema.type.filter((t) => t !== "null");
    if (types.length === 1) return { ...schema, type: types[0] };
  }
  return schema;
}

// --- Fields ---

/** `sleep_ms` → "Sleep ms", `imageURL` → "Image URL". */
export function humanize(key: string): string {
  const words = key
    .replace(/([a-z0-9])([A-Z])/g, "$1 $2")
    .split(/[_\s-]+/)
    .filter(Boolean);
  const text = words.map((w) => (/^(url|id|fps|hd|json)$/i.test(w) ? w.toUpperCase() : w.toLowerCase())).join(" ");
  return text.charAt(0).toUpperCase() + text.slice(1);
}

function mediaOf(key: string, schema: JsonSchema): MediaKind {
  const type = schema.contentMediaType?.split("/")[0];
  if (type === "image" || type === "audio" || type === "video") return type;
  const name = key.toLowerCase();
  if (/image|img|mask|photo|frame|face|picture/.test(name)) return "image";
  if (/audio|speech|voice|sound|music|wav/.test(name)) return "audio";
  if (/video|clip|movie/.test(name)) return "video";
  return "any";
}

const ACCEPT: Record<MediaKind, string> = { image: "image/*", audio: "audio/*", video: "video/*", any: "*/*" };

function isFileSchema(key: string, schema: JsonSchema): boolean {
  if (schema["x-darkroom-file"] === true || schema.contentMediaType) return true;
  // fal's own schemas mark files only by name: `image_url`, `mask_url`, `audio_url`, `video_url`.
  return schema.type === "string" && /_urls?$/.test(key) && mediaOf(key, schema) !== "any";
}

function optionLabel(key: string, value: unknown): string {
  if (key === "image_size" && typeof value === "string") {
    const size = IMAGE_SIZE_PRESETS[value];
    if (size) return `${humanize(value).replace(/ (\d+) (\d+)$/, " $1:$2")} (${size.width}×${size.height})`;
  }
  return typeof value === "string" ? value : JSON.stringify(value);
}

function enumOptions(key: string, values: readonly unknown[]): EnumOption[] {
  return values.map((v) => ({ value: JSON.stringify(v), label: optionLabel(key, v) }));
}

/** A step of about a hundredth of the range, in powers of ten: 0.01 for 0..1, 0.1 for 1..20, 1 for 0..600. */
function stepFor(integer: boolean, schema: JsonSchema, min: number | undefined, max: number | undefined): number {
  if (typeof schema.multipleOf === "number" && schema.multipleOf > 0) return schema.multipleOf;
  if (integer) return 1;
  if (min === undefined || max === undefined || max <= min) return 0.01;
  return Math.min(1, 10 ** (Math.floor(Math.log10(max - min)) - 2));
}

function numberField(base: FieldBase, schema: JsonSchema, integer: boolean): NumberField {
  let min = schema.minimum;
  let max = schema.maximum;
  let exclusiveMin = false;
  let exclusiveMax = false;
  if (typeof schema.exclusiveMinimum === "number") {
    min = schema.exclusiveMinimum;
    exclusiveMin = true;
  } else if (schema.exclusiveMinimum === true) exclusiveMin = true;
  if (typeof schema.exclusiveMaximum === "number") {
    max = schema.exclusiveMaximum;
    exclusiveMax = true;
  } else if (schema.exclusiveMaximum === true) exclusiveMax = true;
  const bounded = min !== undefined && max !== undefined && Math.abs(min) < MAX_SLIDER_BOUND && Math.abs(max) < MAX_SLIDER_BOUND && max > min;
  const seed = integer && /(^|_)seed$/.test(base.key);
  return {
    ...base,
    kind: "number",
    integer,
    ...(min !== undefined ? { min } : {}),
    ...(max !== undefined ? { max } : {}),
    exclusiveMin,
    exclusiveMax,
    step: stepFor(integer, schema, min, max),
    slider: bounded && !seed,
    seed,
  };
}

function presetField(base: FieldBase, members: JsonSchema[], root: JsonSchema, depth: number): PresetField | null {
  const values: unknown[] = [];
  let custom: JsonSchema | null = null;
  for (const m of members) {
    if (Array.isArray(m.enum)) values.push(...m.enum);
    else if (m.const !== undefined) values.push(m.const);
    else if ((m.type === "object" || m.properties) && m.properties && !custom) custom = m;
    else return null;
  }
  if (!custom || values.length === 0) return null;
  return { ...base, kind: "preset", options: enumOptions(base.key, values), custom: objectFields(custom, root, depth + 1) };
}

function fieldFor(key: string, raw: JsonSchema, required: boolean, root: JsonSchema, depth: number): Field {
  const schema = normalizeSchema(raw, root);
  const base: FieldBase = {
    key,
    label: schema.title ?? humanize(key),
    description: schema.description ?? null,
    required,
    default: schema.default,
  };
  if (depth > MAX_DEPTH) return { ...base, kind: "json", strict: false };

  const union = (schema.anyOf ?? schema.oneOf)?.map((m) => normalizeSchema(m, root)).filter((m) => !isNullSchema(m));
  if (union && union.length > 0) {
    if (union.every((m) => m.const !== undefined || Array.isArray(m.enum))) {
      return { ...base, kind: "enum", options: enumOptions(key, union.flatMap((m) => (Array.isArray(m.enum) ? m.enum : [m.const]))) };
    }
    return presetField(base, union, root, depth) ?? { ...base, kind: "json", strict: false };
  }
  if (Array.isArray(schema.enum)) return { ...base, kind: "enum", options: enumOptions(key, schema.enum.filter((v) => v !== null)) };
  if (schema.const !== undefined) return { ...base, kind: "enum", options: enumOptions(key, [schema.const]) };

  if (isFileSchema(key, schema)) {
    const media = mediaOf(key, schema);
    return { ...base, kind: "file", media, accept: schema.contentMediaType ?? ACCEPT[media], ...(schema.pattern ? { pattern: schema.pattern } : {}) };
  }
  switch (schema.type) {
    case "string":
      return {
        ...base,
        kind: "text",
        multiline: /(^|_)(prompt|text|caption|description|content|transcript)s?$/.test(key) || (schema.maxLength ?? 0) > 500,
        ...(schema.minLength !== undefined ? { minLength: schema.minLength } : {}),
        ...(schema.maxLength !== undefined ? { maxLength: schema.maxLength } : {}),
        ...(schema.pattern ? { pattern: schema.pattern } : {}),
      };
    case "integer":
    case "number":
      return numberField(base, schema, schema.type === "integer");
    case "boolean":
      return { ...base, kind: "boolean" };
    case "array": {
      if (typeof schema.items !== "object" || schema.prefixItems) return { ...base, kind: "json", strict: true, expects: "array" };
      const item = fieldFor(key, schema.items, true, root, depth + 1);
      // A list of JSON boxes says less than one JSON array, and pastes worse.
      if (item.kind === "json") return { ...base, kind: "json", strict: true, expects: "array" };
      // A list of lines reads better on one line each, whatever the item's length limit.
      const listItem: Field = item.kind === "text" ? { ...item, multiline: false, label: `${base.label} item` } : { ...item, label: `${base.label} item` };
      return { ...base, kind: "array", item: listItem, minItems: schema.minItems ?? 0, ...(schema.maxItems !== undefined ? { maxItems: schema.maxItems } : {}) };
    }
    case "object":
      // A map (`additionalProperties`, pydantic's `dict[str, X]`) has keys the form cannot know in advance.
      if (!schema.properties || Object.keys(schema.properties).length === 0 || isOpenMap(schema)) return { ...base, kind: "json", strict: true, expects: "object" };
      return { ...base, kind: "object", fields: objectFields(schema, root, depth + 1) };
    default:
      if (schema.properties) return { ...base, kind: "object", fields: objectFields(schema, root, depth + 1) };
      return { ...base, kind: "json", strict: false };
  }
}

/**
 * A map: extra keys with a described value (`additionalProperties: {type: …}`, pydantic's
 * `dict[str, X]`, zod's `record`). An object that merely lets extra keys through (`true`, `{}`)
 * keeps its fieldset, since its named fields are the point of it.
 */
function isOpenMap(schema: JsonSchema): boolean {
  const extra = schema.additionalProperties;
  return typeof extra === "object" && extra !== null && Object.keys(extra).length > 0;
}

function objectFields(schema: JsonSchema, root: JsonSchema, depth: number): Field[] {
  const required = new Set(schema.required ?? []);
  const fields = Object.entries(schema.properties ?? {}).map(([key, s]) => fieldFor(key, s, required.has(key), root, depth));
  // Required fields first; otherwise the schema's own order, which authors choose with care.
  return [...fields.filter((f) => f.required), ...fields.filter((f) => !f.required)];
}

/** The form for an endpoint's input schema (an object schema). */
export function fieldsFor(schema: JsonSchema): Field[] {
  return objectFields(normalizeSchema(schema, schema), schema, 0);
}

// --- Drafts ---

function jsonText(value: unknown): string {
  return JSON.stringify(value, null, typeof value === "object" && value !== null ? 2 : undefined) ?? "";
}

/** The draft a field starts with: its default, or empty. */
export function initialDraft(field: Field): Draft {
  return draftFromValue(field, field.default);
}

export function initialDrafts(fields: readonly Field[]): DraftObject {
  return Object.fromEntries(fields.map((f) => [f.key, initialDraft(f)]));
}

/** The draft that shows `value` (a stored input's value), falling back to the default when absent. */
export function draftFromValue(field: Field, value: unknown): Draft {
  if (value === undefined && field.default !== undefined) return draftFromValue(field, field.default);
  switch (field.kind) {
    case "text":
    case "file":
      return typeof value === "string" ? value : value === undefined || value === null ? "" : JSON.stringify(value);
    case "number":
      return typeof value === "number" ? String(value) : "";
    case "boolean":
      return typeof value === "boolean" ? value : null;
    case "enum": {
      if (value === undefined) return "";
      const text = JSON.stringify(value);
      return field.options.some((o) => o.value === text) ? text : "";
    }
    case "preset": {
      const customDefaults = initialDrafts(field.custom);
      if (value !== undefined && typeof value !== "object") {
        const text = JSON.stringify(value);
        if (field.options.some((o) => o.value === text)) return { preset: text, custom: customDefaults };
      }
      if (typeof value === "object" && value !== null && !Array.isArray(value)) {
        return { preset: "", custom: draftsFromInput(field.custom, value as Record<string, unknown>) };
      }
      return { preset: null, custom: customDefaults };
    }
    case "array":
      return Array.isArray(value) ? value.map((v) => draftFromValue(field.item, v)) : [];
    case "object":
      return draftsFromInput(field.fields, typeof value === "object" && value !== null ? (value as Record<string, unknown>) : {});
    case "json":
      if (value === undefined) return "";
      // Text that would itself parse as JSON is shown quoted, so that it goes back as a string.
      if (typeof value === "string" && !field.strict && !parsesAsJson(value)) return value;
      return jsonText(value);
  }
}

/** Drafts for reopening a stored input. */
export function draftsFromInput(fields: readonly Field[], input: Record<string, unknown>): DraftObject {
  return Object.fromEntries(fields.map((f) => [f.key, draftFromValue(f, input[f.key])]));
}

function parsesAsJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

// --- Building the input ---

/** Sentinel for "leave this key out of the input"; builders return it or the value. */
const OMIT = Symbol("omit");

function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  return ka.every((k) => deepEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}

function testPattern(pattern: string, value: string): boolean {
  try {
    return new RegExp(pattern, "u").test(value);
  } catch {
    // A pattern this engine cannot compile is left for the server to judge.
    return true;
  }
}

function buildText(field: TextField | FileField, draft: Draft, path: string, errors: FieldError[]): unknown {
  const text = typeof draft === "string" ? draft : "";
  if (text === "") {
    if (field.required && field.kind === "file") errors.push({ path, message: "Choose a file or enter a URL" });
    else if (field.required) errors.push({ path, message: "Required" });
    return OMIT;
  }
  if (field.kind === "text") {
    if (field.minLength !== undefined && text.length < field.minLength) errors.push({ path, message: `At least ${field.minLength} characters` });
    if (field.maxLength !== undefined && text.length > field.maxLength) errors.push({ path, message: `At most ${field.maxLength} characters` });
  }
  if (field.pattern && !testPattern(field.pattern, text)) {
    errors.push({ path, message: field.kind === "file" ? "Must be an http(s) URL or a data: URI" : `Must match ${field.pattern}` });
  }
  return text;
}

function buildNumber(field: NumberField, draft: Draft, path: string, errors: FieldError[]): unknown {
  const text = typeof draft === "string" ? draft.trim() : "";
  if (text === "") {
    if (field.required) errors.push({ path, message: "Required" });
    return OMIT;
  }
  const n = Number(text);
  if (!Number.isFinite(n)) {
    errors.push({ path, message: "Must be a number" });
    return OMIT;
  }
  if (field.integer && !Number.isInteger(n)) errors.push({ path, message: "Must be a whole number" });
  if (field.min !== undefined && (field.exclusiveMin ? n <= field.min : n < field.min)) {
    errors.push({ path, message: `Must be ${field.exclusiveMin ? "more than" : "at least"} ${field.min}` });
  }
  if (field.max !== undefined && (field.exclusiveMax ? n >= field.max : n > field.max)) {
    errors.push({ path, message: `Must be ${field.exclusiveMax ? "less than" : "at most"} ${field.max}` });
  }
  return n;
}

/** What JSON.parse says is wrong with `text`, or null when it parses. */
export function jsonError(text: string): string | null {
  try {
    JSON.parse(text);
    return null;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}

/** Why `value` is not what a JSON field expects, or null. */
export function jsonShapeError(field: Pick<JsonField, "expects">, value: unknown): string | null {
  if (field.expects === "object" && (typeof value !== "object" || value === null || Array.isArray(value))) return "Must be a JSON object ({…})";
  if (field.expects === "array" && !Array.isArray(value)) return "Must be a JSON array ([…])";
  return null;
}

function buildJson(field: JsonField, draft: Draft, path: string, errors: FieldError[]): unknown {
  const text = typeof draft === "string" ? draft : "";
  if (text.trim() === "") {
    if (field.required) errors.push({ path, message: "Required" });
    return OMIT;
  }
  let value: unknown;
  try {
    value = JSON.parse(text) as unknown;
  } catch (err) {
    // As on the command line: text that is not JSON is a string, unless the schema wants structure.
    if (field.strict) {
      errors.push({ path, message: `Not valid JSON: ${err instanceof Error ? err.message : String(err)}` });
      return OMIT;
    }
    return text;
  }
  const shape = jsonShapeError(field, value);
  if (shape) {
    errors.push({ path, message: shape });
    return OMIT;
  }
  return value;
}

function buildValue(field: Field, draft: Draft, path: string, errors: FieldError[]): unknown {
  switch (field.kind) {
    case "text":
    case "file":
      return buildText(field, draft, path, errors);
    case "number":
      return buildNumber(field, draft, path, errors);
    case "boolean":
      if (typeof draft !== "boolean") {
        if (field.required) errors.push({ path, message: "Required" });
        return OMIT;
      }
      return draft;
    case "enum": {
      if (typeof draft !== "string" || draft === "") {
        if (field.required) errors.push({ path, message: "Choose one" });
        return OMIT;
      }
      return JSON.parse(draft) as unknown;
    }
    case "preset": {
      const d = draft as PresetDraft;
      if (d.preset === null) {
        if (field.required) errors.push({ path, message: "Choose one" });
        return OMIT;
      }
      if (d.preset !== "") return JSON.parse(d.preset) as unknown;
      return buildObject(field.custom, d.custom, path, errors, true);
    }
    case "array": {
      const items = Array.isArray(draft) ? draft : [];
      const out: unknown[] = [];
      items.forEach((item, i) => {
        // An empty row is a row the user has not filled in yet, not an empty value.
        if (item === "" && (field.item.kind === "text" || field.item.kind === "file" || field.item.kind === "number")) return;
        const v = buildValue(field.item, item, `${path}[${i}]`, errors);
        if (v !== OMIT) out.push(v);
      });
      if (out.length === 0 && !field.required && field.minItems > 0) return OMIT;
      if (out.length < field.minItems) errors.push({ path, message: `At least ${field.minItems} item${field.minItems === 1 ? "" : "s"}` });
      if (field.maxItems !== undefined && out.length > field.maxItems) errors.push({ path, message: `At most ${field.maxItems} items` });
      return out;
    }
    case "object":
      return buildObject(field.fields, draft as DraftObject, path, errors, field.required);
    case "json":
      return buildJson(field, draft, path, errors);
  }
}

function buildObject(fields: readonly Field[], drafts: DraftObject, prefix: string, errors: FieldError[], required: boolean): unknown {
  const out: Record<string, unknown> = {};
  for (const field of fields) {
    const path = prefix ? `${prefix}.${field.key}` : field.key;
    const value = buildValue(field, drafts[field.key] ?? initialDraft(field), path, errors);
    if (value === OMIT) continue;
    if (!field.required && field.default !== undefined && deepEqual(value, field.default)) continue;
    out[field.key] = value;
  }
  return Object.keys(out).length === 0 && !required && prefix !== "" ? OMIT : out;
}

/** The input object the drafts describe, and what is wrong with them. */
export function buildInput(fields: readonly Field[], drafts: DraftObject): { input: Record<string, unknown>; errors: FieldError[] } {
  const errors: FieldError[] = [];
  const built = buildObject(fields, drafts, "", errors, true);
  return { input: built === OMIT ? {} : (built as Record<string, unknown>), errors };
}

/** The whole input typed as JSON (the form's JSON view): it must be an object. */
export function parseInputJson(text: string): { input: Record<string, unknown>; errors: FieldError[] } {
  let value: unknown;
  try {
    value = JSON.parse(text) as unknown;
  } catch (err) {
    return { input: {}, errors: [{ path: "", message: `Not valid JSON: ${err instanceof Error ? err.message : String(err)}` }] };
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) return { input: {}, errors: [{ path: "", message: "The input must be a JSON object ({…})" }] };
  return { input: value as Record<string, unknown>, errors: [] };
}

// --- Helpers for widgets ---

/** A random seed within the field's bounds. */
export function randomSeed(field: NumberField, random: () => number = Math.random): number {
  const lo = Math.ceil(Math.max(field.min ?? 0, 0) + (field.exclusiveMin ? 1 : 0));
  const hi = Math.floor(Math.min(field.max ?? MAX_SEED, MAX_SEED) - (field.exclusiveMax ? 1 : 0));
  return lo + Math.floor(random() * (hi - lo + 1));
}

/**
 * What a blank number field stands for, where the schema gives no default to show: "auto" when it
 * is optional (the app chooses, as remove-background's `downsample_ratio` does from the image
 * size), "not set" when it is required; null when there is a default, which the form shows instead.
 * A slider cannot be blank, so its thumb would otherwise claim a value (its minimum) nobody chose.
 */
export function blankNumberLabel(field: NumberField): string | null {
  if (field.default !== undefined && field.default !== null) return null;
  return field.required ? "not set" : "auto";
}

/** Slider bounds for a bounded number field. */
export function sliderRange(field: NumberField): { min: number; max: number } {
  const min = (field.min ?? 0) + (field.exclusiveMin ? field.step : 0);
  const max = (field.max ?? 0) - (field.exclusiveMax ? field.step : 0);
  return { min, max };
}

/** fal's validation `loc` (`["body", "size", "width"]`, `["body", "logs", 2]`) as a field path. */
export function locToPath(loc: readonly (string | number)[]): string {
  const parts = loc[0] === "body" ? loc.slice(1) : loc;
  let path = "";
  for (const part of parts) {
    if (typeof part === "number" || /^\d+$/.test(part)) path += `[${part}]`;
    else path += path ? `.${part}` : part;
  }
  return path;
}
