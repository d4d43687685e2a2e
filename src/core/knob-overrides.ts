/**
 * Operator overrides of apps' scaling knobs (`--app-knobs` / `DARKROOM_APP_KNOBS`), so that the
 * person running the gateway, not only the app's author, decides how many runners a machine can
 * afford: two ONNX runners on an 8-core box, one on a laptop, a warm runner kept for a demo.
 *
 * Syntax: `<app id or *>:<knob>=<integer>[,<knob>=<integer>…]`, several separated by `;`. `*`
 * applies to every app; an app's own entry wins over `*`.
 *   darkroom/remove-background:max_runners=2;*:keep_alive=30
 * @module
 */
import { DEFAULT_KNOBS, type AppKnobs } from "./types.js";

export type KnobOverrides = ReadonlyMap<string, Partial<AppKnobs>>;

const KNOB_NAMES = Object.keys(DEFAULT_KNOBS) as (keyof AppKnobs)[];
/** Knobs for which 0 means nothing sensible: a pool that may never start a runner, a runner that takes no request. */
const AT_LEAST_ONE: ReadonlySet<keyof AppKnobs> = new Set(["max_runners", "max_multiplexing", "request_timeout", "startup_timeout"]);

const isKnobName = (name: string): name is keyof AppKnobs => (KNOB_NAMES as readonly string[]).includes(name);

/** Parses the override text; throws an Error naming the bad part (the server refuses to start with it). */
export function parseKnobOverrides(text: string): KnobOverrides {
  const overrides = new Map<string, Partial<AppKnobs>>();
  for (const entry of text.split(";").map((e) => e.trim()).filter(Boolean)) {
    const colon = entry.lastIndexOf(":");
    if (colon <= 0) throw new Error(`app knobs: "${entry}" is not <app id>:<knob>=<value>`);
    const appId = entry.slice(0, colon).trim();
    const knobs: Partial<AppKnobs> = { ...overrides.get(appId) };
    for (const pair of entry.slice(colon + 1).split(",").map((p) => p.trim()).filter(Boolean)) {
      const [name = "", raw = "", ...rest] = pair.split("=").map((s) => s.trim());
      if (!isKnobName(name)) throw new Error(`app knobs: unknown knob "${name}" for ${appId} (known: ${KNOB_NAMES.join(", ")})`);
      const value = Number(raw);
      if (rest.length > 0 || raw === "" || !Number.isSafeInteger(value) || value < (AT_LEAST_ONE.has(name) ? 1 : 0)) {
        throw new Error(`app knobs: ${appId} ${name} must be an integer ≥ ${AT_LEAST_ONE.has(name) ? 1 : 0}, not "${raw}"`);
      }
      knobs[name] = value;
    }
    if (Object.keys(knobs).length === 0) throw new Error(`app knobs: no knob given for ${appId}`);
    overrides.set(appId, knobs);
  }
  return overrides;
}

/**
 * An app's knobs with the overrides that name it (or `*`) applied. min_runners above max_runners is
 * refused rather than silently clamped: one of the two numbers is not what the operator meant.
 */
export function applyKnobOverrides(appId: string, knobs: AppKnobs, overrides: KnobOverrides): AppKnobs {
  const merged: AppKnobs = { ...knobs, ...overrides.get("*"), ...overrides.get(appId) };
  if (merged.min_runners > merged.max_runners) {
    throw new Error(`app knobs: ${appId} would have min_runners ${merged.min_runners} above max_runners ${merged.max_runners}`);
  }
  return merged;
}
