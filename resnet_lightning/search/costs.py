"""What a trial's network costs, measured in the search worker before its fit starts.

For a trial's parameters the worker resolves the fit's whole config through the
CLI's own parser (:func:`.fit_args.resolved_config`), builds only the network
(:func:`resnet_lightning.factory.create_model`, no Trainer, no run directory),
and measures:

* ``macs``: multiply-accumulates of one image's forward pass
  (:func:`~resnet_lightning.models.flops.count_macs`, PyTorch's FLOP counter) at
  the data's input size: the shape of the DataModule's first training sample,
  found once per worker and data config (``setup("fit")``, as the fit would);
* ``params``: the parameter count;
* ``latency_ms`` (only when an objective or a constraint uses it): the median
  forward time of a batch on the search's device (``trainer.accelerator``),
  the network in eval mode under ``torch.inference_mode()``, after warm-up, with
  ``latency.threads`` CPU threads (1 by default: steady when other work shares the cores).
  FLOPs do not predict latency (nni#4334, NATS-Bench#24): it is measured.

All of it runs in a process forked for the purpose (see :meth:`CostMeter.__call__`):
the worker forks each trial's fit, and a process forked from one that has computed
with torch hangs at its first parallel operation (OpenMP's threads do not survive a fork).

Without latency the network is built on the meta device (no memory, no
initialisation; on the CPU if a network cannot be built there); the counts are the same.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
import yaml
from torch import nn

from ..errors import UserError
from ..models.flops import count_macs, count_parameters
from .space import SearchConfigError

COSTS = ("macs", "params", "latency_ms")
# threads: torch's CPU threads while timing. One by default: with OpenMP's threads spinning, a forward pass timed while
# another fit used the same cores (a second worker) took 1000 times as long (0.5 ms -> 528 ms) and broke a budget.
LATENCY_DEFAULTS = {"batch_size": 1, "warmup": 5, "repeats": 20, "threads": 1}
# Options of ResNetClassifier that build the network (the others configure training).
NETWORK_KEYS = ("arch", "block", "num_classes", "in_channels", "arch_kwargs", "weights")


def parse_latency(spec: Any) -> dict[str, int]:
    """``latency: {batch_size: 1, warmup: 5, repeats: 20, threads: 1}`` (all optional) -> those four, checked.

    Raises:
        SearchConfigError: Not a mapping, an unknown option, or a value that is not a whole number >= 1 (warmup >= 0).
    """
    if spec is None:
        return dict(LATENCY_DEFAULTS)
    if not isinstance(spec, dict):
        raise SearchConfigError(f"latency: {spec!r} is not a mapping; e.g. latency: {{batch_size: 1, warmup: 5, repeats: 20, threads: 1}}")
    options = dict(LATENCY_DEFAULTS)
    for key, value in spec.items():
        if key not in LATENCY_DEFAULTS:
            raise SearchConfigError(f"latency: unknown option {key!r}; the options are {', '.join(LATENCY_DEFAULTS)}")
        least = 0 if key == "warmup" else 1
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise SearchConfigError(f"latency.{key}: {value!r} is not a whole number >= {least}; e.g. latency: {{{key}: "
                                    f"{LATENCY_DEFAULTS[key]}}}")
        options[key] = value
    return options


class CostMeter:
    """Measures a trial's costs from its resolved fit config (YAML text); remembers each data config's input shape.

    Args:
        latency: None: no latency; else ``{batch_size, warmup, repeats}`` (see :func:`parse_latency`).
    """

    def __init__(self, latency: dict[str, int] | None = None) -> None:
        self.latency = latency
        self._shapes: dict[str, tuple[int, int, tuple[int, ...]]] = {}

    def __call__(self, config_yaml: str) -> dict[str, float]:
        """``{"macs", "params"[, "latency_ms"]}`` of the network ``config_yaml`` (a whole fit config) builds.

        Measured in a forked process where there is fork: the worker itself then never computes with
        torch, because a process forked after OpenMP's threads started hangs at its first parallel
        operation (the trials' fits are forked from the worker), and never initialises CUDA, which
        a forked process cannot use (and would hold GPU memory for the whole search).

        Raises:
            CostCheckError: The network, its data or the latency could not be measured; the message says why.
        """
        config = yaml.safe_load(config_yaml)
        key = json.dumps(config.get("data"), sort_keys=True, default=str)
        known = self._shapes.get(key)
        if hasattr(os, "fork"):
            result = measure_in_a_child(self.measure, config, known)
        else:
            result = self.measure(config, known)
        self._shapes[key] = (result.pop("num_classes"), result.pop("in_channels"), tuple(result.pop("shape")))
        return result

    def measure(self, config: dict[str, Any], known: tuple[int, int, tuple[int, ...]] | None) -> dict[str, Any]:
        """The costs of ``config``'s network, and its data's shape (``known``, or read from the DataModule)."""
        num_classes, in_channels, shape = known or _data_shape(config.get("data") or {})
        model_options = {k: v for k, v in (config.get("model") or {}).items() if k in NETWORK_KEYS}
        model_options.update(num_classes=num_classes, in_channels=in_channels)
        network = None
        if self.latency is None:  # counts only: no memory, no initialisation
            try:
                with torch.device("meta"):
                    network = build(model_options)
                macs = count_macs(network, (1, *shape))
            except (RuntimeError, NotImplementedError):  # a network whose construction reads its tensors' values
                network = None
        if network is None:
            network = build(model_options)
            macs = count_macs(network, (1, *shape))
        costs: dict[str, Any] = {"macs": macs, "params": count_parameters(network)}
        if self.latency is not None:
            threads = torch.get_num_threads()
            torch.set_num_threads(self.latency["threads"])  # the CPU's; in the forked process, or restored below
            try:
                costs["latency_ms"] = median_latency_ms(network, (self.latency["batch_size"], *shape),
                                                        _device(config.get("trainer") or {}),
                                                        self.latency["warmup"], self.latency["repeats"])
            finally:
                torch.set_num_threads(threads)
        return {**costs, "num_classes": num_classes, "in_channels": in_channels, "shape": list(shape)}


def build(options: dict[str, Any]) -> nn.Module:
    """The network of the module options ``options`` (``arch``, ``block``, ``arch_kwargs``...)."""
    from ..factory import create_model  # late: the registry's plugins load on first use

    options = dict(options)
    arch_kwargs = options.pop("arch_kwargs", None) or {}
    return create_model(options.pop("arch"), **options, **arch_kwargs)


def median_latency_ms(network: nn.Module, input_size: tuple[int, ...], device: torch.device, warmup: int, repeats: int) -> float:
    """Median milliseconds of ``network``'s forward pass on a batch of ``input_size``, in eval mode, after ``warmup`` passes."""
    network = network.to(device).eval()
    batch = torch.randn(*input_size, device=device)
    sync: Callable[[], None] = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    times = []
    with torch.inference_mode():
        for i in range(warmup + repeats):
            sync()
            start = time.perf_counter()
            network(batch)
            sync()
            if i >= warmup:
                times.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(times), 4)


