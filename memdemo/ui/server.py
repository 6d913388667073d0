"""Serving the demo publicly: the launch options an operator would expect (bounded queue, uploads capped, monitoring
and run history off, only our messages reach a client) and a request guard that answers a malformed API call with
one clear line instead of Gradio's internal error (docs/operations.md)."""

from __future__ import annotations

import atexit
import contextlib
import datetime
import gc
import json
import logging
import os
import re
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import gradio as gr
from gradio.blocks import BlockFunction, BlocksConfig
from gradio.state_holder import SessionState
from starlette.middleware import Middleware
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from memdemo.allocator import glibc, tune_malloc

log = logging.getLogger("memdemo.ui")

QUEUE_SIZE = int(os.environ.get("MEMDEMO_QUEUE_SIZE", "16"))
# Sessions whose state (component values, uploaded references) the server keeps, the least recently used dropped:
# a session holds about 200 kB before any upload, so 100 stay under 20 MB.
MAX_SESSIONS = int(os.environ.get("MEMDEMO_SESSIONS", "100"))
# A session that holds nothing a new one would not is dropped once idle this long (a stream touches it every frame).
BLANK_SESSION_IDLE_SECONDS = 60
MAX_UPLOAD = "10mb"  # one reference image, far above any emoji or SD image
MAX_BODY_BYTES = 1 << 20  # an event's JSON: a 1,000-character prompt and two dozen numbers need a few kB
# The routes that run an event: the queue, direct calls by fn_index or name, and the simple /call API.
EVENT_ROUTE = re.compile(r"^/gradio_api/(?:queue/join|run/(?P<run>[^/]+)|call/(?P<call>[^/]+))/?$")
API_PAGE = "/?view=api"
# Gradio writes every streamed image and download into its cache (GRADIO_TEMP_DIR); its own sweep is by age only.
MAX_CACHE_FILES = int(os.environ.get("MEMDEMO_CACHE_FILES", "1000"))
HOUSEKEEPING_SECONDS = 10  # between two cache sweeps, blank-session drops, garbage collections and heap trims
# Gradio's queue keeps a record of its last 10,000 events for the monitoring page, even with that page off.
ANALYTICS_EVENTS = 64


def endpoint(fns: Mapping[int, BlockFunction], fn_index: Any, name: str | None) -> BlockFunction | str:
    """The event a request names (by fn_index, else by its route's api_name), or the message that says it names
    none."""
    if fn_index is not None:
        if isinstance(fn_index, bool) or not isinstance(fn_index, int) or fn_index not in fns:
            return f"no endpoint has fn_index {fn_index!r}; the endpoints are listed at {API_PAGE}"
        return fns[fn_index]
    found = next((fn for fn in fns.values() if name is not None and fn.api_name == name), None)
    if found is None:
        return f"no endpoint is named {name!r}; the endpoints are listed at {API_PAGE}"
    return found


def input_problem(fn: BlockFunction, data: list, simple: bool) -> str | None:
    """Why `data` cannot be `fn`'s inputs (their count, or an example index out of range), else None. The queue and
    /run take one value per input component (a State's as null); the simple /call API may leave the States out."""
    visible = sum(not getattr(block, "skip_api", False) for block in fn.inputs)
    expected = visible if simple else len(fn.inputs)
    if len(data) != expected and not (simple and len(data) == len(fn.inputs)):
        count = f"/{fn.api_name} takes {expected} inputs, got {len(data)}"
        return f"{count}: pass every input in order, as listed at {API_PAGE}"
    if len(fn.inputs) == 1 and isinstance(fn.inputs[0], gr.Dataset):
        count, index = len(fn.inputs[0].samples), data[0]
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < count:
            return f"an example is chosen by its index, a whole number from 0 to {count - 1}, got {index!r}"
    return None


def request_problem(fns: Mapping[int, BlockFunction], route: re.Match, body: bytes) -> str | None:
    """Why an event request cannot run (not a JSON object with a data list, an unknown endpoint, inputs that do not
    fit it), else None. Values are checked later, by the handler (memdemo.ui.settings)."""
    try:
        payload = json.loads(body)
    except ValueError:
        payload = None
    if not isinstance(payload, dict) or not isinstance(payload.get("data"), list):
        return 'the request body must be a JSON object with a "data" list of the endpoint\'s inputs'
    simple = route["call"] is not None
    fn = endpoint(fns, None if simple else payload.get("fn_index"), route["run"] or route["call"])
    return fn if isinstance(fn, str) else input_problem(fn, payload["data"], simple)


async def read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or None once it passes `limit` bytes."""
    body, more = b"", True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
        if len(body) > limit:
            return None
    return body


class RequestGuard:
    """ASGI middleware in front of Gradio's event routes: a request whose shape cannot run gets a 400 with one line
    that names the fix (logged as one line), instead of a 500 or a message that lists Gradio's internals."""

    def __init__(self, app: ASGIApp, blocks: gr.Blocks) -> None:
        self.app = app
        self.blocks = blocks

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = EVENT_ROUTE.match(scope.get("path", "")) if scope["type"] == "http" else None
        if route is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        body = await read_body(receive, MAX_BODY_BYTES)
        if body is None:
            problem: str | None = (
                f"the request is over {MAX_BODY_BYTES // 1024} kB; prompts hold at most 1,000 characters"
            )
        else:
            problem = request_problem(self.blocks.fns, route, body)
        if problem is not None:
            log.warning("refused %s: %s", scope["path"], problem)
            await JSONResponse({"detail": problem}, status_code=413 if body is None else 400)(scope, receive, send)
            return
        await self.app(scope, replay(body, receive), send)


