"""σ_t of a predicted x̂0 to its nearest training image, and its gradient for G_sim (AMG paper Eq. 8, 9, 17)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from memdemo.backends.base import Backend, ModelError
from memdemo.guidance.cfg import predicted_x0
from memdemo.reference.index import Match, ReferenceIndex


class SimilarityMonitor:
    """Decodes x̂0, embeds it with the index's feature and measures it against the training set."""

    def __init__(self, backend: Backend, index: ReferenceIndex) -> None:
        if index.feature.metric == "l2" and index.image_size != backend.image_size:
            raise ModelError(
                f"the {index.feature.name!r} index compares {index.image_size}-px images but {backend.name} makes "
                f"{backend.image_size}-px images; build a pixel index at that size or use an object-level feature"
            )
        self.backend = backend
        self.index = index

    def features(self, x0: torch.Tensor) -> torch.Tensor:
        """Feature vectors of decoded x̂0, resized to the index's image size (differentiable)."""
        return self.image_features(self.backend.decode(x0))

    def image_features(self, images: torch.Tensor) -> torch.Tensor:
        """Feature vectors of decoded images in [0, 1], resized to the index's image size (differentiable)."""
        if images.shape[-1] != self.index.image_size:
            size = (self.index.image_size, self.index.image_size)
            images = F.interpolate(images, size=size, mode="bilinear", antialias=True, align_corners=False)
        return self.index.feature(images.float())

    @torch.no_grad()
    def match(self, x0: torch.Tensor) -> list[Match]:
        """Nearest training image and σ_t for each x̂0 in the batch."""
        return self.match_images(self.backend.decode(x0))

    @torch.no_grad()
    def match_images(self, images: torch.Tensor) -> list[Match]:
        """Nearest training image and σ_t for each decoded x̂0 in the batch."""
        return self.index.match(self.image_features(images).cpu().numpy())

    def duplicate_caption(self, x0: torch.Tensor) -> str | None:
        """The official G_dup rule's caption for one x̂0 (None when no caption is duplicated nearby)."""
        with torch.no_grad():
            return self.index.duplicate_caption(self.features(x0).cpu().numpy())

    def similarity(self, x0: torch.Tensor, match: Match) -> torch.Tensor:
        """Differentiable σ to the given nearest image; Eq. 8's denominator is held fixed as the official code does."""
        feature = self.features(x0)
        nearest = torch.from_numpy(np.asarray(self.index.vectors([match.row]))).to(feature)
        if match.nl2_scale is not None:
            return 1 - (feature - nearest).norm(dim=-1) / match.nl2_scale / 2
        return F.cosine_similarity(feature, nearest, dim=-1)

    def gradient(
        self,
        x_t: torch.Tensor,
        eps: torch.Tensor,
        alpha_bar: float,
        match: Match,
        eps_of_x: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """∇_{x_t} σ_t through decode and the feature extractor. ε̂ is held fixed inside x̂0, as the official AMG code
        does, unless `eps_of_x` recomputes it from x (the UNet then joins the differentiation)."""
        with torch.enable_grad():
            x = x_t.detach().requires_grad_(True)
            eps_at_x = eps_of_x(x) if eps_of_x else eps.detach()
            sigma = self.similarity(predicted_x0(x, eps_at_x, alpha_bar), match)
            (gradient,) = torch.autograd.grad(sigma.sum(), x)
        return gradient
