"""Text to image with diffusers, written as a fal app (FLUX.1 [schnell] or SDXL-Turbo).

The same file deploys on fal (``fal deploy diffusers_text_to_image.py::TextToImage``) and is served
by Darkroom as it is, by the gateway's scheduler or by a runner started by hand:

    pip install './python[fal]' torch diffusers transformers accelerate sentencepiece protobuf pillow
    DARKROOM_T2I_MODEL=black-forest-labs/FLUX.1-schnell \\
      npx darkroom serve --apps python/examples/diffusers_text_to_image.py::TextToImage
    # or, on a GPU machine of its own:
    python -m darkroom_runner --gateway http://GATEWAY:8787 --token "$TOKEN" \\
      --app python/examples/diffusers_text_to_image.py::TextToImage

Input: ``prompt, negative_prompt, image_size (a preset or {width, height}), num_inference_steps,
guidance_scale, seed, num_images, enable_safety_checker, output_format, sync_mode``; output:
``{images: [{url, width, height, content_type, file_name, file_size}], seed, timings, has_nsfw_concepts, prompt}``
(docs/text-to-image.md). On Darkroom each denoising step is reported as progress, a cancelled request
stops at the next step and the images' megapixels are billed; on fal those hooks are absent and the
app runs without them.

torch and diffusers are imported in setup(), so that this module imports, and its manifest builds,
on machines without them (``python -m darkroom_runner --app ... --manifest``); there the app is
listed as unavailable, with the pip command that would install what is missing.

Environment:
  DARKROOM_T2I_MODEL     black-forest-labs/FLUX.1-schnell (default) or stabilityai/sdxl-turbo, or a
                         local folder with either; FLUX.1 schnell needs ~33 GB of GPU memory in bf16
                         (set DARKROOM_T2I_CPU_OFFLOAD=1 to fit a smaller GPU), SDXL-Turbo ~8 GB.
  DARKROOM_T2I_APP_ID    the app id to serve (default darkroom-py/text-to-image)
  DARKROOM_T2I_DEVICE    cuda (default when available), mps or cpu
  DARKROOM_T2I_SAFETY_CHECKER  the safety checker's weights (default CompVis/stable-diffusion-safety-checker),
                         loaded on the first request that enables it
"""

import io
import os
import random
import time
from typing import Any, List, Literal, Optional

from pydantic import BaseModel, Field

import fal
from fal.toolkit import Image, ImageSize, ImageSizeInput, get_image_size

MODEL = os.environ.get("DARKROOM_T2I_MODEL", "black-forest-labs/FLUX.1-schnell")
IS_FLUX = "flux" in MODEL.lower()
# Seeds stay within JS's safe integers, which fal's own examples do not (docs/text-to-image.md).
MAX_SEED = 2**53 - 1


class TextToImageInput(BaseModel):
    prompt: str = Field(description="The prompt to generate an image from", min_length=1, max_length=10_000)
    negative_prompt: str = Field(default="", max_length=10_000, description="What the image should not show (SDXL-Turbo only; FLUX ignores it)")
    image_size: ImageSizeInput = Field(default="landscape_4_3" if IS_FLUX else "square", description="A preset, or {width, height}")
    num_inference_steps: int = Field(default=4 if IS_FLUX else 2, ge=1, le=12 if IS_FLUX else 8)
    # schnell and Turbo are distilled to run without classifier-free guidance (schnell has no
    # guidance embedding either: diffusers ignores the value for it), so 0 is their default.
    guidance_scale: float = Field(default=0.0, ge=0, le=20)
    seed: Optional[int] = Field(default=None, ge=0, le=MAX_SEED, description="Same seed and input, same image")
    num_images: int = Field(default=1, ge=1, le=4)
    enable_safety_checker: bool = Field(default=True, description="Check the images with Stable Diffusion's safety checker; flagged ones come back black")
    output_format: Literal["jpeg", "png"] = Field(default="jpeg")
    sync_mode: bool = Field(default=False, description="Return the images inline as data: URIs")


class Timings(BaseModel):
    inference: float


class TextToImageOutput(BaseModel):
    images: List[Image]
    seed: int
    timings: Timings
    has_nsfw_concepts: Optional[List[bool]] = Field(default=None, description="Per image, when enable_safety_checker was true")
    prompt: str


def image_dimensions(image_size: Any) -> tuple:
    """(width, height) from a preset name or {width, height}, rounded down to a multiple of 16,
    which both FLUX's packed latents and SDXL's VAE need."""
    if isinstance(image_size, dict):
        image_size = ImageSize(**image_size)
    size = get_image_size(image_size)
    width, height = min(2048, size.width), min(2048, size.height)
    return max(64, width - width % 16), max(64, height - height % 16)


