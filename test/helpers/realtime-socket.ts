/**
 * fal's realtime WebSocket from a test: a raw socket that collects its answers, and the official
 * client's `realtime.connect` pointed at a test server.
 * @module
 */
import { decode } from "@msgpack/msgpack";
import WebSocket from "ws";

export interface RealtimeFrame {
  binary: boolean;
  value: any;
}

/**
 * Opens `/{appId}/realtime` with an admin or API key. `answers()` are the frames that answer a
 * message: results (msgpack) and `x-fal-error` control frames, in order; timings frames left out.
 */
export async function openRealtime(baseUrl: string, appId: string, authorization: string): Promise<{ socket: WebSocket; answers: () => RealtimeFrame[] }> {
  const socket = new WebSocket(`${baseUrl.replace(/^http/, "ws")}/${appId}/realtime`, { headers: { authorization } });
  await new Promise<void>((resolve, reject) => {
    socket.once("open", () => resolve());
    socket.once("error", reject);
  });
  const frames: RealtimeFrame[] = [];
  socket.on("message", (data: Buffer, isBinary: boolean) => frames.push({ binary: isBinary, value: isBinary ? decode(data) : JSON.parse(data.toString("utf8")) }));
  return { socket, answers: () => frames.filter((f) => f.binary || f.value.type === "x-fal-error") };
}

/**
 * Runs `body` with the fal client's realtime connections going to `baseUrl`: Node 20 has no global
 * WebSocket, and the client connects to wss://fal.run. Its default token provider's deprecation
 * notice is kept out of the test output.
 */
export async function withFalRealtimeAt<T>(baseUrl: string, body: () => Promise<T>): Promise<T> {
  const wsBase = baseUrl.replace(/^http/, "ws");
  class LocalWebSocket extends WebSocket {
    constructor(url: string | URL, protocols?: string | string[]) {
      super(String(url).replace("wss://fal.run", wsBase), protocols);
    }
  }
  const globals = globalThis as { WebSocket?: unknown };
  const original = globals.WebSocket;
  const originalWarn = console.warn;
  globals.WebSocket = LocalWebSocket;
  console.warn = () => undefined;
  try {
    return await body();
  } finally {
    globals.WebSocket = original;
    console.warn = originalWarn;
  }
}
