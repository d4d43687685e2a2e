/**
 * What the Python tests share: the machine's Pythons that can run fal apps, and a PNG's size.
 * @module
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";

/** The machine's Pythons that have pydantic, one per pydantic version, with that version. */
export function pythonsWithPydantic(): { python: string; pydantic: string }[] {
  const found = new Map<string, string>();
  for (const python of [process.env["PYTHON"] ?? "python3", "/usr/bin/python3"]) {
    try {
      const version = execFileSync(python, ["-c", "import pydantic; print(pydantic.VERSION)"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
      if (!found.has(version)) found.set(version, python);
    } catch {
      // no such interpreter, or no pydantic for it
    }
  }
  return [...found].map(([pydantic, python]) => ({ python, pydantic }));
}

/** A PNG's width and height, from its header (asserting it is a PNG). */
export function pngSize(bytes: Buffer): { width: number; height: number } {
  assert.deepEqual(bytes.subarray(0, 8), Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), "a PNG");
  return { width: bytes.readUInt32BE(16), height: bytes.readUInt32BE(20) };
}