def replay(body: bytes, receive: Receive) -> Receive:
    """A receive channel that hands the already-read body over once, then waits on the real one (disconnects)."""
    sent = False

    async def channel() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return channel


def sweep_cache(demo: gr.Blocks, keep: int) -> int:
    """Delete the oldest of the files Gradio cached for `demo` beyond the newest `keep` (never a component's own
    example files), with the folders they leave empty, and forget them; return how many went."""
    pinned = {path for block in demo.blocks.values() for path in getattr(block, "keep_in_cache", ())}
    owners = {path: files for files in demo.temp_file_sets for path in list(files) if path not in pinned}
    aged = sorted((created, path) for path in owners if (created := ctime(path)) is not None)
    doomed = [path for _, path in aged[: max(0, len(aged) - keep)]]
    for path in doomed:
        Path(path).unlink(missing_ok=True)
        owners[path].discard(path)
        with contextlib.suppress(OSError):  # the folder still holds another file
            Path(path).parent.rmdir()
    return len(doomed)


def ctime(path: str) -> float | None:
    try:
        return Path(path).lstat().st_ctime
    except FileNotFoundError:
        return None


def holds_default(value: Any, block: Any) -> bool:
    """Whether a State's stored `value` is its component's default (Gradio stores the default on a first read)."""
    default = getattr(block, "value", None)
    try:
        return not callable(default) and bool(value == default)
    except Exception:  # a value whose == is not a plain truth value (an array) is not a default here
        return False


def is_blank(session: SessionState, defaults: BlocksConfig) -> bool:
    """Whether `session` equals a new one: every State at its default, no component or event replaced by a
    handler."""
    config = session.blocks_config
    same_blocks = config.blocks.keys() == defaults.blocks.keys() and all(
        block is defaults.blocks[key] for key, block in config.blocks.items()
    )
    defaults_only = all(holds_default(value, defaults.blocks.get(key)) for key, value in session.state_data.items())
    return defaults_only and same_blocks and config.fns.keys() == defaults.fns.keys()


def drop_blank_sessions(demo: gr.Blocks, idle: float) -> int:
    """Forget the sessions idle for `idle` seconds or more that hold nothing (the API's one-off calls and refused
    requests leave them); return how many went. Kept, each costs about 200 kB and pushes a session that holds an
    upload towards the least-recently-used end of the MAX_SESSIONS kept. A later request rebuilds one as it was."""
    holder, now = demo.state_holder, datetime.datetime.now()
    with holder.lock:  # Gradio adds sessions without it: list() copies the items in one step under the GIL
        doomed = [
            session_id
            for session_id, session in list(holder.session_data.items())
            if (now - holder.time_last_used.get(session_id, now)).total_seconds() >= idle
            and is_blank(session, demo.default_config)
        ]
        for session_id in doomed:
            holder.session_data.pop(session_id, None)
            holder.time_last_used.pop(session_id, None)
    return len(doomed)


def keep_bounded(demo: gr.Blocks, keep: int, interval: float) -> None:
    """Every `interval` seconds while `demo` runs, sweep its cache down to `keep` files, drop its idle blank
    sessions, collect Python's cyclic garbage (plots, frames) and hand the C heap's free pages back to the OS
    (malloc_trim: RSS then follows live memory, not the highest concurrent peak). A daemon thread that ends once the
    demo, having started, is closed."""
    libc = glibc()

    def tidy() -> None:
        if removed := sweep_cache(demo, keep):
            log.info("cache sweep: removed %d files beyond %d", removed, keep)
        drop_blank_sessions(demo, BLANK_SESSION_IDLE_SECONDS)
        gc.collect()
        if libc is not None:
            libc.malloc_trim(0)

    def loop() -> None:
        started = False
        while not started or demo.is_running:
            time.sleep(interval)
            started = started or demo.is_running
            if not demo.is_running:
                continue
            try:
                tidy()
            except Exception:  # a bug; the next round must still run, or the cache and memory grow unchecked
                log.exception("housekeeping failed; trying again in %s s", interval)

    threading.Thread(target=loop, name="memdemo-housekeeping", daemon=True).start()


def serve(demo: gr.Blocks, concurrency: int, host: str, port: int, css: str, **options: Any) -> None:
    """Queue and launch `demo` as a public demo should run: a bounded queue ("busy, try again" when full), only
    gr.Error messages (ours) reach a client, uploads capped, monitoring and run history off, malformed calls refused by
    the guard, at most MAX_SESSIONS sessions kept and blank ones dropped when idle, Gradio's cache kept to
    MAX_CACHE_FILES files and emptied at exit, the queue's event records capped, garbage collected and glibc's malloc
    tuned and trimmed. `options` go to launch() unchanged (share, prevent_thread_lock, quiet)."""
    tune_malloc()  # for a caller other than app.py, which has set the same values already
    gc.freeze()  # what startup built lives as long as the server; keep_bounded's collections skip it
    os.environ.setdefault("GRADIO_ANALYTICS_MAX_EVENTS", str(ANALYTICS_EVENTS))  # read when the queue is made
    demo.queue(default_concurrency_limit=concurrency, max_size=QUEUE_SIZE)
    keep_bounded(demo, MAX_CACHE_FILES, HOUSEKEEPING_SECONDS)
    # Gradio empties its cache in the server's shutdown, yet a soak found 272 files left after Ctrl+C: empty it at exit.
    atexit.register(sweep_cache, demo, 0)
    demo.launch(
        server_name=host,
        server_port=port,
        show_error=False,
        css=css,
        max_file_size=MAX_UPLOAD,
        enable_monitoring=False,
        run_history=False,
        state_session_capacity=MAX_SESSIONS,
        app_kwargs={"middleware": [Middleware(RequestGuard, blocks=demo)]},
        **options,
    )
