"""API fault injection (issue 16): every bad input goes to the app served on 127.0.0.1 as app.py serves it, through
gradio_client where the client can encode the input and as raw HTTP where it refuses to (a lone surrogate, NaN,
too few inputs, an unknown fn_index); each must come back as our one-line message that names the fix, the server
must log no traceback, and a normal request must still work afterwards."""

from __future__ import annotations

import copy
import json
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import httpx
import pytest
from gradio_client import Client

from memdemo.ui import server
from memdemo.ui.layout import CSS, build_demo
from memdemo.ui.models import ModelRegistry
from memdemo.ui.server import MAX_BODY_BYTES, serve, sweep_cache
from memdemo.ui.settings import api_arguments

MODEL = "emojimem-random"  # no weights to read; the same architecture, reference and judge as the shipped models
# What must never reach a client: exception text, memory addresses, Gradio's preprocess text, generic 500s.
RAW_MARKERS = (
    "Traceback", "object at 0x", "0x7f", "Could not preprocess", "not supported between", "NoneType",
    "TextEncodeInput", "upstream Gradio app", "Internal Server Error", "Error:",
)  # fmt: skip


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Served:
    """The demo on a loopback port, reached through gradio_client or raw HTTP."""

    def __init__(self) -> None:
        self.demo = build_demo(ModelRegistry("cpu"), MODEL, interval=0.0)
        self.port = free_port()
        serve(self.demo, 2, "127.0.0.1", self.port, CSS, prevent_thread_lock=True, quiet=True)
        self.url = f"http://127.0.0.1:{self.port}/"
        self.client = Client(self.url, verbose=False)

    def fn_index(self, api_name: str) -> int:
        return next(index for index, fn in self.demo.fns.items() if fn.api_name == api_name)

    def call(self, *args, api_name: str) -> tuple[object, list[str]]:
        """The result (or the exception's message) of a gradio_client call, and the warnings it received."""
        job = self.client.submit(*args, api_name=api_name)
        try:
            result: object = job.result(timeout=300)
        except Exception as error:
            result = str(error)
        updates, warnings = job.communicator.updates, []
        while not updates.empty():
            log = getattr(updates.get_nowait(), "log", None)
            if log:
                warnings.append(log[0])
        return result, warnings

    def raw(self, route: str, body: str) -> str:
        """Post `body` as it is to an event route; the refusal's detail, or the queued event's error message."""
        response = httpx.post(self.url + route, content=body, headers={"content-type": "application/json"})
        if response.status_code != 200:
            return f"HTTP {response.status_code}: {response.json()['detail']}"
        session = json.loads(body).get("session_hash")
        with httpx.stream("GET", f"{self.url}gradio_api/queue/data?session_hash={session}", timeout=300) as stream:
            for line in stream.iter_lines():
                message = json.loads(line[5:]) if line.startswith("data:") else {}
                if message.get("msg") == "process_completed":
                    return str(message["output"].get("error"))
        return "no completion"

    def inputs(self, api_name: str) -> list:
        return self.demo.fns[self.fn_index(api_name)].inputs

    def event(self, api_name: str, data: list, route: str = "gradio_api/queue/join") -> str:
        """`data` sent to `api_name` as json.dumps writes it (lone surrogates escaped, NaN and Infinity bare), with a
        null for each State input, as the page sends them, when `data` holds one value per API parameter."""
        if len(data) == sum(not block.skip_api for block in self.inputs(api_name)):
            values = iter(data)
            data = [None if block.skip_api else next(values) for block in self.inputs(api_name)]
        body = {"data": data, "fn_index": self.fn_index(api_name), "session_hash": uuid.uuid4().hex[:10]}
        return self.raw(route, json.dumps(body))


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    app = Served()
    yield app
    app.demo.close()


def generate_args(model: object = MODEL, **values) -> list:
    base = {"prompt": "warning", "seed": 1, "steps": 2, "method": "baseline"}
    return [model, *api_arguments(MODEL, {**base, **values})[1:]]


def assert_clear(message: object, expected: str) -> None:
    text = str(message)
    assert expected in text, f"expected {expected!r} in {text!r}"
    assert not any(marker in text for marker in RAW_MARKERS), text


