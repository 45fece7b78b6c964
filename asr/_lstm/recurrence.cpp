// The time loop of the peephole LSTM (asr/lstm.py) for CPU tensors.
//
// Gers, Schraudolph & Schmidhuber 2002; Graves, Mohamed & Hinton 2013, eqs. 3-7:
//   i = s(zi + p_i c_prev)   f = s(zf + p_f c_prev)   g = tanh(zg)
//   c = f c_prev + i g       o = s(zo + p_o c)          h = o tanh(c)
// where z = W_x x_t + b + W_h h_prev (gate order i, f, g, o). The caller passes
// xg = W_x x + b for every frame; this file adds W_h h_prev step by step.
// The backward pass is Graves' backpropagation through time (thesis, sec. 4.6.2),
// the error carried back along the cell (dc) and through W_h (dh).
//
// Speed: the directions are independent, so each runs on its own thread
// (at::parallel_for over the direction axis) with a single-threaded GEMM per step
// and one fused loop for the gates, which the compiler vectorises (libmvec exp and
// tanh under -ffast-math). Sequences are visited longest first, so the live ones
// are always a prefix of the state and the GEMM runs on that prefix only, as with
// packed sequences. Direction 1 reads each sequence backwards from its own last
// frame. All tensors stay in the caller's layout: (B, T, dirs, H or 4H).

#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/mm.h>
#include <ATen/ops/zeros.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <vector>

namespace {

// Which sequences are live at each step, longest first.
struct Schedule {
  std::vector<int64_t> order;  // batch indices sorted by length, longest first
  std::vector<int64_t> length; // by batch index
  std::vector<int64_t> live;   // live[s]: sequences with length > s (a prefix of order)

  Schedule(const at::Tensor& lengths, int64_t T) {
    auto lens = lengths.to(at::kCPU, at::kLong).contiguous();
    const int64_t B = lens.numel();
    length.assign(lens.data_ptr<int64_t>(), lens.data_ptr<int64_t>() + B);
    for (int64_t len : length) {
      TORCH_CHECK(len >= 0 && len <= T, "sequence length ", len, " outside [0, ", T, "]");
    }
    order.resize(B);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](int64_t a, int64_t b) { return length[a] > length[b]; });
    const int64_t steps = B ? length[order[0]] : 0;
    live.assign(steps, 0);
    for (int64_t s = 0; s < steps; ++s) {
      while (live[s] < B && length[order[live[s]]] > s) ++live[s];
    }
  }
  int64_t steps() const { return static_cast<int64_t>(live.size()); }
  // Zeroes the frames of y (B, T, ...) past each sequence's end; the loop writes the rest.
  void zero_padding(at::Tensor& y) const {
    const int64_t T = y.size(1), frame_bytes = y.stride(1) * y.element_size();
    auto* base = static_cast<char*>(y.data_ptr());
    for (int64_t b = 0; b < y.size(0); ++b) {
      std::memset(base + (b * T + length[b]) * frame_bytes, 0, (T - length[b]) * frame_bytes);
    }
  }
  // The frame that direction `dir` reads at step s of sequence b.
  int64_t frame(int64_t dir, int64_t s, int64_t b) const {
    return dir == 0 ? s : length[b] - 1 - s;
  }
};

template <typename T>
inline T sigmoid(T x) {
  return T(1) / (T(1) + std::exp(-x));
}

// One step of one sequence: gate activations, new cell and output.
template <typename T>
void gates_forward(int64_t H, const T* __restrict__ xg, const T* __restrict__ hz,
                   const T* __restrict__ peep, T* __restrict__ c_state,
                   T* __restrict__ h_state, T* __restrict__ act, T* __restrict__ h_out,
                   T* __restrict__ c_out) {
  const T* p_i = peep;
  const T* p_f = peep + H;
  const T* p_o = peep + 2 * H;
#pragma GCC ivdep
  for (int64_t j = 0; j < H; ++j) {
    const T c_prev = c_state[j];
    const T i = sigmoid(xg[j] + hz[j] + p_i[j] * c_prev);
    const T f = sigmoid(xg[H + j] + hz[H + j] + p_f[j] * c_prev);
    const T g = std::tanh(xg[2 * H + j] + hz[2 * H + j]);
    const T c = f * c_prev + i * g;
    const T o = sigmoid(xg[3 * H + j] + hz[3 * H + j] + p_o[j] * c);
    const T h = o * std::tanh(c);
    act[j] = i;
    act[H + j] = f;
    act[2 * H + j] = g;
    act[3 * H + j] = o;
    c_state[j] = c;
    c_out[j] = c;
    h_state[j] = h;
    h_out[j] = h;
  }
}

