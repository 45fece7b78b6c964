"""Builds, caches and loads the C++ time loop (recurrence.cpp) for CPU tensors, and
loads the Triton one (triton_loop.py) for CUDA tensors.

The library is compiled once per source, compiler flags and torch version, by the
system C++ compiler against torch's own headers and libraries (no ninja, no Python
headers), into ``$TORCH_EXTENSIONS_DIR`` (default ``~/.cache/torch_extensions``).
Later imports only load it. ``ASR_LSTM_KERNEL`` chooses what happens when that fails:

- ``auto`` (the default): anything that goes wrong (no compiler, a failed build)
  leaves `kernel()` returning None, with one warning, and asr.lstm then runs the
  same algorithm in plain torch ops;
- ``cpp``: the kernel is required; a failure raises `UserError` instead, so that a
  broken build is an error rather than a silent slowdown (the tests treat ``CI=true``
  the same way: there the kernel's tests fail instead of skipping);
- ``torch``: skips the build altogether;
- ``triton``: the Triton loop is required; it runs on CUDA tensors, and on CPU
  tensors only in Triton's interpreter (``TRITON_INTERPRET=1``, for tests).

The C++ loop is built for AVX-512 where torch runs AVX-512 itself, else for AVX2 (or
plain x86-64); ``ASR_LSTM_PRODUCT`` chooses its per-step product (see `product`).

The Triton loop is ``auto``'s choice for CUDA tensors whenever triton imports; where it
does not (a CPU-only install), CUDA tensors get the plain torch loop, with one warning.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

from asr._lstm.recurrence import CELLS
from asr.errors import UserError

SOURCE = Path(__file__).with_name("recurrence.cpp")
NAMESPACE = "asr_peephole_lstm"  # the TORCH_LIBRARY namespace in recurrence.cpp
CHOICES = ("auto", "triton", "cpp", "torch")  # the values of ASR_LSTM_KERNEL
PRODUCTS = ("own", "mkl")  # the C++ loop's recurrent product, numbered as in recurrence.cpp


def _cpu_flags() -> list[str]:
    """Vector instructions for the product and the gate loop, only where this CPU (as torch
    sees it) has them. AVX-512 follows torch's own choice, so that ATEN_CPU_CAPABILITY=avx2
    gets the AVX2 build (and the same library as an AVX2 machine). prefer-vector-width:
    GCC otherwise may vectorise the gate loop 256 bits wide even with AVX-512 enabled."""
    capability = torch.backends.cpu.get_cpu_capability()
    if capability == "AVX512":
        return ["-mavx2", "-mfma", "-mavx512f", "-mavx512dq", "-mavx512vl", "-mavx512bw",
                "-mprefer-vector-width=512"]
    if capability == "AVX2":
        return ["-mavx2", "-mfma"]
    return []


def _commands(obj: Path, lib: Path) -> tuple[list[str], list[str]]:
    """Compile and link commands. -ffast-math only when compiling, so that the
    compiler uses glibc's vector exp/tanh but does not link crtfastmath, which
    would switch the whole process to flush-to-zero."""
    torch_dir = Path(torch.__file__).parent
    cxx = os.environ.get("CXX", "c++")
    abi = f"-D_GLIBCXX_USE_CXX11_ABI={int(torch._C._GLIBCXX_USE_CXX11_ABI)}"
    # -fopenmp: at::parallel_for is inlined from ATen's headers, and is serial without it
    compile_ = [cxx, "-O3", "-std=c++20", "-fPIC", "-fopenmp", "-ffast-math", abi, *_cpu_flags(),
                f"-I{torch_dir / 'include'}", "-c", str(SOURCE), "-o", str(obj)]
    lib_dir = torch_dir / "lib"
    link = [cxx, "-shared", "-fopenmp", str(obj), "-o", str(lib), f"-L{lib_dir}",
            f"-Wl,-rpath,{lib_dir}", "-lc10", "-ltorch_cpu", "-lmvec", "-lm"]
    return compile_, link


def _cache_dir() -> Path:
    root = os.environ.get("TORCH_EXTENSIONS_DIR") or Path.home() / ".cache" / "torch_extensions"
    return Path(root)


def library_path() -> Path:
    """Where the built library lives: named by a hash of everything that shapes it."""
    compile_, link = _commands(Path("obj"), Path("lib"))
    key = hashlib.sha256()
    key.update(SOURCE.read_bytes())
    key.update(" ".join(compile_ + link).encode())
    key.update(torch.__version__.encode())
    return _cache_dir() / f"{NAMESPACE}_{key.hexdigest()[:16]}" / "recurrence.so"


def build(lib: Path) -> None:
    """Compiles into a temporary folder beside `lib`, then renames: a build that
    fails or races another process never leaves a half-written library behind."""
    lib.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=lib.parent) as tmp:
        obj, tmp_lib = Path(tmp) / "recurrence.o", Path(tmp) / "recurrence.so"
        for command in _commands(obj, tmp_lib):
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"{' '.join(command[:2])} ... failed:\n{done.stderr[-2000:]}")
        os.replace(tmp_lib, lib)


class CppKernel:
    """The C++ ops behind the same two calls as asr._lstm.recurrence."""

    CELLS = CELLS  # all of asr._lstm.recurrence's cells; the `cell` argument is the index

    def __init__(self, ops, product: str = "own"):
        self._ops = ops
        self.product = product  # how the recurrent product runs: one of PRODUCTS

    def forward(self, xg, bias, w_hh, peep, lengths, cell="peephole"):
        """-> h, c, act; act is xg itself, overwritten in place."""
        h, c = self._ops.forward(xg, bias, w_hh, peep, lengths, CELLS.index(cell),
                                 PRODUCTS.index(self.product))
        return h, c, xg

    def backward(self, grad_h, w_hh, peep, c, act, lengths, cell="peephole"):
        return self._ops.backward(grad_h, w_hh, peep, c, act, lengths, CELLS.index(cell),
                                  PRODUCTS.index(self.product))


def choice() -> str:
    """ASR_LSTM_KERNEL, checked."""
    chosen = os.environ.get("ASR_LSTM_KERNEL", "auto")
    if chosen not in CHOICES:
        raise UserError(f"ASR_LSTM_KERNEL={chosen}: choose one of {', '.join(CHOICES)}")
    return chosen


@functools.cache
def _triton_module():
    """asr._lstm.triton_loop, or the error that importing it (triton) raised."""
    try:
        from asr._lstm import triton_loop
        return triton_loop
    except Exception as error:  # ImportError without triton; anything else from a broken install
        return error


def triton_loop(device: torch.device):
    """The Triton time loop for tensors on `device`, or None where ASR_LSTM_KERNEL or the
    device rule it out (or, with ``auto``, triton cannot be imported)."""
    chosen = choice()
    if chosen not in ("auto", "triton") or device.type not in ("cuda", "cpu"):
        return None
    if device.type == "cpu":
        if chosen == "auto":
            return None
        if os.environ.get("TRITON_INTERPRET", "0") != "1":
            raise UserError("ASR_LSTM_KERNEL=triton runs on CPU tensors only under TRITON_INTERPRET=1 "
                            "(Triton's interpreter, for tests); unset ASR_LSTM_KERNEL for the C++ loop")
    module = _triton_module()
    if isinstance(module, Exception):
        if chosen == "triton":
            raise UserError(f"ASR_LSTM_KERNEL=triton: the Triton LSTM loop cannot be loaded ({module}). "
                            "Install triton, or unset ASR_LSTM_KERNEL") from module
        _warn_once(f"asr.lstm: Triton unavailable, using the plain torch loop on CUDA ({module})")
        return None
    return module


@functools.cache
def _warn_once(message: str) -> None:
    warnings.warn(message, RuntimeWarning, stacklevel=3)


def cpu_model() -> str:
    """The CPU's model name (Linux's /proc/cpuinfo; elsewhere what `platform` knows): the key of
    the product timings here, and the machine the benchmarks name with their figures."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _time_products(ops) -> dict[str, float]:
    """Median seconds of a 3x250-like layer's loop (B=16, 60 frames, both directions,
    forward + backward) per product, interleaved so that a busy machine slows both alike."""
    rng = torch.Generator().manual_seed(0)  # its own: the caller's random state stays as it was
    B, T, H = 16, 60, 250
    xg, w_hh = torch.randn(B, T, 2, 4 * H, generator=rng), torch.randn(2, 4 * H, H, generator=rng) * 0.05
    bias, peep, lengths = torch.zeros(2, 4 * H), torch.zeros(2, 3, H), torch.full((B,), T)
    times = {name: [] for name in PRODUCTS}
    for _ in range(5):
        for name in PRODUCTS:
            loop = CppKernel(ops, name)
            start = time.perf_counter()
            h, c, act = loop.forward(xg.clone(), bias, w_hh, peep, lengths)
            loop.backward(h, w_hh, peep, c, act, lengths)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t[1:]) for name, t in times.items()}