def assert_still_serving(served: Served) -> None:
    result, _ = served.call(*generate_args(steps=1), api_name="/generate")
    assert isinstance(result, tuple) and "1 steps in" in result[9], result


AMG = {"method": "amg"}
# (case, endpoint, arguments, the message's fix). Everything here gradio_client can send.
CLIENT_CASES = [
    ("c1 as text", "/generate", generate_args(**AMG, **{"amg.c1": "high"}), "c1 (Eq. 13) must be a number"),
    ("c2 as text", "/generate", generate_args(**AMG, **{"amg.c2": "x"}), "c2 (Eq. 15) must be a number"),
    ("c3 as text", "/generate", generate_args(**AMG, **{"amg.c3": "x"}), "c3 (Eq. 17) must be a number"),
    ("model null", "/generate", generate_args(None), "model must be one of emojimem-random"),
    ("unknown model", "/generate", generate_args("bogus"), "model must be one of emojimem-random"),
    ("seed 1.5", "/generate", generate_args(seed=1.5), "seed must be a whole number, got 1.5"),
    ("negative seed", "/generate", generate_args(seed=-1), "seed must be between 0 and"),
    ("seed as text", "/generate", generate_args(seed="7"), "seed must be a number"),
    ("bool 'yes'", "/generate", generate_args(**AMG, **{"amg.sim_through_unet": "yes"}), "must be true or false"),
    ("bool 5", "/generate", generate_args(**AMG, **{"amg.sim_through_unet": 5}), "must be true or false, got 5"),
    ("steps 0", "/generate", generate_args(steps=0), "steps must be between 1 and 200, got 0"),
    ("steps 500", "/generate", generate_args(steps=500), "steps must be between 1 and 200, got 500"),
    ("steps as text", "/generate", generate_args(steps="many"), "steps must be a number between 1 and 200"),
    ("steps 2.5", "/generate", generate_args(steps=2.5), "steps must be a whole number"),
    ("cfg 99", "/generate", generate_args(cfg=99), "CFG scale must be between 0 and 30"),
    ("unknown sampler", "/generate", generate_args(scheduler="euler"), "sampler must be one of ddim, dpm++"),
    ("unknown method", "/generate", generate_args(method="sideways"), "unknown method 'sideways'; choose one of"),
    ("unknown similarity", "/generate", generate_args(similarity="semantic"), "similarity must be one of object"),
    ("unknown term", "/generate", generate_args(**AMG, **{"amg.terms": ["x"]}), "AMG terms must be a subset of"),
    ("unknown preset", "/generate", generate_args(**AMG, **{"amg.preset": "gentle"}), "AMG preset must be one of"),
    ("switch t -5", "/generate", generate_args(method="stp", **{"stp.switch_t": -5}), "switch t must be between"),
    ("prompt as number", "/generate", generate_args(prompt=5), "the prompt must be text, got int"),
    ("compare: unknown model", "/compare", ["bogus", "warning", 1], "model must be one of emojimem-random"),
    ("compare: model null", "/compare", [None, "warning", 1], "model must be one of emojimem-random"),
    ("compare: seed as text", "/compare", [MODEL, "warning", "x"], "seed must be a number"),
    ("compare: seed 1.5", "/compare", [MODEL, "warning", 1.5], "seed must be a whole number"),
    ("compare: prompt as list", "/compare", [MODEL, ["warning"], 1], "the prompt must be text, got list"),
    ("models: seed as text", "/models", ["warning", "x"], "seed must be a number"),
    ("models: seed -3", "/models", ["warning", -3], "seed must be between 0 and"),
]


@pytest.mark.parametrize(
    ("endpoint", "arguments", "fix"), [c[1:] for c in CLIENT_CASES], ids=[c[0] for c in CLIENT_CASES]
)
def test_client_gets_our_message_and_the_app_keeps_serving(served, capfd, endpoint, arguments, fix):
    result, _ = served.call(*arguments, api_name=endpoint)
    assert_clear(result, fix)
    assert_still_serving(served)
    assert "Traceback" not in capfd.readouterr().err


