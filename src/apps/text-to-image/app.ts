/**
 * `darkroom/sd-turbo`: text-to-image, image-to-image and realtime generation with the model pulled
 * as `sd-turbo` (an SD-Turbo export in the diffusers ONNX layout), on ONNX Runtime. Unavailable
 * until the model is pulled; the remedy names the command.
 * @module
 */
import { createTextToImageApp } from "./create-app.js";

export default createTextToImageApp();
