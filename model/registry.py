"""One registry of named network architectures.

``build_model("resnet50_fusion", pretrained=True)`` builds a network by name; ``list_models()``
lists what is known. Builders take keyword-only arguments. The built-in architectures are listed
explicitly in :data:`model.networks.ARCHITECTURES` (no star-import side effects); the registry is
created lazily on first use, so importing this module does no work.
"""
from __future__ import annotations

import functools
from typing import Any, Callable, Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Name -> builder table that refuses duplicate names.

    Args:
        kind: what is registered (used in error messages), e.g. ``"model"``.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._builders: dict[str, Callable[..., T]] = {}

    def register(self, name: str, builder: Callable[..., T]) -> Callable[..., T]:
        """Add ``builder`` under ``name``; raises ``ValueError`` if the name is taken."""
        if not name or not isinstance(name, str):
            raise ValueError(f"{self.kind} name must be a non-empty string, got {name!r}")
        if name in self._builders:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._builders[name] = builder
        return builder

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._builders)

    def get(self, name: str) -> Callable[..., T]:
        try:
            return self._builders[name]
        except KeyError:
            raise KeyError(f"unknown {self.kind} {name!r}; known: {', '.join(self.names())}") from None

    def build(self, name: str, **kwargs: Any) -> T:
        return self.get(name)(**kwargs)

    def __contains__(self, name: object) -> bool:
        return name in self._builders


@functools.cache
def model_registry() -> Registry:
    """The process-wide model registry, filled with the built-in architectures on first use."""
    from model.networks import ARCHITECTURES

    registry: Registry = Registry("model")
    for name, builder in ARCHITECTURES.items():
        registry.register(name, builder)
    return registry


def build_model(name: str, **kwargs: Any):
    """Build the architecture ``name``; ``kwargs`` go to its builder (keyword-only).

    Common keywords of the built-in builders: ``pretrained: bool = False`` and
    ``weights_path: str | None = None`` (see :func:`model.networks.load_backbone_weights`).
    Returns an ``nn.Module`` whose forward maps B3HW ImageNet-normalised images to B1HW relative
    depth (larger = farther).
    """
    return model_registry().build(name, **kwargs)


def list_models() -> list[str]:
    """Names of all registered architectures."""
    return model_registry().names()


def register_model(name: str, builder: Callable[..., Any]) -> Callable[..., Any]:
    """Register an extra architecture (e.g. from user code); refuses names already taken."""
    return model_registry().register(name, builder)
