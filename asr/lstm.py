"""Stacked bidirectional LSTM with peephole connections: exact, and as fast as nn.LSTM.

Per direction (Gers, Schraudolph & Schmidhuber 2002; Graves, Mohamed & Hinton 2013,
eqs. 3-7), with x_t the input and h, c zero before the first frame:

    i_t = σ(W_xi x_t + W_hi h_{t-1} + p_i ⊙ c_{t-1} + b_i)
    f_t = σ(W_xf x_t + W_hf h_{t-1} + p_f ⊙ c_{t-1} + b_f)
    g_t = tanh(W_xg x_t + W_hg h_{t-1} + b_g)
    c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t
    o_t = σ(W_xo x_t + W_ho h_{t-1} + p_o ⊙ c_t + b_o)
    h_t = o_t ⊙ tanh(c_t)

The reverse direction starts at each sequence's own last frame; outputs at padded
frames are zero. nn.LSTM (and cuDNN, oneDNN) have no peepholes, hence this layer.

How it is fast (benchmarks/lstm.py measures it against nn.LSTM):
- each layer is one `torch.autograd.Function` with a hand-written backward
  (backpropagation through time, Graves' thesis sec. 4.6.2), so autograd sees one
  node per layer, not thousands of small ops;
- everything that does not depend on the previous step is one large GEMM over all
  frames and both directions: the input projections W_x x forwards, and dx, dW_x,
  dW_h and the bias and peephole gradients backwards;
- only the recurrence is a time loop. On CPU it runs in C++
  (asr/_lstm/recurrence.cpp): the two directions on two threads, W_h packed once for
  a register-blocked product per step, and the bias, peepholes and gate
  nonlinearities in one vectorised loop; built with AVX-512 (16-wide) where torch
  itself runs AVX-512, else AVX2. MKL's packed GEMM can run the per-step product
  instead (``ASR_LSTM_PRODUCT=auto|own|mkl``; auto times both once per machine). On
  CUDA it runs in asr/_lstm/triton_loop.py: per step one cuBLAS product for both
  directions and one fused Triton kernel for the bias-added pre-activations ->
  gates, peepholes, c and h (backwards: one kernel for all gate errors and the
  carried dc, one product for dh); the whole loop is captured once per shape in a
  CUDA graph and replayed, so a 300-step layer is one launch, not 600
  (``ASR_LSTM_CUDA_GRAPHS=0`` turns graphs off). Its float32 products use TF32 when
  nn.LSTM's cuDNN kernels do (by default; ``cudnn_rnn_uses_tf32``). Where neither is available (no C++
  compiler, no triton) the same algorithm runs in torch ops
  (asr/_lstm/recurrence.py), both directions in one batched GEMM per step.
  ``ASR_LSTM_KERNEL=auto|triton|cpp|torch`` chooses (asr/_lstm/extension.py).
- under bf16 autocast (``train.precision=bf16``) the large products over all frames
  (input projections, dx, dW_x, dW_h) multiply in bf16 with float32 results, on a
  GPU and on CPUs with native bf16 (AVX512-BF16, AMX); the recurrence, its per-step
  product and the cell state stay float32 (``_bf16_products``).

Other cells (``cell=``; issue 12; Greff et al. 2017, "LSTM: a search space odyssey"):

- ``peephole``: the equations above (the default);
- ``cifg``: coupled input and forget gate, f_t = 1 - i_t;
- ``nfg``: no forget gate, f_t = 1, so c_t = c_{t-1} + i_t ⊙ g_t (Hochreiter &
  Schmidhuber 1997);
- ``nog``: no output gate, h_t = tanh(c_t);
- ``noaf``: no output activation, h_t = o_t ⊙ c_t;

  these five share the time loop and its hand-written backward; a cell has no
  parameters for what it lacks: its gate rows are the gates it has, in the order
  i, f, g, o (cifg and nfg: i, g, o; nog: i, f, g), its peephole rows those of its
  sigmoid gates (cifg and nfg: p_i, p_o; nog: p_i, p_f). The C++ loop runs all
  five, each compiled on its own (the cell is a template argument, so the gate loop
  has no branches).
- ``vanilla``: no peepholes (``peepholes=False``, as before the cells came); torch's
  own (cuDNN/oneDNN-backed) ``lstm`` op, fed from this module's parameters, with
  one bias (nn.LSTM's second is zero); on CUDA on packed sequences, on CPU on padded
  batches one layer at a time, which is much faster there and exact (``_fused_forward``);
- ``gru``: torch's fused GRU (Cho et al. 2014, gate rows r, z, n as nn.GRU):
  r_t = σ(W_xr x_t + W_hr h_{t-1} + b_r), z_t = σ(W_xz x_t + W_hz h_{t-1} + b_z),
  n_t = tanh(W_xn x_t + b_n + r_t ⊙ (W_hn h_{t-1} + b_hn)),
  h_t = (1 - z_t) ⊙ n_t + z_t ⊙ h_{t-1}; b_hn (``bias_hn``) is the one
  hidden-side bias that cannot be folded into ``bias``;
- ``rnn``: torch's fused tanh RNN, h_t = tanh(W_x x_t + W_h h_{t-1} + b).
"""

