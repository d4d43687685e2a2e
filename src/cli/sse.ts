/**
 * A server-sent-events reader over a fetch response body (the WHATWG event-stream format, without
 * reconnection: the caller decides what a dropped stream means).
 * @module
 */

export interface SseEvent {
  event: string;
  data: string;
}

/** Yields each event as it completes; comments (`: keep-alive`) and `id:`/`retry:` lines are skipped. */
export async function* readSse(body: ReadableStream<Uint8Array>): AsyncGenerator<SseEvent> {
  const decoder = new TextDecoder();
  let buffer = "";
  let event = "";
  let data: string[] = [];
  const reader = body.getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      buffer += done ? decoder.decode() : decoder.decode(value, { stream: true });
      let newline: number;
      while ((newline = buffer.search(/\r\n|\r|\n/)) >= 0) {
        const line = buffer.slice(0, newline);
        // A lone \r at the end of the buffer may be the first half of \r\n: wait for more.
        if (buffer[newline] === "\r" && newline === buffer.length - 1 && !done) break;
        buffer = buffer.slice(newline + (buffer.startsWith("\r\n", newline) ? 2 : 1));
        if (line === "") {
          if (data.length > 0) yield { event: event || "message", data: data.join("\n") };
          event = "";
          data = [];
          continue;
        }
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? "" : line.slice(colon + 1);
        if (value.startsWith(" ")) value = value.slice(1);
        if (field === "data") data.push(value);
        else if (field === "event") event = value;
      }
      if (done) break;
    }
  } finally {
    // Stops the download when the caller leaves early (the COMPLETED event, a cancel).
    await reader.cancel().catch(() => undefined);
  }
}