def measure_in_a_child(measure: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    """``measure(*args)`` (a JSON-able dict) run in a forked process, which sends it back and exits.

    Raises:
        CostCheckError: ``measure`` raised (a user error's message as it is; anything else, out of
            memory or no such device among them, with its type), or the process died.
    """
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(read)
        try:
            result = {"result": measure(*args)}
        except UserError as err:
            result = {"error": str(err)}
        except Exception as err:  # noqa: BLE001 - told to the worker, which fails the trial with it
            result = {"error": f"{type(err).__name__}: {' '.join(str(err).split())}"}
        os.write(write, json.dumps(result).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        answer = pipe.read()
    _, status = os.waitpid(pid, 0)
    result = json.loads(answer) if answer else {"error": f"the measuring process died ({_died(status)})"}
    if "error" in result:
        raise CostCheckError(f"the cost check failed: {result['error']}")
    return result["result"]


def _died(status: int) -> str:
    code = os.waitstatus_to_exitcode(status)
    return f"killed by signal {-code}" if code < 0 else f"exit code {code}"


class CostCheckError(UserError, RuntimeError):
    """A trial's network, its data's shape or its latency could not be measured; the trial fails with the reason."""


def _device(trainer: dict[str, Any]) -> torch.device:
    """The device the fit trains on: ``trainer.accelerator`` (cpu, gpu/cuda, mps; auto: the first there is)."""
    accelerator = str(trainer.get("accelerator") or "auto").lower()
    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    if accelerator == "mps" or (accelerator == "auto" and torch.backends.mps.is_available()):
        return torch.device("mps")
    return torch.device("cpu")


def _data_shape(data: dict[str, Any]) -> tuple[int, int, tuple[int, ...]]:
    """Instantiate the DataModule and read its first training sample's shape (its transform included, so a crop counts)."""
    class_path = data.get("class_path")
    if not class_path:
        raise SearchConfigError("the fit config names no DataModule (data: class_path:); the cost check needs the input size")
    module_name, _, name = str(class_path).rpartition(".")
    datamodule = getattr(importlib.import_module(module_name), name)(**(data.get("init_args") or {}))
    with torch.random.fork_rng(devices=[]):  # the trials' seeding is the fit's own business
        datamodule.prepare_data()
        datamodule.setup("fit")
        sample = datamodule.train_set[0]
    image = sample[0] if isinstance(sample, (tuple, list)) else sample
    return int(datamodule.num_classes), int(datamodule.in_channels), tuple(int(s) for s in image.shape)


def format_number(value: float) -> str:
    """``3.1e7`` for large counts, ``4.2`` for milliseconds: short, as the search file writes them."""
    if value == 0 or not math.isfinite(value):
        return str(value)
    if abs(value) >= 1e4:
        return f"{value:.2g}".replace("e+0", "e").replace("e+", "e")
    return f"{value:.3g}"