from __future__ import annotations

import contextlib
import functools

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from asr._lstm import extension
from asr._lstm import recurrence as torch_loop

LOOP_CELLS = torch_loop.CELLS  # peephole, cifg, nfg, nog, noaf: this module's time loop
FUSED_CELLS = {"vanilla": ("lstm", 4), "gru": ("gru", 3), "rnn": ("rnn_tanh", 1)}  # op, gates
CELLS = (*LOOP_CELLS[:1], "vanilla", *LOOP_CELLS[1:], "gru", "rnn")


def _kernel(device: torch.device):
    """The time loop to run on `device` (ASR_LSTM_KERNEL, asr/_lstm/extension.py): Triton on
    CUDA when triton imports, the C++ ops on CPU when built, else torch ops."""
    loop = extension.triton_loop(device)
    if loop is None and device.type == "cpu":
        loop = extension.kernel()
    return loop if loop is not None else torch_loop


def _no_autocast(device: torch.device):
    # The recurrence runs in its parameters' precision (float32 under bf16 autocast).
    if device.type in ("cpu", "cuda"):
        return torch.autocast(device.type, enabled=False)
    return contextlib.nullcontext()


@functools.cache
def _cpu_has_native_bf16() -> bool:
    # Private in torch; without them, assume none (bf16 is then emulated and slower than float32).
    checks = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(check() for check in checks if check is not None)


def _bf16_products(x: torch.Tensor) -> bool:
    """Whether a layer on float32 `x` runs its large products in bf16: under bf16 autocast, on a
    GPU or on a CPU with native bf16 arithmetic. Elsewhere a CPU emulates bf16 products, more
    slowly than float32 ones, and they stay float32. Asked before the layer turns autocast off."""
    device = x.device.type
    if x.dtype != torch.float32 or device not in ("cpu", "cuda") or not torch.is_autocast_enabled(device):
        return False
    return torch.get_autocast_dtype(device) == torch.bfloat16 and (device == "cuda" or _cpu_has_native_bf16())


def _product(a: torch.Tensor, b: torch.Tensor, bf16: bool) -> torch.Tensor:
    """a @ b, in a's dtype; multiplied in bf16 if `bf16` (the sums accumulate in float32 inside)."""
    if not bf16:
        return a @ b
    return (a.to(torch.bfloat16) @ b.to(torch.bfloat16)).to(a.dtype)


