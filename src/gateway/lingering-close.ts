/**
 * Closing a connection whose request body was not read, the way web servers do it. Answering early
 * (401 before the body, 413 past the limit) and then destroying the socket makes the kernel reset
 * the connection while the client is still sending, and a reset can throw away the answer before
 * the client has read it. Instead: send the answer with `Connection: close`, shut our side (FIN),
 * keep reading and discarding what still arrives for a bounded time and size, then close.
 * @module
 */
import type { Socket } from "node:net";
import type { FastifyReply } from "fastify";

/** How long, and how much, a refused body is still read and thrown away before the socket closes. */
export const LINGER_MS = 2_000;
export const LINGER_BYTES = 4 * 1024 * 1024;

const lingering = new WeakSet<Socket>();

/** Makes the connection close after this reply, lingering as above. Call before the reply is sent. */
export function closeAfterReply(reply: FastifyReply): void {
  const socket = reply.raw.socket;
  reply.header("connection", "close");
  if (!socket || lingering.has(socket)) return;
  lingering.add(socket);
  // Node ends a `Connection: close` response with socket.destroySoon(): our FIN, then an immediate
  // destroy. Replaced on this one socket by the lingering close.
  socket.destroySoon = function lingeringClose(this: Socket): void {
    let discarded = 0;
    const done = (): void => {
      clearTimeout(timer);
      this.destroy();
    };
    const timer = setTimeout(done, LINGER_MS);
    timer.unref();
    this.on("data", (chunk: Buffer) => {
      discarded += chunk.length;
      if (discarded > LINGER_BYTES) done();
    });
    this.once("end", done);
    this.once("close", () => clearTimeout(timer));
    this.end();
    this.resume();
  };
}
