"""Checkpoints bound to their spec: ``flowspec.save(flow, path)`` and ``flowspec.load(path)``.

A checkpoint is one ``torch.save`` file holding plain data only, so that it loads with
``torch.load(weights_only=True)`` (no pickled classes, no code)::

    {"format": "flowspec-checkpoint", "format_version": 1,
     "flow_name": str, "spec_hash": str, "spec_text": str, "spec_file": str,
     "flowspec_version": str, "torch_version": str,
     "dtype": "float64" | ... | None, "training": bool,
     "state_dict": {str: Tensor}, "train": {...}}   # "train" optional

``"train"`` (written by ``flowspec train`` through ``save(..., train=...)``) holds plain
data for resuming: the optimiser's state_dict, the completed step, the RNG state, the
data set and the options of the run.

``spec_hash`` is the flow's ``SPEC_HASH``: a hash of the spec's syntax tree and the
flow's name, so reformatting a spec or editing its comments keeps it, while any change
to the architecture does not.  :func:`load` rebuilds the module from the stored spec
text through the ordinary compile path (so the text is checked like any spec: it is
untrusted input), or from ``spec=`` when given, after refusing a spec whose hash differs
from the recorded one (:class:`CheckpointMismatch`).  A file that cannot be read as a
checkpoint is a :class:`CheckpointError` with a message, never a traceback.

torch is imported inside the functions, so ``flowspec.CheckpointError`` is available
without it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowspec.core.diagnostics import Diagnostic, SpecError, render_text
from flowspec.core.spans import Source
from flowspec.kinds.limits import MAX_PARAMETERS

if TYPE_CHECKING:
    import torch

    from flowspec.driver import Compilation
    from flowspec.runtime.flow import Flow

FORMAT = "flowspec-checkpoint"
#: 2: autoregressive.affine scales before it shifts (z = x·exp(s) + b); its version-1
#: weights meant z = (x − μ)·exp(−α) and cannot be converted (b = −μ·exp(−α) is not a
#: function of the MADE's last layer), so version-1 checkpoints holding one are refused
FORMAT_VERSION = 2
#: the floating dtypes a checkpoint may name (anything else is refused)
DTYPES = ("float16", "bfloat16", "float32", "float64")
#: the longest spec path a checkpoint may record (it is shown in messages)
_MAX_PATH = 500


class CheckpointError(SpecError):
    """A checkpoint that cannot be loaded: not a file written by :func:`save`, corrupted
    or truncated, weights that do not fit the flow, or a stored spec that does not
    check.  ``str()`` is the message (and the diagnostics of the stored spec, if any)."""

    def __init__(
        self,
        message: str,
        diagnostics: list[Diagnostic] | None = None,
        sources: Mapping[str, Source] | None = None,
    ) -> None:
        self.message = message
        super().__init__(diagnostics or [], sources)

    def render(self) -> str:
        if not self.diagnostics:
            return self.message
        return self.message + "\n" + render_text(self.diagnostics, self.sources).rstrip()

    def __str__(self) -> str:
        return self.render()


class CheckpointMismatch(CheckpointError):
    """``load(path, spec=...)`` with a spec other than the one the checkpoint was saved
    from (its hash differs, or it has no flow of the checkpoint's name)."""

    def __init__(
        self,
        message: str,
        *,
        checkpoint: str,
        spec_file: str,
        saved_hash: str,
        spec_hash: str | None,
    ) -> None:
        self.checkpoint = checkpoint
        self.spec_file = spec_file
        self.saved_hash = saved_hash
        self.spec_hash = spec_hash
        super().__init__(message)


# ---------------------------------------------------------------------------- save


def save(flow: Flow, path: str | Path, *, train: dict[str, Any] | None = None) -> None:
    """Write ``flow``'s weights with the spec it was compiled from to ``path``.

    The file is written next to ``path`` and then renamed over it, so an interrupted
    save never leaves a truncated checkpoint under the name.  ``flow`` must come from
    :func:`flowspec.compile` or :func:`load` (a ``Model`` imported from a written
    ``model.py`` does not know its spec text: compile the spec instead).
    """
    import torch

    from flowspec import __version__
    from flowspec.runtime.flow import Flow

    if not isinstance(flow, Flow):
        raise TypeError(f"flowspec.save expects a compiled Flow, got a {type(flow).__name__}")
    text, spec_file = type(flow).SPEC_TEXT, type(flow).SPEC_FILE
    if text is None or spec_file is None:
        raise ValueError(
            f"flow `{flow.FLOW_NAME}` does not know the spec it came from (a Model imported "
            "from a written model.py?): build it with flowspec.compile(SPEC), load its "
            "state_dict, and save that"
        )
    state = {name: tensor.detach() for name, tensor in flow.state_dict().items()}
    floating = sorted(
        {str(t.dtype).removeprefix("torch.") for t in state.values() if t.is_floating_point()}
    )
    payload: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "flow_name": flow.FLOW_NAME,
        "spec_hash": flow.SPEC_HASH,
        "spec_text": text,
        "spec_file": spec_file,
        "flowspec_version": __version__,
        "torch_version": torch.__version__.split("+")[0],
        "dtype": floating[0] if len(floating) == 1 and floating[0] in DTYPES else None,
        "training": bool(flow.training),
        "state_dict": state,
    }
    if train is not None:
        payload["train"] = train
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    try:
        torch.save(payload, partial)
        os.replace(partial, path)
    finally:
        if partial.exists():
            partial.unlink()


