import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { AllowList } from "../../src/net/allow-list.js";

describe("AllowList", () => {
  it("matches hosts exactly, with or without a port", () => {
    const list = AllowList.parse(" minio:9000, Internal.Example.com. ,127.0.0.1:8080,[::1]:3000 ,");
    assert.equal(list.allowsHost("minio", 9000), true);
    assert.equal(list.allowsHost("MINIO", 9000), true);
    assert.equal(list.allowsHost("minio", 9001), false);
    assert.equal(list.allowsHost("minio.evil.com", 9000), false);
    assert.equal(list.allowsHost("internal.example.com", 443), true);
    assert.equal(list.allowsHost("internal.example.com.", 80), true);
    assert.equal(list.allowsHost("sub.internal.example.com", 443), false);
    assert.equal(list.allowsHost("127.0.0.1", 8080), true);
    assert.equal(list.allowsHost("127.0.0.1", 8081), false);
    assert.equal(list.allowsHost("[::1]", 3000), true);
    assert.equal(list.allowsHost("::1", 3000), true);
    assert.equal(list.allowsHost("[0:0::1]", 3000), true);
    // Host entries allow names, not the addresses they happen to have.
    assert.equal(list.allowsAddress("127.0.0.1"), false);
    assert.equal(list.toString(), "minio:9000,internal.example.com,127.0.0.1:8080,[::1]:3000");
  });

  it("matches addresses by CIDR and by bare address, IPv4-mapped forms included", () => {
    const list = AllowList.parse("10.0.0.0/8,::1/128, 192.168.1.7, fd00::/8");
    assert.equal(list.allowsAddress("10.200.3.4"), true);
    assert.equal(list.allowsAddress("::ffff:10.200.3.4"), true);
    assert.equal(list.allowsAddress("11.0.0.1"), false);
    assert.equal(list.allowsAddress("::1"), true);
    assert.equal(list.allowsAddress("::2"), false);
    assert.equal(list.allowsAddress("192.168.1.7"), true);
    assert.equal(list.allowsAddress("192.168.1.8"), false);
    assert.equal(list.allowsAddress("fd12::1"), true);
    assert.equal(list.allowsAddress("not-an-ip"), false);
    assert.equal(list.allowsHost("10.0.0.1", 80), false, "CIDR entries are about resolved addresses");
  });

  it("is empty for an empty spec", () => {
    assert.equal(AllowList.parse("").isEmpty, true);
    assert.equal(AllowList.parse(" , ").isEmpty, true);
    assert.equal(AllowList.empty().allowsAddress("127.0.0.1"), false);
    assert.equal(AllowList.parse("x").isEmpty, false);
  });

  it("refuses malformed entries naming them", () => {
    for (const spec of ["10.0.0.0/33", "bad/cidr", "host:", "host:0", "host:65536", "host:http", "[::1", "[nothost]:80", "under score!", "a..b", "-lead"]) {
      assert.throws(() => AllowList.parse(spec), (err: unknown) => {
        assert.equal((err as { code?: string }).code, "ERR_BAD_REQUEST", spec);
        assert.ok((err as Error).message.includes(spec.trim()), (err as Error).message);
        return true;
      });
    }
  });
});
