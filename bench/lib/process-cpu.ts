/**
 * CPU time of a process and everything it started (runners, their helpers), read from `/proc`: what
 * a server spent on some work, less sensitive than wall time to other work on a shared machine.
 * Linux only; processes that exited in between are not counted.
 * @module
 */
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";

let ticksPerSecond: number | undefined;

function clockTicks(): number {
  ticksPerSecond ??= Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
  return ticksPerSecond;
}

/** pid → [parent pid, user + system ticks] for every process now alive. */
function processTable(): Map<number, [number, number]> {
  const table = new Map<number, [number, number]>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, "utf8");
    } catch {
      continue; // gone meanwhile
    }
    // The command name may hold spaces and parentheses: the fields follow its last ")".
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const ppid = Number(fields[1]);
    const ticks = Number(fields[11]) + Number(fields[12]);
    table.set(Number(entry), [ppid, ticks]);
  }
  return table;
}

/** Milliseconds of CPU used so far by `rootPid` and its living descendants. */
export function processTreeCpuMs(rootPid: number): number {
  const table = processTable();
  const children = new Map<number, number[]>();
  for (const [pid, [ppid]] of table) children.set(ppid, [...(children.get(ppid) ?? []), pid]);
  let ticks = 0;
  const pending = [rootPid];
  for (let pid = pending.pop(); pid !== undefined; pid = pending.pop()) {
    ticks += table.get(pid)?.[1] ?? 0;
    pending.push(...(children.get(pid) ?? []));
  }
  return (ticks * 1000) / clockTicks();
}
