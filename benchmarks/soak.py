"""Soak and fault benchmark: `python app.py` served on 127.0.0.1 in a subprocess, N mixed requests from concurrent
gradio_client clients (Generate, Compare, Models, a Generate cancelled mid-run, bad inputs through the client and as
raw HTTP); the server's RSS and temp files every 10 requests, crashes, hangs, raw errors and the clear-message rate;
the Generate results compared with the same requests run again one at a time.

Run: python -m benchmarks.soak [--requests 200] [--clients 4] → benchmarks/soak.md and soak.png
(with --cache-files N, the server's cache cap: soak-cache-N.md and .png)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
import zipfile
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
from gradio_client import Client
from matplotlib.figure import Figure

from benchmarks.memory_growth import free_port, rss_mb
from memdemo.ui.layout import load_examples
from memdemo.ui.server import HOUSEKEEPING_SECONDS, MAX_CACHE_FILES
from memdemo.ui.settings import api_arguments

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
MODEL = "emojimem-v2-ddpm"  # app.py's default
STEPS = 20  # Generate's steps (Compare and Models always run 50)
HANG_SECONDS = 300  # a request without an answer after this long is a hang
REST_READINGS = 3
WARMUP = 40  # requests before the RSS baseline: two rounds of the mix, so every kind and model has run twice
REST_EVERY = 40  # requests between two readings at rest; with 3+ readings the growth is their least-squares trend
GROWTH_LIMIT = 5.0  # MB of RSS growth at rest allowed after the warm-up
SAMPLE_EVERY = 10
RUN_FOLDERS_KEPT = 32  # memdemo.ui.run_folders.DEFAULT_KEEP: one zip each
SWEEP_SLACK = 250  # files Gradio may write between two cache sweeps (10 s of two concurrent streamed runs)
RAW_MARKERS = (
    "Traceback", "object at 0x", "0x7f", "Could not preprocess", "not supported between", "NoneType",
    "upstream Gradio app", "Internal Server Error", "Error:",
)  # fmt: skip
UNKNOWN_FN_INDEX = 999
METHODS = ("amg", "baseline", "dtp", "og-dtp", "stp")
# One round of the mix, repeated: kind names index KINDS below.
ROUND = ["generate", "bad", "generate", "cancel", "bad", "generate", "compare", "bad", "generate", "generate"]
ROUND += ["bad", "generate", "models", "bad", "generate", "cancel", "generate", "bad", "generate", "generate"]


@dataclass(frozen=True)
class Fault:
    """A bad input: the endpoint, what is sent (gradio_client's arguments, or with `raw` the event's data list as
    json.dumps writes it, one value per input, the page's reference State as null) and the text its answer must
    hold."""

    name: str
    endpoint: str
    arguments: list
    fix: str
    raw: bool = False


def generate_args(**values) -> list:
    return api_arguments(MODEL, {"prompt": "keycap 8", "seed": 1, "steps": STEPS, **values})


FAULTS = [
    Fault("c1 as text", "/generate", generate_args(**{"amg.c1": "high"}), "c1 (Eq. 13) must be a number"),
    Fault("model null", "/generate", [None, *generate_args()[1:]], "model must be one of"),
    Fault("seed 1.5", "/generate", generate_args(seed=1.5), "seed must be a whole number"),
    Fault("bool 'yes'", "/generate", generate_args(**{"amg.sim_through_unet": "yes"}), "must be true or false"),
    Fault("steps 0", "/generate", generate_args(steps=0), "steps must be between 1 and 200"),
    Fault("unknown sampler", "/generate", generate_args(scheduler="euler"), "sampler must be one of"),
    Fault("compare: seed as text", "/compare", [MODEL, "keycap 8", "x"], "seed must be a number"),
    Fault("surrogate prompt", "generate", [*generate_args(prompt="key\ud800"), None], "not valid Unicode", raw=True),
    Fault("CFG NaN", "generate", [*generate_args(cfg=float("nan")), None], "CFG scale must be a number", raw=True),
    Fault("models: seed inf", "models", ["keycap 8", float("inf")], "seed must be a number", raw=True),
    Fault("too few inputs", "generate", [MODEL, "keycap 8"], "inputs, got 2", raw=True),
    Fault("unknown fn_index", "nowhere", [1], f"no endpoint has fn_index {UNKNOWN_FN_INDEX}", raw=True),
]


@dataclass
class Outcome:
    """How one request ended: ok, clear (a bad input answered with its fix), raw (anything else), hang or crash."""

    index: int
    kind: str
    result: str
    seconds: float
    detail: str = ""
    digest: str = ""


def default_sigint() -> None:
    """In the server's process: Ctrl+C acts again. A soak started in the background (`nohup … &`) inherits SIGINT
    ignored, and app.py would then never see the stop signal, nor clean up at exit."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@dataclass
class Server:
    """app.py in a subprocess, its temp folders and log in one private folder."""

    folder: Path
    port: int
    cache_files: int
    process: subprocess.Popen = field(init=False)

    def __post_init__(self) -> None:
        for name in ("gradio", "tmp"):
            (self.folder / name).mkdir(parents=True)
        env = {**os.environ, "GRADIO_TEMP_DIR": str(self.folder / "gradio"), "TMPDIR": str(self.folder / "tmp")}
        env |= {
            "GRADIO_ANALYTICS_ENABLED": "False",
            "HF_HUB_OFFLINE": "1",
            "MEMDEMO_CACHE_FILES": str(self.cache_files),
        }
        with (self.folder / "server.log").open("wb") as log:
            command = [sys.executable, "app.py", "--port", str(self.port), "--model", MODEL]
            self.process = subprocess.Popen(
                command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=default_sigint
            )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def wait_ready(self, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                with urllib.request.urlopen(self.url, timeout=5):
                    return
            except OSError:
                time.sleep(1)
        raise RuntimeError(f"app.py did not start; see {self.folder / 'server.log'}")

    def rss_mb(self) -> float:
        return rss_mb(str(self.process.pid))

    def temp_files(self) -> int:
        return sum(len(files) for name in ("gradio", "tmp") for _, _, files in os.walk(self.folder / name))

    def log(self) -> str:
        return (self.folder / "server.log").read_text(encoding="utf-8", errors="replace")

    def stop(self) -> int:
        """Ctrl+C, as an operator stops it (the run folders are removed at exit); the exit code."""
        self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


def bundle_digest(result: tuple) -> str:
    """sha256 of the run's final images (baseline.png, mitigated.png) in its download bundle."""
    with zipfile.ZipFile(result[-1]) as bundle:
        return hashlib.sha256(bundle.read("baseline.png") + bundle.read("mitigated.png")).hexdigest()[:16]


def raw_event(url: str, fault: Fault, fn_indexes: dict[str, int]) -> str:
    """The fault's data posted as json.dumps writes it (lone surrogates escaped, NaN bare) to the queue; the
    refusal's detail or the event's error message."""
    fn_index = fn_indexes.get(fault.endpoint, UNKNOWN_FN_INDEX)
    body = json.dumps({"data": fault.arguments, "fn_index": fn_index, "session_hash": uuid.uuid4().hex[:10]})
    response = httpx.post(f"{url}gradio_api/queue/join", content=body, headers={"content-type": "application/json"})
    if response.status_code != 200:
        return response.json().get("detail", response.text)
    session = json.loads(body)["session_hash"]
    with httpx.stream("GET", f"{url}gradio_api/queue/data?session_hash={session}", timeout=HANG_SECONDS) as stream:
        for line in stream.iter_lines():
            message = json.loads(line[5:]) if line.startswith("data:") else {}
            if message.get("msg") == "process_completed":
                return str(message["output"].get("error"))
    return "the stream ended without a completion"


class Soak:
    """Runs the plan on a pool of clients (one gradio_client each) and samples the server every 10 requests."""

    def __init__(self, server: Server, clients: int) -> None:
        self.server = server
        self.clients = [Client(server.url, verbose=False) for _ in range(clients)]
        self.fn_indexes = {e.api_name.strip("/"): index for index, e in self.clients[0].endpoints.items() if e.api_name}
        self.free: list[Client] = list(self.clients)
        self.lock = threading.Lock()
        self.samples: list[tuple[int, float, int, float]] = []  # (requests done, RSS MB, temp files, seconds)
        self.done = 0
        self.started = time.monotonic()
        self.at_rest: list[tuple[int, float]] = []  # (requests done, RSS MB with nothing in flight)

    def run(self, plan: list[tuple[str, object]]) -> list[Outcome]:
        """The warm-up, then phases of REST_EVERY requests, RSS at rest after each (`self.at_rest`)."""
        self.samples.append((0, self.server.rss_mb(), self.server.temp_files(), 0.0))
        probe = next(payload for kind, payload in plan if kind == "generate")
        items = list(enumerate(plan))
        ends = [*range(WARMUP, len(items), REST_EVERY), len(items)]
        outcomes = []
        for start, end in zip([0, *ends], ends, strict=False):
            with ThreadPoolExecutor(len(self.clients)) as pool:
                outcomes += pool.map(lambda item: self.one(*item), items[start:end])
            self.at_rest.append((end, self.rest_rss(probe)))
        return outcomes

    def rest_rss(self, probe: list) -> float:
        """The server's RSS with no request in flight: after the same Generate `probe` (so that what ran last does
        not differ between the two readings), the median of REST_READINGS readings, each after a heap trim."""
        self.clients[0].submit(*probe, api_name="/generate").result(timeout=HANG_SECONDS)
        readings = []
        for _ in range(REST_READINGS):
            time.sleep(HOUSEKEEPING_SECONDS + 2)
            readings.append(self.server.rss_mb())
        return statistics.median(readings)

    def one(self, index: int, item: tuple[str, object]) -> Outcome:
        with self.lock:
            client = self.free.pop()
        kind, payload = item
        started = time.monotonic()
        try:
            result, detail, digest = self.request(client, kind, payload)
        except TimeoutError as error:
            result, detail, digest = "hang", f"no answer in {HANG_SECONDS} s {error}".strip(), ""
        except httpx.TimeoutException as error:  # one of the client's HTTP calls, with gradio_client's own timeout
            result, detail, digest = "hang", f"an HTTP call got no answer in time ({error})", ""
        except Exception as error:  # the request failed in a way no input should cause
            crashed = self.server.process.poll() is not None
            result, detail, digest = ("crash" if crashed else "raw"), f"{type(error).__name__}: {error}", ""
        outcome = Outcome(index, kind, result, time.monotonic() - started, detail[:300], digest)
        with self.lock:
            self.free.append(client)
            self.done += 1
            if self.done % SAMPLE_EVERY == 0 and self.server.process.poll() is None:
                elapsed = time.monotonic() - self.started
                self.samples.append((self.done, self.server.rss_mb(), self.server.temp_files(), elapsed))
                done, rss, files, _ = self.samples[-1]
                print(f"requests {done}: RSS {rss:.1f} MB, {files} temp files, {elapsed / 60:.1f} min", flush=True)
        return outcome

    def request(self, client: Client, kind: str, payload: object) -> tuple[str, str, str]:
        """(result, detail, digest of the final images) for one planned request."""
        if kind == "bad":
            fault = payload
            if fault.raw:
                message = raw_event(self.server.url, fault, self.fn_indexes)
            else:
                message = expect_error(lambda: client.predict(*fault.arguments, api_name=fault.endpoint))
            clear = fault.fix in message and not any(marker in message for marker in RAW_MARKERS)
            return ("clear" if clear else "raw"), f"{fault.name}: {message}", ""
        if kind == "cancel":
            return cancel_mid_run(client, payload)
        job = client.submit(*payload, api_name=f"/{kind}")
        result = job.result(timeout=HANG_SECONDS)
        if kind == "generate":
            return "ok", result[9][:120], bundle_digest(result)
        return ("ok" if result else "raw"), f"{len(result)} images", ""


def expect_error(call: Callable[[], object]) -> str:
    try:
        call()
    except Exception as error:
        return str(error)
    return "no error: the bad input was accepted"


def cancel_mid_run(client: Client, arguments: list) -> tuple[str, str, str]:
    """Start a 50-step Generate, cancel it after its first streamed frame, and check the job ends."""
    job = client.submit(*arguments, api_name="/generate")
    deadline = time.monotonic() + HANG_SECONDS
    while len(job.outputs()) < 2 and not job.done():
        if time.monotonic() > deadline:
            raise TimeoutError("(no first frame)")
        time.sleep(0.05)
    frames = len(job.outputs())
    job.cancel()
    while not job.done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"(cancelled after {frames} frames; the job never completed)")
        time.sleep(0.05)
    return "ok", f"cancelled after {frames} frames", ""


def make_plan(requests: int) -> list[tuple[str, object]]:
    """`requests` items following ROUND: varied Generate runs, cancels, one Compare and one Models per 20, faults."""
    examples = [(e["prompt"], e["seed"]) for e in load_examples()["examples"]]
    plan: list[tuple[str, object]] = []
    counts: Counter[str] = Counter()
    for index in range(requests):
        kind = ROUND[index % len(ROUND)]
        n = counts[kind]
        counts[kind] += 1
        prompt, seed = examples[n % len(examples)]
        if kind == "generate":
            method = METHODS[n % len(METHODS)]
            plan.append((kind, generate_args(prompt=prompt, seed=seed + n, method=method)))
        elif kind == "cancel":
            plan.append((kind, generate_args(prompt=prompt, seed=n, steps=50)))
        elif kind == "compare":
            plan.append((kind, [MODEL, prompt, seed + n]))
        elif kind == "models":
            plan.append((kind, [prompt, seed + n]))
        else:
            plan.append((kind, FAULTS[n % len(FAULTS)]))
    return plan


def serial_digests(server: Server, plan: list[tuple[str, object]], count: int) -> dict[int, str]:
    """The first `count` Generate requests of the plan again, one at a time on one client."""
    client = Client(server.url, verbose=False)
    indexes = [i for i, (kind, _) in enumerate(plan) if kind == "generate"][:count]
    return {i: bundle_digest(client.predict(*plan[i][1], api_name="/generate")) for i in indexes}


def rest_growth(at_rest: list[tuple[int, float]]) -> float:
    """RSS growth at rest in MB from the first reading (the warm-up's end) to the last: the least-squares line's rise
    over that span, which with three readings or more is less at the mercy of one reading's allocator state than the
    difference of the two ends (with two, it is that difference)."""
    done, rss = zip(*at_rest, strict=True)
    slope = np.polyfit(done, rss, 1)[0]
    return float(slope * (done[-1] - done[0]))


def rest_growth_error(at_rest: list[tuple[int, float]]) -> float | None:
    """One standard error of rest_growth (the slope's, times the span), from the readings' scatter about their line;
    None with fewer than three readings."""
    if len(at_rest) < 3:
        return None
    done, rss = (np.asarray(values, dtype=float) for values in zip(*at_rest, strict=True))
    residuals = rss - np.polyval(np.polyfit(done, rss, 1), done)
    spread = np.sum((done - done.mean()) ** 2)
    return float(np.sqrt(np.sum(residuals**2) / (len(done) - 2) / spread) * (done[-1] - done[0]))


def plot(soak: Soak, bound: int, path: Path) -> None:
    figure = Figure(figsize=(8, 3.5))
    rss_axes, file_axes = figure.subplots(1, 2)
    samples = soak.samples
    done = [s[0] for s in samples]
    rss_axes.plot(done, [s[1] for s in samples], marker=".", label="during the runs")
    rest_done, rest_rss = zip(*soak.at_rest, strict=True)
    rss_axes.plot(rest_done, rest_rss, "s", color="black", label="at rest")
    if len(rest_done) > 1:
        line = np.polyval(np.polyfit(rest_done, rest_rss, 1), [rest_done[0], rest_done[-1]])
        rss_axes.plot([rest_done[0], rest_done[-1]], line, "--", color="black", label="trend at rest")
    rss_axes.axvline(WARMUP, color="grey", linestyle=":", label="end of warm-up")
    rss_axes.set(xlabel="requests done", ylabel="server RSS (MB)", title="memory")
    rss_axes.legend()
    file_axes.plot(done, [s[2] for s in samples], marker=".")
    file_axes.axhline(bound, color="red", linestyle="--", label=f"stated bound ({bound:,})")
    file_axes.set(xlabel="requests done", ylabel="files in the server's temp folders", title="temp files")
    file_axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def report(args: argparse.Namespace, outcomes: list[Outcome], soak: Soak, extra: dict) -> list[str]:
    """soak.md's lines: targets against measurements, the samples, and every request that was not ok or clear."""
    tally = Counter(o.result for o in outcomes)
    bad = [o for o in outcomes if o.kind == "bad"]
    rest = soak.at_rest
    growth = rest_growth(rest)
    error = rest_growth_error(rest)
    during = [s[1] for s in soak.samples if s[0] > WARMUP]
    after = [s for s in soak.samples if s[0] >= WARMUP]
    trend = np.polyfit([s[0] for s in after], [s[1] for s in after], 1)[0] * (args.requests - WARMUP)
    last = soak.samples[-1]
    cache = soak.server.cache_files
    bound = cache + RUN_FOLDERS_KEPT + SWEEP_SLACK
    peak_files = max(s[2] for s in soak.samples)
    same = sum(extra["serial"][i] == outcomes[i].digest for i in extra["serial"])
    kinds = Counter(o.kind for o in outcomes)
    lines = [
        "# Soak and fault benchmark",
        "",
        f"`python -m benchmarks.soak {extra['options']}`: `python app.py --model "
        f"{MODEL}` on 127.0.0.1 (CPU, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}), "
        f"{args.clients} concurrent gradio_client clients, {args.requests} requests in {last[3] / 60:.1f} min: "
        + ", ".join(f"{count} {kind}" for kind, count in kinds.items())
        + f". Generate runs {STEPS} DDIM steps with the methods in turn; a cancel stops a 50-step Generate after its "
        "first frame; bad inputs rotate through "
        f"{len(FAULTS)} faults (client and raw HTTP). {extra['note']}",
        "",
        f"![RSS and temp files every {SAMPLE_EVERY} requests]({extra['name']}.png)",
        "",
        "| target | measured | met |",
        "|---|---|---|",
        f"| 0 crashes | {tally['crash']} (server exit code after Ctrl+C: {extra['exit_code']}) | "
        f"{'yes' if not tally['crash'] else 'no'} |",
        f"| 0 hangs (no answer in {HANG_SECONDS} s, or an HTTP call timed out) | {tally['hang']} | "
        f"{'yes' if not tally['hang'] else 'no'} |",
        f"| 0 raw errors | {tally['raw']}; tracebacks in the server log: {extra['tracebacks']} | "
        f"{'yes' if not tally['raw'] and not extra['tracebacks'] else 'no'} |",
        f"| clear-message rate of bad inputs | {tally['clear']} of {len(bad)} | "
        f"{'yes' if tally['clear'] == len(bad) else 'no'} |",
        f"| RSS growth ≤ {GROWTH_LIMIT:.0f} MB after the warm-up ({WARMUP} requests), at rest (nothing in flight, "
        f"after the same Generate, median of {REST_READINGS} readings each after a heap trim), read every "
        f"{REST_EVERY} requests; the growth is the least-squares trend of those readings from request {rest[0][0]} "
        f"to {rest[-1][0]} | {growth:+.1f} MB"
        + ("" if error is None else f" (± {error:.1f} MB, one standard error of the trend)")
        + "; at rest: "
        + ", ".join(f"{mb:.1f}" for _, mb in rest)
        + f" MB (last − first {rest[-1][1] - rest[0][1]:+.1f}); samples taken during the runs after the warm-up: "
        f"{min(during):.1f}–{max(during):.1f} MB, their trend {trend:+.1f} MB | "
        f"{'yes' if growth <= GROWTH_LIMIT else 'no'} |",
        f"| temp files ≤ {bound:,} (cache cap {cache:,} + {RUN_FOLDERS_KEPT} run bundles + {SWEEP_SLACK} "
        f"written between sweeps) | peak {peak_files:,}, last {last[2]:,}, after shutdown {extra['files_left']} | "
        f"{'yes' if peak_files <= bound else 'no'} |",
        f"| concurrent results equal serial results | {same} of {len(extra['serial'])} Generate runs byte-identical "
        f"(final images) | {'yes' if same == len(extra['serial']) else 'no'} |",
        "",
        "| requests done | RSS MB | temp files | minutes |",
        "|---|---|---|---|",
        *[f"| {done} | {rss:.1f} | {files:,} | {seconds / 60:.1f} |" for done, rss, files, seconds in soak.samples],
        "",
    ]
    failures = [o for o in outcomes if o.result not in ("ok", "clear")]
    if failures:
        lines += ["Requests that were not answered as expected:", ""]
        lines += [f"- #{o.index} {o.kind} ({o.result}): {o.detail}" for o in failures]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--serial", type=int, default=10, help="Generate requests rerun one at a time to compare")
    parser.add_argument("--cache-files", type=int, default=MAX_CACHE_FILES, help="the server's cache cap")
    parser.add_argument("--note", default="", help="what else ran on the machine, for the report")
    args = parser.parse_args()
    if args.requests < WARMUP + SAMPLE_EVERY:
        parser.error(f"--requests must be at least {WARMUP + SAMPLE_EVERY}: the warm-up is {WARMUP} requests")
    folder = Path(tempfile.mkdtemp(prefix="memdemo-soak-"))
    server = Server(folder, free_port(), args.cache_files)
    try:
        server.wait_ready()
        plan = make_plan(args.requests)
        soak = Soak(server, args.clients)
        outcomes = soak.run(plan)
        serial = serial_digests(server, plan, args.serial)
    finally:
        exit_code = server.stop()
    log = server.log()
    options = f"--requests {args.requests} --clients {args.clients}"
    name = "soak" if args.requests == 200 else f"soak-{args.requests}"
    if args.cache_files != MAX_CACHE_FILES:
        name = f"soak-cache-{args.cache_files}"
        options += f" --cache-files {args.cache_files}"
    extra = {"serial": serial, "exit_code": exit_code, "tracebacks": log.count("Traceback"), "note": args.note}
    extra |= {"files_left": server.temp_files(), "options": options, "name": name}
    plot(soak, args.cache_files + RUN_FOLDERS_KEPT + SWEEP_SLACK, HERE / f"{name}.png")
    lines = report(args, outcomes, soak, extra)
    (HERE / f"{name}.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
