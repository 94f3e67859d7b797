"""DeepCNet(l, k) of Graham, "Spatially-sparse convolutional neural networks" (arXiv:1409.6070).

Input field ``N = 3·2^l``. Layer 1: 3x3 convolution, ``k`` filters, 2x2 max-pooling; layers
``i = 2..l``: 2x2 convolution, ``i·k`` filters, 2x2 max-pooling; layer ``l+1``: 2x2 convolution,
``(l+1)·k`` filters, spatial size 1; a fully connected softmax layer (logits here). ReLU after
every convolution. For ``l = 5``: 96→94→47→46→23→22→11→10→5→4→2→1.

``conv="sparse"`` is the paper's network: valid convolutions whose active set grows (Figure 1).
``conv="submanifold"`` keeps the active set instead: layers ``1..l`` are 3x3 submanifold
convolutions ('same' size), so pooling alone halves the grid (96→96→48→…→3), and layer ``l+1`` is a
3x3 valid convolution to 1x1; the field is still ``3·2^l``.

Two ingredients of Graham's later code, off by default: ``leak`` > 0 replaces the ReLUs by leaky
ReLUs of that negative slope (his "very leaky" ReLU has 1/3), and ``batchnorm`` puts a BatchNorm
between every convolution and its activation (not in the paper; it lets plain SGD train the net).

Dropout has ``l + 2`` slots: the inputs of the ``l + 1`` convolutions, then the classifier's input.
A number ``p`` means Graham's linear schedule, ``p·min(i, l)/l`` in slot ``i = 0..l+1`` (no dropout
on the input, ``p`` on the last two); a list gives every slot, e.g. the seed's
``[0, 0, 0, 0.5, 0.5, 0.5, 0.5]`` for ``l = 5``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

from torch import nn

from sparsenet.models._layers import DENSE, SPARSE, LayerFactory, TrunkNet
from sparsenet.models._registry import register_model

ConvKind = Literal["sparse", "submanifold"]


def dropout_schedule(l: int, dropout: float | Sequence[float]) -> list[float]:
    """The ``l + 2`` dropout probabilities (see the module docstring)."""
    if isinstance(dropout, (int, float)):
        return [dropout * min(i, l) / l for i in range(l + 2)]
    schedule = [float(p) for p in dropout]
    if len(schedule) != l + 2:
        raise ValueError(
            f"DeepCNet(l={l}) takes l + 2 = {l + 2} dropout probabilities (inputs of the {l + 1} "
            f"convolutions, then the classifier); got {len(schedule)}: {schedule}"
        )
    return schedule


def _maybe_dropout(p: float) -> list[nn.Module]:
    return [nn.Dropout(p)] if p > 0 else []


class DeepCNet(TrunkNet):
    """DeepCNet(l, k); sparse or dense twin according to the factory.

    Input: ``SparseConvTensor`` (sparse) or ``[B, in_channels, 3·2^l, 3·2^l]`` (dense).
    Output: logits ``[B, num_classes]``.
    """

    def __init__(
        self,
        factory: LayerFactory,
        *,
        l: int,
        k: int,
        in_channels: int,
        num_classes: int,
        conv: ConvKind,
        dropout: float | Sequence[float],
        leak: float = 0.0,
        batchnorm: bool = False,
    ) -> None:
        super().__init__(sparse=factory.sparse, in_channels=in_channels, num_classes=num_classes)
        if l < 1 or k < 1:
            raise ValueError(f"DeepCNet needs l >= 1 and k >= 1; got l={l}, k={k}")
        if conv not in ("sparse", "submanifold"):
            raise ValueError(f"conv must be 'sparse' or 'submanifold'; got {conv!r}")
        if not 0 <= leak < 1:
            raise ValueError(f"leak is the leaky ReLU's negative slope, in [0, 1); got {leak}")
        self.l, self.k, self.conv, self.leak, self.batchnorm = l, k, conv, leak, batchnorm
        schedule = dropout_schedule(l, dropout)
        layers: list[nn.Module] = []
        channels = in_channels
        for i in range(1, l + 2):
            bias = not batchnorm  # BatchNorm's shift replaces the bias
            if conv == "sparse":
                layer = factory.conv(channels, i * k, 3 if i == 1 else 2, bias=bias)
            else:
                layer = (
                    factory.subm(channels, i * k, 3, bias=bias)
                    if i <= l
                    else factory.conv(channels, i * k, 3, bias=bias)
                )
            layers += [*_maybe_dropout(schedule[i - 1]), layer, *([factory.batch_norm(i * k)] if batchnorm else [])]
            layers.append(nn.LeakyReLU(leak) if leak else nn.ReLU())
            if i <= l:
                layers.append(factory.max_pool(2, 2, nonnegative=not leak))
            channels = i * k
        self.trunk = factory.sequential(*layers)
        self.classifier = nn.Sequential(*_maybe_dropout(schedule[l + 1]), nn.Linear(channels, num_classes))

    def extra_repr(self) -> str:
        return (
            f"l={self.l}, k={self.k}, conv={self.conv!r}, leak={self.leak}, batchnorm={self.batchnorm}, "
            f"input_kind={self.input_kind!r}"
        )


_BUILDER_ARGS = """

    Args:
        l: number of pooling layers; input field ``3·2^l`` (96 for the default 5).
        k: filters per layer step; layer ``i`` has ``i·k`` filters.
        in_channels: features per site.
        num_classes: number of logits.
        conv: ``"sparse"`` (valid convolutions, as in the paper) or ``"submanifold"`` (3x3 'same'
            convolutions; see the module docstring).
        dropout: ``p`` for Graham's linear schedule or ``l + 2`` explicit probabilities.
        leak: negative slope of leaky ReLUs (0: ReLU; Graham's "very leaky" 1/3).
        batchnorm: a BatchNorm after every convolution (not in the paper).
"""


def _builder(factory: LayerFactory, name: str, summary: str) -> Callable[..., DeepCNet]:
    """A registered keyword-only builder of the ``factory`` twin (one signature for both twins)."""

    def builder(
        *,
        l: int = 5,
        k: int = 10,
        in_channels: int = 1,
        num_classes: int = 10,
        conv: ConvKind = "sparse",
        dropout: float | Sequence[float] = 0.0,
        leak: float = 0.0,
        batchnorm: bool = False,
    ) -> DeepCNet:
        return DeepCNet(
            factory,
            l=l,
            k=k,
            in_channels=in_channels,
            num_classes=num_classes,
            conv=conv,
            dropout=dropout,
            leak=leak,
            batchnorm=batchnorm,
        )

    builder.__name__ = builder.__qualname__ = name.replace("-", "_")
    builder.__doc__ = summary + _BUILDER_ARGS
    return register_model(name)(builder)


deepcnet = _builder(
    SPARSE,
    "deepcnet",
    """Sparse DeepCNet(l, k) on spconv — Graham, "Spatially-sparse
    convolutional neural networks", arXiv:1409.6070.

    Input ``SparseConvTensor`` with spatial shape ``3·2^l x 3·2^l``; output logits
    ``[B, num_classes]``.""",
)

deepcnet_dense = _builder(
    DENSE,
    "deepcnet-dense",
    """Dense twin of ``deepcnet`` (``torch.nn.Conv2d``/
    ``MaxPool2d``, the same parameters) — Graham, arXiv:1409.6070.

    Input ``[B, in_channels, 3·2^l, 3·2^l]``; output logits ``[B, num_classes]``.""",
)
