"""Training data for ``flowspec train``: the built-in sets, user files, and the checks
that make bad data a clear message before any step runs.

Built-in sets are generated in code (:mod:`flowspec.datasets`), with ``digits``: the
1,797 8×8 handwritten digits scikit-learn ships (``sklearn.datasets.load_digits``, no
download).  Their pixels are integers 0…16 (17 grey levels); a ``dequantize
uniform(bits=4)`` spec takes integers in [0, 16), so the top level 16 is merged into 15
(``min(v, 15)``, which changes 1.7 % of the pixels).  Bits/dim are then those of the
16-level data.

User files: ``.npy``, ``.npz`` (the array under ``--key``, or its only one) and ``.csv``
(comma-separated numbers, an optional header row).  Each row is one sample, reshaped to
the spec's ``input`` shape when its feature count matches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from flowspec.runtime.flow import Flow

#: how many samples a built-in 2-D set has (train + validation)
TOY_SIZE = 20_000
#: the largest data file read (bytes)
MAX_FILE_BYTES = 2_000_000_000


class DataError(ValueError):
    """Data that cannot train the flow: the message says what and where (exit 1)."""


@dataclass
class Data:
    """The data set as one float/int tensor [N, *input_shape] and where it came from."""

    x: torch.Tensor
    source: str  # the built-in name or the file path
    key: str | None = None


def builtin_names() -> list[str]:
    from flowspec.datasets import DATASETS

    return sorted([*DATASETS, "digits"])


def digits() -> torch.Tensor:
    """The 8×8 digits as int64 [1797, 64] in 0…15 (16 merged into 15, see above)."""
    import torch
    from sklearn.datasets import load_digits

    values = torch.as_tensor(load_digits().data, dtype=torch.int64)
    return values.clamp_(max=15)


def load(name_or_path: str, key: str | None = None, seed: int = 0) -> Data:
    """A built-in set by name, or a file's array; :class:`DataError` if neither."""
    import torch

    from flowspec.datasets import DATASETS

    if name_or_path == "digits":
        return Data(digits(), "digits")
    if name_or_path in DATASETS:
        g = torch.Generator().manual_seed(seed)
        return Data(DATASETS[name_or_path](TOY_SIZE, generator=g), name_or_path)
    path = Path(name_or_path)
    if path.suffix.lower() not in (".npy", ".npz", ".csv"):
        raise DataError(
            f"unknown data set `{name_or_path}`: give a built-in set "
            f"({', '.join(builtin_names())}) or a .npy, .npz or .csv file"
        )
    if not path.is_file():
        raise DataError(f"cannot read data file {path}: no such file")
    if path.stat().st_size == 0:
        raise DataError(f"data file {path} is empty")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise DataError(f"data file {path} is larger than {MAX_FILE_BYTES:,} bytes")
    array, used = _read_array(path, key)
    if array.size == 0 or array.shape[0] == 0:
        raise DataError(f"data file {path} holds no samples (shape {list(array.shape)})")
    if array.dtype.kind not in "biuf":
        raise DataError(f"data file {path} holds {array.dtype} values, not numbers")
    if array.dtype.kind == "b":
        array = array.astype("int64")
    return Data(torch.from_numpy(array.copy()), str(path), used)


def _read_array(path: Path, key: str | None) -> tuple[Any, str | None]:
    import numpy as np

    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            return np.load(path, allow_pickle=False), None
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                keys = list(archive.keys())
                if not keys:
                    raise DataError(f"data file {path} is empty (an .npz with no arrays)")
                if key is None:
                    if len(keys) > 1:
                        raise DataError(
                            f"{path} holds several arrays ({', '.join(keys)}): choose one "
                            "with --key"
                        )
                    key = keys[0]
                if key not in keys:
                    raise DataError(f"{path} has no array `{key}` (it has {', '.join(keys)})")
                return archive[key], key
        return _read_csv(path), None
    except DataError:
        raise
    except Exception as e:  # numpy raises many types for a damaged file
        first = (str(e).strip().splitlines() or [""])[0][:200]
        raise DataError(f"cannot read data file {path}: {type(e).__name__}: {first}") from None


