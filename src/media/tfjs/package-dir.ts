/**
 * Where an installed npm package lives, for apps that read model files shipped inside packages.
 * @module
 */
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

const require = createRequire(import.meta.url);

/**
 * Directory of an installed package, found through Node's resolver so that hoisting and workspaces
 * work. Resolving `<name>/package.json` fails for packages whose `exports` map omits it (the
 * UpscalerJS and face-api packages), so the entry point is resolved and the walk goes up to the
 * package.json that carries the name.
 */
export function packageDir(name: string): string {
  let dir = path.dirname(require.resolve(name));
  for (;;) {
    const manifest = path.join(dir, "package.json");
    if (existsSync(manifest) && (JSON.parse(readFileSync(manifest, "utf8")) as { name?: string }).name === name) {
      return dir;
    }
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`cannot find the package directory of ${name}`);
    dir = parent;
  }
}