def _request() -> Any:
    """Darkroom's context of the request being served (progress, cancellation, billing); None on fal,
    whose SDK has no such module."""
    try:
        from fal import _context  # noqa: PLC0415 (Darkroom's fal package only)
    except ImportError:
        return None
    return _context.current()


# One runner: a second would load the model onto the same GPU again.
class TextToImage(fal.App, keep_alive=600, max_concurrency=1, max_multiplexing=1, request_timeout=600, startup_timeout=1800):
    """Text to image with FLUX.1 [schnell] or SDXL-Turbo through diffusers."""

    app_name = os.environ.get("DARKROOM_T2I_APP_ID", "darkroom-py/text-to-image")
    machine_type = "GPU-H100" if IS_FLUX else "GPU-A10G"
    num_gpus = 1
    requirements = ["torch", "diffusers", "transformers", "accelerate", "sentencepiece", "protobuf", "pillow"]

    def setup(self) -> None:
        import torch  # noqa: PLC0415 (lazy: the manifest must build without torch)
        from diffusers import AutoPipelineForText2Image  # noqa: PLC0415

        self.torch = torch
        device = os.environ.get("DARKROOM_T2I_DEVICE") or ("cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu")
        dtype = torch.float32 if device == "cpu" else (torch.bfloat16 if IS_FLUX else torch.float16)
        options: dict = {"torch_dtype": dtype}
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

    def safety_check(self, images: list) -> list:
        """Stable Diffusion's CLIP-based safety checker (neither FLUX nor SDXL ship one): a verdict per
        image; flagged images are replaced by black ones, as fal does."""
        import numpy  # noqa: PLC0415
        from PIL import Image as PILImage  # noqa: PLC0415

        if self.checker is None:
            from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker  # noqa: PLC0415
            from transformers import CLIPImageProcessor  # noqa: PLC0415

            repo = os.environ.get("DARKROOM_T2I_SAFETY_CHECKER", "CompVis/stable-diffusion-safety-checker")
            print(f"safety checker: loading {repo}")
            self.checker = StableDiffusionSafetyChecker.from_pretrained(repo).to(self.device)
            self.checker_processor = CLIPImageProcessor.from_pretrained(repo)
        clip_input = self.checker_processor(images=images, return_tensors="pt").pixel_values.to(self.device)
        arrays = numpy.stack([numpy.asarray(image, dtype=numpy.float32) / 255.0 for image in images])
        with self.torch.no_grad():
            _, flagged = self.checker(images=arrays, clip_input=clip_input)
        for index, bad in enumerate(flagged):
            if bad:
                images[index] = PILImage.new("RGB", images[index].size)
        return [bool(bad) for bad in flagged]

    @fal.endpoint("/")
    def generate(self, input: TextToImageInput) -> TextToImageOutput:
        """Generate images from a prompt."""
        torch = self.torch
        ctx = _request()
        width, height = image_dimensions(input.image_size)
        seed = input.seed if input.seed is not None else random.randint(0, 2**32 - 1)
        steps = input.num_inference_steps
        print(f"{MODEL}: {input.num_images} image(s) of {width}x{height}, {steps} steps, seed {seed}")

        def on_step(pipe: Any, step: int, timestep: Any, callback_kwargs: dict) -> dict:
            if ctx is not None:
                ctx.progress(step + 1, steps, f"denoising step {step + 1} of {steps}")
                if ctx.cancelled.is_set():
                    # diffusers checks this flag before each step; the loop ends early and ctx raises after.
                    pipe._interrupt = True
            return callback_kwargs

        call: dict = {
            "prompt": input.prompt,
            "width": width,
            "height": height,
            "num_inference_steps": steps,
            "guidance_scale": input.guidance_scale,
            "num_images_per_prompt": input.num_images,
            # A CPU generator gives the same image for a seed on every device.
            "generator": torch.Generator("cpu").manual_seed(seed),
            "callback_on_step_end": on_step,
        }
        if IS_FLUX:
            call["max_sequence_length"] = 256
        elif input.negative_prompt:
            call["negative_prompt"] = input.negative_prompt
        started = time.perf_counter()
        with torch.inference_mode():
            result = self.pipe(**call)
        inference = time.perf_counter() - started
        if ctx is not None:
            ctx.check_cancelled()

        pictures = list(result.images)
        # None when off: an all-false list would claim a check that did not happen.
        flagged = self.safety_check(pictures) if input.enable_safety_checker else None
        extension = "png" if input.output_format == "png" else "jpg"
        images = [Image.from_pil(picture, input.output_format, file_name=f"image-{index}.{extension}") for index, picture in enumerate(pictures)]
        if ctx is not None:
            ctx.bill(width * height * input.num_images / 1_000_000)
        return TextToImageOutput(images=images, seed=seed, timings=Timings(inference=inference), has_nsfw_concepts=flagged, prompt=input.prompt)
