/**
 * The pricing file (src/pricing/price-file.ts): what it refuses, naming the file and each problem,
 * and how its prices meet the store's: a file entry wins over nothing, the API over the file, and a
 * start with an unchanged file adds no history.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { applyFilePrices, readPriceFile } from "../../src/pricing/price-file.js";
import { memoryStore } from "../helpers/memory-store.js";

describe("pricing file", () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), "darkroom-price-file-"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  function file(name: string, content: unknown): string {
    const where = path.join(dir, name);
    writeFileSync(where, typeof content === "string" ? content : JSON.stringify(content));
    return where;
  }

  it("reads prices in the body form of PUT /v1/models/pricing, USD unless it says otherwise", async () => {
    const where = file("ok.json", {
      prices: [
        { endpoint_id: "darkroom/echo", unit_price: 0.001, unit: "request" },
        { endpoint_id: "darkroom/text-to-image/turbo", unit_price: 0.0125, unit: "megapixel", currency: "EUR" },
      ],
    });
    assert.deepEqual(await readPriceFile(where, 42), [
      { endpointId: "darkroom/echo", unit: "request", unitPrice: 0.001, currency: "USD", effectiveFrom: 42, source: "file" },
      { endpointId: "darkroom/text-to-image/turbo", unit: "megapixel", unitPrice: 0.0125, currency: "EUR", effectiveFrom: 42, source: "file" },
    ]);
  });

  it("refuses a missing file, bad JSON, and unknown fields or values, naming the file and each problem", async () => {
    await assert.rejects(readPriceFile(path.join(dir, "missing.json"), 0), /missing\.json: cannot read it/);
    await assert.rejects(readPriceFile(file("bad.json", "{prices:"), 0), /bad\.json: not JSON/);
    const where = file("fields.json", { prices: [{ endpoint_id: "darkroom/echo", unit_price: -1, unit: "frame", unit_prize: 2 }], note: 1 });
    await assert.rejects(readPriceFile(where, 0), (err: Error) => {
      assert.match(err.message, /fields\.json:/);
      assert.match(err.message, /prices\[0\]: unknown field\(s\) unit_prize/);
      assert.match(err.message, /prices\[0\]\.unit_price: /);
      assert.match(err.message, /prices\[0\]\.unit: /);
      assert.match(err.message, /\(top level\): unknown field\(s\) note/);
      return true;
    });
  });

  it("wins over nothing, yields to the API, and adds history only when it changes", async () => {
    const store = await memoryStore();
    try {
      const entry = (endpointId: string, unitPrice: number, effectiveFrom: number) => ({
        endpointId,
        unit: "request" as const,
        unitPrice,
        currency: "USD",
        effectiveFrom,
        source: "file" as const,
      });
      const first = await applyFilePrices(store, [entry("a/one", 1, 100), entry("a/two", 2, 100)]);
      assert.deepEqual(first.added.map((p) => [p.endpointId, p.unitPrice, p.effectiveFrom]), [["a/one", 1, 100], ["a/two", 2, 100]]);

      const [api] = await store.addPrices([{ ...entry("a/two", 5, 150), source: "api" }]);
      const restart = await applyFilePrices(store, [entry("a/one", 1, 200), entry("a/two", 3, 200)]);
      assert.deepEqual(restart.added, [], "a/one unchanged; a/two set by the API");
      assert.deepEqual(restart.overridden, [{ endpointId: "a/two", since: 150 }]);

      const changed = await applyFilePrices(store, [entry("a/one", 1.5, 300)]);
      assert.deepEqual(changed.added.map((p) => [p.endpointId, p.unitPrice, p.effectiveFrom]), [["a/one", 1.5, 300]]);
      assert.deepEqual((await store.listPrices(["a/one"])).map((p) => [p.unitPrice, p.effectiveFrom]), [[1, 100], [1.5, 300]], "the earlier file price stays in the history");
      assert.deepEqual((await store.listPrices(["a/two"])).at(-1), api);
    } finally {
      await store.close();
    }
  });
});
