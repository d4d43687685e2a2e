import * as tf from "@tensorflow/tfjs";
import { loadUpscaleModel } from "./src/apps/upscale/model-loader.js";
for (const size of ["slim", "medium", "thick"] as const) {
  const t0 = performance.now();
  const m = await loadUpscaleModel(size, 4, console.log);
  const t1 = performance.now();
  const x = tf.randomUniform([1, 32, 32, 3], 0, m.valueRange);
  const y = m.layers.predict(x) as tf.Tensor;
  const d = await y.data();
  console.log(size, tf.getBackend(), "load", Math.round(t1 - t0), "ms; 32px infer", Math.round(performance.now() - t1), y.shape, d[0], tf.memory().numTensors);
}
