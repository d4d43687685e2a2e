/**
 * How the runtime reads an app's input files: data URIs inline whatever the case of their scheme
 * (RFC 3986 schemes are case-insensitive, and the gateway's schema accepts `DATA:`), never fetched.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { AllowList } from "../../src/net/allow-list.js";
import { createFileAccess } from "../../src/runtime/file-access.js";
import type { FileAccess } from "../../src/runtime/sdk.js";
import { createLocalStorage } from "../../src/storage/local-storage.js";

describe("createFileAccess().read", () => {
  let dir: string;
  let files: FileAccess;

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "darkroom-file-access-"));
    files = createFileAccess({
      storage: createLocalStorage({ root: dir }),
      allow: AllowList.parse(""),
      requestId: "r",
      baseUrl: "http://127.0.0.1:1",
      ownOrigins: [],
      syncMode: false,
      maxFileBytes: 1024,
      fetchTimeoutMs: 1000,
    });
  });

  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("reads data URIs inline in any case of the scheme", async () => {
    for (const uri of ["data:text/plain;base64,aGk=", "DATA:text/plain;base64,aGk=", "Data:text/plain;base64,aGk="]) {
      const read = await files.read(uri);
      assert.equal(read.data.toString("utf8"), "hi", uri);
      assert.equal(read.contentType, "text/plain", uri);
    }
  });
});
