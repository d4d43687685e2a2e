/**
 * A local webhook receiver for the tests of webhooks (fal's, Replicate's): it answers every delivery
 * 200 and keeps its headers, its exact body bytes (what a signature covers) and its JSON body.
 * @module
 */
import { createServer, type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";

export interface WebhookDelivery<Body> {
  headers: IncomingHttpHeaders;
  raw: Buffer;
  body: Body;
}

export interface WebhookReceiver<Body> {
  port: number;
  /** Every delivery so far, in the order they came. */
  deliveries: WebhookDelivery<Body>[];
  close(): Promise<void>;
}

/** Starts a receiver on a free loopback port; `Body` is what its deliveries' JSON is taken to be. */
export async function startWebhookReceiver<Body = unknown>(): Promise<WebhookReceiver<Body>> {
  const deliveries: WebhookDelivery<Body>[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const raw = Buffer.concat(chunks);
      deliveries.push({ headers: req.headers, raw, body: JSON.parse(raw.toString("utf8")) as Body });
      res.writeHead(200, { "content-type": "application/json" }).end("{}");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as AddressInfo).port,
    deliveries,
    async close() {
      // The platform's webhook sender may hold a keep-alive connection open.
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