NAN, INF = float("nan"), float("inf")
# (case, endpoint, the data list, the message's fix). gradio_client refuses to encode these; json.dumps does not.
RAW_CASES = [
    ("surrogate: generate", "generate", generate_args(prompt="warn\ud800ing"), "not valid Unicode text; retype it"),
    ("surrogate: compare", "compare", [MODEL, "warn\ud800ing", 1], "not valid Unicode text; retype it"),
    ("surrogate: models", "models", ["warn\ud800ing", 1], "not valid Unicode text; retype it"),
    ("cfg NaN", "generate", generate_args(cfg=NAN), "CFG scale must be a number between 0 and 30, got nan"),
    ("cfg inf", "generate", generate_args(cfg=INF), "CFG scale must be a number between 0 and 30, got inf"),
    ("seed NaN", "generate", generate_args(seed=NAN), "seed must be a number"),
    ("c3 NaN", "generate", generate_args(**AMG, **{"amg.c3": NAN}), "c3 (Eq. 17) must be between 0 and 100000"),
    ("c2 -inf", "generate", generate_args(**AMG, **{"amg.c2": -INF}), "c2 (Eq. 15) must be between 0 and 1000"),
    ("compare: seed inf", "compare", [MODEL, "warning", INF], "seed must be a number"),
    ("models: seed NaN", "models", ["warning", NAN], "seed must be a number"),
    ("too few inputs", "generate", [MODEL, "warning"], "/generate takes {inputs} inputs, got 2"),
    ("too many inputs", "compare", [MODEL, "warning", 1, 2, 3, 4, 5], "/compare takes {inputs} inputs, got 7"),
    ("no inputs", "models", [], "/models takes {inputs} inputs, got 0"),
]


@pytest.mark.parametrize(("endpoint", "data", "fix"), [c[1:] for c in RAW_CASES], ids=[c[0] for c in RAW_CASES])
def test_raw_request_gets_our_message_and_the_app_keeps_serving(served, capfd, endpoint, data, fix):
    assert_clear(served.event(endpoint, data), fix.format(inputs=len(served.inputs(endpoint))))
    assert_still_serving(served)
    assert "Traceback" not in capfd.readouterr().err


def test_malformed_requests_are_refused_with_the_fix(served, capfd):
    session = '"session_hash": "abc"'
    cases = [
        ("gradio_api/queue/join", f'{{"data": ["x"], "fn_index": 999, {session}}}', "no endpoint has fn_index 999"),
        ("gradio_api/run/predict", f'{{"data": [], "fn_index": -1, {session}}}', "no endpoint has fn_index -1"),
        ("gradio_api/run/nowhere", '{"data": []}', "no endpoint is named 'nowhere'"),
        ("gradio_api/queue/join", "not json", 'a JSON object with a "data" list'),
        ("gradio_api/queue/join", f'{{"data": 5, "fn_index": 0, {session}}}', 'a JSON object with a "data" list'),
        ("gradio_api/call/generate", '{"data": ["emojimem-random"]}', "/generate takes 24 inputs, got 1"),
        ("gradio_api/call/models", '{"data": ["warning", 1, 2]}', "/models takes 2 inputs, got 3"),
        ("gradio_api/queue/join", '{"data": ["' + "x" * MAX_BODY_BYTES + '"]}', "HTTP 413: the request is over"),
    ]
    for route, body, fix in cases:
        assert_clear(served.raw(route, body), fix)
    assert "Traceback" not in capfd.readouterr().err
    assert_still_serving(served)


@pytest.mark.parametrize("example", [None, "first", -1, 10_000, True])
def test_load_example_with_a_bad_index_is_refused(served, capfd, example):
    load = "gradio_api/run/predict"
    message = served.event("load_example", [example], route=load)
    assert_clear(message, "an example is chosen by its index, a whole number from 0 to")
    assert "Traceback" not in capfd.readouterr().err
    assert_still_serving(served)


def test_compare_and_models_warn_about_empty_and_long_prompts(served):
    for endpoint, arguments in (("/compare", [MODEL, "", 1]), ("/models", ["", 1])):
        result, warnings = served.call(*arguments, api_name=endpoint)
        assert isinstance(result, list) and result, result
        assert any(w.startswith("Empty prompt: sampling unconditionally") for w in warnings), warnings
    _, warnings = served.call("x" * 5_000, 1, api_name="/models")
    assert any("Prompt truncated from 5,000 to 1,000 characters" in w for w in warnings), warnings


