/**
 * A loopback stand-in for the Hugging Face Hub: the model API (`/api/models/{id}/revision/{rev}`,
 * `/api/models/{id}/tree/{rev}?recursive=true`) and file downloads (`/{id}/resolve/{rev}/{path}`)
 * with byte ranges. Tests make it misbehave: cut a transfer after N bytes, answer 503 once,
 * publish a wrong sha256.
 * @module
 */
import { createHash } from "node:crypto";
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface FixtureFile {
  path: string;
  content: Buffer;
  /** Stored in LFS, so the tree lists its sha256 (`lfs.oid`). Otherwise only a git blob id. */
  lfs?: boolean;
  /** Publish this sha256 instead of the real one. */
  fakeSha256?: string;
}

export interface SeenRequest {
  /** `hub` (API and resolve URLs) or `cdn` (where LFS files are redirected, another origin as on huggingface.co). */
  server: "hub" | "cdn";
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  /** The file whose bytes this request was answered with (or cut, or refused with 503). */
  file?: string;
}

export interface HubServer {
  url: string;
  cdnUrl: string;
  commit: string;
  requests: SeenRequest[];
  /** Path inside a repo (`unet/model.onnx`) → bytes after which the next GET of it drops the connection (once). */
  cutAfter: Map<string, number>;
  /** Path → bytes after which the next GET of it stalls (sends nothing more, never closes). */
  stallAfter: Map<string, number>;
  /** Tree entries per page; the rest follow through `Link: <…>; rel="next"`, as the Hub pages. */
  treePageSize: { value: number };
  /** Path → how many GETs of it answer 503 before it is served. */
  failTimes: Map<string, number>;
  /** Plain files at `/files/<name>`, for URL sources. */
  plain: Map<string, Buffer>;
  downloads(path: string): SeenRequest[];
  close(): Promise<void>;
}

export const sha256 = (b: Buffer): string => createHash("sha256").update(b).digest("hex");
const gitOid = (b: Buffer): string => createHash("sha1").update(`blob ${b.length}\0`).update(b).digest("hex");

/** Deterministic bytes: the same seed gives the same content, so two repos can share a file. */
export function bytes(seed: string, size: number): Buffer {
  const out = Buffer.alloc(size);
  let block = createHash("sha256").update(seed).digest();
  for (let i = 0; i < size; i += block.length) {
    block.copy(out, i, 0, Math.min(block.length, size - i));
    block = createHash("sha256").update(block).digest();
  }
  return out;
}

/** A small model in the diffusers ONNX layout; `unet` is big enough to cut mid-transfer. */
export function diffusersFixture(options: { unetSeed?: string; unetSize?: number; omit?: string[] } = {}): FixtureFile[] {
  const json = (v: unknown): Buffer => Buffer.from(`${JSON.stringify(v, null, 2)}\n`);
  const files: FixtureFile[] = [
    { path: ".gitattributes", content: Buffer.from("*.onnx filter=lfs diff=lfs merge=lfs -text\n") },
    { path: "model_index.json", content: json({ _class_name: "OnnxStableDiffusionPipeline", _diffusers_version: "0.24.0" }) },
    { path: "scheduler/scheduler_config.json", content: json({ _class_name: "EulerDiscreteScheduler", beta_schedule: "scaled_linear", timestep_spacing: "trailing" }) },
    { path: "text_encoder/model.onnx", content: bytes("text_encoder", 40_000), lfs: true },
    { path: "tokenizer/merges.txt", content: Buffer.from("#version: 0.2\nh e\nhe llo</w>\n") },
    { path: "tokenizer/vocab.json", content: json({ "<|startoftext|>": 49406, "<|endoftext|>": 49407 }) },
    { path: "unet/model.onnx", content: bytes(options.unetSeed ?? "unet", options.unetSize ?? 1_500_000), lfs: true },
    { path: "vae_decoder/model.onnx", content: bytes("vae_decoder", 60_000), lfs: true },
  ];
  return files.filter((f) => !options.omit?.includes(f.path));
}

