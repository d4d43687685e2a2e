/**
 * Scopes whose routes take request bodies as they come: uploads, which stream into storage.
 * @module
 */
import type { FastifyInstance } from "fastify";

/** Leaves every body in `scope` an unread stream, whatever its content type (a JSON file too). */
export function takeRawBodies(scope: FastifyInstance): void {
  scope.removeAllContentTypeParsers();
  scope.addContentTypeParser("*", (_request, _payload, done) => done(null, undefined));
}