@pytest.mark.parametrize(
    ("values", "note"),
    [
        ({**AMG, "amg.terms": ["dup", "sim"], "amg.c1": 3.0}, "c1 is ignored: G_spe is not among the AMG terms"),
        ({**AMG, "amg.terms": ["spe"], "amg.sim_through_unet": True}, "sim_through_unet is ignored: G_sim"),
        ({**AMG, "amg.schedule": "official", "amg.threshold": 0.5}, "λ is ignored: the official λ_t schedule"),
        ({"method": "og-stp", "og-stp.switch_t": 0}, "og-stp never switches to CFG; raise switch t"),
        ({"method": "og-dtp", "og-dtp.switch_t": 999}, "og-dtp switches to CFG at once and never acts"),
        ({"method": "og-stp", "og-stp.og_scale": 0.0}, "λ = 0 is no guidance before the switch, the same run as stp"),
    ],
)
def test_contradictory_options_are_named_not_silently_ignored(served, values, note):
    result, warnings = served.call(*generate_args(**values), api_name="/generate")
    assert isinstance(result, tuple), result
    assert any(note in warning for warning in warnings), warnings


def test_the_cache_sweep_keeps_the_newest_files_and_forgets_the_rest(tmp_path):
    paths = []
    for index in range(5):
        folder = tmp_path / f"hash{4 - index}"
        folder.mkdir()
        (folder / f"image{4 - index}.png").write_bytes(b"png")  # names sort against the age order
        time.sleep(0.02)  # a later change time (Gradio's age) than the previous file's
        paths.append(str(folder / f"image{4 - index}.png"))
    pinned = str(tmp_path / "example.png")
    Path(pinned).write_bytes(b"example")
    files = {*paths[:3], pinned}
    demo = SimpleNamespace(blocks={0: SimpleNamespace(keep_in_cache={pinned})}, temp_file_sets=[files, set(paths[3:])])
    assert sweep_cache(demo, keep=2) == 3
    assert files == {pinned} and Path(pinned).is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["example.png", "hash0", "hash1"]


def test_a_run_keeps_nothing_in_its_session(served):
    """Gradio keeps a new copy of every component a handler skips or updates in the session; a run must not."""
    assert_still_serving(served)
    session = served.demo.state_holder.session_data[served.client.session_hash]
    before = len(session.blocks_config.blocks)
    for _ in range(2):
        assert_still_serving(served)
    assert len(session.blocks_config.blocks) == before


def test_idle_blank_sessions_are_dropped_and_the_rest_kept(served):
    """A refused call leaves a session that holds nothing but defaults (Generate's read of the reference State stores
    its default, None): it goes once idle. Sessions holding a State value (a run's progress) or a component a handler
    replaced stay, and a session that went is rebuilt by its next request."""
    assert_still_serving(served)
    holder = served.demo.state_holder
    before = set(holder.session_data)
    assert_clear(served.event("generate", generate_args(cfg=NAN)), "CFG scale must be a number")
    (blank,) = set(holder.session_data) - before
    markdown = next(block for block in served.demo.blocks.values() if isinstance(block, gr.Markdown))
    holder["replaced"][markdown._id] = copy.copy(markdown)
    assert server.drop_blank_sessions(served.demo, idle=3600) == 0
    assert server.drop_blank_sessions(served.demo, idle=0) >= 1
    assert blank not in holder.session_data
    assert {served.client.session_hash, "replaced"} <= set(holder.session_data)
    assert_clear(served.event("models", ["warning", NAN]), "seed must be a number")
    assert_still_serving(served)


def test_the_queue_keeps_a_bounded_record_of_events(served):
    """Gradio records every event for its monitoring page (off here), 10,000 by default; serve() caps the record."""
    assert_still_serving(served)
    queue = served.demo._queue
    assert queue.ANALYTICS_MAX_EVENTS == server.ANALYTICS_EVENTS < 10_000
    assert 0 < len(queue.event_analytics) <= server.ANALYTICS_EVENTS
