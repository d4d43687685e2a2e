"""Text to image with diffusers, in fal's input and output shape (FLUX.1 [schnell] or SDXL-Turbo).

    pip install ./python torch diffusers transformers accelerate sentencepiece protobuf pillow
    DARKROOM_T2I_MODEL=black-forest-labs/FLUX.1-schnell \\
      python -m darkroom_runner --gateway http://GATEWAY:8787 --token "$TOKEN" \\
      --app python/examples/diffusers_text_to_image.py

Input: ``prompt, negative_prompt, image_size (a preset or {width, height}), num_inference_steps,
guidance_scale, seed, num_images, enable_safety_checker, output_format, sync_mode``; output:
``{images: [{url, width, height, content_type, file_name, file_size}], seed, timings, has_nsfw_concepts, prompt}``
(docs/text-to-image.md). Progress is reported per denoising step through the pipeline's step callback,
and a cancelled request stops at the next step.

torch and diffusers are imported in setup(), so that this module imports, and its manifest builds,
on machines without them (``python -m darkroom_runner --app ... --manifest``).

Environment:
  DARKROOM_T2I_MODEL     black-forest-labs/FLUX.1-schnell (default) or stabilityai/sdxl-turbo, or a
                         local folder with either; FLUX.1 schnell needs ~33 GB of GPU memory in bf16
                         (set DARKROOM_T2I_CPU_OFFLOAD=1 to fit a smaller GPU), SDXL-Turbo ~8 GB.
  DARKROOM_T2I_APP_ID    the app id to serve (default darkroom-py/text-to-image)
  DARKROOM_T2I_DEVICE    cuda (default when available), mps or cpu
  DARKROOM_T2I_SAFETY_CHECKER  the safety checker's weights (default CompVis/stable-diffusion-safety-checker),
                         loaded on the first request that enables it
"""

from __future__ import annotations

import io
import os
import random
import time
from typing import Any

from darkroom_runner import App, Cancelled, endpoint

MODEL = os.environ.get("DARKROOM_T2I_MODEL", "black-forest-labs/FLUX.1-schnell")
IS_FLUX = "flux" in MODEL.lower()

# fal's presets (toolkit/image/image.py).
IMAGE_SIZE_PRESETS = {
    "square_hd": (1024, 1024),
    "square": (512, 512),
    "portrait_4_3": (768, 1024),
    "portrait_16_9": (576, 1024),
    "landscape_4_3": (1024, 768),
    "landscape_16_9": (1024, 576),
}
# Seeds stay within JS's safe integers, which fal's own examples do not (docs/text-to-image.md).
MAX_SEED = 2**53 - 1

INPUT_SCHEMA: dict = {
    "type": "object",
    "properties": {
        "prompt": {"type": "string", "minLength": 1, "maxLength": 10_000, "description": "The prompt to generate an image from"},
        "negative_prompt": {"type": "string", "maxLength": 10_000, "default": "", "description": "What the image should not show (SDXL-Turbo only; FLUX ignores it)"},
        "image_size": {
            "description": "A preset, or {width, height}",
            "default": "landscape_4_3" if IS_FLUX else "square",
            "anyOf": [
                {"type": "string", "enum": list(IMAGE_SIZE_PRESETS)},
                {
                    "type": "object",
                    "properties": {
                        "width": {"type": "integer", "minimum": 64, "maximum": 2048, "default": 512},
                        "height": {"type": "integer", "minimum": 64, "maximum": 2048, "default": 512},
                    },
                    "additionalProperties": False,
                },
            ],
        },
        "num_inference_steps": {"type": "integer", "minimum": 1, "maximum": 12 if IS_FLUX else 8, "default": 4 if IS_FLUX else 2},
        # schnell and Turbo are distilled to run without classifier-free guidance (schnell has no
        # guidance embedding either: diffusers ignores the value for it), so 0 is their default.
        "guidance_scale": {"type": "number", "minimum": 0, "maximum": 20, "default": 0.0},
        "seed": {"type": "integer", "minimum": 0, "maximum": MAX_SEED, "description": "Same seed and input, same image"},
        "num_images": {"type": "integer", "minimum": 1, "maximum": 4, "default": 1},
        "enable_safety_checker": {"type": "boolean", "default": True, "description": "Check the images with Stable Diffusion's safety checker; flagged ones come back black"},
        "output_format": {"type": "string", "enum": ["jpeg", "png"], "default": "jpeg"},
        "sync_mode": {"type": "boolean", "default": False, "description": "Return the images inline as data: URIs"},
    },
    "required": ["prompt"],
    "additionalProperties": False,
}

