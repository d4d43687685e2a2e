/**
 * A `multipart/form-data` body (OpenAI's file uploads: transcriptions, image edits), read with busboy
 * after the caller is authenticated, within limits: a few small fields, at most two files of at most
 * `maxFileBytes` together, kept in memory (small media files, passed on to an app as data URIs).
 * @module
 */
import Busboy from "busboy";
import type { FastifyRequest } from "fastify";
import { PlatformError } from "../core/errors.js";

export interface FormFile {
  data: Buffer;
  fileName: string;
  contentType: string;
}

export interface FormData {
  /** Every value of each field, in order (`timestamp_granularities[]` comes several times). */
  fields: Map<string, string[]>;
  files: Map<string, FormFile>;
}

const MAX_FIELDS = 50;
const MAX_FIELD_BYTES = 64 * 1024;
const MAX_FILES = 2;

export function readFormData(request: FastifyRequest, limits: { maxFileBytes: number }): Promise<FormData> {
  const type = String(request.headers["content-type"] ?? "");
  if (!type.toLowerCase().startsWith("multipart/form-data")) {
    return Promise.reject(new PlatformError("ERR_BAD_REQUEST", { message: "Send multipart/form-data" }));
  }
  return new Promise((resolve, reject) => {
    let failed = false;
    const fail = (error: PlatformError): void => {
      if (failed) return;
      failed = true;
      request.raw.unpipe();
      request.raw.resume(); // drain what is left so the answer can be sent
      reject(error);
    };
    let parser: Busboy.Busboy;
    try {
      parser = Busboy({ headers: request.headers, limits: { fields: MAX_FIELDS, fieldSize: MAX_FIELD_BYTES, files: MAX_FILES, fileSize: limits.maxFileBytes, parts: MAX_FIELDS + MAX_FILES } });
    } catch (err) {
      reject(new PlatformError("ERR_BAD_REQUEST", { message: `Malformed multipart/form-data: ${err instanceof Error ? err.message : String(err)}` }));
      return;
    }
    const form: FormData = { fields: new Map(), files: new Map() };
    let fileBytes = 0;
    parser.on("field", (name, value, info) => {
      if (info.valueTruncated) return fail(new PlatformError("ERR_BAD_REQUEST", { message: `Field ${name} is over ${MAX_FIELD_BYTES} bytes` }));
      const values = form.fields.get(name);
      if (values) values.push(value);
      else form.fields.set(name, [value]);
    });
    parser.on("file", (name, stream, info) => {
      const chunks: Buffer[] = [];
      const tooLarge = (): void => fail(new PlatformError("ERR_FILE_TOO_LARGE", { message: `The files are over ${limits.maxFileBytes} bytes together` }));
      stream.on("data", (chunk: Buffer) => {
        fileBytes += chunk.length;
        if (fileBytes > limits.maxFileBytes) return tooLarge();
        if (!failed) chunks.push(chunk);
      });
      stream.on("limit", tooLarge);
      stream.on("end", () => {
        if (!failed) form.files.set(name, { data: Buffer.concat(chunks), fileName: info.filename ?? name, contentType: info.mimeType || "application/octet-stream" });
      });
    });
    parser.on("filesLimit", () => fail(new PlatformError("ERR_BAD_REQUEST", { message: `At most ${MAX_FILES} files` })));
    parser.on("fieldsLimit", () => fail(new PlatformError("ERR_BAD_REQUEST", { message: `At most ${MAX_FIELDS} fields` })));
    parser.on("partsLimit", () => fail(new PlatformError("ERR_BAD_REQUEST", { message: "Too many parts" })));
    parser.on("error", (err: Error) => fail(new PlatformError("ERR_BAD_REQUEST", { message: `Malformed multipart/form-data: ${err.message}` })));
    parser.on("close", () => {
      if (!failed) resolve(form);
    });
    request.raw.on("error", (err) => fail(new PlatformError("ERR_BAD_REQUEST", { message: err.message })));
    request.raw.pipe(parser);
  });
}
