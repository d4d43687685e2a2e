/**
 * Loading tfjs models from files on disk, for apps whose weights ship inside npm packages. tfjs's
 * own `file://` loader is part of tfjs-node, which is not installed (it downloads libtensorflow, so
 * it cannot be installed offline).
 * @module
 */
import { readFile } from "node:fs/promises";
import path from "node:path";
import type * as tf from "@tensorflow/tfjs";

/** The parts of a tfjs `model.json` (graph or layers format) that loading needs. */
interface ModelJson {
  modelTopology: object;
  format?: string;
  generatedBy?: string;
  convertedBy?: string;
  signature?: object;
  weightsManifest: { paths: string[]; weights: tf.io.WeightsManifestEntry[] }[];
}

/**
 * A tfjs IOHandler that reads a `model.json` and its weight shards, for `tf.loadGraphModel` and
 * `tf.loadLayersModel` alike. The `signature` is kept when the file has one: graph models such as
 * RVM address their inputs and outputs by the names it declares.
 */
export function modelFileHandler(jsonPath: string): tf.io.IOHandler {
  return {
    async load(): Promise<tf.io.ModelArtifacts> {
      const json = JSON.parse(await readFile(jsonPath, "utf8")) as ModelJson;
      const dir = path.dirname(jsonPath);
      const weightSpecs: tf.io.WeightsManifestEntry[] = [];
      const shards: Buffer[] = [];
      // Shards are concatenated in manifest order: that is the order the weight specs index into.
      for (const group of json.weightsManifest) {
        weightSpecs.push(...group.weights);
        for (const shard of group.paths) shards.push(await readFile(path.join(dir, shard)));
      }
      const all = Buffer.concat(shards);
      return {
        modelTopology: json.modelTopology,
        weightSpecs,
        // A Buffer may be a view into Node's shared pool; tfjs needs an ArrayBuffer holding exactly the weights.
        weightData: all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength),
        ...(json.format !== undefined ? { format: json.format } : {}),
        ...(json.generatedBy !== undefined ? { generatedBy: json.generatedBy } : {}),
        ...(json.convertedBy !== undefined ? { convertedBy: json.convertedBy } : {}),
        ...(json.signature !== undefined ? { signature: json.signature } : {}),
      };
    },
  };
}
