"""ModelRegistry's per-model loading locks (with a fake loader: no real model is loaded) and EmojiMemBackend.random's
isolation from the global RNG."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import torch

from memdemo.backends.emojimem import EmojiMemBackend
from memdemo.ui.models import LoadedModel, ModelRegistry


class FakeLoader:
    """Stands in for ModelRegistry._load: counts loads; the model named `slow` loads only once `release` is set."""

    def __init__(self) -> None:
        self.loads: list[str] = []
        self.started = threading.Event()
        self.release = threading.Event()
        self.threads: list[threading.Thread] = []

    def in_thread(self, call) -> tuple[threading.Thread, list]:
        """Run `call` in a thread; the fixture joins it at teardown, so no request outlives its test."""
        results: list = []
        thread = threading.Thread(target=lambda: results.append(call()), daemon=True)
        thread.start()
        self.threads.append(thread)
        return thread, results

    def __call__(self, registry: ModelRegistry, name: str) -> LoadedModel:
        self.loads.append(name)
        if name == "slow":
            self.started.set()
            assert self.release.wait(10), "the test never released the slow load"
        if name == "broken":
            raise RuntimeError("cannot load")
        return LoadedModel(object(), {}, threading.BoundedSemaphore(registry.concurrency))


@pytest.fixture
def loader(monkeypatch) -> Iterator[FakeLoader]:
    fake = FakeLoader()
    monkeypatch.setattr(ModelRegistry, "_load", lambda registry, name: fake(registry, name))
    yield fake
    fake.release.set()  # never leave a thread waiting, whatever failed
    for thread in fake.threads:
        thread.join(timeout=10)


def test_a_slow_first_load_does_not_block_a_model_already_loaded(loader):
    registry = ModelRegistry("cpu", concurrency=1)
    fast = registry.get("fast")
    slow_thread, slow = loader.in_thread(lambda: registry.get("slow"))
    assert loader.started.wait(5)
    fast_thread, served = loader.in_thread(lambda: registry.get("fast"))
    fast_thread.join(timeout=2)
    assert served == [fast], "a request for a loaded model waited for another model's load"
    assert slow_thread.is_alive() and not slow
    loader.release.set()
    slow_thread.join(timeout=5)
    assert len(slow) == 1 and registry.get("slow") is slow[0]


def test_two_models_load_at_the_same_time(loader):
    registry = ModelRegistry("cpu", concurrency=1)
    slow_thread, _ = loader.in_thread(lambda: registry.get("slow"))
    assert loader.started.wait(5)
    other_thread, other = loader.in_thread(lambda: registry.get("other"))
    other_thread.join(timeout=2)
    assert len(other) == 1, "loading one model waited for another model's load"
    loader.release.set()
    slow_thread.join(timeout=5)


def test_concurrent_requests_for_one_model_load_it_once(loader):
    registry = ModelRegistry("cpu", concurrency=1)
    requests = [loader.in_thread(lambda: registry.get("slow")) for _ in range(4)]
    assert loader.started.wait(5)
    loader.release.set()
    for thread, _ in requests:
        thread.join(timeout=5)
    models = [results[0] for _, results in requests]
    assert loader.loads == ["slow"] and all(model is models[0] for model in models)


def test_a_failed_load_is_not_cached_and_is_retried(loader):
    registry = ModelRegistry("cpu", concurrency=1)
    for _ in range(2):
        with pytest.raises(RuntimeError, match="cannot load"):
            registry.get("broken")
    assert loader.loads == ["broken", "broken"]


def test_random_backend_is_deterministic_and_leaves_the_global_rng_alone():
    torch.manual_seed(1234)
    before = torch.get_rng_state()
    first = EmojiMemBackend.random(seed=7)
    assert torch.equal(torch.get_rng_state(), before), "EmojiMemBackend.random reseeded the global RNG"
    second = EmojiMemBackend.random(seed=7)
    other = EmojiMemBackend.random(seed=8)
    weights, again, different = (model.unet.state_dict() for model in (first, second, other))
    assert weights.keys() == again.keys()
    assert all(torch.equal(weights[name], again[name]) for name in weights)
    assert not all(torch.equal(weights[name], different[name]) for name in weights)
    assert torch.equal(torch.get_rng_state(), before)
