/**
 * Storage as a remote runner's `ctx.files` sees it: output files are uploaded to the gateway and the
 * runner's own files read back from it, through the gateway's `/runner/v1/files/` routes. Only what
 * `ctx.files` needs is here ({@link ObjectAccess}: put and get); deleting, sweeping and multipart
 * uploads stay with the gateway's own driver.
 * @module
 */
import { Readable } from "node:stream";
import type { ReadableStream as WebReadableStream } from "node:stream/web";
import { PlatformError } from "../core/errors.js";
import type { ByteRange, ObjectAccess, ObjectMeta, PutOptions } from "../storage/storage.js";
import type { GatewayClient } from "./gateway-client.js";

export interface GatewayStorageOptions {
  /** The runner's connection to its gateways. */
  client: Pick<GatewayClient, "request">;
  /** The attempt at which this runner holds a request, or undefined when it does not hold it. */
  heldAttempt: (requestId: string) => number | undefined;
  /** The runner's id as the gateway registered it, null before registration. */
  runnerId: () => string | null;
}

export function createGatewayStorage({ client, heldAttempt, runnerId }: GatewayStorageOptions): ObjectAccess {
  const metaFrom = (key: string, res: Response): ObjectMeta => ({
    key,
    size: Number(res.headers.get("content-length") ?? 0),
    contentType: res.headers.get("content-type") ?? "application/octet-stream",
    fileName: key.split("/").pop() ?? "file",
    createdAt: Date.now(),
    expiresAt: null,
  });
  return {
    put: async (key: string, body: Readable | Buffer | Uint8Array, options: PutOptions): Promise<ObjectMeta> => {
      // Keys are outputs/<request id>/<random>/<name> (file-access.ts).
      const requestId = key.split("/")[1] ?? "";
      const attempt = heldAttempt(requestId);
      if (attempt === undefined) throw new PlatformError("ERR_LEASE_LOST", { message: `Request ${requestId} is not held by this runner` });
      const res = await client.request("PUT", `/runner/v1/files/${key.split("/").map(encodeURIComponent).join("/")}`, {
        body: body instanceof Readable ? body : Readable.from([Buffer.from(body)]),
        headers: {
          "content-type": "application/octet-stream",
          "x-darkroom-content-type": options.contentType,
          "x-darkroom-file-name": options.fileName,
          "x-darkroom-runner-id": runnerId() ?? "",
          "x-darkroom-attempt": String(attempt),
          ...(options.expiresInSeconds !== undefined ? { "x-darkroom-expires-in": String(options.expiresInSeconds) } : {}),
        },
        timeoutMs: 10 * 60_000,
      });
      const stored = (await res.json()) as { key: string; size: number; content_type: string; file_name: string };
      return { key: stored.key, size: stored.size, contentType: stored.content_type, fileName: stored.file_name, createdAt: Date.now(), expiresAt: options.expiresInSeconds !== undefined ? Date.now() + options.expiresInSeconds * 1000 : null };
    },
    get: async (key: string, range?: ByteRange): Promise<{ meta: ObjectMeta; body: Readable } | null> => {
      try {
        const res = await client.request("GET", `/runner/v1/files/${key.split("/").map(encodeURIComponent).join("/")}`, {
          ...(range ? { headers: { range: `bytes=${range.start}-${range.end}` } } : {}),
          retryForMs: 5000,
        });
        if (!res.body) return null;
        return { meta: metaFrom(key, res), body: Readable.fromWeb(res.body as WebReadableStream) };
      } catch (err) {
        if (err instanceof PlatformError && err.status === 404) return null;
        throw err;
      }
    },
  };
}
