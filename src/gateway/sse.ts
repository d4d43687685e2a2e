/**
 * A server-sent-events writer over a raw Node response. Fastify hands the socket over with
 * `reply.hijack()`, so headers and framing are ours.
 * @module
 */
import type { FastifyReply } from "fastify";

export interface SseStream {
  /** Sends `data` as JSON, on one `data:` line. */
  send(data: unknown, event?: string): void;
  /** Sends `text` as it is, a `data:` line for each of its lines (a client joins them back with newlines). */
  sendText(text: string, event?: string): void;
  close(): void;
  readonly closed: boolean;
  /** Called once when the client goes away or close() is called. */
  onClose(listener: () => void): void;
}

export function openSse(reply: FastifyReply, headers: Record<string, string> = {}): SseStream {
  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, {
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-cache, no-transform",
    connection: "keep-alive",
    "x-accel-buffering": "no",
    ...headers,
  });
  res.flushHeaders();
  let closed = false;
  const listeners: (() => void)[] = [];
  // Comments keep proxies from closing an idle stream during long runs.
  const keepAlive = setInterval(() => {
    if (!closed) res.write(": keep-alive\n\n");
  }, 15_000);
  keepAlive.unref();
  const finish = (): void => {
    if (closed) return;
    closed = true;
    clearInterval(keepAlive);
    for (const l of listeners) l();
  };
  res.on("close", finish);
  const write = (data: string, event: string | undefined): void => {
    if (closed) return;
    res.write(`${event ? `event: ${event}\n` : ""}data: ${data}\n\n`);
  };
  return {
    send(data, event) {
      write(JSON.stringify(data), event);
    },
    sendText(text, event) {
      write(text.replaceAll("\n", "\ndata: "), event);
    },
    close() {
      if (closed) return;
      res.end();
      finish();
    },
    get closed() {
      return closed;
    },
    onClose(listener) {
      if (closed) listener();
      else listeners.push(listener);
    },
  };
}
