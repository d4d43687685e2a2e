/**
 * A realtime connection as fal's client opens one: a short-lived token from `POST /rest/tokens`
 * (a browser WebSocket cannot send the key as a header), then `ws(s)://{host}/{app}/{path}?fal_jwt_token=…`,
 * msgpack binary frames both ways, JSON text frames for control messages (docs/api.md, "Realtime WebSocket").
 * @module
 */
import { decode, encode } from "@msgpack/msgpack";
import { appIdOf, type Api } from "./api.js";
import { locToPath } from "./lib/schema-form.js";

export type RealtimeState = "disconnected" | "connecting" | "open" | "closed";

export interface RealtimeResult {
  /** 1 for the first message sent on this page, and so on. */
  seq: number;
  output: unknown;
  /** From send to the result frame, measured here, in seconds. */
  roundTrip: number;
  /** The server's own time for the message (its `timings` frame), in seconds. */
  serverTime: number | null;
  at: number;
}

export interface RealtimeError {
  seq: number | null;
  error: string;
  reason: string;
  at: number;
}

export interface RealtimeEvents {
  onState(state: RealtimeState, detail: string | null): void;
  onResult(result: RealtimeResult): void;
  onError(error: RealtimeError): void;
}

/** Tokens live for this long; a fresh one is fetched for every connection, since only the handshake checks it. */
const TOKEN_SECONDS = 120;

/** A `VALIDATION_ERROR`'s reason is the JSON of fal's `detail[]`: shown as `field: message`. */
export function describeReason(error: string, reason: string): string {
  if (error !== "VALIDATION_ERROR") return reason;
  try {
    const detail = JSON.parse(reason) as unknown;
    if (!Array.isArray(detail)) return reason;
    return detail
      .map((d: { loc?: (string | number)[]; msg?: string }) => `${Array.isArray(d.loc) ? locToPath(d.loc) || "input" : "input"}: ${d.msg ?? "invalid"}`)
      .join("; ");
  } catch {
    return reason;
  }
}

export function realtimeUrl(origin: string, endpointId: string, token: string): string {
  const url = new URL(`/${endpointId}`, origin);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  url.searchParams.set("fal_jwt_token", token);
  return url.toString();
}

interface Sent {
  seq: number;
  at: number;
}

/**
 * One WebSocket to one realtime endpoint. The server answers each message in order with either a
 * result (then a timings frame) or an `x-fal-error`, so a FIFO of what was sent pairs them up;
 * nothing is added to the input, which goes exactly as the form built it.
 */
export class RealtimeConnection {
  readonly #api: Api;
  readonly #endpointId: string;
  readonly #events: RealtimeEvents;
  #socket: WebSocket | null = null;
  #opening: Promise<WebSocket> | null = null;
  #inFlight: Sent[] = [];
  #seq = 0;
  #lastResult: RealtimeResult | null = null;
  #closedByUs = false;

  constructor(api: Api, endpointId: string, events: RealtimeEvents) {
    this.#api = api;
    this.#endpointId = endpointId;
    this.#events = events;
  }

  get inFlight(): number {
    return this.#inFlight.length;
  }

  async connect(): Promise<WebSocket> {
    if (this.#socket && this.#socket.readyState === WebSocket.OPEN) return this.#socket;
    if (this.#opening) return this.#opening;
    this.#closedByUs = false;
    this.#events.onState("connecting", null);
    this.#opening = this.#open().finally(() => {
      this.#opening = null;
    });
    return this.#opening;
  }

  async #open(): Promise<WebSocket> {
    let token: string;
    try {
      token = await this.#api.json<string>("POST", "/rest/tokens", { allowed_apps: [appIdOf(this.#endpointId)], token_expiration: TOKEN_SECONDS });
    } catch (err) {
      this.#events.onState("closed", `No token: ${err instanceof Error ? err.message : String(err)}`);
      throw err;
    }
    // Disconnected (or the page moved on) while the token was on its way: no socket to open.
    if (this.#closedByUs) {
      this.#events.onState("disconnected", null);
      throw new Error("Disconnected");
    }
    const socket = new WebSocket(realtimeUrl(window.location.origin, this.#endpointId, token));
    socket.binaryType = "arraybuffer";
    this.#socket = socket;
    return new Promise<WebSocket>((resolve, reject) => {
      socket.onopen = () => {
        this.#events.onState("open", null);
        resolve(socket);
      };
      socket.onmessage = (e: MessageEvent<ArrayBuffer | string>) => this.#onMessage(e.data);
      // The close event that follows says more than the error event, which carries no detail.
      socket.onerror = () => undefined;
      socket.onclose = (e) => {
        if (this.#socket === socket) this.#socket = null;
        const pending = this.#inFlight.length;
        this.#inFlight = [];
        const detail = this.#closedByUs ? null : `code ${e.code}${e.reason ? `: ${e.reason}` : ""}${pending > 0 ? `; ${pending} message${pending === 1 ? "" : "s"} unanswered` : ""}`;
        this.#events.onState(this.#closedByUs ? "disconnected" : "closed", detail);
        reject(new Error(`The connection closed before it opened (${detail ?? "closed"})`));
      };
    });
  }

  #onMessage(data: ArrayBuffer | string): void {
    const now = performance.now();
    if (typeof data !== "string") {
      const output = decode(new Uint8Array(data));
      const sent = this.#inFlight.shift();
      const result: RealtimeResult = { seq: sent?.seq ?? 0, output, roundTrip: sent ? (now - sent.at) / 1000 : 0, serverTime: null, at: Date.now() };
      this.#lastResult = result;
      this.#events.onResult(result);
      return;
    }
    let message: Record<string, unknown>;
    try {
      message = JSON.parse(data) as Record<string, unknown>;
    } catch {
      this.#events.onError({ seq: null, error: "BAD_FRAME", reason: data.slice(0, 200), at: Date.now() });
      return;
    }
    if (message["type"] === "x-fal-message" && message["action"] === "timings") {
      const last = this.#lastResult;
      if (last && typeof message["timing"] === "number") {
        last.serverTime = message["timing"];
        this.#events.onResult({ ...last });
      }
      return;
    }
    if (message["type"] === "x-fal-error" || message["status"] === "error") {
      const text = (v: unknown): string => (typeof v === "string" ? v : JSON.stringify(v) ?? "");
      const error = typeof message["error"] === "string" ? message["error"] : "ERROR";
      // Errors about the connection (not found, unauthorised, unavailable) answer no message in particular.
      const perMessage = error === "VALIDATION_ERROR" || error === "INTERNAL_ERROR" || error === "BAD_MESSAGE";
      const sent = perMessage ? this.#inFlight.shift() : undefined;
      this.#events.onError({ seq: sent?.seq ?? null, error, reason: describeReason(error, text(message["reason"] ?? message["error"] ?? "")), at: Date.now() });
    }
  }

  /** Sends one input, connecting first when needed; returns its sequence number. */
  async send(input: unknown): Promise<number> {
    const socket = await this.connect();
    const seq = ++this.#seq;
    this.#inFlight.push({ seq, at: performance.now() });
    socket.send(encode(input));
    return seq;
  }

  close(): void {
    this.#closedByUs = true;
    this.#socket?.close(1000);
    this.#socket = null;
  }
}
