import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { AllowList } from "../../src/net/allow-list.js";
import { safeFetch, safeFetchBuffer } from "../../src/net/safe-fetch.js";

const FIXTURE = new URL("../fixtures/media/astronaut.png", import.meta.url);

interface Recorded {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

interface TestServer {
  port: number;
  origin: string;
  requests: Recorded[];
  close(): Promise<void>;
}

const servers: TestServer[] = [];

/** A real HTTP server on 127.0.0.1 with an OS-chosen port that records every request it gets. */
async function startServer(handler: (req: IncomingMessage, res: ServerResponse, body: string) => void): Promise<TestServer> {
  const requests: Recorded[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString();
      requests.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers, body });
      handler(req, res, body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  const s: TestServer = {
    port,
    origin: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  servers.push(s);
  return s;
}

after(async () => {
  await Promise.all(servers.map((s) => s.close()));
});

async function rejectsWith(promise: Promise<unknown>, code: string, message?: RegExp): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.equal((err as { code?: string }).code, code, `expected ${code}, got ${String(err)}`);
    if (message) assert.match((err as Error).message, message);
    return true;
  });
}

const none = AllowList.empty();

describe("safeFetch", () => {
  let png: Buffer;
  let images: TestServer;

  before(async () => {
    png = await readFile(FIXTURE);
    images = await startServer((req, res) => {
      if (req.url === "/astronaut.png") {
        res.writeHead(200, { "content-type": "image/png", "content-length": png.length });
        res.end(png);
      } else {
        res.writeHead(404, { "content-type": "text/plain" });
        res.end("no such file");
      }
    });
  });

  describe("refusals without an allow list", () => {
    it("refuses 127.0.0.1, saying it is loopback, without sending anything", async () => {
      await rejectsWith(safeFetch(`${images.origin}/astronaut.png`, { allow: none }), "ERR_FETCH_REFUSED", /^refused: loopback address 127\.0\.0\.1$/);
      assert.equal(images.requests.length, 0);
    });

    it("refuses localhost after resolving it", async () => {
      await rejectsWith(
        safeFetch(`http://localhost:${images.port}/astronaut.png`, { allow: none }),
        "ERR_FETCH_REFUSED",
        /^refused: localhost resolves to loopback address (127\.0\.0\.1|::1)$/,
      );
      assert.equal(images.requests.length, 0);
    });

    it("refuses [::1], the metadata address, and private addresses without connecting", async () => {
      const started = Date.now();
      await rejectsWith(safeFetch(`http://[::1]:${images.port}/`, { allow: none }), "ERR_FETCH_REFUSED", /loopback address ::1/);
      await rejectsWith(safeFetch("http://169.254.169.254/latest/meta-data/", { allow: none }), "ERR_FETCH_REFUSED", /link-local address 169\.254\.169\.254 \(cloud metadata endpoint\)/);
      await rejectsWith(safeFetch("http://10.1.2.3/", { allow: none, timeoutMs: 30_000 }), "ERR_FETCH_REFUSED", /private address 10\.1\.2\.3/);
      await rejectsWith(safeFetch("http://[::ffff:192.168.0.1]/", { allow: none }), "ERR_FETCH_REFUSED", /private address 192\.168\.0\.1/);
      await rejectsWith(safeFetch("http://2130706433/", { allow: none }), "ERR_FETCH_REFUSED", /loopback address 127\.0\.0\.1/);
      await rejectsWith(safeFetch("https://0x7f.1/", { allow: none }), "ERR_FETCH_REFUSED", /loopback/);
      await rejectsWith(safeFetch("http://0/", { allow: none }), "ERR_FETCH_REFUSED", /unspecified address 0\.0\.0\.0/);
      // Nothing routes to 10.1.2.3 here: an attempt to connect would have hung until the timeout.
      assert.ok(Date.now() - started < 2000, "refused before any connection attempt");
    });

    it("refuses schemes other than http and https, and malformed URLs", async () => {
      await rejectsWith(safeFetch("file:///etc/passwd", { allow: none }), "ERR_FETCH_REFUSED", /scheme file: is not http or https/);
      await rejectsWith(safeFetch("ftp://example.com/file.png", { allow: none }), "ERR_FETCH_REFUSED", /scheme ftp:/);
      await rejectsWith(safeFetch("gopher://127.0.0.1:6379/_INFO", { allow: none }), "ERR_FETCH_REFUSED", /scheme gopher:/);
      await rejectsWith(safeFetch("not a url", { allow: none }), "ERR_FETCH_REFUSED", /malformed URL/);
    });
  });

  describe("with an allow list", () => {
    it("fetches from an allow-listed host:port, byte for byte", async () => {
      const allow = AllowList.parse(`127.0.0.1:${images.port}`);
      const res = await safeFetchBuffer(`${images.origin}/astronaut.png`, { allow });
      assert.equal(res.status, 200);
      assert.equal(res.contentType, "image/png");
      assert.equal(res.headers["content-length"], String(png.length));
      assert.equal(res.url, `${images.origin}/astronaut.png`);
      assert.deepEqual(res.data, png);
      // The port is part of the entry: another port on the same host is still refused.
      await rejectsWith(safeFetch(`http://127.0.0.1:${images.port + 1}/`, { allow }), "ERR_FETCH_REFUSED", /loopback/);
    });

    it("fetches from an address in an allow-listed CIDR range", async () => {
      const res = await safeFetchBuffer(`${images.origin}/astronaut.png`, { allow: AllowList.parse("127.0.0.0/8") });
      assert.deepEqual(res.data, png);
    });

    it("fetches a name whose every address is allow-listed", async () => {
      const res = await safeFetchBuffer(`http://localhost:${images.port}/astronaut.png`, { allow: AllowList.parse("127.0.0.0/8, ::1/128") });
      assert.deepEqual(res.data, png);
    });

    it("returns error statuses instead of throwing", async () => {
      const res = await safeFetchBuffer(`${images.origin}/missing.png`, { allow: AllowList.parse("127.0.0.0/8") });
      assert.equal(res.status, 404);
      assert.equal(res.data.toString(), "no such file");
    });

    it("sends the method, headers and body it is given", async () => {
      const echo = await startServer((req, res, body) => {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ method: req.method, type: req.headers["content-type"], body }));
      });
      const res = await safeFetchBuffer(`${echo.origin}/hook`, {
        allow: AllowList.parse(`127.0.0.1:${echo.port}`),
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: '{"ok":true}',
      });
      assert.deepEqual(JSON.parse(res.data.toString()), { method: "POST", type: "application/json", body: '{"ok":true}' });
    });
  });

  describe("redirects", () => {
    it("refuses a redirect from an allowed server to a loopback port that is not allowed", async () => {
      const target = await startServer((_req, res) => res.end("secret"));
      const redirector = await startServer((_req, res) => {
        res.writeHead(302, { location: `http://127.0.0.1:${target.port}/admin` });
        res.end();
      });
      const allow = AllowList.parse(`127.0.0.1:${redirector.port}`);
      await rejectsWith(safeFetch(`${redirector.origin}/go`, { allow }), "ERR_FETCH_REFUSED", /^refused: loopback address 127\.0\.0\.1$/);
      assert.equal(redirector.requests.length, 1);
      assert.equal(target.requests.length, 0, "the refused hop was never contacted");
    });

    it("refuses a redirect to a name that resolves to a private address, and to another scheme", async () => {
      const redirector = await startServer((req, res) => {
        res.writeHead(301, { location: req.url === "/file" ? "file:///etc/passwd" : `http://localhost:${images.port}/astronaut.png` });
        res.end();
      });
      const allow = AllowList.parse(`127.0.0.1:${redirector.port}`);
      const imageRequests = images.requests.length;
      await rejectsWith(safeFetch(`${redirector.origin}/dns`, { allow }), "ERR_FETCH_REFUSED", /localhost resolves to loopback/);
      await rejectsWith(safeFetch(`${redirector.origin}/file`, { allow }), "ERR_FETCH_REFUSED", /scheme file:/);
      assert.equal(images.requests.length, imageRequests);
    });

    it("follows allowed hops: 302 turns POST into a body-less GET, 307 replays it", async () => {
      const server = await startServer((req, res) => {
        if (req.url === "/302") res.writeHead(302, { location: "/landing" }).end();
        else if (req.url === "/307") res.writeHead(307, { location: "/landing" }).end();
        else res.writeHead(200, { "content-type": "text/plain" }).end(`landed via ${req.method}`);
      });
      const allow = AllowList.parse(`127.0.0.1:${server.port}`);
      const post = { allow, method: "POST", headers: { "content-type": "text/plain" }, body: "payload" };

      const a = await safeFetchBuffer(`${server.origin}/302`, post);
      assert.equal(a.data.toString(), "landed via GET");
      assert.equal(a.url, `${server.origin}/landing`);
      const afterA = server.requests.slice(-1)[0];
      assert.equal(afterA?.body, "");
      assert.equal(afterA?.headers["content-type"], undefined);

      const b = await safeFetchBuffer(`${server.origin}/307`, post);
      assert.equal(b.data.toString(), "landed via POST");
      assert.equal(server.requests.slice(-1)[0]?.body, "payload");
    });

    it("drops credentials when a redirect changes origin", async () => {
      const other = await startServer((req, res) => res.end(String(req.headers.authorization)));
      const first = await startServer((_req, res) => res.writeHead(302, { location: `${other.origin}/x` }).end());
      const allow = AllowList.parse(`127.0.0.1:${first.port},127.0.0.1:${other.port}`);
      const res = await safeFetchBuffer(`${first.origin}/`, { allow, headers: { Authorization: "Key secret" } });
      assert.equal(first.requests[0]?.headers.authorization, "Key secret");
      assert.equal(res.data.toString(), "undefined");
    });

    it("stops after maxRedirects hops", async () => {
      const loop = await startServer((req, res) => {
        const n = Number(req.url?.slice(1)) || 0;
        res.writeHead(302, { location: `/${n + 1}` }).end();
      });
      const allow = AllowList.parse(`127.0.0.1:${loop.port}`);
      await rejectsWith(safeFetch(`${loop.origin}/0`, { allow, maxRedirects: 3 }), "ERR_FETCH_FAILED", /too many redirects/);
      assert.deepEqual(loop.requests.map((r) => r.url), ["/0", "/1", "/2", "/3"]);
      await rejectsWith(safeFetch(`${loop.origin}/0`, { allow }), "ERR_FETCH_FAILED", /too many redirects \(more than 5\)/);
    });
  });

  describe("limits and failures", () => {
    it("refuses a chunked body that grows past maxBytes, mid-stream", async () => {
      let written = 0;
      const server = await startServer((_req, res) => {
        res.writeHead(200, { "content-type": "application/octet-stream" });
        const timer = setInterval(() => {
          res.write(Buffer.alloc(1024, 1));
          written += 1024;
          if (written >= 100 * 1024) {
            clearInterval(timer);
            res.end();
          }
        }, 1);
        res.on("close", () => clearInterval(timer));
      });
      const allow = AllowList.parse(`127.0.0.1:${server.port}`);
      await rejectsWith(safeFetchBuffer(`${server.origin}/`, { allow, maxBytes: 10_000 }), "ERR_FILE_TOO_LARGE", /10000 bytes/);
      assert.ok(written < 100 * 1024, `stopped the download early (server wrote ${written} bytes)`);

      // The streaming form resolves with headers, then its body errors.
      const res = await safeFetch(`${server.origin}/`, { allow, maxBytes: 10_000 });
      assert.equal(res.headers["transfer-encoding"], "chunked");
      await rejectsWith((async () => {
        for await (const _chunk of res.body) {
          /* drain */
        }
      })(), "ERR_FILE_TOO_LARGE");
    });

    it("refuses a declared content-length over maxBytes before reading the body", async () => {
      const server = await startServer((_req, res) => {
        // Declares a big body, sends a little and never finishes: only an up-front check returns quickly.
        res.writeHead(200, { "content-length": 50_000_000 });
        res.write("x");
      });
      const started = Date.now();
      await rejectsWith(
        safeFetch(`${server.origin}/`, { allow: AllowList.parse(`127.0.0.1:${server.port}`), maxBytes: 1_000_000, timeoutMs: 10_000 }),
        "ERR_FILE_TOO_LARGE",
      );
      assert.ok(Date.now() - started < 5_000);
    });

    it("accepts a body of exactly maxBytes", async () => {
      const res = await safeFetchBuffer(`${images.origin}/astronaut.png`, { allow: AllowList.parse("127.0.0.0/8"), maxBytes: png.length });
      assert.equal(res.data.length, png.length);
    });

    it("times out a server that never answers", async () => {
      const server = await startServer(() => {
        /* never responds */
      });
      const started = Date.now();
      await rejectsWith(
        safeFetch(`${server.origin}/`, { allow: AllowList.parse(`127.0.0.1:${server.port}`), timeoutMs: 200 }),
        "ERR_FETCH_FAILED",
        /timed out after 200 ms/,
      );
      const elapsed = Date.now() - started;
      assert.ok(elapsed >= 150 && elapsed < 3_000, `elapsed ${elapsed} ms`);
    });

    it("times out a body that stalls after the headers", async () => {
      const server = await startServer((_req, res) => {
        res.writeHead(200, { "content-type": "text/plain" });
        res.write("partial");
      });
      await rejectsWith(
        safeFetchBuffer(`${server.origin}/`, { allow: AllowList.parse(`127.0.0.1:${server.port}`), timeoutMs: 300 }),
        "ERR_FETCH_FAILED",
        /timed out/,
      );
    });

    it("reports a connection that dies mid-body as a failure, not a short file", async () => {
      const server = await startServer((_req, res) => {
        res.writeHead(200, { "content-length": 1000 });
        res.write(Buffer.alloc(100));
        setTimeout(() => res.socket?.destroy(), 20);
      });
      await rejectsWith(safeFetchBuffer(`${server.origin}/`, { allow: AllowList.parse(`127.0.0.1:${server.port}`) }), "ERR_FETCH_FAILED");
    });

    it("reports a refused connection as ERR_FETCH_FAILED with the cause", async () => {
      const server = await startServer(() => undefined);
      const port = server.port;
      await server.close();
      await assert.rejects(safeFetch(`http://127.0.0.1:${port}/`, { allow: AllowList.parse("127.0.0.0/8") }), (err: unknown) => {
        assert.equal((err as { code?: string }).code, "ERR_FETCH_FAILED");
        assert.equal(((err as Error).cause as { code?: string }).code, "ECONNREFUSED");
        return true;
      });
    });
  });
});