def cudnn_rnn_uses_tf32() -> bool:
    """Whether torch lets cuDNN's RNNs (nn.LSTM) multiply float32 in TF32: its default, yes.

    Set with ``torch.backends.cudnn.rnn.fp32_precision`` ("tf32" or "ieee"; "none" defers to
    ``torch.backends.cudnn`` and then ``torch.backends``), or in a torch without it, the one
    ``torch.backends.cudnn.allow_tf32``."""
    rnn = getattr(torch.backends.cudnn, "rnn", None)
    if not hasattr(rnn, "fp32_precision"):
        return bool(torch.backends.cudnn.allow_tf32)
    for level in (rnn.fp32_precision, torch.backends.cudnn.fp32_precision, torch.backends.fp32_precision):
        if level != "none":
            return level == "tf32"
    return False


@contextlib.contextmanager
def _layer_precision(device: torch.device):
    """Autocast off (see _no_autocast); on CUDA, the layer's float32 matrix products in TF32
    exactly when nn.LSTM's would be (cudnn_rnn_uses_tf32): cuDNN's LSTM multiplies in TF32
    by default while torch's matmuls do not, and the two layers should trade the same
    precision for speed. The switch is process-wide while the layer runs."""
    with _no_autocast(device):
        if device.type != "cuda":
            yield
            return
        # torch's one setter that keeps its old and new TF32 switches for matmuls consistent
        saved = torch.get_float32_matmul_precision()
        torch.set_float32_matmul_precision("high" if cudnn_rnn_uses_tf32() else "highest")
        try:
            yield
        finally:
            torch.set_float32_matmul_precision(saved)


def _reversal_index(lengths: torch.Tensor, T: int) -> torch.Tensor:
    """(B, T): frame t of each sequence reversed within its own length, len - 1 - t, and t
    itself at padding (which stays at the end). The map is its own inverse; it is
    torch_loop._frames' reverse direction, unclamped at padding."""
    t = torch.arange(T)
    return torch.where(t < lengths[:, None], lengths[:, None] - 1 - t, t)


def _gather_frames(y: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """y (B, T, K) with frames reordered per sequence: out[b, t] = y[b, index[b, t]]."""
    return y.gather(1, index[:, :, None].expand(-1, -1, y.shape[2]))


def _sum_over_steps(pair, now: torch.Tensor, before: torch.Tensor, d: int) -> torch.Tensor:
    """Σ over every step of direction d of pair(now[frame], before[the frame of the step
    before]), for (B, T, dirs, K) tensors that are zero at padding (so a sequence's
    first step pairs with zero).

    The step before frame t is t - 1 (direction 0) or t + 1 (direction 1). Flattening
    (B, T) into rows makes that a row offset of one, a single GEMM over strided views
    without copies; the one pair per sequence boundary that the offset wrongly joins
    (last frame of one sequence, first of the next) is then taken away."""
    def rows(y: torch.Tensor) -> torch.Tensor:
        return y[:, :, d].flatten(0, 1)

    if d == 0:
        return pair(rows(now)[1:], rows(before)[:-1]) - pair(now[1:, 0, d], before[:-1, -1, d])
    return pair(rows(now)[:-1], rows(before)[1:]) - pair(now[:-1, -1, d], before[1:, 0, d])


def _outer(a: torch.Tensor, b: torch.Tensor, bf16: bool = False) -> torch.Tensor:
    return _product(a.t(), b, bf16)


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a * b).sum(0)