# ---------------------------------------------------------------------------- load


def _first_line(error: BaseException, limit: int = 200) -> str:
    """The error's type and the first sentence of its message (torch's can be long)."""
    lines = str(error).strip().splitlines()
    line = lines[0] if lines else ""
    if ". " in line:
        line = line[: line.index(". ")]
    line = line if len(line) <= limit else line[: limit - 1] + "…"
    return f"{type(error).__name__}: {line}" if line else type(error).__name__


def _shown(path: str) -> str:
    """A path recorded in a checkpoint, safe to print (the file is untrusted data)."""
    if len(path) <= _MAX_PATH and path.isprintable():
        return path
    from flowspec.core.names import visible

    return visible(path[:_MAX_PATH])


def read(path: str | Path) -> dict[str, Any]:
    """The checkpoint's contents, checked field by field (a :class:`CheckpointError`
    for anything that is not a checkpoint :func:`save` writes)."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"cannot read checkpoint {path}: no such file")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a damaged file
        raise CheckpointError(
            f"{path} is not a readable flowspec checkpoint (corrupted, truncated, or not "
            f"written by flowspec.save): {_first_line(e)}"
        ) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        hint = (
            " (it looks like a bare state_dict: load it into a compiled flow with "
            "flow.load_state_dict)"
            if isinstance(data, dict)
            and data
            and all(isinstance(k, str) for k in data)
            and all(isinstance(v, torch.Tensor) for v in data.values())
            else ""
        )
        raise CheckpointError(f"{path} is not a flowspec checkpoint{hint}")
    version = data.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise CheckpointError(f"{path}: the checkpoint has no valid format_version")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} is a version {version} checkpoint, written by a newer flowspec "
            f"({_shown(str(data.get('flowspec_version')))}); this flowspec reads "
            f"version {FORMAT_VERSION}"
        )
    fields = {
        "flow_name": str,
        "spec_hash": str,
        "spec_text": str,
        "spec_file": str,
        "flowspec_version": str,
        "torch_version": str,
        "training": bool,
        "state_dict": dict,
    }
    for name, kind in fields.items():
        if not isinstance(data.get(name), kind):
            raise CheckpointError(
                f"{path}: the checkpoint's `{name}` is missing or not a {kind.__name__}"
            )
    if data.get("dtype") is not None and data["dtype"] not in DTYPES:
        raise CheckpointError(f"{path}: the checkpoint's dtype is not one of {', '.join(DTYPES)}")
    if "train" in data and not isinstance(data["train"], dict):
        raise CheckpointError(f"{path}: the checkpoint's `train` is not a dict")
    for key, value in data["state_dict"].items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{path}: the checkpoint's state_dict holds a non-tensor entry")
    return data


def load(
    path: str | Path,
    *,
    spec: str | Path | None = None,
    device: str | torch.device | None = None,
    max_parameters: int | None = MAX_PARAMETERS,
) -> Flow:
    """The flow saved in ``path``, rebuilt from its stored spec and holding its weights.

    With ``spec=`` (a path or the spec's text), the module is built from that spec
    instead, after checking that it is the spec the checkpoint was saved from: a spec
    whose hash differs (any change but layout and comments), or that has no flow of the
    checkpoint's name, raises :class:`CheckpointMismatch` naming both hashes and files.
    ``device`` places the module as ``flowspec.compile(device=)`` does; the dtype and the
    train/eval mode are those of the saved flow; ``max_parameters`` is compile's limit.
    """
    from flowspec.driver import Compilation

    given = None if spec is None else Compilation.of(spec)
    return load_compiled(path, given, device=device, max_parameters=max_parameters)


def load_compiled(
    path: str | Path,
    given: Compilation | None,
    *,
    device: str | torch.device | None = None,
    device_map: dict[str, str] | None = None,
    max_parameters: int | None = MAX_PARAMETERS,
) -> Flow:
    """:func:`load`, with the spec to check against already read (the CLI reads it with
    its own size limits)."""
    import torch

    from flowspec.codegen import spec_hash
    from flowspec.compiler import compile_compilation
    from flowspec.driver import Compilation

    data = read(path)
    path = Path(path)
    name, saved_hash = data["flow_name"], data["spec_hash"]
    spec_file = _shown(data["spec_file"])
    if given is not None:
        comp = given
        comp.raise_for_errors()
        given_file = comp.source.path
        if name not in comp.flow_names():
            names = comp.flow_names()
            if len(names) == 1:
                other = spec_hash(comp.program, names[0])
                found = f"defines flow `{names[0]}`, whose spec hash is {other}"
            else:
                other = None
                found = f"defines no flow `{name}` (its flows: {', '.join(names)})"
            raise CheckpointMismatch(
                f"checkpoint {path} was saved from a different spec: it records flow "
                f"`{name}` with spec hash {saved_hash} (saved from {spec_file}), but "
                f"{given_file} {found}",
                checkpoint=str(path),
                spec_file=given_file,
                saved_hash=saved_hash,
                spec_hash=other,
            )
        got = spec_hash(comp.program, name)
        if got != saved_hash:
            raise CheckpointMismatch(
                f"checkpoint {path} was saved from a different spec: it records flow "
                f"`{name}` with spec hash {saved_hash} (saved from {spec_file}), but flow "
                f"`{name}` of {given_file} has spec hash {got}",
                checkpoint=str(path),
                spec_file=given_file,
                saved_hash=saved_hash,
                spec_hash=got,
            )
    else:
        # the stored text under the path it was saved from: the same path and text
        # decide the syntax (.flow or YAML) as they did when it was compiled
        comp = Compilation(Source(spec_file, data["spec_text"]))
        if comp.errors:
            raise CheckpointError(
                f"the spec stored in {path} (saved from {spec_file}) does not check:",
                comp.diagnostics,
                comp.sources,
            )
        if name not in comp.flow_names():
            raise CheckpointError(f"{path}: the stored spec defines no flow `{name}`")
        got = spec_hash(comp.program, name)
        if got != saved_hash:
            raise CheckpointError(
                f"{path}: the stored spec hashes to {got}, not to the recorded {saved_hash} "
                "(the file was altered, or its flowspec "
                f"{_shown(data['flowspec_version'])} hashes specs differently from this one)"
            )
    dtype = None if data["dtype"] is None else getattr(torch, data["dtype"])
    flow = compile_compilation(
        comp,
        flow=name,
        device=device,
        device_map=device_map,
        dtype=dtype,
        max_params=max_parameters,
    )
    if data["format_version"] < 2:
        _refuse_old_autoregressive_affine(flow, path, data)
    try:
        flow.load_state_dict(data["state_dict"])
    except RuntimeError as e:
        lines = str(e).strip().splitlines()
        detail = " ".join(line.strip() for line in lines[1:4])[:600]
        raise CheckpointError(
            f"the weights in {path} do not fit flow `{name}` as this flowspec "
            f"({_version()}) builds it (saved with flowspec {_shown(data['flowspec_version'])}): "
            f"{detail or _first_line(e)}"
        ) from None
    flow.train(data["training"])
    return flow


def _refuse_old_autoregressive_affine(flow: Flow, path: Path, data: Mapping[str, Any]) -> None:
    from flowspec.runtime.autoregressive import AutoregressiveAffine

    if any(isinstance(m, AutoregressiveAffine) for m in flow.modules()):
        raise CheckpointError(
            f"{path} is a version {data['format_version']} checkpoint (flowspec "
            f"{_shown(str(data['flowspec_version']))}) of a flow with autoregressive.affine "
            "blocks, whose weights then meant z = (x − μ)·exp(−α); this flowspec computes "
            "z = x·exp(s) + b, and the weights cannot be converted: train the flow again, "
            "or load the checkpoint with the flowspec that wrote it"
        )


def _version() -> str:
    from flowspec import __version__

    return __version__


__all__ = ["CheckpointError", "CheckpointMismatch", "load", "load_compiled", "read", "save"]