// The same step backwards: gate pre-activation errors from the output error dh
// (from above and from the next step) and the cell error carried in dc_state.
template <typename T>
void gates_backward(int64_t H, const T* __restrict__ grad_h, const T* __restrict__ dh_next,
                    const T* __restrict__ act, const T* __restrict__ c,
                    const T* __restrict__ c_prev, const T* __restrict__ peep,
                    T* __restrict__ dc_state, T* __restrict__ dz, T* __restrict__ dz_out) {
  const T* p_i = peep;
  const T* p_f = peep + H;
  const T* p_o = peep + 2 * H;
#pragma GCC ivdep
  for (int64_t j = 0; j < H; ++j) {
    const T i = act[j], f = act[H + j], g = act[2 * H + j], o = act[3 * H + j];
    const T dh = grad_h[j] + dh_next[j];
    const T tc = std::tanh(c[j]);
    const T dzo = dh * tc * o * (T(1) - o);
    const T dc = dc_state[j] + dh * o * (T(1) - tc * tc) + dzo * p_o[j];
    const T dzi = dc * g * i * (T(1) - i);
    const T dzf = dc * c_prev[j] * f * (T(1) - f);
    const T dzg = dc * i * (T(1) - g * g);
    dc_state[j] = dc * f + dzi * p_i[j] + dzf * p_f[j];
    dz[j] = dz_out[j] = dzi;
    dz[H + j] = dz_out[H + j] = dzf;
    dz[2 * H + j] = dz_out[2 * H + j] = dzg;
    dz[3 * H + j] = dz_out[3 * H + j] = dzo;
  }
}

void check_inputs(const at::Tensor& x, const at::Tensor& w_hh, const at::Tensor& peep) {
  TORCH_CHECK(x.device().is_cpu() && w_hh.device().is_cpu() && peep.device().is_cpu(),
              "the C++ LSTM kernel runs on CPU tensors only");
  TORCH_CHECK(x.dim() == 4 && x.is_contiguous() && w_hh.is_contiguous() && peep.is_contiguous(),
              "expected contiguous (B, T, dirs, 4H) gates, (dirs, 4H, H) w_hh, (dirs, 3, H) peepholes");
  TORCH_CHECK(x.scalar_type() == w_hh.scalar_type() && x.scalar_type() == peep.scalar_type(),
              "gates, w_hh and peepholes must share one dtype");
}

// Runs body(dir) for every direction: one thread each when there are threads to
// spare, otherwise in turn (and then each GEMM may use all threads).
template <typename F>
void for_each_direction(int64_t dirs, const F& body) {
  at::parallel_for(0, dirs, 1, [&](int64_t begin, int64_t end) {
    for (int64_t d = begin; d < end; ++d) body(d);
  });
}

// xg (B, T, dirs, 4H), w_hh (dirs, 4H, H), peep (dirs, 3, H), lengths (B,)
// -> h, c (B, T, dirs, H) zero at padded frames, act (B, T, dirs, 4H): i, f, g, o.
std::vector<at::Tensor> lstm_forward(const at::Tensor& xg, const at::Tensor& w_hh,
                                     const at::Tensor& peep, const at::Tensor& lengths) {
  check_inputs(xg, w_hh, peep);
  const int64_t B = xg.size(0), T = xg.size(1), dirs = xg.size(2), H = w_hh.size(2);
  const Schedule plan(lengths, T);
  auto h = at::empty({B, T, dirs, H}, xg.options());
  auto c = at::empty({B, T, dirs, H}, xg.options());
  auto act = at::empty({B, T, dirs, 4 * H}, xg.options());
  for (auto* y : {&h, &c, &act}) plan.zero_padding(*y);
  AT_DISPATCH_FLOATING_TYPES(xg.scalar_type(), "peephole_lstm_forward", [&] {
    const scalar_t* xg_p = xg.data_ptr<scalar_t>();
    scalar_t* h_p = h.data_ptr<scalar_t>();
    scalar_t* c_p = c.data_ptr<scalar_t>();
    scalar_t* act_p = act.data_ptr<scalar_t>();
    for_each_direction(dirs, [&](int64_t d) {
      auto h_state = at::zeros({B, H}, xg.options());
      auto c_state = at::zeros({B, H}, xg.options());
      auto hz = at::zeros({B, 4 * H}, xg.options());  // W_h h_prev; zero at the first step
      scalar_t* h_state_p = h_state.data_ptr<scalar_t>();
      scalar_t* c_state_p = c_state.data_ptr<scalar_t>();
      const scalar_t* hz_p = hz.data_ptr<scalar_t>();
      const auto w_t = w_hh[d].t();
      const scalar_t* p = peep.data_ptr<scalar_t>() + d * 3 * H;
      for (int64_t s = 0; s < plan.steps(); ++s) {
        const int64_t n = plan.live[s];
        if (s > 0) {
          auto hz_live = hz.narrow(0, 0, n);
          at::mm_out(hz_live, h_state.narrow(0, 0, n), w_t);
        }
        for (int64_t r = 0; r < n; ++r) {
          const int64_t b = plan.order[r];
          const int64_t off = (b * T + plan.frame(d, s, b)) * dirs + d;
          gates_forward<scalar_t>(H, xg_p + off * 4 * H, hz_p + r * 4 * H, p,
                                  c_state_p + r * H, h_state_p + r * H,
                                  act_p + off * 4 * H, h_p + off * H, c_p + off * H);
        }
      }
    });
  });
  return {h, c, act};
}

