/**
 * A batch through the queue, as the benches that measure throughput send it: `n` submits at once,
 * then each polled until it completed. Throws on a refused submit or a failed request.
 * @module
 */
import { BENCH_AUTH } from "./bench-server.js";

/** Submits `n` requests of `input` to `app` at once; resolves with their ids once all completed. */
export async function submitAllAndWait(base: string, app: string, input: unknown, n: number): Promise<string[]> {
  const body = JSON.stringify(input);
  const ids = await Promise.all(
    Array.from({ length: n }, async () => {
      const res = await fetch(`${base}/queue/${app}`, { method: "POST", headers: BENCH_AUTH, body });
      if (res.status !== 200) throw new Error(`submit: ${res.status} ${await res.text()}`);
      return ((await res.json()) as { request_id: string }).request_id;
    }),
  );
  for (const id of ids) {
    for (;;) {
      const s = (await (await fetch(`${base}/queue/${app}/requests/${id}/status`, { headers: BENCH_AUTH })).json()) as { status: string; error?: string };
      if (s.status === "COMPLETED") {
        if (s.error) throw new Error(`request failed: ${s.error}`);
        break;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  return ids;
}
