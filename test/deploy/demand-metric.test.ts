// The gauge the runner ScaledObjects query, served by a real gateway: queued plus running requests.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { DEMAND_METRIC } from "../../deploy/generate.js";
import { eventually, http, startTestPlatform, type TestPlatform } from "../helpers/platform.js";

const ECHO = "darkroom/echo";

function gauge(text: string, name: string, app: string): number | null {
  const line = text.split("\n").find((l) => l.startsWith(`${name}{app="${app}"} `));
  return line === undefined ? null : Number(line.slice(line.lastIndexOf(" ") + 1));
}

describe(`${DEMAND_METRIC} on /metrics`, () => {
  let p: TestPlatform;
  before(async () => {
    p = await startTestPlatform();
  });
  after(async () => {
    await p.close();
  });

  it("counts requests while they wait and while they run, without an API key, and drops to 0 after", async () => {
    const scrape = async (): Promise<{ outstanding: number | null; queued: number | null }> => {
      const res = await fetch(`${p.url}/metrics`);
      assert.equal(res.status, 200, "Prometheus and KEDA scrape without a key");
      const text = await res.text();
      return { outstanding: gauge(text, DEMAND_METRIC, ECHO), queued: gauge(text, "darkroom_queue_depth", ECHO) };
    };
    assert.deepEqual(await scrape(), { outstanding: 0, queued: 0 });

    for (let i = 0; i < 3; i++) {
      const res = await http(p, "POST", `/queue/${ECHO}`, { message: i, sleep_ms: 3000 });
      assert.equal(res.status, 200);
    }
    // The echo runner takes all three at once: the queue empties while the demand stays.
    const running = await eventually(async () => {
      const s = await scrape();
      return s.queued === 0 && s.outstanding === 3 ? s : null;
    }, 15_000);
    assert.deepEqual(running, { outstanding: 3, queued: 0 });
    await eventually(async () => (await scrape()).outstanding === 0, 15_000);
  });
});
