/**
 * The licence a text-to-image app shows for its pulled model, read from the model's own files: a
 * Hugging Face card's `license` (for `other`, with `license_name` and `license_link`, the shape
 * Stability AI's non-commercial cards take), a LICENSE file's title, nothing (unknown, naming the model and its source), and a
 * model not pulled yet. The line stays within the runner API's 200 characters.
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { createTextToImageApp } from "../../src/apps/text-to-image/create-app.js";
import { frontMatter, MAX_LICENSE_LINE, modelLicenseLine, statedLicense } from "../../src/apps/text-to-image/model-license.js";
import { writeTinyDiffusionModel } from "../../src/diffusion/tiny-model.js";
import { createModelManager, type ModelManager } from "../../src/models/index.js";

/** A model card in the shape of Stability AI's non-commercial ones: `license: other`, named and linked. */
const SD_TURBO_CARD = `---
pipeline_tag: text-to-image
inference: false
license: other
license_name: sai-nc-community
license_link: https://huggingface.co/stabilityai/sd-turbo/blob/main/LICENSE.md
---

# SD-Turbo Model Card
`;

const APACHE = "\n                                 Apache License\n                           Version 2.0, January 2004\n                        http://www.apache.org/licenses/\n";

describe("a pulled model's licence, from its files", () => {
  let dir: string;
  const folder = (name: string, files: Record<string, string>): string => {
    const d = path.join(dir, name);
    mkdirSync(d, { recursive: true });
    for (const [file, text] of Object.entries(files)) writeFileSync(path.join(d, file), text);
    return d;
  };
  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), "darkroom-license-"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("reads a model card's license, and for 'other' its license_name and license_link", () => {
    assert.deepEqual(statedLicense(folder("sd-turbo", { "README.md": SD_TURBO_CARD })), {
      license: "sai-nc-community (https://huggingface.co/stabilityai/sd-turbo/blob/main/LICENSE.md)",
      file: "README.md",
    });
    assert.deepEqual(statedLicense(folder("quoted", { "README.md": '---\nlicense: "creativeml-openrail-m" # the SD 1.5 licence\n---\n' })), {
      license: "creativeml-openrail-m",
      file: "README.md",
    });
    assert.deepEqual(statedLicense(folder("listed", { "README.md": "---\nlicense:\n  - mit\n  - apache-2.0\ntags: [a, b]\n---\n", LICENSE: "MIT License\n" })), {
      license: "mit, apache-2.0",
      file: "README.md",
    });
  });

  it("falls back to a LICENSE file's title, with its version line, or points at a file without one", () => {
    assert.deepEqual(statedLicense(folder("apache", { "README.md": "# no front matter\nlicense: mit (prose, not the card)\n", LICENSE: APACHE })), {
      license: "Apache License, Version 2.0",
      file: "LICENSE",
    });
    assert.deepEqual(
      statedLicense(folder("other-file", { "README.md": "---\nlicense: other\n---\n", "LICENSE.md": "# STABILITY AI NON-COMMERCIAL RESEARCH COMMUNITY LICENSE AGREEMENT\n\nDated: November 28, 2023\n" })),
      { license: "STABILITY AI NON-COMMERCIAL RESEARCH COMMUNITY LICENSE AGREEMENT", file: "LICENSE.md" },
    );
    assert.deepEqual(statedLicense(folder("copyright", { "LICENCE.txt": "Copyright (c) 2024 Someone\n\nPermission is hereby granted...\n" })), {
      license: "the terms in LICENCE.txt",
      file: "LICENCE.txt",
    });
  });

  it("states nothing for a card without a license and no licence file", () => {
    assert.equal(statedLicense(folder("bare", { "README.md": "---\nlibrary_name: diffusers\n---\n", "model_index.json": "{}" })), null);
    assert.equal(statedLicense(path.join(dir, "absent")), null);
    assert.deepEqual([...frontMatter("---\nlicense: mit\nbase_model:\n  nested: x\nlicense_link: https://x.test/l#terms\n---\nlicense: no\n")], [
      ["license", "mit"],
      ["base_model", []],
      ["license_link", "https://x.test/l#terms"],
    ]);
  });

  describe("the app's license line", () => {
    let models: ModelManager;
    const saved = process.env["DARKROOM_MODELS_DIR"];
    before(async () => {
      models = createModelManager({ dataDir: path.join(dir, "data"), env: {} });
      const tiny = path.join(dir, "tiny");
      await writeTinyDiffusionModel(tiny, { seed: 2 });
      await models.pull(tiny, { name: "sd-turbo" });
      // The same files with SD-Turbo's card: only then does the line name SD-Turbo's licence.
      writeFileSync(path.join(tiny, "README.md"), SD_TURBO_CARD);
      await models.pull(tiny, { name: "carded" });
      // A long folder path, to check the line keeps within the runner API's limit.
      const deep = path.join(dir, "x".repeat(150), "model");
      await writeTinyDiffusionModel(deep, { seed: 2 });
      await models.pull(deep, { name: "deep" });
    });
    after(() => {
      if (saved === undefined) delete process.env["DARKROOM_MODELS_DIR"];
      else process.env["DARKROOM_MODELS_DIR"] = saved;
    });

    it("names the licence the files state, else unknown with the source, else unknown until pulled; at most 200 characters", () => {
      assert.equal(
        modelLicenseLine(models, "carded"),
        "MIT (code); model weights: sai-nc-community (https://huggingface.co/stabilityai/sd-turbo/blob/main/LICENSE.md) (as stated in README.md of 'carded')",
      );
      assert.equal(modelLicenseLine(models, "sd-turbo"), `MIT (code); model weights: unknown (no licence in the files of 'sd-turbo', pulled from ${path.join(dir, "tiny")})`);
      assert.equal(modelLicenseLine(models, "absent"), "MIT (code); model weights: unknown until 'absent' is pulled (its files' licence applies)");
      assert.equal(modelLicenseLine(null, "sd-turbo"), "MIT (code); model weights: unknown until 'sd-turbo' is pulled (its files' licence applies)");
      const deep = modelLicenseLine(models, "deep");
      assert.ok(deep.length <= MAX_LICENSE_LINE, `${deep.length} characters`);
      assert.match(deep, /^MIT \(code\); model weights: unknown \(no licence in the files of 'deep', pulled from …x+\/model\)$/);
    });

    it("is what createTextToImageApp puts in the app's metadata, for darkroom/sd-turbo too", () => {
      process.env["DARKROOM_MODELS_DIR"] = models.root;
      assert.equal(createTextToImageApp().metadata.license, modelLicenseLine(models, "sd-turbo"));
      assert.match(createTextToImageApp({ id: "test/carded", model: "carded" }).metadata.license ?? "", /sai-nc-community/);
      process.env["DARKROOM_MODELS_DIR"] = "/not/a/models-folder";
      assert.equal(createTextToImageApp().metadata.license, modelLicenseLine(null, "sd-turbo"), "a refused models folder leaves the licence unknown");
    });
  });
});
