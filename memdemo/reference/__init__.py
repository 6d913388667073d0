"""Nearest-training-image search: features, similarity metrics and the FAISS-backed reference index."""

from memdemo.reference import copydet as _copydet  # noqa: F401  (registers the copydet features)
from memdemo.reference.features import Feature, available_features, get_feature, register_feature
from memdemo.reference.index import IndexFormatError, Match, Neighbours, ReferenceIndex

__all__ = [
    "Feature",
    "IndexFormatError",
    "Match",
    "Neighbours",
    "ReferenceIndex",
    "available_features",
    "get_feature",
    "register_feature",
]
