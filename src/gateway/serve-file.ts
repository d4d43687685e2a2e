/**
 * Answers a read of a stored file (`/files/`, and `/runner/v1/files/` for remote runners): its
 * headers (file-response-headers.ts), a range if asked for, and the bytes streamed from storage.
 * @module
 */
import type { FastifyReply, FastifyRequest } from "fastify";
import { PlatformError } from "../core/errors.js";
import { isSpilledInputKey } from "../storage/spilled-inputs.js";
import type { GatewayContext } from "./context.js";
import { fileResponseHeaders } from "./file-response-headers.js";
import { parseRange } from "./http-range.js";

export async function serveFile(ctx: GatewayContext, request: FastifyRequest, reply: FastifyReply, key: string): Promise<void> {
  // Requests' large inputs kept in storage (spilled-inputs.ts) are never served: only their requests' runners get them.
  if (isSpilledInputKey(key)) throw new PlatformError("ERR_FILE_NOT_FOUND");
  const meta = await ctx.storage.head(key);
  if (!meta) throw new PlatformError("ERR_FILE_NOT_FOUND");
  const rangeHeader = request.headers.range;
  const range = rangeHeader ? parseRange(rangeHeader, meta.size) : null;
  const object = await ctx.storage.get(key, range ?? undefined);
  if (!object) throw new PlatformError("ERR_FILE_NOT_FOUND");
  reply.headers(fileResponseHeaders(meta.contentType, meta.fileName)).header("accept-ranges", "bytes").header("cache-control", "private, max-age=3600");
  if (range) {
    reply.code(206).header("content-range", `bytes ${range.start}-${range.end}/${meta.size}`).header("content-length", String(range.end - range.start + 1));
  } else {
    reply.header("content-length", String(meta.size));
  }
  if (request.method === "HEAD") {
    object.body.destroy();
    await reply.send();
    return;
  }
  await reply.send(object.body);
}
