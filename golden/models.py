"""ResNet-18/34/50/101 written in the project, with torchvision's architecture and key names.

torchvision does not run beside the CPU torch build the project pins (see TOOLCHAIN.md), so the
ResNet family is written here. The modules, their attribute names, their registration order and
their *construction* order are those of ``torchvision.models.resnet`` (ResNet v1.5: the stride of
a Bottleneck sits on its 3x3 conv), so

- a real torchvision checkpoint (``resnet50-0676ba61.pth`` and the like) loads with
  ``load_state_dict(strict=True)``: ``build_model("resnet50", weights="resnet50-0676ba61.pth")``;
- ``state_dict()`` keys and their order equal torchvision's (``conv1.weight``, ``bn1.*``,
  ``layer1.0.conv1.weight``, ..., ``layerN.M.downsample.0.weight``, ``layerN.M.downsample.1.*``,
  ``fc.weight``, ``fc.bias``): 122 entries for resnet18, 218 for resnet34, 320 for resnet50 and
  626 for resnet101 (each Conv2d has one weight, each BatchNorm2d five entries including
  ``num_batches_tracked``, plus the two of ``fc``).

Default weights: random, not trained
------------------------------------
Without ``weights``, :func:`build_model` gives **random weights, not trained: hit rates on trained
networks differ** (trained filters and BatchNorm statistics shape the activations, hence which
input rows look alike; use ``weights`` for a trained network). The initialisation is
torchvision's, drawn from a local ``torch.Generator`` seeded with ``seed`` (the global RNG is
never read or advanced):

1. The draws PyTorch's own module constructors make, in Conv2d *construction* order, then ``fc``:
   every conv weight ``kaiming_uniform_(a=sqrt(5))``; ``fc.weight`` ``kaiming_uniform_(a=sqrt(5))``
   and ``fc.bias`` ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` (this is the ``fc`` initialisation
   that is kept);
2. torchvision's re-initialisation, in ``modules()`` order: every conv weight
   ``kaiming_normal_(mode="fan_out", nonlinearity="relu")`` (this is the conv initialisation that
   is kept); every BatchNorm weight 1, bias 0, running mean 0, running variance 1.

Because the sequence of draws is the one ``torch.manual_seed(seed); torchvision.models.resnetXX()``
makes, the parameters equal that model's on a CPU (the test suite checks the replay against
PyTorch's stock modules seeded through the global RNG). The same ``seed`` gives bit-identical
parameters with a given torch build on a given kind of CPU; a different ``seed`` gives different
ones. (The uniform draws are exact everywhere; PyTorch's ``normal_`` kernel has a vectorised AVX2
path, so machines with and without AVX2 may differ in the last bit of conv weights.)

BatchNorm calibration (``calibrate=True``, the default for random weights)
---------------------------------------------------------------------------
With He-initialised convs and BatchNorm running statistics (mean 0, variance 1) in eval mode,
every residual block adds variance, and activations grow by orders of magnitude through the deep
models (resnet101's conv inputs reach ~3e5 on the bundled images, resnet34's ~500). So one
forward pass is run in training mode, without gradients, on a fixed batch: the
first :data:`CALIBRATION_IMAGES` bundled images of :func:`golden.images.load_bundled`. During it
each BatchNorm has ``momentum=None`` (cumulative average) after ``reset_running_stats()``, so its
running mean and variance become exactly that batch's statistics (``num_batches_tracked`` = 1);
then momentum is set back to 0.1 and the model to eval mode. Weights are not touched. The pass
runs in float64 and the statistics are rounded to float32, so they are reproducible across thread
counts and CPUs up to float64 reduction order (one float32 ulp in rare ties); in float32 they
were seen to change with the thread count. Afterwards the largest conv input on the bundled
images is ~15 (resnet18) to ~60 (resnet101). The calibration images are also the first images of
a default run: the statistics fit them best. Cost: one float64 forward of 8 images, about 1-3 s
for resnet18 and 3-6 s for resnet101 on 2 cores.

Conv2d numbering
----------------
The seed project (MERCURY_GRP19) numbers ``hitmap-NNN.csv`` with a counter in ``Conv2d.__init__``,
i.e. in *construction* order, from 001. torchvision's ``_make_layer`` builds a block's downsample
``Sequential`` *before* the block itself, so the shortcut conv ``layerN.0.downsample.0`` is
constructed before ``layerN.0.conv1``, while ``named_modules()`` (and forward execution) list it
after the block's last conv. The two orders therefore differ at every block with a downsample
(resnet18/34: layer2..4; resnet50/101: layer1..4). :func:`conv_layers` returns construction
order; for resnet101, 002 is ``layer1.0.downsample.0``, 003 ``layer1.0.conv1``.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from golden.errors import UserError

__all__ = [
    "BasicBlock",
    "Bottleneck",
    "CALIBRATION_IMAGES",
    "DIGITS_MODEL_NAMES",
    "MODEL_NAMES",
    "ResNet",
    "build_model",
    "calibrate_bn",
    "check_name",
    "conv_layers",
    "input_shape",
    "load_weights",
    "skeleton",
]

MODEL_NAMES: tuple[str, ...] = ("resnet18", "resnet34", "resnet50", "resnet101")
"""The ImageNet model names :func:`build_model` accepts."""

DIGITS_MODEL_NAMES: tuple[str, ...] = ("resnet18-digits", "resnet20-digits")
"""Trained CIFAR-style ResNets on scikit-learn's digits (:mod:`golden.digits`), also built by
:func:`build_model`."""

CALIBRATION_IMAGES = 8
"""How many bundled images the BatchNorm calibration pass of random weights uses."""

_BN_MOMENTUM = 0.1  # PyTorch's default, restored after calibration


def _conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def _conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convs and a shortcut (ResNet-18/34); torchvision's ``BasicBlock``.

    Parameters
    ----------
    inplanes, planes
        Input and output channels.
    stride
        Stride of ``conv1`` (and of the downsample conv).
    downsample
        ``Sequential(conv1x1, BatchNorm2d)`` for the shortcut when the shape changes, else None.
        It is built by the caller *before* this block, as torchvision does.
    """

    expansion = 1

    def __init__(
        self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.conv1 = _conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class Bottleneck(nn.Module):
    """1x1, 3x3 (strided), 1x1 convs and a shortcut (ResNet-50/101); torchvision's ``Bottleneck``.

    Parameters
    ----------
    inplanes
        Input channels.
    planes
        Width of the 3x3 conv; the block outputs ``planes * 4`` channels.
    stride
        Stride of ``conv2`` (ResNet v1.5) and of the downsample conv.
    downsample
        ``Sequential(conv1x1, BatchNorm2d)`` for the shortcut when the shape changes, else None.
    """

    expansion = 4

    def __init__(
        self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None
    ) -> None:
        super().__init__()
        width = planes
        self.conv1 = _conv1x1(inplanes, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = _conv3x3(width, width, stride)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = _conv1x1(width, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


_Block = type[BasicBlock] | type[Bottleneck]

_ARCH: dict[str, tuple[_Block, tuple[int, int, int, int]]] = {
    "resnet18": (BasicBlock, (2, 2, 2, 2)),
    "resnet34": (BasicBlock, (3, 4, 6, 3)),
    "resnet50": (Bottleneck, (3, 4, 6, 3)),
    "resnet101": (Bottleneck, (3, 4, 23, 3)),
}


class ResNet(nn.Module):
    """torchvision's ``ResNet`` (groups 1, width 64, no dilation), 1000 classes.

    Constructing it draws from PyTorch's default initialisers like any ``nn.Module``; use
    :func:`build_model`, which constructs on the meta device and fills the parameters from a
    local generator. Input ``N x 3 x 224 x 224`` (any size >= 32 works), output ``N x 1000``.

    Parameters
    ----------
    block
        :class:`BasicBlock` or :class:`Bottleneck`.
    layers
        Blocks in layer1..layer4.
    num_classes
        Outputs of ``fc``.
    """

    def __init__(self, block: _Block, layers: tuple[int, int, int, int], num_classes: int = 1000):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)

    def _make_layer(
        self, block: _Block, planes: int, blocks: int, stride: int = 1
    ) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            # Built before the block, as torchvision does: this fixes the Conv2d numbering.
            downsample = nn.Sequential(
                _conv1x1(self.inplanes, planes * block.expansion, stride),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def check_name(name: str) -> str:
    """``name`` if it is a model :func:`build_model` knows, else ``UserError`` listing them."""
    if name not in MODEL_NAMES + DIGITS_MODEL_NAMES:
        raise UserError(
            f"unknown model {name!r}; allowed: {', '.join(MODEL_NAMES + DIGITS_MODEL_NAMES)}"
        )
    return name


def input_shape(name: str) -> tuple[int, int, int]:
    """``(C, H, W)`` of one input image of the model ``name``: what its preprocessing produces.

    ImageNet models (:data:`MODEL_NAMES`): ``(3, 224, 224)`` (:func:`golden.images.preprocess`,
    :data:`golden.images.CROP`); digits models (:data:`DIGITS_MODEL_NAMES`): ``(1, 16, 16)``
    (:func:`golden.digits.preprocess_gray`, :data:`golden.digits.SIZE`). This is the one place
    that maps a model to its input; the layer recording (:mod:`golden.network`) takes shapes,
    memory estimates and image loading from it.
    """
    if check_name(name) in DIGITS_MODEL_NAMES:
        from golden.digits import SIZE  # digits imports this module

        return (1, SIZE, SIZE)
    from golden.images import CROP

    return (3, CROP, CROP)


def skeleton(name: str) -> nn.Module:
    """The architecture of ``name`` in eval mode with untrained weights, cheaply (no calibration,
    no training, no weights file): for structure and shape checks only."""
    if name in DIGITS_MODEL_NAMES:
        from golden.digits import architecture

        return architecture(name).eval()
    return build_model(name, calibrate=False).eval()


def conv_layers(model: nn.Module) -> list[tuple[str, nn.Conv2d]]:
    """Every Conv2d of a model from this module, in construction order, with its qualified name.

    Construction order is ``named_modules()`` order except that a block's ``downsample.0`` comes
    before the block's own convs (torchvision builds the shortcut first; see the module
    docstring). Index ``i`` of the list is hitmap file number ``i + 1`` of the seed project.

    Parameters
    ----------
    model
        A :class:`ResNet` (or any module; only :class:`BasicBlock` / :class:`Bottleneck` children
        are reordered).

    Returns
    -------
    list of (name, conv)
        resnet18: 20 entries, resnet34: 36, resnet50: 53, resnet101: 104.
    """
    return list(_walk_convs(model, ""))


def _walk_convs(module: nn.Module, prefix: str) -> Iterator[tuple[str, nn.Conv2d]]:
    if isinstance(module, nn.Conv2d):
        yield prefix, module
        return
    children = list(module.named_children())
    if isinstance(module, (BasicBlock, Bottleneck)) and module.downsample is not None:
        children.sort(key=lambda child: child[0] != "downsample")  # stable: shortcut first
    for name, child in children:
        yield from _walk_convs(child, f"{prefix}.{name}" if prefix else name)


def _init_weights(model: ResNet, generator: torch.Generator) -> None:
    """Fill every parameter and buffer as ``torch.manual_seed(s); torchvision resnet()`` does."""
    with torch.no_grad():
        # 1. The draws of the stock constructors, in construction order.
        for _, conv in conv_layers(model):
            nn.init.kaiming_uniform_(conv.weight, a=math.sqrt(5), generator=generator)
        nn.init.kaiming_uniform_(model.fc.weight, a=math.sqrt(5), generator=generator)
        bound = 1 / math.sqrt(model.fc.in_features)
        nn.init.uniform_(model.fc.bias, -bound, bound, generator=generator)
        # 2. torchvision's re-initialisation, in modules() order.
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(
                    m.weight, mode="fan_out", nonlinearity="relu", generator=generator
                )
            elif isinstance(m, nn.BatchNorm2d):
                m.reset_parameters()  # weight 1, bias 0, mean 0, var 1, num_batches_tracked 0


def calibrate_bn(model: nn.Module, images: Tensor) -> nn.Module:
    """Set every BatchNorm's running statistics to those of one training-mode pass on ``images``.

    Each BatchNorm is reset, given ``momentum=None`` (cumulative average: after one batch the
    running mean/variance are exactly that batch's mean and unbiased variance), the model runs
    once in train mode without gradients in float64, the statistics are rounded back to float32,
    momentum returns to 0.1 and the model is put in eval mode. Weights are unchanged.

    Parameters
    ----------
    model
        Modified in place (and returned). Its parameters must be float32.
    images
        ``N x 3 x H x W`` float tensor. Training-mode BatchNorm needs more than one value per
        channel, so ``N >= 2`` unless the images are large enough for a spatial map > 1x1.

    Returns
    -------
    nn.Module
        ``model``, in eval mode.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
    model.double().train()
    try:
        with torch.no_grad():
            model(images.double())
    finally:
        model.float().eval()
        for bn in bns:
            bn.momentum = _BN_MOMENTUM
    return model


def build_model(
    name: str,
    seed: int = 0,
    weights: str | Path | None = None,
    *,
    calibrate: bool = True,
) -> ResNet:
    """Build one of :data:`MODEL_NAMES` in eval mode, float32, on the CPU.

    Parameters
    ----------
    name
        ``resnet18``, ``resnet34``, ``resnet50`` or ``resnet101``.
    seed
        Seed of the local generator for random weights (ignored when ``weights`` is given).
        The same seed gives bit-identical parameters.
    weights
        A ``.pth`` file holding a torchvision-compatible state_dict (or a dict with that
        state_dict under ``'state_dict'`` or ``'model'``), loaded with ``strict=True``; see
        :func:`load_weights`. None: random weights (module docstring), **not trained**.
    calibrate
        For random weights only: run the BatchNorm calibration pass (:func:`calibrate_bn` on the
        first :data:`CALIBRATION_IMAGES` bundled images) so activations stay in a sane range.
        Ignored when ``weights`` is given (a checkpoint carries its own statistics).

    Returns
    -------
    ResNet
        In eval mode, ``requires_grad`` left on (as torchvision's).

    Raises
    ------
    UserError
        Unknown ``name``, or a ``weights`` file that is missing, not a torch checkpoint, or does
        not match the model.

    A name of :data:`DIGITS_MODEL_NAMES` gives that trained network (trained and cached at first
    use, :func:`golden.digits.trained_model`; ``seed`` and ``calibrate`` do not apply); its
    accuracies are in the model's ``trained_info`` attribute.
    """
    if name in DIGITS_MODEL_NAMES:
        from golden.digits import build_digits_model  # it imports this module

        model, info = build_digits_model(name, weights)
        model.trained_info = info
        return model
    if name not in _ARCH:
        raise UserError(
            f"unknown model {name!r}; allowed: {', '.join(MODEL_NAMES + DIGITS_MODEL_NAMES)}"
        )
    block, layers = _ARCH[name]
    # On the meta device the stock initialisers draw nothing from the global RNG.
    with torch.device("meta"):
        model = ResNet(block, layers)
    model = model.to_empty(device="cpu")  # uninitialised memory until filled below
    if weights is not None:
        for bn in model.modules():
            if isinstance(bn, nn.BatchNorm2d):
                # An old checkpoint without num_batches_tracked keeps the module's own value.
                bn.reset_running_stats()
        load_weights(model, weights, name)  # strict: every other entry is overwritten
        return model.eval()
    generator = torch.Generator(device="cpu")
    generator.manual_seed(seed)
    _init_weights(model, generator)
    model.eval()
    if calibrate:
        from golden.images import load_bundled  # images imports nothing from here

        images, _ = load_bundled(CALIBRATION_IMAGES)
        calibrate_bn(model, images)
    return model


def load_weights(model: nn.Module, path: str | Path, name: str = "the model") -> nn.Module:
    """Load a state_dict file into ``model`` with ``strict=True``.

    Parameters
    ----------
    model
        Modified in place (and returned).
    path
        A file written by ``torch.save``: a state_dict, or a dict with the state_dict under
        ``'state_dict'`` or ``'model'``. A ``module.`` prefix on every key (``DataParallel``) is
        removed. Read with ``torch.load(weights_only=True, map_location="cpu")``. BatchNorm
        ``num_batches_tracked`` may be absent (old torchvision checkpoints), as PyTorch allows.
    name
        The model's name, for messages.

    Raises
    ------
    UserError
        One line: missing file, not a torch checkpoint, no state_dict inside, missing or
        unexpected keys (the first few named, then a count), a shape mismatch, or nan/inf values.
    """
    path = Path(path)
    if path.is_dir():
        raise UserError(
            f"weights file {str(path)!r} is a directory; give a .pth state_dict of {name}"
        )
    if not path.is_file():
        raise UserError(f"weights file {str(path)!r} not found; give a .pth state_dict of {name}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load raises many types for a file that is not a checkpoint
        if "weights only load failed" in str(exc).lower():
            reason = "it holds objects other than tensors, which weights_only loading refuses"
        else:
            reason = f"torch.load failed with {type(exc).__name__}"
        raise UserError(
            f"weights file {str(path)!r} is not a torch checkpoint ({reason}); "
            f"allowed: a state_dict saved with torch.save"
        ) from None
    state = _find_state_dict(obj, path)
    _check_keys_and_shapes(model, state, path, name)
    _check_finite(state, path)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:  # what the pre-check cannot see (e.g. versioned BN metadata)
        details = [
            line.strip()
            for line in str(exc).splitlines()
            if line.strip() and not line.startswith("Error(s) in loading")
        ]
        reason = _first_line(RuntimeError(" ".join(details) or str(exc)))
        raise UserError(f"weights file {str(path)!r} does not match {name}: {reason}") from None
    return model


def _find_state_dict(obj: object, path: Path) -> OrderedDict[str, Tensor]:
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model"):
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not obj:
        raise UserError(
            f"weights file {str(path)!r} holds no state_dict; allowed: a dict of tensors, "
            f"or a dict with one under 'state_dict' or 'model'"
        )
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, Tensor)]
    if bad:
        raise UserError(
            f"weights file {str(path)!r} is not a state_dict: entry {bad[0]!r} is not a named "
            f"tensor; allowed: a dict of tensors"
        )
    # Keep the per-module versions torch.save stores (BatchNorm uses them for old checkpoints).
    metadata = getattr(obj, "_metadata", None)
    state = OrderedDict(obj)
    if all(k.startswith("module.") for k in state):
        state = OrderedDict((k[len("module.") :], v) for k, v in state.items())
        if metadata is not None:
            metadata = OrderedDict(
                (k[len("module.") :] if k.startswith("module.") else "", v)
                for k, v in metadata.items()
                if k != ""
            )
    if metadata is not None:
        state._metadata = metadata  # type: ignore[attr-defined]
    return state


def _check_keys_and_shapes(
    model: nn.Module, state: dict[str, Tensor], path: Path, name: str
) -> None:
    expected = model.state_dict()
    # PyTorch fills a missing num_batches_tracked itself (old checkpoints); accept that too.
    missing = [k for k in expected if k not in state and not k.endswith(".num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    parts = []
    if missing:
        parts.append(f"missing keys {_sample(missing)}")
    if unexpected:
        parts.append(f"unexpected keys {_sample(unexpected)}")
    if not parts:
        wrong = [k for k in state if state[k].shape != expected[k].shape]
        if wrong:
            k = wrong[0]
            more = f" ({len(wrong) - 1} more)" if len(wrong) > 1 else ""
            parts.append(
                f"{k} has shape {tuple(state[k].shape)}, expected {tuple(expected[k].shape)}{more}"
            )
    if parts:
        raise UserError(f"weights file {str(path)!r} does not match {name}: {'; '.join(parts)}")


def _check_finite(state: dict[str, Tensor], path: Path) -> None:
    """Refuse nan/inf in floating tensors: they would silently poison every later layer."""
    bad = [
        k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())
    ]
    if bad:
        raise UserError(
            f"weights file {str(path)!r} holds nan or inf values in {_sample(bad)}; "
            f"allowed: finite weights"
        )


def _sample(keys: list[str], shown: int = 3) -> str:
    text = ", ".join(keys[:shown])
    return f"{text} ({len(keys) - shown} more)" if len(keys) > shown else text


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."
