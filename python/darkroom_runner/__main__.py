"""``python -m darkroom_runner --gateway URL[,URL...] --token T --app module:attr``."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import inspect
import json
import logging
import os
import signal
import sys
import threading
import time
from types import ModuleType
from typing import Callable, Optional

from .app import App
from .runner import Runner


def _process_started() -> float:
    """When this process began (unix seconds): from /proc on Linux (to 10 ms), else now."""
    try:
        with open("/proc/self/stat", encoding="ascii") as f:
            ticks = int(f.read().rsplit(")", 1)[1].split()[19])  # field 22, starttime, in clock ticks since boot
        with open("/proc/uptime", encoding="ascii") as f:
            uptime = float(f.read().split()[0])
        return time.time() - (uptime - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return time.time()


# Read at import, before the app is: the rest of the start is measured from here.
PROCESS_STARTED = _process_started()

USAGE = """Serve one app on Darkroom gateways (the runner protocol over HTTP).

  python -m darkroom_runner --gateway http://10.0.0.5:8787,http://10.0.0.6:8787 \\
      --token "$(darkroom runner token --app demo/echo)" --app examples/echo_app.py

--app names a module (`package.module`) or a file (`path/app.py`), optionally with `:attribute`
(or fal's `::Class`). Without the attribute, the module's `app` is used, else its only App instance,
else its only App subclass (instantiated), else its only fal.App subclass. A fal app (`fal.App`) is
served as it is; its id is --app-id, else its `app_name`, else its class name. SIGINT/SIGTERM drain:
held requests finish (up to --grace seconds) or go back to the queue.
"""


def _load_module(target: str) -> ModuleType:
    if target.endswith(".py") or os.sep in target or "/" in target:
        path = os.path.abspath(target)
        if not os.path.exists(path):
            raise SystemExit(f"app module not found: {path}")
        name = os.path.splitext(os.path.basename(path))[0]
        # The app's own folder is importable, as `python app.py` would make it.
        sys.path.insert(0, os.path.dirname(path))
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise SystemExit(f"cannot import {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module
    return importlib.import_module(target)


def _fal_classes(module: ModuleType) -> list:
    """The fal.App subclasses a module defines (none when the fal package is not importable)."""
    fal_app = sys.modules.get("fal.app")
    if fal_app is None:
        return []
    return [v for v in vars(module).values() if fal_app.is_fal_app(v) and v.__module__ == module.__name__]


def load_app(spec: str, app_id: Optional[str] = None) -> App:
    """`module:attr`, `path/file.py:attr` (or fal's `path/file.py::Class`), or either without the attribute."""
    target, _, attr = spec.partition("::") if "::" in spec else spec.partition(":") if ":" in spec else (spec, "", "")
    module = _load_module(target)
    found_fal = getattr(module, attr, None) if attr else None
    fal_app = sys.modules.get("fal.app")
    if fal_app is not None and (fal_app.is_fal_app(found_fal) or (not attr and not _darkroom_apps(module) and len(_fal_classes(module)) == 1)):
        return fal_app.to_darkroom_app(found_fal or _fal_classes(module)[0], app_id)
    if attr:
        found = getattr(module, attr, None)
        if found is None:
            raise SystemExit(f"{target} has no attribute {attr!r}")
    elif isinstance(getattr(module, "app", None), App):
        found = module.app
    else:
        instances = [v for v in vars(module).values() if isinstance(v, App)]
        classes = [v for v in vars(module).values() if inspect.isclass(v) and issubclass(v, App) and v is not App and v.__module__ == module.__name__]
        if len(instances) == 1:
            found = instances[0]
        elif not instances and len(classes) == 1:
            found = classes[0]
        else:
            raise SystemExit(f"{target}: name the app with {target}:ATTRIBUTE ({len(instances)} App instances, {len(classes)} App classes found)")
    if inspect.isclass(found) and issubclass(found, App):
        found = found()
    if not isinstance(found, App):
        raise SystemExit(f"{spec} is not a darkroom_runner.App")
    if app_id:
        found.id = app_id
    return found


def _exit_with_parent(parent_pid: int, stop: Callable[[], None]) -> None:
    """Calls ``stop`` once ``parent_pid`` is no longer this process's parent (it died, even by
    SIGKILL, and the runner was handed to init): a runner started by ``darkroom run`` must not outlive it."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        logging.getLogger("darkroom_runner").warning("the program that started this runner is gone: draining")
        stop()

    threading.Thread(target=watch, name="darkroom-parent-watch", daemon=True).start()


def _darkroom_apps(module: ModuleType) -> list:
    return [v for v in vars(module).values() if isinstance(v, App) or (inspect.isclass(v) and issubclass(v, App) and v is not App and v.__module__ == module.__name__)]


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m darkroom_runner", description=USAGE, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gateway", default=os.environ.get("DARKROOM_GATEWAY", ""), help="gateway base URLs, comma-separated ($DARKROOM_GATEWAY)")
    parser.add_argument("--token", default=os.environ.get("DARKROOM_RUNNER_TOKEN", ""), help="runner token from 'darkroom runner token' ($DARKROOM_RUNNER_TOKEN), or an admin key")
    parser.add_argument("--app", required=True, help="module[:attr] or path/file.py[:attr], or fal's path/file.py::Class")
    parser.add_argument("--app-id", default=None, help="the app's id (owner/name), in place of the one it declares")
    parser.add_argument("--slots", type=int, default=None, help="requests held at once (default: the app's max_multiplexing)")
    parser.add_argument("--id", default=None, help="a stable runner id (rr-...; default: one from the gateway); an owner/name here is the app's id, as --app-id")
    parser.add_argument("--grace", type=float, default=30.0, help="seconds held requests may finish in on SIGINT/SIGTERM (default 30)")
    parser.add_argument("--manifest", action="store_true", help="print the app's manifest as JSON and exit (no setup, no gateway)")
    parser.add_argument("--log-level", default=os.environ.get("DARKROOM_LOG_LEVEL", "info"))
    parser.add_argument("--parent-pid", type=int, default=None, help="drain and exit once this process is gone (the program that started the runner)")
    parser.add_argument("--ipc-fd", type=int, default=None, help=argparse.SUPPRESS)  # set by the gateway's scheduler (ipc.py)
    args = parser.parse_args(argv)

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s", stream=sys.stderr)
    runtime_loaded = time.time()
    # fal's own command lines name the app's id with --id: an owner/name is that, not a runner id.
    if args.id is not None and "/" in args.id:
        if args.app_id is not None and args.app_id != args.id:
            parser.error("--id owner/name and --app-id name two different app ids")
        args.app_id, args.id = args.id, None
    app = load_app(args.app, args.app_id)
    import_s = time.time() - runtime_loaded
    if args.manifest:
        print(json.dumps(app.manifest(), indent=2))
        return 0
    if args.ipc_fd is not None:
        from .ipc import serve_over_ipc

        # Ctrl-C in the terminal of `darkroom serve` reaches this process too: the scheduler drains
        # its runners itself. SIGTERM (from elsewhere) drains as the scheduler's drain does.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        return serve_over_ipc(app, args.ipc_fd, process_started=PROCESS_STARTED, runtime_loaded=runtime_loaded, import_ms=import_s * 1000)
    gateways = [g.strip() for g in args.gateway.split(",") if g.strip()]
    if not gateways or not args.token:
        parser.error("--gateway (or $DARKROOM_GATEWAY) and --token (or $DARKROOM_RUNNER_TOKEN) are required")
    if args.slots is not None and not 1 <= args.slots <= 64:
        parser.error("--slots must be 1 to 64")

    runner = Runner(app, gateways, args.token, slots=args.slots, runner_id=args.id)
    if args.parent_pid is not None:
        # Watched from here on: a parent that dies while the runner still starts (registering with
        # a gateway that went with it) must not leave it retrying. Until it registered it holds nothing.
        def parent_gone() -> None:
            if runner.runner_id is None:
                os._exit(1)  # still starting: it holds nothing to hand back
            runner.stop(args.grace)  # serve_forever then returns, and the process ends

        _exit_with_parent(args.parent_pid, parent_gone)
    runner.process_started = PROCESS_STARTED
    runner.start_phases = {"runtime_ms": max(0.0, (runtime_loaded - PROCESS_STARTED) * 1000), "import_ms": import_s * 1000}
    try:
        runner.start()
    except Exception as err:  # noqa: BLE001
        logging.getLogger("darkroom_runner").error("could not start: %s", err, exc_info=not isinstance(err, OSError))
        return 1
    print(f"runner ready: {runner.runner_id}", file=sys.stderr, flush=True)

    def shutdown(signum: int, _frame: object) -> None:
        logging.getLogger("darkroom_runner").info("%s: draining (%d in flight)", signal.Signals(signum).name, len(runner.in_flight))
        # Not in the handler itself: stop() waits, and the main thread must keep taking signals.
        threading.Thread(target=runner.stop, args=(args.grace,), name="darkroom-drain", daemon=True).start()

    signal.signal(signal.SIGINT, shutdown)
    signal.signal(signal.SIGTERM, shutdown)

    runner.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
