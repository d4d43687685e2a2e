/**
 * Behind a reverse proxy that `--trust-proxy` names, the URLs the gateway hands out (queue URLs,
 * output files) and the files origin's host routing follow the proxy's X-Forwarded-Host and
 * X-Forwarded-Proto, as clients reach it; from a caller that is not a trusted proxy the same headers
 * change nothing, so nobody can make the gateway hand out links to a host of their choosing.
 * @module
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { ADMIN_KEY, startTestPlatform, type TestPlatform } from "../helpers/platform.js";

const FORWARDED = { "x-forwarded-host": "media.example.com", "x-forwarded-proto": "https" };
const AUTH = { authorization: `Key ${ADMIN_KEY}`, "content-type": "application/json" };

async function submitEcho(p: TestPlatform, headers: Record<string, string>): Promise<{ response_url: string }> {
  const res = await fetch(`${p.url}/queue/darkroom/echo`, { method: "POST", headers: { ...AUTH, ...headers }, body: JSON.stringify({ message: "hi" }) });
  assert.equal(res.status, 200);
  return (await res.json()) as { response_url: string };
}

async function storedFileUrl(p: TestPlatform, headers: Record<string, string>): Promise<string> {
  const res = await fetch(`${p.url}/run/darkroom/echo`, { method: "POST", headers: { ...AUTH, ...headers }, body: JSON.stringify({ file_url: `data:text/plain;base64,${Buffer.from("forwarded").toString("base64")}` }) });
  assert.equal(res.status, 200);
  return ((await res.json()) as { file: { url: string } }).file.url;
}

describe("URLs behind a trusted proxy", () => {
  let trusted: TestPlatform;
  let direct: TestPlatform;
  before(async () => {
    trusted = await startTestPlatform({ env: { DARKROOM_TRUST_PROXY: "loopback" } });
    direct = await startTestPlatform();
  });
  after(async () => {
    await trusted?.close();
    await direct?.close();
  });

  it("a trusted proxy's forwarded host and scheme make the URLs handed out", async () => {
    const queued = await submitEcho(trusted, FORWARDED);
    assert.match(queued.response_url, /^https:\/\/media\.example\.com\/queue\/darkroom\/echo\/requests\//);
    assert.match(await storedFileUrl(trusted, FORWARDED), /^https:\/\/media\.example\.com\/files\/outputs\//);
    // Without the headers, the Host the client used.
    assert.ok((await submitEcho(trusted, {})).response_url.startsWith(`${trusted.url}/queue/`));
  });

  it("from a caller that is no trusted proxy, the same headers change nothing", async () => {
    const queued = await submitEcho(direct, FORWARDED);
    assert.ok(queued.response_url.startsWith(`${direct.url}/queue/`), queued.response_url);
    assert.ok((await storedFileUrl(direct, FORWARDED)).startsWith(`${direct.url}/files/`));
  });
});

describe("the files origin behind a trusted proxy that sets Host to its upstream", () => {
  let p: TestPlatform;
  before(async () => {
    p = await startTestPlatform({ env: { DARKROOM_TRUST_PROXY: "loopback", DARKROOM_FILES_URL: "https://files.example.com" } });
  });
  after(async () => p?.close());

  it("tells the two origins apart by X-Forwarded-Host", async () => {
    const url = new URL(await storedFileUrl(p, { "x-forwarded-host": "api.example.com", "x-forwarded-proto": "https" }));
    assert.equal(url.origin, "https://files.example.com");
    // Through the proxy: the files host serves the file and nothing else; the API's host redirects file reads there.
    const onFiles = await fetch(`${p.url}${url.pathname}`, { headers: { "x-forwarded-host": "files.example.com", "x-forwarded-proto": "https" } });
    assert.equal(onFiles.status, 200);
    assert.equal(await onFiles.text(), "forwarded");
    const apiOnFiles = await fetch(`${p.url}/v1/models`, { headers: { ...AUTH, "x-forwarded-host": "files.example.com", "x-forwarded-proto": "https" } });
    assert.equal(apiOnFiles.status, 404, "the files host answers no API call");
    const fileOnApi = await fetch(`${p.url}${url.pathname}`, { headers: { "x-forwarded-host": "api.example.com", "x-forwarded-proto": "https" }, redirect: "manual" });
    assert.equal(fileOnApi.status, 308);
    assert.equal(new URL(fileOnApi.headers.get("location") ?? "").origin, "https://files.example.com");
  });
});