def product(ops, lib: Path) -> str:
    """How the C++ loop runs its recurrent product, from ASR_LSTM_PRODUCT: ``own`` (the packed
    register-blocked kernel in recurrence.cpp), ``mkl`` (MKL's packed GEMM, float32 only), or
    ``auto`` (the default): MKL where it was at least 10 % faster on this machine, timed once
    (about a second) and remembered in products.json beside the library, keyed by CPU model,
    torch's CPU capability, MKL_ENABLE_INSTRUCTIONS and thread count. Which is faster
    depends on the CPU, the load and MKL's version; delete the file to time again."""
    chosen = os.environ.get("ASR_LSTM_PRODUCT", "auto")
    if chosen not in ("auto", *PRODUCTS):
        raise UserError(f"ASR_LSTM_PRODUCT={chosen}: choose one of auto, {', '.join(PRODUCTS)}")
    if chosen == "mkl" and not ops.mkl_available():
        raise UserError("ASR_LSTM_PRODUCT=mkl: this torch does not export MKL's packed GEMM")
    if chosen != "auto":
        return chosen
    if not ops.mkl_available():
        return "own"
    # MKL_ENABLE_INSTRUCTIONS caps MKL's own ISA (as ATEN_CPU_CAPABILITY caps torch's)
    key = (f"{cpu_model()} | {torch.backends.cpu.get_cpu_capability()} | "
           f"MKL {os.environ.get('MKL_ENABLE_INSTRUCTIONS', 'any')} | {torch.get_num_threads()} threads")
    path = lib.with_name("products.json")
    try:
        known = json.loads(path.read_text())
    except (OSError, ValueError):
        known = {}
    if key not in known:
        times = _time_products(ops)
        # own unless MKL is clearly faster: one timing on a busy machine is noisy, and it sticks
        fastest = "mkl" if times["mkl"] < 0.9 * times["own"] else "own"
        known[key] = {"fastest": fastest, "seconds": times}
        with tempfile.NamedTemporaryFile("w", dir=lib.parent, delete=False) as tmp:
            json.dump(known, tmp, indent=1)
        os.replace(tmp.name, path)
    return known[key]["fastest"]


