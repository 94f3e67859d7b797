"""The networks, built by name: ``build(name, **kwargs)``; ``list_models()`` lists the names.

========================  ==========  =====  =============================================
name                      input_kind  field  network
========================  ==========  =====  =============================================
``deepcnet``              sparse      3·2^l  DeepCNet(l, k), Graham arXiv:1409.6070
``deepcnet-dense``        dense       3·2^l  its dense twin
``vgg``                   sparse      95     SparseConvNet VGGplus (Assamese example)
``vgg-dense``             dense       95     its dense twin
``vgg-plain``             sparse      63     SparseConvNet VGG-C (C16, C16, MP, C32, …)
``vgg-plain-dense``       dense       63     its dense twin
``sinet-mnist``           dense-mask  28     sparsity-invariant CNN, Uhrig et al. 3DV 2017
``sinet-mnist-sparse``    sparse      28     the same on spconv
``convnet-mnist``         dense       28     its ConvNet twin
``sinet-caltech``         dense-mask  224    sparsity-invariant CNN for Caltech-101
``sinet-caltech-sparse``  sparse      224    the same on spconv
``convnet-caltech``       dense       224    its ConvNet twin
========================  ==========  =====  =============================================

Every model has ``input_kind`` — ``"sparse"`` (``forward(SparseConvTensor)``), ``"dense"``
(``forward(x [B, C, H, W])``) or ``"dense-mask"`` (``forward(x [B, C, H, W], mask [B, 1, H, W])``)
— ``input_size()`` returning the ``(H, W)`` it needs, ``in_channels`` and ``num_classes``; forward
returns logits ``[B, num_classes]``. Builders are keyword-only, all take ``in_channels`` and
``num_classes``; ``deepcnet*`` also ``l``, ``k``, ``conv`` ("sparse" | "submanifold"),
``dropout``, ``leak`` and ``batchnorm``; ``sinet-*``/``convnet-*`` also ``image_size`` (training
defaults it to the shards' field); ``parameters(name)`` lists a builder's keywords.
``copy_to_dense_twin(sparse, dense)`` gives a dense twin the sparse network's parameters.
"""

from sparsenet.models import deepcnet, sparsity_invariant, vgg
from sparsenet.models._layers import copy_to_dense_twin
from sparsenet.models._registry import build, list_models, parameters, register_model
from sparsenet.models.sparsity_invariant import SparseSparsityInvariantConv2d, SparsityInvariantConv2d

__all__ = [
    "SparseSparsityInvariantConv2d",
    "SparsityInvariantConv2d",
    "build",
    "copy_to_dense_twin",
    "deepcnet",
    "list_models",
    "parameters",
    "register_model",
    "sparsity_invariant",
    "vgg",
]
