/**
 * OpenAI model names and what they run here: the names unchanged OpenAI code sends (`whisper-1`,
 * `tts-1`, `gpt-image-1` …) as aliases of Darkroom apps, and any app id served here as itself.
 * An operator adds or replaces aliases with `--openai-aliases name=owner/app,…`
 * (`DARKROOM_OPENAI_ALIASES`); an alias whose app is not served is not listed.
 * @module
 */
import { PlatformError } from "../../core/errors.js";
import type { AppManifest } from "../../core/types.js";

/** What OpenAI code sends, by kind of call; image names go to the first text-to-image app served. */
export const DEFAULT_OPENAI_ALIASES: Readonly<Record<string, string>> = {
  "whisper-1": "darkroom/speech-to-text",
  "gpt-4o-transcribe": "darkroom/speech-to-text",
  "gpt-4o-mini-transcribe": "darkroom/speech-to-text",
  "tts-1": "darkroom/text-to-speech",
  "tts-1-hd": "darkroom/text-to-speech",
  "gpt-4o-mini-tts": "darkroom/text-to-speech",
  "gpt-image-1": "category:text-to-image",
  "dall-e-2": "category:text-to-image",
  "dall-e-3": "category:text-to-image",
};

/** `name=owner/app,name2=owner/app2` → a map; refuses a malformed entry so that a typo is seen at start. */
export function parseOpenAiAliases(text: string | undefined): Record<string, string> {
  const aliases: Record<string, string> = {};
  for (const entry of (text ?? "").split(",").map((e) => e.trim()).filter(Boolean)) {
    const match = /^([A-Za-z0-9._:-]{1,100})=([a-z0-9][a-z0-9-]*\/[a-z0-9][a-z0-9._-]*)$/.exec(entry);
    if (!match) throw new Error(`--openai-aliases: '${entry}' is not name=owner/app`);
    aliases[match[1] as string] = match[2] as string;
  }
  return aliases;
}

export class OpenAiModels {
  readonly #aliases: Record<string, string>;
  readonly #apps: () => AppManifest[];

  constructor(apps: () => AppManifest[], operatorAliases: Record<string, string> = {}) {
    this.#apps = apps;
    this.#aliases = { ...DEFAULT_OPENAI_ALIASES, ...operatorAliases };
  }

  /** The app `model` runs, or null when it names nothing served here. */
  appOf(model: string): AppManifest | null {
    const apps = this.#apps();
    const target = this.#aliases[model] ?? model;
    if (target.startsWith("category:")) return apps.find((a) => a.metadata.category === target.slice("category:".length) && !a.unavailable) ?? null;
    return apps.find((a) => a.id === target) ?? null;
  }

  /** The app `model` runs, checked to be of the kind the call needs (an endpoint it has); 404 otherwise. */
  resolve(model: unknown, needs: (app: AppManifest) => boolean, what: string): AppManifest {
    if (typeof model !== "string" || model.length === 0) {
      throw new PlatformError("ERR_VALIDATION", { fieldErrors: [{ loc: ["body", "model"], msg: "model is required", type: "missing" }] });
    }
    const app = this.appOf(model);
    if (!app || !needs(app)) throw new PlatformError("ERR_MODEL_NOT_FOUND", { message: `The model '${model}' does not exist here${app ? ` as ${what}` : ""}; GET /openai/v1/models lists them` });
    return app;
  }

  /** Every name a caller may send: the aliases whose app is served, then the apps themselves. */
  list(): { id: string; app: AppManifest }[] {
    const listed: { id: string; app: AppManifest }[] = [];
    for (const alias of Object.keys(this.#aliases).sort()) {
      const app = this.appOf(alias);
      if (app) listed.push({ id: alias, app });
    }
    for (const app of this.#apps()) if (!app.workflow) listed.push({ id: app.id, app });
    return listed;
  }
}