// grad_h, c (B, T, dirs, H), act (B, T, dirs, 4H) from lstm_forward
// -> dz (B, T, dirs, 4H): the error of each gate's pre-activation, zero at padding.
at::Tensor lstm_backward(const at::Tensor& grad_h, const at::Tensor& w_hh, const at::Tensor& peep,
                         const at::Tensor& c, const at::Tensor& act, const at::Tensor& lengths) {
  check_inputs(act, w_hh, peep);
  TORCH_CHECK(grad_h.is_contiguous() && c.is_contiguous(), "expected contiguous grad_h and c");
  const int64_t B = act.size(0), T = act.size(1), dirs = act.size(2), H = w_hh.size(2);
  const Schedule plan(lengths, T);
  auto dz = at::empty({B, T, dirs, 4 * H}, act.options());
  plan.zero_padding(dz);
  AT_DISPATCH_FLOATING_TYPES(act.scalar_type(), "peephole_lstm_backward", [&] {
    const scalar_t* grad_p = grad_h.data_ptr<scalar_t>();
    const scalar_t* c_p = c.data_ptr<scalar_t>();
    const scalar_t* act_p = act.data_ptr<scalar_t>();
    scalar_t* dz_p = dz.data_ptr<scalar_t>();
    for_each_direction(dirs, [&](int64_t d) {
      auto dh_next = at::zeros({B, H}, act.options());  // W_h^T dz of the step after
      auto dc_state = at::zeros({B, H}, act.options());
      auto dz_rows = at::empty({B, 4 * H}, act.options());
      const auto zero = at::zeros({H}, act.options());
      const scalar_t* dh_next_p = dh_next.data_ptr<scalar_t>();
      scalar_t* dc_state_p = dc_state.data_ptr<scalar_t>();
      scalar_t* dz_rows_p = dz_rows.data_ptr<scalar_t>();
      const auto w = w_hh[d];
      const scalar_t* p = peep.data_ptr<scalar_t>() + d * 3 * H;
      for (int64_t s = plan.steps() - 1; s >= 0; --s) {
        const int64_t n = plan.live[s];
        for (int64_t r = 0; r < n; ++r) {
          const int64_t b = plan.order[r];
          const int64_t off = (b * T + plan.frame(d, s, b)) * dirs + d;
          const scalar_t* c_prev = s > 0
              ? c_p + ((b * T + plan.frame(d, s - 1, b)) * dirs + d) * H
              : zero.data_ptr<scalar_t>();
          gates_backward<scalar_t>(H, grad_p + off * H, dh_next_p + r * H, act_p + off * 4 * H,
                                   c_p + off * H, c_prev, p, dc_state_p + r * H,
                                   dz_rows_p + r * 4 * H, dz_p + off * 4 * H);
        }
        if (s > 0) {
          auto dh_live = dh_next.narrow(0, 0, n);
          at::mm_out(dh_live, dz_rows.narrow(0, 0, n), w);
        }
      }
    });
  });
  return dz;
}

}  // namespace

TORCH_LIBRARY(asr_peephole_lstm, m) {
  m.def("forward(Tensor xg, Tensor w_hh, Tensor peep, Tensor lengths) -> Tensor[]", &lstm_forward);
  m.def("backward(Tensor grad_h, Tensor w_hh, Tensor peep, Tensor c, Tensor act, Tensor lengths) -> Tensor",
        &lstm_backward);
}
