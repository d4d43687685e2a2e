/**
 * Reads a request body whole, into one buffer of the announced length. Fastify's own reader keeps
 * every chunk and joins them at the end, so a large body briefly costs twice its size; with
 * Content-Length known (what fal's clients send), the bytes go straight into their final place.
 * Chunked bodies, whose size is unknown until they end, are joined the same way Fastify does.
 * Limits as Fastify's: over `limit` bytes is a 413 (announced or received), a body that ends
 * short of its Content-Length a 400.
 * @module
 */
import type { Readable } from "node:stream";
import { PlatformError } from "../core/errors.js";

export function readWholeBody(payload: Readable, contentLengthHeader: string | undefined, limit: number, done: (error: Error | null, body?: Buffer) => void): void {
  const announced = contentLengthHeader === undefined ? NaN : Number(contentLengthHeader);
  if (announced > limit) return done(new PlatformError("ERR_BODY_TOO_LARGE"));
  const sized = Number.isSafeInteger(announced) && announced >= 0;
  const whole = sized ? Buffer.allocUnsafe(announced) : null;
  const chunks: Buffer[] = [];
  let received = 0;

  const stop = (): void => {
    payload.removeListener("data", onData);
    payload.removeListener("end", onEnd);
    payload.removeListener("error", onError);
  };
  const onData = (chunk: Buffer | string): void => {
    const bytes = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
    if (received + bytes.length > limit || (whole && received + bytes.length > whole.length)) {
      stop();
      // More than the limit, or more than announced (which Node's parser does not let through
      // for HTTP/1.1, but a body stream from elsewhere might).
      return done(received + bytes.length > limit ? new PlatformError("ERR_BODY_TOO_LARGE") : lengthMismatch());
    }
    if (whole) bytes.copy(whole, received);
    else chunks.push(bytes);
    received += bytes.length;
  };
  const onEnd = (): void => {
    stop();
    if (whole && received !== whole.length) return done(lengthMismatch());
    done(null, whole ?? Buffer.concat(chunks, received));
  };
  const onError = (error: Error & { statusCode?: number }): void => {
    stop();
    done(new PlatformError("ERR_BAD_REQUEST", { message: `The request body could not be read: ${error.message}`, cause: error }));
  };
  payload.on("data", onData);
  payload.on("end", onEnd);
  payload.on("error", onError);
  payload.resume();
}

function lengthMismatch(): PlatformError {
  return new PlatformError("ERR_BAD_REQUEST", { message: "The request body does not match its Content-Length" });
}