export async function startHubServer(repos: Record<string, FixtureFile[]>): Promise<HubServer> {
  const commit = "0123456789abcdef0123456789abcdef01234567";
  const requests: SeenRequest[] = [];
  const cutAfter = new Map<string, number>();
  const failTimes = new Map<string, number>();
  const stallAfter = new Map<string, number>();
  const treePageSize = { value: 1000 };
  const plain = new Map<string, Buffer>();

  let cdnUrl = "";
  const handler = (server: "hub" | "cdn") => (req: IncomingMessage, res: ServerResponse) => {
    const seen: SeenRequest = { server, method: req.method ?? "GET", url: req.url ?? "", headers: req.headers };
    requests.push(seen);
    const url = new URL(req.url ?? "/", "http://x");
    const parts = url.pathname.split("/").slice(1).map(decodeURIComponent);
    const sendJson = (status: number, body: unknown): void => {
      res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
    };

    if (server === "hub" && parts[0] === "api" && parts[1] === "models") {
      const repo = `${parts[2]}/${parts[3]}`;
      const files = repos[repo];
      if (!files) return sendJson(404, { error: "Repository not found" });
      if (parts[4] === "revision") return sendJson(200, { id: repo, sha: commit, siblings: files.map((f) => ({ rfilename: f.path })) });
      if (parts[4] === "tree" && url.searchParams.get("recursive") === "true") {
        const dirs = new Set(files.flatMap((f) => f.path.split("/").slice(0, -1).map((_, i, a) => a.slice(0, i + 1).join("/"))));
        const entries = [
          ...[...dirs].map((d) => ({ type: "directory", oid: gitOid(Buffer.from(d)), size: 0, path: d })),
          ...files.map((f) =>
            f.lfs
              ? { type: "file", oid: gitOid(Buffer.from(`pointer ${f.path}`)), size: 134, path: f.path, lfs: { oid: f.fakeSha256 ?? sha256(f.content), size: f.content.length, pointerSize: 134 } }
              : { type: "file", oid: gitOid(f.content), size: f.content.length, path: f.path },
          ),
        ];
        const cursor = Number(url.searchParams.get("cursor") ?? 0);
        const page = entries.slice(cursor, cursor + treePageSize.value);
        if (cursor + treePageSize.value < entries.length) {
          const next = new URL(req.url ?? "/", `http://${req.headers.host}`);
          next.searchParams.set("cursor", String(cursor + treePageSize.value));
          res.setHeader("link", `<${next.href}>; rel="next"`);
        }
        return sendJson(200, page);
      }
      return sendJson(404, { error: "not found" });
    }

    let content: Buffer | undefined;
    let key = "";
    if (server === "hub" && parts[0] === "files") {
      key = parts.slice(1).join("/");
      content = plain.get(key);
    } else if (server === "hub" && parts[2] === "resolve") {
      key = parts.slice(4).join("/");
      const file = repos[`${parts[0]}/${parts[1]}`]?.find((f) => f.path === key);
      // Like huggingface.co: LFS files are a redirect to a CDN on another origin.
      if (file?.lfs) return res.writeHead(302, { location: `${cdnUrl}/cdn/${parts[0]}/${parts[1]}/${parts.slice(4).map(encodeURIComponent).join("/")}` }).end();
      content = file?.content;
    } else if (server === "cdn" && parts[0] === "cdn") {
      key = parts.slice(3).join("/");
      content = repos[`${parts[1]}/${parts[2]}`]?.find((f) => f.path === key)?.content;
    }
    if (!content) return sendJson(404, { error: "Entry not found" });
    if (req.method === "GET") seen.file = key;

    const failing = failTimes.get(key) ?? 0;
    if (req.method === "GET" && failing > 0) {
      failTimes.set(key, failing - 1);
      return sendJson(503, { error: "try later" });
    }
    let start = 0;
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? "");
    if (range) {
      start = Number(range[1]);
      if (start >= content.length) return res.writeHead(416, { "content-range": `bytes */${content.length}` }).end();
    }
    const body = content.subarray(start);
    const headers = { "content-length": String(body.length), "accept-ranges": "bytes", etag: `"${sha256(content)}"` };
    if (range) res.writeHead(206, { ...headers, "content-range": `bytes ${start}-${content.length - 1}/${content.length}` });
    else res.writeHead(200, headers);
    if (req.method === "HEAD") return res.end();
    const stall = stallAfter.get(key);
    if (stall !== undefined && stall < body.length) {
      stallAfter.delete(key);
      res.write(body.subarray(0, stall));
      return;
    }
    const cut = cutAfter.get(key);
    if (cut !== undefined && cut < body.length) {
      cutAfter.delete(key);
      // The connection closes after exactly `cut` bytes of a body that promised more. A half-close
      // (FIN after the buffered bytes) rather than destroy(): a reset can discard bytes still in
      // flight, and the test wants to know exactly where the resume must start.
      res.write(body.subarray(0, cut), () => res.socket?.end());
      return;
    }
    res.end(body);
  };
  const server = createServer(handler("hub"));
  const cdn = createServer(handler("cdn"));
  await new Promise<void>((resolve) => cdn.listen(0, "127.0.0.1", resolve));
  cdnUrl = `http://127.0.0.1:${(cdn.address() as AddressInfo).port}`;
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    cdnUrl,
    commit,
    requests,
    cutAfter,
    stallAfter,
    treePageSize,
    failTimes,
    plain,
    downloads: (p) => requests.filter((r) => r.file === p),
    close: async () => {
      for (const s of [server, cdn]) {
        s.closeAllConnections();
        await new Promise<void>((resolve) => s.close(() => resolve()));
      }
    },
  };
}
