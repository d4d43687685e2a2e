"""fal's app SDK on Darkroom: an unchanged fal app file is served by Darkroom's Python runner.

    python -m darkroom_runner --gateway URL --token T --app path/app.py::MyApp

Pure Python beside ``darkroom_runner``; needs pydantic (v1 or v2). What of fal's SDK is here and
what is not: docs/app-authors.md.
"""

from . import toolkit
from .app import App, endpoint, realtime

__all__ = ["App", "endpoint", "realtime", "toolkit"]
