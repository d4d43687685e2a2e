/**
 * What a pull that cannot reach the Hub (offline, a firewall, no DNS) tells the user: the other
 * sources `darkroom models pull` takes, which need no connection to huggingface.co.
 * @module
 */
import { DEFAULT_HF_ENDPOINT } from "./sources.js";

export interface HubAlternativesInput {
  /** `org/name` as given. */
  repo: string;
  /** The Hub endpoint that was tried (`HF_ENDPOINT` or the public Hub). */
  endpoint: string;
  /** The name the model would be pulled under. */
  name: string;
}

/** Lines to append to the "cannot reach" message: one source per line, with the command that uses it. */
export function hubAlternatives({ repo, endpoint, name }: HubAlternativesInput): string {
  const folder = repo.split("/")[1] ?? name;
  const rows: [string, string][] = [
    ["a folder with the repository's files", `darkroom models pull ./path/to/${folder} --name ${name}`],
    [
      endpoint === DEFAULT_HF_ENDPOINT ? "a Hub mirror" : `another Hub mirror (HF_ENDPOINT is ${endpoint})`,
      `HF_ENDPOINT=https://<mirror> darkroom models pull ${repo} --name ${name}`,
    ],
    [
      "another Darkroom gateway that has it",
      `DARKROOM_GATEWAY=http://<gateway>:8787 DARKROOM_RUNNER_TOKEN=<token> darkroom models pull gateway:<its name there> --name ${name}`,
    ],
  ];
  const width = Math.max(...rows.map(([what]) => what.length)) + 1;
  return ["Without the Hub, pull the model from:", ...rows.map(([what, command]) => `  ${`${what}:`.padEnd(width)}  ${command}`)].join("\n");
}