class _Layer(torch.autograd.Function):
    """One layer, all directions: x (B, T, D) -> h (B, T, dirs * H).

    w_ih (dirs * GH, D) and bias (dirs * GH,) hold the directions one after the other,
    w_hh (dirs, GH, H), peep (dirs, P, H), for the G gates of torch_loop.GATES[cell] and
    the P peepholes of torch_loop.PEEPHOLES[cell]; lengths is a CPU tensor."""

    @staticmethod
    def forward(ctx, x, w_ih, bias, w_hh, peep, lengths, cell):
        B, T, D = x.shape
        dirs, G, H = w_hh.shape
        kernel = _kernel(x.device)
        if cell not in kernel.CELLS:
            kernel = torch_loop
        bf16 = _bf16_products(x)
        with _layer_precision(x.device):
            xg = _product(x.reshape(B * T, D), w_ih.t(), bf16).view(B, T, dirs, G)  # the kernel adds bias
            h, c, act = kernel.forward(xg, bias.view(dirs, G), w_hh.contiguous(), peep.contiguous(),
                                       lengths, cell)
        ctx.kernel, ctx.cell, ctx.bf16 = kernel, cell, bf16
        ctx.save_for_backward(x, w_ih, w_hh, peep, lengths, h, c, act)
        return h.view(B, T, dirs * H)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        x, w_ih, w_hh, peep, lengths, h, c, act = ctx.saved_tensors
        B, T, D = x.shape
        dirs, G, H = w_hh.shape
        with _layer_precision(x.device):
            grad_h = grad_out.reshape(B, T, dirs, H).contiguous()
            dz = ctx.kernel.backward(grad_h, w_hh.contiguous(), peep.contiguous(), c, act, lengths,
                                     ctx.cell)
            dz_rows = dz.view(B * T, dirs * G)
            d_x = _product(dz_rows, w_ih, ctx.bf16).view(B, T, D) if ctx.needs_input_grad[0] else None
            d_w_ih = _outer(dz_rows, x.reshape(B * T, D), ctx.bf16)
            d_bias = dz_rows.sum(0)
            outer = functools.partial(_outer, bf16=ctx.bf16)
            d_w_hh = torch.stack([_sum_over_steps(outer, dz, h, d) for d in range(dirs)])
            gates = torch_loop.GATES[ctx.cell]

            def d_peephole(gate: str, d: int) -> torch.Tensor:
                dz_gate = dz[..., gates.index(gate) * H:(gates.index(gate) + 1) * H]
                if gate == "o":  # p_o sees c_t, p_i and p_f see c_{t-1}
                    return _dot(dz_gate[:, :, d].flatten(0, 1), c[:, :, d].flatten(0, 1))
                return _sum_over_steps(_dot, dz_gate, c, d)

            d_peep = torch.stack([torch.stack([d_peephole(gate, d)
                                               for gate in torch_loop.PEEPHOLES[ctx.cell]])
                                  for d in range(dirs)])
        return d_x, d_w_ih, d_bias, d_w_hh, d_peep, None, None