OUTPUT_SCHEMA: dict = {
    "type": "object",
    "properties": {
        "images": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "url": {"type": "string"},
                    "width": {"type": "integer"},
                    "height": {"type": "integer"},
                    "content_type": {"type": "string"},
                    "file_name": {"type": "string"},
                    "file_size": {"type": "integer"},
                },
                "required": ["url", "width", "height", "content_type"],
            },
        },
        "seed": {"type": "integer"},
        "timings": {"type": "object", "properties": {"inference": {"type": "number"}}},
        "has_nsfw_concepts": {"type": "array", "items": {"type": "boolean"}, "description": "Per image, when enable_safety_checker was true"},
        "prompt": {"type": "string"},
    },
    "required": ["images", "seed", "timings", "prompt"],
}


def image_dimensions(image_size: Any) -> tuple[int, int]:
    """(width, height) from a preset name or {width, height}, rounded down to a multiple of 16,
    which both FLUX's packed latents and SDXL's VAE need."""
    if isinstance(image_size, str):
        width, height = IMAGE_SIZE_PRESETS[image_size]
    else:
        width, height = int(image_size.get("width", 512)), int(image_size.get("height", 512))
    return max(64, width - width % 16), max(64, height - height % 16)


class TextToImage(App):
    """Text to image with FLUX.1 [schnell] or SDXL-Turbo through diffusers."""

    id = os.environ.get("DARKROOM_T2I_APP_ID", "darkroom-py/text-to-image")
    version = "1.0.0"
    metadata = {
        "display_name": "FLUX.1 [schnell] (diffusers)" if IS_FLUX else "SDXL-Turbo (diffusers)",
        "category": "text-to-image",
        "description": f"Text to image with {MODEL} through diffusers, served by a Python runner.",
        "tags": ["text-to-image", "diffusers", "python"],
        "license": "apache-2.0" if IS_FLUX else "Stability AI Community License (see the model card)",
    }
    # One image job per GPU at a time; loading the weights takes minutes on a cold machine.
    knobs = {"max_multiplexing": 1, "request_timeout": 600, "startup_timeout": 1800, "keep_alive": 600}

    def setup(self) -> None:
        import torch  # noqa: PLC0415 (lazy: the manifest must build without torch)
        from diffusers import AutoPipelineForText2Image  # noqa: PLC0415

        self.torch = torch
        device = os.environ.get("DARKROOM_T2I_DEVICE") or ("cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu")
        dtype = torch.float32 if device == "cpu" else (torch.bfloat16 if IS_FLUX else torch.float16)
        options: dict[str, Any] = {"torch_dtype": dtype}
        if not IS_FLUX and device != "cpu":
            options["variant"] = "fp16"
        self.pipe = AutoPipelineForText2Image.from_pretrained(MODEL, **options)
        if os.environ.get("DARKROOM_T2I_CPU_OFFLOAD") == "1" and device == "cuda":
            self.pipe.enable_model_cpu_offload()
        else:
            self.pipe.to(device)
        self.pipe.set_progress_bar_config(disable=True)
        self.device = device
        self.checker: Any = None
        self.checker_processor: Any = None

    def safety_check(self, images: list, ctx) -> list[bool]:
        """Stable Diffusion's CLIP-based safety checker (neither FLUX nor SDXL ship one): a verdict per
        image; flagged images are replaced by black ones, as fal does."""
        import numpy  # noqa: PLC0415
        from PIL import Image  # noqa: PLC0415

        if self.checker is None:
            from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker  # noqa: PLC0415
            from transformers import CLIPImageProcessor  # noqa: PLC0415

            repo = os.environ.get("DARKROOM_T2I_SAFETY_CHECKER", "CompVis/stable-diffusion-safety-checker")
            ctx.log(f"safety checker: loading {repo}")
            self.checker = StableDiffusionSafetyChecker.from_pretrained(repo).to(self.device)
            self.checker_processor = CLIPImageProcessor.from_pretrained(repo)
        clip_input = self.checker_processor(images=images, return_tensors="pt").pixel_values.to(self.device)
        arrays = numpy.stack([numpy.asarray(image, dtype=numpy.float32) / 255.0 for image in images])
        with self.torch.no_grad():
            _, flagged = self.checker(images=arrays, clip_input=clip_input)
        for index, bad in enumerate(flagged):
            if bad:
                images[index] = Image.new("RGB", images[index].size)
        return [bool(bad) for bad in flagged]

    @endpoint("/", input_schema=INPUT_SCHEMA, output_schema=OUTPUT_SCHEMA, description="Generate images from a prompt")
    def generate(self, input: dict, ctx) -> dict:
        torch = self.torch
        width, height = image_dimensions(input["image_size"])
        seed = input.get("seed")
        if seed is None:
            seed = random.randint(0, 2**32 - 1)
        steps = input["num_inference_steps"]
        count = input["num_images"]
        ctx.log(f"{MODEL}: {count} image(s) of {width}x{height}, {steps} steps, seed {seed}")

        def on_step(pipe: Any, step: int, timestep: Any, callback_kwargs: dict) -> dict:
            ctx.progress(step + 1, steps, f"denoising step {step + 1} of {steps}")
            if ctx.cancelled.is_set():
                # diffusers checks this flag before each step; the loop ends early and we raise after.
                pipe._interrupt = True
            return callback_kwargs

        call: dict[str, Any] = {
            "prompt": input["prompt"],
            "width": width,
            "height": height,
            "num_inference_steps": steps,
            "guidance_scale": input["guidance_scale"],
            "num_images_per_prompt": count,
            # A CPU generator gives the same image for a seed on every device.
            "generator": torch.Generator("cpu").manual_seed(seed),
            "callback_on_step_end": on_step,
        }
        if IS_FLUX:
            call["max_sequence_length"] = 256
        elif input["negative_prompt"]:
            call["negative_prompt"] = input["negative_prompt"]
        started = time.perf_counter()
        with torch.inference_mode():
            result = self.pipe(**call)
        inference = time.perf_counter() - started
        if ctx.cancelled.is_set():
            raise Cancelled()

        pictures = list(result.images)
        # Absent when off: an all-false list would claim a check that did not happen.
        flagged = self.safety_check(pictures, ctx) if input["enable_safety_checker"] else None
        content_type = "image/png" if input["output_format"] == "png" else "image/jpeg"
        images = []
        for index, image in enumerate(pictures):
            buffer = io.BytesIO()
            image.save(buffer, format="PNG" if content_type == "image/png" else "JPEG", quality=95)
            name = f"image-{index}.{'png' if content_type == 'image/png' else 'jpg'}"
            images.append(ctx.upload(buffer.getvalue(), content_type, name, width=image.width, height=image.height))
        ctx.bill(width * height * count / 1_000_000)
        output: dict[str, Any] = {"images": images, "seed": seed, "timings": {"inference": inference}, "prompt": input["prompt"]}
        if flagged is not None:
            output["has_nsfw_concepts"] = flagged
        return output
