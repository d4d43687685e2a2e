/**
 * What A/B benchmarks share: the previous code checked out in a temporary git worktree (run in the
 * same session as this checkout, so ratios hold on a noisy machine), and cleanup that runs on the way
 * out, after errors and on Ctrl-C too.
 * @module
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, symlinkSync } from "node:fs";
import os from "node:os";
import path from "node:path";

/** Steps to undo on the way out, last registered first; each runs once, whatever fails on the way. */
export class Cleanups {
  readonly #steps: (() => Promise<void> | void)[] = [];
  #running: Promise<void> | null = null;

  /** Runs the cleanups on SIGINT and SIGTERM, then exits 130; `what` says what is being cleaned up. */
  constructor(what: string) {
    for (const signal of ["SIGINT", "SIGTERM"] as const) {
      process.once(signal, () => {
        console.error(`\n${signal}: ${what}`);
        void this.run().finally(() => process.exit(130));
      });
    }
  }

  push(step: () => Promise<void> | void): void {
    this.#steps.push(step);
  }

  /** Forgets the step registered last (it was done by hand). */
  pop(): void {
    this.#steps.pop();
  }

  run(): Promise<void> {
    this.#running ??= (async () => {
      for (let step = this.#steps.pop(); step; step = this.#steps.pop()) {
        try {
          await step();
        } catch (err) {
          console.error("cleanup:", err);
        }
      }
    })();
    return this.#running;
  }
}

function git(root: string, args: readonly string[]): string {
  const out = spawnSync("git", ["-C", root, ...args], { encoding: "utf8" });
  if (out.status !== 0) throw new Error(`git ${args.join(" ")} failed: ${out.stderr}`);
  return out.stdout.trim();
}

/**
 * `ref` of the checkout at `root`, checked out in a temporary worktree that uses the checkout's
 * node_modules; `cleanups` removes it.
 */
export function addBaselineWorktree(root: string, ref: string, cleanups: Cleanups): { commit: string; root: string } {
  const commit = git(root, ["rev-parse", "--verify", `${ref}^{commit}`]);
  const dir = mkdtempSync(path.join(os.tmpdir(), "darkroom-bench-baseline-"));
  const tree = path.join(dir, "tree");
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  git(root, ["worktree", "add", "--detach", tree, commit]);
  cleanups.push(() => {
    // The link goes first, so that nothing below can reach the checkout's node_modules through it.
    rmSync(path.join(tree, "node_modules"), { force: true });
    git(root, ["worktree", "remove", "--force", tree]);
  });
  symlinkSync(path.join(root, "node_modules"), path.join(tree, "node_modules"), "dir");
  return { commit, root: tree };
}

/** The output of `git` in the checkout at `root` (for recording what a run measured). */
export function gitOutput(root: string, args: readonly string[]): string {
  return git(root, args);
}
