"""The metric base class: accumulate with :meth:`Metric.update`, finish with :meth:`Metric.compute`.

A metric's state is a small dict of named numpy values, each declared with how two states combine:

- ``"sum"``: arrays (or 0-d counts) that add up, e.g. the running sums behind a mean or a covariance;
- ``"cat"``: lists of arrays that concatenate, e.g. per-clip scores whose spread is reported.

Because every state combines by one of these two rules, the states of several batches, workers or
machines merge exactly: ``a.merge(b)`` equals one metric updated with everything ``a`` and ``b`` saw.
:meth:`Metric.sync` does the same across the processes of an initialised ``torch.distributed`` group.
:meth:`Metric.state_dict` / :meth:`Metric.load_state_dict` move a state between processes or to disk
(it is plain numpy and Python values; save it with ``numpy.savez`` or JSON, never a pickle file).

A metric also names the settings that make two states comparable (:meth:`Metric.config`: the embedding
backend, the classifier, the mode); merging states made under different settings is refused.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

import numpy as np

from v2meow.errors import IdentityMismatch, UserError

Reduce = Literal["sum", "cat"]


class Metric:
    """Base class of the evaluation metrics.

    Subclasses declare their states in ``__init__`` with :meth:`_add_state` (then call :meth:`reset`),
    implement ``update(...)`` (any signature) and :meth:`compute`, and list their comparability
    settings in :meth:`config`. States hold numpy values only, so they pickle, gather and save cheaply.
    """

    def __init__(self) -> None:
        self._reduce: dict[str, Reduce] = {}
        self._state: dict[str, Any] = {}

    # ----------------------------------------------------------------------------------- declaration
    def _add_state(self, name: str, reduce: Reduce) -> None:
        """Declare a state. ``"sum"`` states start as ``None`` (zero of a shape learnt at the first
        update, so a metric need not know its embedding size in advance); ``"cat"`` states start empty."""
        if reduce not in ("sum", "cat"):
            raise ValueError(f"unknown reduction {reduce!r}")
        self._reduce[name] = reduce
        self._state[name] = None if reduce == "sum" else []

    def reset(self) -> None:
        """Forget everything seen so far (the settings stay)."""
        for name, reduce in self._reduce.items():
            self._state[name] = None if reduce == "sum" else []

    # ------------------------------------------------------------------------------ state helpers
    def _add(self, name: str, value: Any) -> None:
        """Add ``value`` to the ``"sum"`` state ``name`` (float64 for floats: sums run long)."""
        value = np.asarray(value)
        if value.dtype.kind == "f":
            value = value.astype(np.float64)
        current = self._state[name]
        if current is None:
            self._state[name] = value.copy()
        else:
            if current.shape != value.shape:
                raise UserError(f"Inconsistent sizes for {name}: {current.shape} then {value.shape}.")
            self._state[name] = current + value

    def _append(self, name: str, value: Any) -> None:
        """Append a copy of ``value`` to the ``"cat"`` state ``name`` (copied: callers may reuse buffers)."""
        self._state[name].append(np.array(value, copy=True))

    def _total(self, name: str, default: Any = 0) -> Any:
        """The ``"sum"`` state ``name``, or ``default`` when nothing was added."""
        value = self._state[name]
        return default if value is None else value

    def _concat(self, name: str) -> np.ndarray:
        """The ``"cat"`` state ``name`` as one array, concatenated along the first axis."""
        items = self._state[name]
        if not items:
            return np.zeros((0,), dtype=np.float64)
        return np.concatenate([np.atleast_1d(x) for x in items], axis=0)

    # ------------------------------------------------------------------------------------- protocol
    def update(self, *args: Any, **kwargs: Any) -> None:
        """Accumulate one batch (subclasses define the arguments)."""
        raise NotImplementedError

    def compute(self) -> dict[str, Any]:
        """The metric over everything accumulated, as a flat dict of numbers and names."""
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        """Settings two states must share to be merged (backend names, modes, windows)."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        """``{"metric": class name, "config": ..., "state": {name: value}}``; the arrays are copies
        (``"cat"`` lists are new lists of the same, never-modified arrays)."""
        state: dict[str, Any] = {}
        for name, reduce in self._reduce.items():
            value = self._state[name]
            if reduce == "sum":
                state[name] = None if value is None else np.array(value, copy=True)
            else:
                state[name] = list(value)
        return {"metric": type(self).__name__, "config": self.config(), "state": state}

    def _check_compatible(self, sd: dict[str, Any]) -> None:
        if sd.get("metric") != type(self).__name__:
            raise IdentityMismatch(f"Cannot combine a {sd.get('metric')} state with a {type(self).__name__}.")
        if sd.get("config") != self.config():
            raise IdentityMismatch(
                f"Cannot combine {type(self).__name__} states made with different settings: "
                f"{sd.get('config')} vs {self.config()}."
            )
        if set(sd.get("state", {})) != set(self._reduce):
            raise IdentityMismatch(f"The {type(self).__name__} state has unexpected entries.")

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        """Replace this metric's state with ``sd`` (from :meth:`state_dict` of a compatible metric)."""
        self._check_compatible(sd)
        self.reset()
        self.merge(sd)

    def merge(self, other: Metric | dict[str, Any]) -> Metric:
        """Add another metric's (or state dict's) accumulated data to this one, in place; returns self.

        ``"sum"`` states add and ``"cat"`` states concatenate (this one's items first), so merging the
        states of disjoint batches gives the same result as one metric updated with all of them.
        """
        sd = other.state_dict() if isinstance(other, Metric) else other
        self._check_compatible(sd)
        for name, reduce in self._reduce.items():
            value = sd["state"][name]
            if reduce == "sum":
                if value is not None:
                    self._add(name, value)
            else:
                self._state[name] = list(self._state[name]) + list(value)
        return self

    def sync(self) -> Metric:
        """This metric with the states of every process of the ``torch.distributed`` group merged.

        Returns a new metric (a shallow copy sharing the settings and backends) and leaves this one
        untouched, so calling it twice never counts a batch twice. Every rank gets the same state
        (merged in rank order). Without an initialised process group it returns a plain copy.
        """
        out = copy.copy(self)
        out._reduce = dict(self._reduce)
        out._state = {}
        out.reset()
        out.merge(self)
        try:
            import torch.distributed as dist
        except ImportError:  # a torch build without distributed support
            return out
        if not (dist.is_available() and dist.is_initialized()):
            return out
        gathered: list[Any] = [None] * dist.get_world_size()
        # Objects, not tensors: "cat" states differ in length across ranks and "sum" states may still be
        # unset on a rank that saw no data; the states are small next to the models that produced them.
        dist.all_gather_object(gathered, self.state_dict())
        out.reset()
        for sd in gathered:
            out.merge(sd)
        return out

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({settings})"


