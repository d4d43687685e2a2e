/** The tenant label of per-tenant metrics: busiest tenants by name, the rest "other", never unbounded. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { OTHER_TENANTS, TenantLabels } from "../../src/observability/tenant-labels.js";

describe("tenant labels", () => {
  it("names the first tenants up to the limit and counts the rest as other", () => {
    const labels = new TenantLabels(2);
    assert.equal(labels.labelOf("a"), "a");
    assert.equal(labels.labelOf("b"), "b");
    assert.equal(labels.labelOf("c"), OTHER_TENANTS, "as busy as the quietest named one: not enough");
    assert.equal(labels.labelOf("a"), "a");
  });

  it("gives a tenant that becomes busier than the quietest named one its place", () => {
    const labels = new TenantLabels(2);
    labels.labelOf("a");
    labels.labelOf("a");
    labels.labelOf("b");
    assert.equal(labels.labelOf("c"), OTHER_TENANTS);
    assert.equal(labels.labelOf("c"), "c", "two requests beat b's one");
    assert.equal(labels.labelOf("b"), OTHER_TENANTS, "b gave its place up");
    assert.equal(labels.labelOf("a"), "a");
  });

  it("hands out at most twice the limit of names, however the tenants churn", () => {
    const labels = new TenantLabels(3);
    const seen = new Set<string>();
    for (let round = 1; round <= 50; round++) {
      for (let i = 0; i < round * 2; i++) seen.add(labels.labelOf(`tenant-${round}`));
    }
    seen.delete(OTHER_TENANTS);
    assert.equal(seen.size, 6);
  });

  it("names nobody with a limit of 0", () => {
    assert.equal(new TenantLabels(0).labelOf("a"), OTHER_TENANTS);
  });
});