def _read_csv(path: Path) -> Any:
    import numpy as np

    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if lines and not _numeric(lines[0]):
        lines = lines[1:]  # a header row
    if not lines:
        raise DataError(f"data file {path} is empty (no rows of numbers)")
    rows = []
    for number, line in enumerate(lines, 1):
        try:
            rows.append([float(v) for v in line.split(",")])
        except ValueError:
            raise DataError(f"{path}: row {number} is not comma-separated numbers") from None
        if len(rows[-1]) != len(rows[0]):
            raise DataError(
                f"{path}: row {number} has {len(rows[-1])} values, the first has {len(rows[0])}"
            )
    return np.asarray(rows, dtype=np.float64)


def _numeric(line: str) -> bool:
    try:
        [float(v) for v in line.split(",")]
    except ValueError:
        return False
    return True


def validate(data: Data, flow: Flow) -> torch.Tensor:
    """``data.x`` shaped and typed for ``flow``, or a :class:`DataError` naming the
    problem: the feature shape against the spec's ``input``, non-finite values (how many,
    the first row), integers outside ``dequantize``'s [0, 2^bits), and values outside
    the first block's domain (``logit`` and ``sigmoid``-inverse need (0, 1))."""
    import torch

    x, where, shape = data.x, data.source, tuple(flow.input_shape)
    if flow.context_shape is not None:
        raise DataError(
            f"flow `{flow.FLOW_NAME}` is conditional (it declares a context of shape "
            f"{list(flow.context_shape)}): flowspec train fits unconditional flows only; "
            "train it with your own loop on flow.log_prob(x, context=y)"
        )
    features = math.prod(shape)
    got = tuple(x.shape[1:])
    if got != shape:
        if math.prod(got) != features:
            raise DataError(
                f"{where}: samples have shape {list(got)} ({math.prod(got)} features), but "
                f"flow `{flow.FLOW_NAME}` takes input shape {list(shape)} ({features} features)"
            )
        x = x.reshape(x.shape[0], *shape)
    if x.is_floating_point():
        bad = ~torch.isfinite(x.reshape(x.shape[0], -1))
        if bad.any():
            rows = bad.any(1).nonzero().flatten()
            raise DataError(
                f"{where}: {int(bad.sum())} values are NaN or infinite (in {len(rows)} "
                f"samples; the first is row {int(rows[0])})"
            )
    if flow.DEQUANTIZE is not None:
        levels = 2 ** flow.DEQUANTIZE["bits"]
        if x.is_floating_point() and not bool((x == x.round()).all()):
            raise DataError(
                f"{where}: flow `{flow.FLOW_NAME}` dequantizes integers in [0, {levels}), "
                "but the data hold non-integer values"
            )
        low, high = x.min().item(), x.max().item()
        if low < 0 or high >= levels:
            raise DataError(
                f"{where}: flow `{flow.FLOW_NAME}` dequantizes integers in [0, {levels}) "
                f"(bits={flow.DEQUANTIZE['bits']}), but the data range over "
                f"[{low:g}, {high:g}]"
            )
        return x.to(torch.int64)
    if not x.is_floating_point():  # integer data for a continuous flow
        x = x.to(torch.float64)
    first = first_block_kind(flow)
    if first in ("logit",):
        low, high = x.min().item(), x.max().item()
        if low <= 0 or high >= 1:
            raise DataError(
                f"{where}: the first block of flow `{flow.FLOW_NAME}` is `{first}`, which "
                f"needs values in (0, 1), but the data range over [{low:g}, {high:g}]"
            )
    return x


def first_block_kind(flow: Flow) -> str | None:
    """The kind of the one block that reads the data (``None`` when several do, when the
    flow is generative, or for a module compiled before flowspec recorded it)."""
    return type(flow).DATA_READER


def split(x: torch.Tensor, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded random (train, validation) split; the validation part has at least one
    sample when ``fraction > 0``."""
    import torch

    if not 0 <= fraction < 1:
        raise DataError(f"--val-fraction must be in [0, 1), got {fraction:g}")
    n = x.shape[0]
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_val = max(1, round(n * fraction)) if fraction > 0 else 0
    if n - n_val < 1:
        raise DataError(f"{n} samples leave none to train on after the validation split")
    return x[order[n_val:]], x[order[:n_val]]


__all__ = ["Data", "DataError", "builtin_names", "digits", "load", "split", "validate"]