def check_choice(what: str, value: Any, choices: tuple[Any, ...]) -> None:
    """Refuse a setting outside ``choices``: "``what`` must be 'a' or 'b', got 'c'." (:class:`UserError`)."""
    if value not in choices:
        raise UserError(f"{what} must be {' or '.join(repr(c) for c in choices)}, got {value!r}.")


def model_or_name(value: Any, cls: type) -> tuple[Any, str]:
    """A metric's model setting, given as a ``cls`` instance or as a name: ``(the instance or None, its name)``."""
    if isinstance(value, cls):
        return value, value.name
    return None, str(value)


def mono_audio(wav: np.ndarray, dtype: Any = None) -> np.ndarray:
    """``wav`` (``[N]`` or channels-first ``[C, N]``) as mono ``[N]`` (the channel mean), as ``dtype`` if given."""
    wav = np.asarray(wav, dtype=dtype)
    if wav.ndim == 2:
        wav = wav.mean(axis=0)
    if wav.ndim != 1:
        raise UserError(f"Audio must be [N] or [C, N] samples, got shape {wav.shape}.")
    return wav


def mean_std(values: np.ndarray) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1, as the LORIS evaluation reports it) of ``values [N]``.

    The std is NaN when fewer than two values exist (undefined, and reported as such, not as 0).
    """
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return float("nan"), float("nan")
    mean = float(values.mean())
    std = float(values.std(ddof=1)) if values.size > 1 else float("nan")
    return mean, std