@functools.cache
def kernel() -> CppKernel | None:
    """The C++ kernel, built on first use; None where it cannot be had (unless required)."""
    chosen = choice()
    if chosen in ("torch", "triton"):
        return None
    try:
        if shutil.which(os.environ.get("CXX", "c++")) is None:
            raise RuntimeError("no C++ compiler on PATH")
        lib = library_path()
        if not lib.exists():
            print(f"asr.lstm: compiling the C++ LSTM kernel into {lib.parent} "
                  "(once; about half a minute)", file=sys.stderr, flush=True)
            build(lib)
        torch.ops.load_library(str(lib))
        ops = getattr(torch.ops, NAMESPACE)
        return CppKernel(ops, product(ops, lib))
    except UserError:  # a wrong setting (ASR_LSTM_PRODUCT) is the user's to fix, not a fallback
        raise
    except Exception as error:  # any failure here only costs speed, unless the kernel is required
        if chosen == "cpp":
            raise UserError(f"ASR_LSTM_KERNEL=cpp: the C++ LSTM kernel could not be built ({error}). "
                            "Install a C++ compiler (install.sh), or unset ASR_LSTM_KERNEL to fall back "
                            "to the plain torch loop") from error
        warnings.warn(f"asr.lstm: C++ kernel unavailable, using the plain torch loop ({error})",
                      RuntimeWarning, stacklevel=2)
        return None