class PeepholeLSTM(nn.Module):
    """Stacked (bidirectional) LSTM with peephole connections, batch-first; or, with
    `cell`, one of the other cells of the module docstring.

    Parameters, for layer k and suffix "" (forward) or "_reverse": ``weight_ih_l{k}``
    (GH, D_in), ``weight_hh_l{k}`` (GH, H), ``bias_l{k}`` (GH,), with G gate rows (the
    peephole cell: 4, i, f, g, o as in nn.LSTM), and with peepholes ``peephole_l{k}``
    (P, H) (the peephole cell: 3, p_i, p_f, p_o); gru adds ``bias_hn_l{k}`` (H,).
    Layer k > 0 reads the concatenated [forward, reverse] outputs of layer k - 1.
    ``peepholes=False`` is the old spelling of ``cell="vanilla"``.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bidirectional: bool = True, peepholes: bool = True, cell: str = "peephole"):
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"unknown cell {cell!r}: choose one of {', '.join(CELLS)}")
        if not peepholes:
            if cell not in ("peephole", "vanilla", "gru", "rnn"):
                raise ValueError(f"peepholes=False contradicts cell={cell!r}, which has peepholes")
            cell = "vanilla" if cell == "peephole" else cell
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bidirectional = bidirectional
        self.cell = cell
        H = hidden_size
        G = len(torch_loop.GATES[cell]) if cell in LOOP_CELLS else FUSED_CELLS[cell][1]
        for k in range(num_layers):
            layer_input = input_size if k == 0 else self.num_directions * H
            shapes = {"weight_ih": (G * H, layer_input), "weight_hh": (G * H, H), "bias": (G * H,)}
            if self.peepholes:
                shapes["peephole"] = (len(torch_loop.PEEPHOLES[cell]), H)
            if cell == "gru":
                shapes["bias_hn"] = (H,)
            for sfx in self._suffixes:
                for name, shape in shapes.items():
                    self.register_parameter(f"{name}_l{k}{sfx}", nn.Parameter(torch.empty(shape)))
        self.reset_parameters()

    @property
    def peepholes(self) -> bool:
        return self.cell in LOOP_CELLS

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def _suffixes(self) -> tuple[str, ...]:
        return ("", "_reverse") if self.bidirectional else ("",)

    def reset_parameters(self, init_range: float = 0.1) -> None:
        """Every weight, bias and peephole uniform in [-init_range, init_range] (Graves 2013)."""
        with torch.no_grad():
            for parameter in self.parameters():
                parameter.uniform_(-init_range, init_range)

    def _layer_parameters(self, k: int, name: str) -> list[torch.Tensor]:
        return [getattr(self, f"{name}_l{k}{sfx}") for sfx in self._suffixes]

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """x (B, T, input_size), lengths (B,) -> (B, T, num_directions * hidden_size)."""
        lengths = self._checked_lengths(x, lengths)
        B, T, _ = x.shape
        if B == 0:
            return x.new_zeros(0, T, self.num_directions * self.hidden_size)
        if not self.peepholes:
            return self._fused_forward(x, lengths)
        steps = int(lengths.max())
        y = x[:, :steps]  # frames past every sequence's end need no work
        dtype = torch.promote_types(self.weight_hh_l0.dtype, torch.float32)
        y = y.to(dtype)  # under autocast too: the layers run in float32 or float64
        for k in range(self.num_layers):
            w_ih, w_hh, bias, peep = (self._layer_parameters(k, name)
                                      for name in ("weight_ih", "weight_hh", "bias", "peephole"))
            y = _Layer.apply(y, *(torch.cat(w).to(dtype) for w in (w_ih, bias)),
                             *(torch.stack(w).to(dtype) for w in (w_hh, peep)), lengths, self.cell)
        if steps == T:
            return y
        return F.pad(y, (0, 0, 0, T - steps))

    def _checked_lengths(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[2] != self.input_size:
            raise ValueError(f"PeepholeLSTM expects x of shape (B, T, {self.input_size}), "
                             f"got {tuple(x.shape)}")
        lengths = torch.as_tensor(lengths).to("cpu", torch.long)
        if lengths.shape != (x.shape[0],):
            raise ValueError(f"lengths must have shape ({x.shape[0]},), got {tuple(lengths.shape)}")
        if len(lengths) and not (1 <= int(lengths.min()) and int(lengths.max()) <= x.shape[1]):
            raise ValueError(f"lengths must lie in [1, T={x.shape[1]}], got {lengths.tolist()}")
        return lengths

    def _fused_weights(self, k: int, sfx: str) -> list[torch.Tensor]:
        """Layer k's weights for torch's op: w_ih, w_hh, bias, and a hidden-side bias that is
        zero but for the GRU's b_hn (bias_hn), which sits inside r ⊙ (...)."""
        w_ih, w_hh, bias = (getattr(self, f"{name}_l{k}{sfx}")
                            for name in ("weight_ih", "weight_hh", "bias"))
        second = torch.zeros_like(bias)
        if self.cell == "gru":
            second = torch.cat([second[:2 * self.hidden_size], getattr(self, f"bias_hn_l{k}{sfx}")])
        return [w_ih, w_hh, bias, second]

    def _fused_op(self, x: torch.Tensor, weights: list[torch.Tensor], num_layers: int,
                  bidirectional: bool, batch_sizes: torch.Tensor | None = None) -> torch.Tensor:
        """torch's fused op from zero state: on a padded batch-first x (B, T, D), or on a
        packed sequence's data and batch_sizes."""
        # On a CPU the op runs in its parameters' precision, as the time loop does: under bf16
        # autocast oneDNN's LSTM needs AVX-512 and fails on AVX2 CPUs. CUDA keeps torch's policy.
        on_cpu = x.device.type == "cpu"
        x = x.to(weights[0].dtype) if on_cpu else x
        dirs = 2 if bidirectional else 1
        state = x.new_zeros(num_layers * dirs, x.shape[0] if batch_sizes is None else
                            int(batch_sizes[0]), self.hidden_size)
        state = (state, state) if self.cell == "vanilla" else state
        op = getattr(torch._VF, FUSED_CELLS[self.cell][0])
        flags = (True, num_layers, 0.0, self.training, bidirectional)
        with _no_autocast(x.device) if on_cpu else contextlib.nullcontext():
            if batch_sizes is None:
                return op(x, state, weights, *flags, True)[0]
            return op(x, batch_sizes, state, weights, *flags)[0]

    def _fused_forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """vanilla, gru, rnn: torch's own op, from this module's parameters.

        On CPU, torch runs packed sequences of unequal lengths in its generic per-step loop,
        several times slower than a padded batch: there the LSTM runs on oneDNN, and the GRU
        and RNN (no oneDNN path) project all frames' inputs in one GEMM. So on CPU the op runs
        on padded batches (_padded_forward). On CUDA, cuDNN runs packed
        sequences natively, all layers in one call; the padded path would only add two calls
        per layer and the gathers, so CUDA keeps packing."""
        if x.device.type == "cuda":
            return self._packed_forward(x, lengths)
        steps = int(lengths.max())
        y = x[:, :steps]  # frames past every sequence's end need no work
        if bool((lengths == steps).all()):  # nothing to mask: all layers and directions at once
            weights = [w for k in range(self.num_layers) for sfx in self._suffixes
                       for w in self._fused_weights(k, sfx)]
            y = self._fused_op(y, weights, self.num_layers, self.bidirectional)
        else:
            y = self._padded_forward(y, lengths)
        return F.pad(y, (0, 0, 0, x.shape[1] - steps))

    def _padded_forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The packed computation on a padded batch (B, T, D) of unequal lengths, layer by
        layer. A forward direction's outputs depend on no frame after them, so padding after
        a sequence's end cannot change them; the reverse direction runs forwards over each
        sequence reversed within its own length (padding stays at the end), and its outputs
        are reversed back. Outputs at padding are zeroed, so no gradient reaches padded
        frames, and the gradients are the packed computation's too."""
        B, T, _ = x.shape
        inside = (torch.arange(T) < lengths[:, None]).to(x.device)[:, :, None]  # (B, T, 1)
        reverse = _reversal_index(lengths, T).to(x.device)
        y = x.where(inside, 0)  # NaN or inf in padding would reach the gradients as 0 * NaN
        for k in range(self.num_layers):
            outputs = [self._fused_op(y, self._fused_weights(k, ""), 1, False)]
            if self.bidirectional:
                flipped = _gather_frames(y, reverse)
                out = self._fused_op(flipped, self._fused_weights(k, "_reverse"), 1, False)
                outputs.append(_gather_frames(out, reverse))  # the map is its own inverse
            y = torch.cat(outputs, dim=2).where(inside, 0)
        return y

    def _packed_forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """torch's op on packed sequences, all layers in one call."""
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        weights = [w for k in range(self.num_layers) for sfx in self._suffixes
                   for w in self._fused_weights(k, sfx)]
        out = self._fused_op(packed.data, weights, self.num_layers, self.bidirectional,
                             packed.batch_sizes)
        return pad_packed_sequence(packed._replace(data=out), batch_first=True,
                                   total_length=x.shape[1])[0]

    @torch.no_grad()
    def forward_state(self, x: torch.Tensor, state=None) -> tuple[torch.Tensor, list]:
        """Inference on the next frames of unpadded sequences, carrying the state across calls:
        x (B, T, input_size) and `state` (None at the start, else what the previous call returned)
        -> (B, T, hidden_size) and the state after the last frame, one (h, c) per layer.

        Feeding a sequence in pieces gives what `forward` gives on it whole (streaming,
        asr.transcribe.Transcriber.stream). Unidirectional only: the reverse direction starts
        at the sequence's end, which a stream has not seen yet."""
        if self.bidirectional:
            raise ValueError("forward_state needs a unidirectional LSTM: the reverse direction reads the future")
        state = state or [None] * self.num_layers
        y, new_state = x.to(self.weight_hh_l0.dtype), []
        for k in range(self.num_layers):
            y, layer_state = self._layer_state(k, y, state[k])
            new_state.append(layer_state)
        return y, new_state

    def _layer_state(self, k: int, x: torch.Tensor, state):
        """One layer of `forward_state`: torch's fused op with an initial state for vanilla, gru and
        rnn; the torch time loop (the C++ and Triton loops start from zero) for the peephole family."""
        B, T, _ = x.shape
        H = self.hidden_size
        w_ih, w_hh, bias = (getattr(self, f"{name}_l{k}") for name in ("weight_ih", "weight_hh", "bias"))
        if state is None:
            zeros = x.new_zeros(1, B, H)
            state = (zeros, zeros)
        if self.peepholes:
            xg = (x.reshape(B * T, -1) @ w_ih.t()).view(B, T, 1, -1)
            h, c, _ = torch_loop.forward(xg, bias.view(1, -1), w_hh[None], getattr(self, f"peephole_l{k}")[None],
                                         torch.full((B,), T), self.cell, state=state)
            return h.view(B, T, H), (h[:, -1].transpose(0, 1).contiguous(), c[:, -1].transpose(0, 1).contiguous())
        second = torch.zeros_like(bias)
        if self.cell == "gru":
            second = torch.cat([second[:2 * H], getattr(self, f"bias_hn_l{k}")])
        op = getattr(torch._VF, FUSED_CELLS[self.cell][0])
        hx = state if self.cell == "vanilla" else state[0]
        out = op(x, hx, [w_ih, w_hh, bias, second], True, 1, 0.0, False, False, True)
        if self.cell == "vanilla":
            return out[0], (out[1], out[2])
        return out[0], (out[1], out[1])

    @classmethod
    def from_torch(cls, lstm: nn.LSTM) -> "PeepholeLSTM":
        """A PeepholeLSTM with `lstm`'s weights (bias = bias_ih + bias_hh) and zero
        peepholes, which computes what `lstm` computes on packed sequences."""
        if not isinstance(lstm, nn.LSTM):
            raise ValueError(f"from_torch needs an nn.LSTM, got {type(lstm).__name__}")
        if lstm.proj_size > 0:
            raise ValueError("from_torch cannot copy an nn.LSTM with proj_size > 0: "
                             "PeepholeLSTM has no projection layer")
        if lstm.dropout > 0 and lstm.num_layers > 1:
            raise ValueError(f"from_torch cannot copy an nn.LSTM with dropout={lstm.dropout}: "
                             "PeepholeLSTM has no dropout between layers (apply it outside)")
        weight = lstm.weight_ih_l0
        new = cls(lstm.input_size, lstm.hidden_size, lstm.num_layers, lstm.bidirectional,
                  peepholes=True)
        new = new.to(device=weight.device, dtype=weight.dtype)
        with torch.no_grad():
            for k in range(lstm.num_layers):
                for sfx in new._suffixes:
                    def source(name: str, k: int = k, sfx: str = sfx) -> torch.Tensor:
                        return getattr(lstm, f"{name}_l{k}{sfx}")

                    getattr(new, f"weight_ih_l{k}{sfx}").copy_(source("weight_ih"))
                    getattr(new, f"weight_hh_l{k}{sfx}").copy_(source("weight_hh"))
                    bias = getattr(new, f"bias_l{k}{sfx}")
                    if lstm.bias:
                        bias.copy_(source("bias_ih") + source("bias_hh"))
                    else:
                        bias.zero_()
                    getattr(new, f"peephole_l{k}{sfx}").zero_()
        return new

    def extra_repr(self) -> str:
        return (f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, "
                f"bidirectional={self.bidirectional}, cell={self.cell}")
