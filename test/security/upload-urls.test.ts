/**
 * Signed upload URLs write their file once: a replayed PUT (a leaked URL, within its hour) cannot
 * replace the file or its type, and a completed multipart upload takes no more parts. An upload that
 * failed part-way stored nothing, so the owner can retry it.
 */
import assert from "node:assert/strict";
import { request as httpRequest } from "node:http";
import { after, before, describe, it } from "node:test";
import { http, startTestPlatform, type TestPlatform } from "../helpers/platform.js";

describe("signed upload URLs are single-use", { timeout: 60_000 }, () => {
  let p: TestPlatform;

  before(async () => {
    p = await startTestPlatform();
  });

  after(async () => {
    await p?.close();
  });

  async function initiate(route: "initiate" | "initiate-multipart", contentType = "image/png"): Promise<{ upload_url: string; file_url: string }> {
    const res = await http(p, "POST", `/rest/storage/upload/${route}`, { content_type: contentType, file_name: "photo.png" });
    assert.equal(res.status, 200);
    return res.body;
  }

  async function fileOf(url: string): Promise<{ type: string | null; text: string }> {
    const res = await fetch(url);
    assert.equal(res.status, 200);
    return { type: res.headers.get("content-type"), text: await res.text() };
  }

  it("a second PUT is refused with 409 and leaves the file and its type as the first PUT wrote them", async () => {
    const { upload_url, file_url } = await initiate("initiate");
    assert.equal((await fetch(upload_url, { method: "PUT", body: "first" })).status, 200);
    const replay = await fetch(upload_url, { method: "PUT", headers: { "content-type": "text/html" }, body: "<script>replaced</script>" });
    assert.equal(replay.status, 409);
    assert.equal(replay.headers.get("x-darkroom-error-code"), "ERR_UPLOAD_URL_USED");
    assert.match(((await replay.json()) as { detail: string }).detail, /already been used/);
    assert.deepEqual(await fileOf(file_url), { type: "image/png", text: "first" });
  });

  it("of two PUTs at once, one writes and the other is refused", async () => {
    const { upload_url, file_url } = await initiate("initiate");
    const statuses = await Promise.all(["one", "two"].map((body) => fetch(upload_url, { method: "PUT", body }).then((r) => r.status)));
    assert.deepEqual(statuses.sort(), [200, 409]);
    assert.match((await fileOf(file_url)).text, /^(one|two)$/);
  });

  it("a PUT that broke off part-way stored nothing and can be sent again", async () => {
    const { upload_url, file_url } = await initiate("initiate");
    await new Promise<void>((resolve) => {
      const put = httpRequest(upload_url, { method: "PUT", headers: { "content-length": "100000" } });
      put.on("error", () => resolve());
      put.write(Buffer.alloc(1000, 1), () => setTimeout(() => put.destroy(), 200));
      put.on("close", () => resolve());
    });
    // The gateway notices the broken body on its own time.
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal((await fetch(file_url)).status, 404);
    assert.equal((await fetch(upload_url, { method: "PUT", body: "retried" })).status, 200);
    assert.equal((await fileOf(file_url)).text, "retried");
  });

  it("a completed multipart upload takes no more parts and no second completion", async () => {
    const { upload_url, file_url } = await initiate("initiate-multipart");
    const [base, query] = upload_url.split("?") as [string, string];
    const part = await fetch(`${base}/1?${query}`, { method: "PUT", body: "part one" });
    assert.equal(part.status, 200);
    const etag = ((await part.json()) as { etag: string }).etag;
    const complete = () => fetch(`${base}/complete?${query}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ parts: [{ partNumber: 1, etag }] }) });
    assert.equal((await complete()).status, 200);
    assert.equal((await fetch(`${base}/1?${query}`, { method: "PUT", body: "swapped" })).status, 409);
    assert.equal((await complete()).status, 409);
    assert.deepEqual(await fileOf(file_url), { type: "image/png", text: "part one" });
  });
});
