/**
 * Uploads the way Python's fal_client makes them (the HTTP calls of its
 * `upload` and `MultipartUpload`): a token from `storage/auth/token`, then either one POST of the
 * bytes or a multipart upload whose part and completion URLs are built from `access_url`.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { http, startTestPlatform, type TestPlatform } from "../helpers/platform.js";

describe("Python fal_client uploads", () => {
  let p: TestPlatform;
  let auth: string;
  let baseUrl: string;

  before(async () => {
    p = await startTestPlatform();
    const token = await http(p, "POST", "/rest/storage/auth/token?storage_type=fal-cdn-v3", {});
    assert.equal(token.status, 200, JSON.stringify(token.body));
    auth = `${token.body.token_type} ${token.body.token}`;
    baseUrl = token.body.base_url;
  });
  after(() => p.close());

  const download = async (url: string): Promise<{ bytes: Buffer; type: string | null }> => {
    const res = await fetch(url);
    assert.equal(res.status, 200);
    return { bytes: Buffer.from(await res.arrayBuffer()), type: res.headers.get("content-type") };
  };

  it("uploads in one POST to {base}/files/upload", async () => {
    const bytes = randomBytes(50_000);
    const res = await fetch(`${baseUrl}/files/upload`, { method: "POST", headers: { authorization: auth, "content-type": "image/png", "x-fal-file-name": "cat.png" }, body: bytes });
    assert.equal(res.status, 200);
    const { access_url } = (await res.json()) as { access_url: string };
    assert.match(access_url, /\/files\/uploads\/.+\/cat\.png$/);
    const got = await download(access_url);
    assert.deepEqual(got.bytes, bytes);
    assert.equal(got.type, "image/png");
  });

  it("uploads in parts: create, PUT each part (ETag header), complete; the parts join in order", async () => {
    const parts = [randomBytes(70_000), randomBytes(70_000), randomBytes(12_345)];
    const created = await fetch(`${baseUrl}/files/upload/multipart`, {
      method: "POST",
      headers: { authorization: auth, accept: "application/json", "content-type": "video/mp4", "x-fal-file-name": "clip.mp4" },
    });
    assert.equal(created.status, 200);
    const { access_url, uploadId } = (await created.json()) as { access_url: string; uploadId: string };
    assert.match(access_url, /\/files\/uploads\/.+\/clip\.mp4$/);

    // fal_client sends parts concurrently: out of order here on purpose.
    const etags = new Map<number, string>();
    for (const n of [3, 1, 2]) {
      const res = await fetch(`${access_url}/multipart/${uploadId}/${n}`, {
        method: "PUT",
        headers: { authorization: auth, "content-type": "video/mp4", "accept-encoding": "identity" },
        body: parts[n - 1],
      });
      assert.equal(res.status, 200);
      const etag = res.headers.get("etag");
      assert.ok(etag, "the ETag response header is what the client reads");
      etags.set(n, etag);
    }
    const done = await fetch(`${access_url}/multipart/${uploadId}/complete`, {
      method: "POST",
      headers: { authorization: auth, "content-type": "application/json" },
      body: JSON.stringify({ parts: [...etags].map(([partNumber, etag]) => ({ partNumber, etag })) }),
    });
    assert.equal(done.status, 200, await done.clone().text());
    const got = await download(access_url);
    assert.deepEqual(got.bytes, Buffer.concat(parts));
    assert.equal(got.type, "video/mp4", "the type given at create");
  });

  it("refuses parts without a token, for another key, or with a forged upload id", async () => {
    const created = await fetch(`${baseUrl}/files/upload/multipart`, { method: "POST", headers: { authorization: auth, "content-type": "text/plain", "x-fal-file-name": "a.txt" } });
    const { access_url, uploadId } = (await created.json()) as { access_url: string; uploadId: string };
    const put = (url: string, headers: Record<string, string>): Promise<Response> => fetch(url, { method: "PUT", headers, body: "hello" });

    const anonymous = await put(`${access_url}/multipart/${uploadId}/1`, {});
    assert.equal(anonymous.status, 401);

    // The ticket is bound to its key: it cannot write over another object.
    const otherKey = access_url.replace(/\/files\/uploads\/[^/]+\//, "/files/outputs/victim/");
    const moved = await put(`${otherKey}/multipart/${uploadId}/1`, { authorization: auth });
    assert.equal(moved.status, 403);
    assert.equal(moved.headers.get("x-fal-error-type"), "forbidden");

    const [meta = "", expires = "", sig = ""] = uploadId.split(".");
    const forgedMeta = Buffer.from(JSON.stringify({ ct: "text/html", name: "a.html", n: "x" })).toString("base64url");
    const forged = await put(`${access_url}/multipart/${forgedMeta}.${expires}.${sig}/1`, { authorization: auth });
    assert.equal(forged.status, 403);
    assert.ok(meta.length > 0);

    const anonymousCreate = await fetch(`${baseUrl}/files/upload/multipart`, { method: "POST", headers: { "content-type": "text/plain" } });
    assert.equal(anonymousCreate.status, 401);
  });
});
