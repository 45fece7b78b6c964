// The time loop of the peephole LSTM (asr/lstm.py) for CPU tensors.
//
// Gers, Schraudolph & Schmidhuber 2002; Graves, Mohamed & Hinton 2013, eqs. 3-7:
//   i = s(zi + p_i c_prev)   f = s(zf + p_f c_prev)   g = tanh(zg)
//   c = f c_prev + i g       o = s(zo + p_o c)          h = o tanh(c)
// where z = W_x x_t + b + W_h h_prev (gate order i, f, g, o). The caller passes
// xg = W_x x for every frame; this file adds b and W_h h_prev step by step.
// The backward pass is Graves' backpropagation through time (thesis, sec. 4.6.2),
// the error carried back along the cell (dc) and through W_h (dh).
//
// Speed: the directions are independent, so with two threads or more each runs on
// its own (no synchronisation inside the time loop); with one direction, each
// step's product and gate loop are shared out among the threads instead. W_h is
// packed once per call for a register-blocked product (PackedMatrix), and the gate
// loop is one pass the compiler vectorises (glibc's vector exp and tanh, enabled by
// -ffast-math); both are 16 floats wide where built for AVX-512, 8 for AVX2. MKL's
// packed GEMM can replace the product (Product; extension.py picks the faster). Sequences are visited longest first, so the live ones are always a
// prefix of the state and the product runs on that prefix only, as with packed
// sequences. Direction 1 reads each sequence backwards from its own last frame.
// All tensors stay in the caller's layout: (B, T, dirs, H or GH).
//
// The other cells of the family (asr/_lstm/recurrence.py; Greff et al. 2017) are the
// same loop with one change each, chosen at compile time (Layout<C>): cifg couples
// f = 1 - i, nfg has f = 1, nog has o = 1 (h = tanh c), noaf has h = o c. A cell has
// only the gate rows (G of i, f, g, o, in that order) and peepholes (P of p_i, p_f,
// p_o) it uses. The `cell` argument numbers them as recurrence.CELLS does.

#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <tuple>
#include <type_traits>
#include <utility>
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

// ---------------------------------------------------------------------------
// The recurrent product, C (n, N) = A (n, K) @ B (K, N), with B fixed for the whole
// sequence: B is packed once into panels of NR columns (zero padded, K x NR each,
// contiguous), and a register-blocked kernel computes MR x NR blocks of C with
// broadcast-multiply-adds. A general GEMM would repack B at every step, which for
// these shapes (n = batch, K = H, N = 4H and back) costs nearly as much as the product.

// The vector width is the compiler's: extension.py passes the AVX-512 flags only where
// torch itself runs AVX-512 kernels (get_cpu_capability), and the AVX2 ones otherwise.
// AVX-512 also has 32 vector registers instead of 16, so a block can have more rows.
#if defined(__AVX512F__)
constexpr int64_t VECTOR_BYTES = 64;
constexpr int64_t MR = 8;  // rows of C per block: 2 * MR accumulators + 3 operands fit 32 registers
#else
constexpr int64_t VECTOR_BYTES = 32;
constexpr int64_t MR = 6;  // rows of C per block: 2 * MR accumulators + 3 operands fit 16 registers
#endif

template <typename T>
struct Lanes {
  static constexpr int64_t count = VECTOR_BYTES / sizeof(T);  // one vector
  using Vec [[gnu::vector_size(VECTOR_BYTES)]] = T;
};

template <typename T, int64_t ROWS>
void block_product(int64_t K, const T* __restrict__ A, int64_t lda, const T* __restrict__ panel,
                   T* __restrict__ C, int64_t ldc, int64_t cols) {
  using Vec = typename Lanes<T>::Vec;
  constexpr int64_t L = Lanes<T>::count;
  Vec low[ROWS], high[ROWS];
  for (int64_t r = 0; r < ROWS; ++r) low[r] = high[r] = Vec{};
#pragma GCC unroll 4
  for (int64_t k = 0; k < K; ++k) {
    Vec b_low, b_high;
    std::memcpy(&b_low, panel + k * 2 * L, sizeof(Vec));
    std::memcpy(&b_high, panel + k * 2 * L + L, sizeof(Vec));
    for (int64_t r = 0; r < ROWS; ++r) {
      const Vec a = Vec{} + A[r * lda + k];
      low[r] += a * b_low;
      high[r] += a * b_high;
    }
  }
  for (int64_t r = 0; r < ROWS; ++r) {
    if (cols == 2 * L) {
      std::memcpy(C + r * ldc, &low[r], sizeof(Vec));
      std::memcpy(C + r * ldc + L, &high[r], sizeof(Vec));
    } else {
      for (int64_t j = 0; j < cols; ++j) C[r * ldc + j] = j < L ? low[r][j] : high[r][j - L];
    }
  }
}

// MKL's packed GEMM, the way oneDNN runs its RNNs: W_h is packed once into MKL's own
// layout for this CPU, and each step's product reads it as is. torch's x86 builds link
// MKL statically and export these (LP64: int sizes; the enums are ints); they are weak
// so that the library still loads on a torch without them (the own kernel then runs).
extern "C" {
[[gnu::weak]] size_t cblas_sgemm_pack_get_size(int identifier, int m, int n, int k);
[[gnu::weak]] void cblas_sgemm_pack(int layout, int identifier, int trans, int m, int n, int k,
                                    float alpha, const float* src, int ld, float* dest);
[[gnu::weak]] void cblas_sgemm_compute(int layout, int transa, int transb, int m, int n, int k,
                                       const float* a, int lda, const float* b, int ldb,
                                       float beta, float* c, int ldc);
}
constexpr int kRowMajor = 101, kNoTrans = 111, kTrans = 112, kPacked = 151, kBMatrix = 162;

bool mkl_available() { return cblas_sgemm_pack_get_size && cblas_sgemm_pack && cblas_sgemm_compute; }

// block_product for the last block's `rows` (< ROWS) as well as for full ones.
template <typename T, int64_t ROWS = MR>
void block_rows(int64_t rows, int64_t K, const T* A, int64_t lda, const T* panel, T* C, int64_t ldc,
                int64_t cols) {
  if constexpr (ROWS > 1) {
    if (rows < ROWS) return block_rows<T, ROWS - 1>(rows, K, A, lda, panel, C, ldc, cols);
  }
  block_product<T, ROWS>(K, A, lda, panel, C, ldc, cols);
}

template <typename T>
class PackedMatrix {
 public:
  static constexpr int64_t NR = 2 * Lanes<T>::count;

  // B[k][j] = data[k * k_stride + j * j_stride]
  PackedMatrix(const T* data, int64_t K, int64_t N, int64_t k_stride, int64_t j_stride)
      : K_(K), N_(N), panels_((N + NR - 1) / NR),
        packed_(at::zeros({panels_ * K * NR}, c10::CppTypeToScalarType<T>::value)) {
    T* out = packed_.data_ptr<T>();
    for (int64_t p = 0; p < panels_; ++p) {
      for (int64_t k = 0; k < K; ++k) {
        for (int64_t j = p * NR; j < std::min(N, (p + 1) * NR); ++j) {
          out[(p * K + k) * NR + j - p * NR] = data[k * k_stride + j * j_stride];
        }
      }
    }
  }

  // Also packs B[:, first:last] for MKL, for each of the column ranges that multiply
  // will be asked for (a thread's chunk); float only, and only where MKL is there.
  void pack_mkl(const T* data, int64_t k_stride, int64_t j_stride,
                const std::vector<std::pair<int64_t, int64_t>>& ranges) {
    if constexpr (std::is_same_v<T, float>) {
      if (!mkl_available()) return;
      for (auto [first, last] : ranges) {
        const int n = static_cast<int>(last - first), k = static_cast<int>(K_);
        // B row-major is NoTrans with ld = k_stride; B^T row-major (j_stride > 1) is Trans
        const bool trans = j_stride != 1;
        const int ld = static_cast<int>(trans ? j_stride : k_stride);
        const T* src = data + first * j_stride;
        const int64_t floats = (cblas_sgemm_pack_get_size(kBMatrix, MR, n, k) + 3) / 4;
        mkl_.push_back({first, last, at::empty({floats}, at::kFloat)});
        cblas_sgemm_pack(kRowMajor, kBMatrix, trans ? kTrans : kNoTrans, MR, n, k, 1.0f, src, ld,
                         mkl_.back().packed.template data_ptr<float>());
      }
    }
  }

  // C[:n, first:last] = A[:n] @ B[:, first:last], for columns first, last on panel
  // boundaries (multiples of NR, or last = N).
  void multiply(const T* A, int64_t lda, int64_t n, T* C, int64_t ldc, int64_t first,
                int64_t last) const {
    if constexpr (std::is_same_v<T, float>) {
      for (const auto& m : mkl_) {
        if (m.first == first && m.last == last) {
          cblas_sgemm_compute(kRowMajor, kNoTrans, kPacked, static_cast<int>(n),
                              static_cast<int>(last - first), static_cast<int>(K_), A,
                              static_cast<int>(lda), m.packed.template data_ptr<float>(),
                              static_cast<int>(last - first), 0.0f, C + first,
                              static_cast<int>(ldc));
          return;
        }
      }
    }
    const T* packed = packed_.data_ptr<T>();
    for (int64_t p = first / NR; p * NR < last; ++p) {
      const T* panel = packed + p * K_ * NR;
      const int64_t cols = std::min(NR, N_ - p * NR);
      for (int64_t r = 0; r < n; r += MR) {
        const T* a = A + r * lda;
        T* c = C + r * ldc + p * NR;
        block_rows<T>(std::min(MR, n - r), K_, a, lda, panel, c, ldc, cols);
      }
    }
  }

 private:
  int64_t K_, N_, panels_;
  at::Tensor packed_;
  struct MklPack {
    int64_t first, last;
    at::Tensor packed;
  };
  std::vector<MklPack> mkl_;  // empty unless pack_mkl was called (and MKL is there)
};

// ---------------------------------------------------------------------------
// The gates of one step of one sequence, for hidden units [first, last).

// How the recurrent product runs: the own packed kernel, or MKL's packed GEMM (float
// only; extension.py times both once per machine and passes the faster).
enum Product : int64_t { OWN = 0, MKL = 1 };

enum Cell : int64_t { PEEPHOLE = 0, CIFG = 1, NFG = 2, NOG = 3, NOAF = 4 };

template <int64_t C>
struct Layout {
  static constexpr bool has_f = C != CIFG && C != NFG;
  static constexpr bool has_o = C != NOG;
  static constexpr int64_t G = 2 + has_f + has_o;  // gate rows: i, [f], g, [o]
  static constexpr int64_t P = 1 + has_f + has_o;  // peephole rows: p_i, [p_f], [p_o]
  static constexpr int64_t g = has_f ? 2 : 1;      // the row of g
  static constexpr int64_t o = G - 1;              // the row of o (if has_o)
  static constexpr int64_t p_o = P - 1;            // the row of p_o (if has_o)
};

template <typename T>
inline T sigmoid(T x) {
  // Under -ffast-math the division is a reciprocal estimate, which makes 1 / inf a
  // NaN: keep exp(-x) finite. Past the limit sigmoid is within 1e-34 of 0 or 1.
  constexpr T limit = sizeof(T) == 4 ? T(80) : T(700);
  x = std::min(std::max(x, -limit), limit);
  return T(1) / (T(1) + std::exp(-x));
}

// z holds W_x x of this frame on entry and the activations of the cell's gates on
// return; hz = W_h h_prev.
template <typename T, int64_t C>
void gates_forward(int64_t H, int64_t first, int64_t last, T* __restrict__ z,
                   const T* __restrict__ bias, const T* __restrict__ hz,
                   const T* __restrict__ peep, T* __restrict__ c_state, T* __restrict__ h_state,
                   T* __restrict__ h_out, T* __restrict__ c_out) {
  using L = Layout<C>;
  const T* p_i = peep;
  const T* p_f = peep + H;
  const T* p_o = peep + L::p_o * H;
#pragma GCC ivdep
  for (int64_t j = first; j < last; ++j) {
    const T c_prev = c_state[j];
    const T i = sigmoid(z[j] + bias[j] + hz[j] + p_i[j] * c_prev);
    T f = T(1);
    if constexpr (L::has_f) {
      f = sigmoid(z[H + j] + bias[H + j] + hz[H + j] + p_f[j] * c_prev);
      z[H + j] = f;
    } else if constexpr (C == CIFG) {
      f = T(1) - i;
    }
    const int64_t gj = L::g * H + j, oj = L::o * H + j;
    const T g = std::tanh(z[gj] + bias[gj] + hz[gj]);
    const T c = f * c_prev + i * g;
    T h = C == NOAF ? c : std::tanh(c);
    if constexpr (L::has_o) {
      const T o = sigmoid(z[oj] + bias[oj] + hz[oj] + p_o[j] * c);
      h *= o;
      z[oj] = o;
    }
    z[j] = i;
    z[gj] = g;
    c_state[j] = c;
    c_out[j] = c;
    h_state[j] = h;
    h_out[j] = h;
  }
}

// The same step backwards: gate pre-activation errors from the output error dh
// (from above and from the next step) and the cell error carried in dc_state.
template <typename T, int64_t C>
void gates_backward(int64_t H, int64_t first, int64_t last, const T* __restrict__ grad_h,
                    const T* __restrict__ dh_next, const T* __restrict__ act,
                    const T* __restrict__ c,
                    const T* __restrict__ c_prev, const T* __restrict__ peep,
                    T* __restrict__ dc_state, T* __restrict__ dz, T* __restrict__ dz_out) {
  using L = Layout<C>;
  const T* p_i = peep;
  const T* p_f = peep + H;
  const T* p_o = peep + L::p_o * H;
#pragma GCC ivdep
  for (int64_t j = first; j < last; ++j) {
    const int64_t gj = L::g * H + j, oj = L::o * H + j;
    const T i = act[j], g = act[gj];
    const T f = L::has_f ? act[H + j] : C == CIFG ? T(1) - i : T(1);
    const T dh = grad_h[j] + dh_next[j];
    // h = o out(c), out = tanh (noaf: the identity)
    const T tc = C == NOAF ? c[j] : std::tanh(c[j]);
    const T d_out = C == NOAF ? T(1) : T(1) - tc * tc;
    T dc = dc_state[j];
    if constexpr (L::has_o) {
      const T o = act[oj];
      const T dzo = dh * tc * o * (T(1) - o);
      dc += dh * o * d_out + dzo * p_o[j];
      dz[oj] = dz_out[oj] = dzo;
    } else {
      dc += dh * d_out;
    }
    // c = f c_prev + i g; cifg: f = 1 - i, so i also acts through f
    const T dzi = dc * (C == CIFG ? g - c_prev[j] : g) * i * (T(1) - i);
    const T dzg = dc * i * (T(1) - g * g);
    T carried = dc * f + dzi * p_i[j];
    if constexpr (L::has_f) {
      const T dzf = dc * c_prev[j] * f * (T(1) - f);
      carried += dzf * p_f[j];
      dz[H + j] = dz_out[H + j] = dzf;
    }
    dc_state[j] = carried;
    dz[j] = dz_out[j] = dzi;
    dz[gj] = dz_out[gj] = dzg;
  }
}

// ---------------------------------------------------------------------------

void check_inputs(const at::Tensor& x, const at::Tensor& w_hh, const at::Tensor& peep, int64_t G,
                  int64_t P) {
  for (const auto* t : {&x, &w_hh, &peep}) {
    TORCH_CHECK(t->device().is_cpu() && t->is_contiguous() && t->scalar_type() == x.scalar_type(),
                "the C++ LSTM kernel wants contiguous CPU tensors of one dtype");
  }
  const int64_t dirs = w_hh.size(0), H = w_hh.size(2);
  TORCH_CHECK(x.dim() == 4 && x.size(2) == dirs && x.size(3) == G * H && w_hh.size(1) == G * H &&
                  peep.numel() == dirs * P * H,
              "expected (B, T, dirs, GH) gates, (dirs, GH, H) w_hh, (dirs, P, H) peepholes for "
              "the cell's G gates and P peepholes");
}

// How a call's work is shared among threads. Each step of each direction is cut
// into chunks of hidden units (whole panels), and a task is one (direction, chunk).
// When there are no more threads than directions, a chunk is the whole layer and
// each direction's loop runs start to end on one thread, with no synchronisation
// inside it. Otherwise every step is one parallel region over all tasks (its end is
// the only barrier): a chunk computes its units' columns of the product and then
// their gates, so the states are double-buffered (one step reads all of h while
// the next is written).
struct Teams {
  int64_t dirs, chunks, units;

  Teams(int64_t dirs_, int64_t H, int64_t panel) : dirs(dirs_), chunks(1), units(H) {
    const int64_t threads = at::in_parallel_region() ? 1 : at::get_num_threads();
    if (threads > dirs) {
      const int64_t wanted = (threads + dirs - 1) / dirs;
      units = ((H + wanted - 1) / wanted + panel - 1) / panel * panel;
      chunks = (H + units - 1) / units;
    }
  }
  int64_t first(int64_t chunk) const { return chunk * units; }
  int64_t last(int64_t chunk, int64_t H) const { return std::min(H, (chunk + 1) * units); }
  std::vector<std::pair<int64_t, int64_t>> ranges(int64_t H) const {
    std::vector<std::pair<int64_t, int64_t>> out;
    for (int64_t chunk = 0; chunk < chunks; ++chunk) out.emplace_back(first(chunk), last(chunk, H));
    return out;
  }

  // step(d, chunk, s) for every step (in the order given by steps) and task.
  template <typename F>
  void run(const std::vector<int64_t>& steps, const F& step) const {
    if (chunks == 1) {
      at::parallel_for(0, dirs, 1, [&](int64_t begin, int64_t end) {
        for (int64_t d = begin; d < end; ++d) {
          for (int64_t s : steps) step(d, 0, s);
        }
      });
      return;
    }
    for (int64_t s : steps) {
      at::parallel_for(0, dirs * chunks, 1, [&](int64_t begin, int64_t end) {
        for (int64_t task = begin; task < end; ++task) step(task / chunks, task % chunks, s);
      });
    }
  }
};

std::vector<int64_t> step_order(int64_t steps, bool backwards) {
  std::vector<int64_t> order(steps);
  std::iota(order.begin(), order.end(), 0);
  if (backwards) std::reverse(order.begin(), order.end());
  return order;
}

// xg (B, T, dirs, GH), bias (dirs, GH), w_hh (dirs, GH, H), peep (dirs, P, H), lengths (B,)
// -> h, c (B, T, dirs, H) zero at padded frames; xg is overwritten with the gate
// activations of the cell's gates (zero at padded frames), which backward needs.
template <int64_t C>
std::tuple<at::Tensor, at::Tensor> cell_forward(at::Tensor xg, const at::Tensor& bias,
                                                const at::Tensor& w_hh, const at::Tensor& peep,
                                                const at::Tensor& lengths, int64_t product) {
  constexpr int64_t G = Layout<C>::G;
  check_inputs(xg, w_hh, peep, G, Layout<C>::P);
  TORCH_CHECK(bias.is_contiguous() && bias.scalar_type() == xg.scalar_type() &&
                  bias.numel() == w_hh.size(0) * w_hh.size(1),
              "expected a contiguous (dirs, GH) bias");
  const int64_t B = xg.size(0), T = xg.size(1), dirs = xg.size(2), H = w_hh.size(2);
  const Schedule plan(lengths, T);
  auto h = at::empty({B, T, dirs, H}, xg.options());
  auto c = at::empty({B, T, dirs, H}, xg.options());
  for (auto* y : {&h, &c, &xg}) plan.zero_padding(*y);
  AT_DISPATCH_FLOATING_TYPES(xg.scalar_type(), "peephole_lstm_forward", [&] {
    using Packed = PackedMatrix<scalar_t>;
    const Teams teams(dirs, H, Packed::NR);
    // per direction and gate: W_hg^T, so that hz[:, gH:(g+1)H] = h_prev @ W_hg^T
    std::vector<Packed> w;
    for (int64_t d = 0; d < dirs; ++d) {
      for (int64_t g = 0; g < G; ++g) {
        w.emplace_back(w_hh.data_ptr<scalar_t>() + (d * G + g) * H * H, H, H, 1, H);
        if (product == MKL) w.back().pack_mkl(w_hh.data_ptr<scalar_t>() + (d * G + g) * H * H, 1, H,
                                              teams.ranges(H));
      }
    }
    // state per direction: h of the step before and of this step, c, and W_h h_prev
    auto h_state = at::zeros({dirs, 2, B, H}, xg.options());
    auto c_state = at::zeros({dirs, B, H}, xg.options());
    auto hz = at::zeros({dirs, B, G * H}, xg.options());
    scalar_t* z_p = xg.data_ptr<scalar_t>();
    scalar_t* h_p = h.data_ptr<scalar_t>();
    scalar_t* c_p = c.data_ptr<scalar_t>();
    teams.run(step_order(plan.steps(), false), [&](int64_t d, int64_t chunk, int64_t s) {
      const int64_t n = plan.live[s], first = teams.first(chunk), last = teams.last(chunk, H);
      const scalar_t* h_before = h_state.data_ptr<scalar_t>() + ((d * 2 + s % 2) * B) * H;
      scalar_t* h_now = h_state.data_ptr<scalar_t>() + ((d * 2 + (s + 1) % 2) * B) * H;
      scalar_t* hz_d = hz.data_ptr<scalar_t>() + d * B * G * H;
      if (s > 0) {  // h is zero before the first step, and so is hz
        for (int64_t g = 0; g < G; ++g) {
          w[d * G + g].multiply(h_before, H, n, hz_d + g * H, G * H, first, last);
        }
      }
      const scalar_t* p = peep.data_ptr<scalar_t>() + d * Layout<C>::P * H;
      const scalar_t* b_d = bias.data_ptr<scalar_t>() + d * G * H;
      scalar_t* c_d = c_state.data_ptr<scalar_t>() + d * B * H;
      for (int64_t r = 0; r < n; ++r) {
        const int64_t b = plan.order[r];
        const int64_t off = (b * T + plan.frame(d, s, b)) * dirs + d;
        gates_forward<scalar_t, C>(H, first, last, z_p + off * G * H, b_d, hz_d + r * G * H, p,
                                c_d + r * H, h_now + r * H, h_p + off * H, c_p + off * H);
      }
    });
  });
  return {h, c};
}

// grad_h, c (B, T, dirs, H), act (B, T, dirs, GH) from cell_forward
// -> dz (B, T, dirs, GH): the error of each gate's pre-activation, zero at padding.
template <int64_t C>
at::Tensor cell_backward(const at::Tensor& grad_h, const at::Tensor& w_hh, const at::Tensor& peep,
                         const at::Tensor& c, const at::Tensor& act, const at::Tensor& lengths,
                         int64_t product) {
  constexpr int64_t G = Layout<C>::G;
  check_inputs(act, w_hh, peep, G, Layout<C>::P);
  TORCH_CHECK(grad_h.sizes() == c.sizes() && grad_h.is_contiguous() && c.is_contiguous(),
              "expected contiguous grad_h and c of one shape");
  const int64_t B = act.size(0), T = act.size(1), dirs = act.size(2), H = w_hh.size(2);
  const Schedule plan(lengths, T);
  auto dz = at::empty({B, T, dirs, G * H}, act.options());
  plan.zero_padding(dz);
  AT_DISPATCH_FLOATING_TYPES(act.scalar_type(), "peephole_lstm_backward", [&] {
    using Packed = PackedMatrix<scalar_t>;
    const Teams teams(dirs, H, Packed::NR);
    std::vector<Packed> w;  // W_h per direction, so that dh = dz @ W_h
    for (int64_t d = 0; d < dirs; ++d) {
      w.emplace_back(w_hh.data_ptr<scalar_t>() + d * G * H * H, G * H, H, H, 1);
      if (product == MKL) w.back().pack_mkl(w_hh.data_ptr<scalar_t>() + d * G * H * H, H, 1,
                                            teams.ranges(H));
    }
    // state per direction: W_h^T dz of the step after, the cell error carried back,
    // and dz of the step after and of this step
    auto dh_next = at::zeros({dirs, B, H}, act.options());
    auto dc_state = at::zeros({dirs, B, H}, act.options());
    auto dz_rows = at::zeros({dirs, 2, B, G * H}, act.options());
    const auto zero = at::zeros({H}, act.options());
    const scalar_t* grad_p = grad_h.data_ptr<scalar_t>();
    const scalar_t* c_p = c.data_ptr<scalar_t>();
    const scalar_t* act_p = act.data_ptr<scalar_t>();
    scalar_t* dz_p = dz.data_ptr<scalar_t>();
    const int64_t steps = plan.steps();
    teams.run(step_order(steps, true), [&](int64_t d, int64_t chunk, int64_t s) {
      const int64_t n = plan.live[s], first = teams.first(chunk), last = teams.last(chunk, H);
      const scalar_t* dz_after = dz_rows.data_ptr<scalar_t>() + ((d * 2 + (s + 1) % 2) * B) * G * H;
      scalar_t* dz_now = dz_rows.data_ptr<scalar_t>() + ((d * 2 + s % 2) * B) * G * H;
      scalar_t* dh_d = dh_next.data_ptr<scalar_t>() + d * B * H;
      if (s + 1 < steps) {  // nothing comes back from beyond the last step
        w[d].multiply(dz_after, G * H, plan.live[s + 1], dh_d, H, first, last);
      }
      const scalar_t* p = peep.data_ptr<scalar_t>() + d * Layout<C>::P * H;
      scalar_t* dc_d = dc_state.data_ptr<scalar_t>() + d * B * H;
      for (int64_t r = 0; r < n; ++r) {
        const int64_t b = plan.order[r];
        const int64_t off = (b * T + plan.frame(d, s, b)) * dirs + d;
        const scalar_t* c_prev = s > 0
            ? c_p + ((b * T + plan.frame(d, s - 1, b)) * dirs + d) * H
            : zero.data_ptr<scalar_t>();
        gates_backward<scalar_t, C>(H, first, last, grad_p + off * H, dh_d + r * H,
                                 act_p + off * G * H, c_p + off * H, c_prev, p, dc_d + r * H,
                                 dz_now + r * G * H, dz_p + off * G * H);
      }
    });
  });
  return dz;
}

std::tuple<at::Tensor, at::Tensor> lstm_forward(at::Tensor xg, const at::Tensor& bias,
                                                const at::Tensor& w_hh, const at::Tensor& peep,
                                                const at::Tensor& lengths, int64_t cell,
                                                int64_t product) {
  switch (cell) {
    case PEEPHOLE: return cell_forward<PEEPHOLE>(xg, bias, w_hh, peep, lengths, product);
    case CIFG: return cell_forward<CIFG>(xg, bias, w_hh, peep, lengths, product);
    case NFG: return cell_forward<NFG>(xg, bias, w_hh, peep, lengths, product);
    case NOG: return cell_forward<NOG>(xg, bias, w_hh, peep, lengths, product);
    case NOAF: return cell_forward<NOAF>(xg, bias, w_hh, peep, lengths, product);
  }
  TORCH_CHECK(false, "unknown cell ", cell);
}

at::Tensor lstm_backward(const at::Tensor& grad_h, const at::Tensor& w_hh, const at::Tensor& peep,
                         const at::Tensor& c, const at::Tensor& act, const at::Tensor& lengths,
                         int64_t cell, int64_t product) {
  switch (cell) {
    case PEEPHOLE: return cell_backward<PEEPHOLE>(grad_h, w_hh, peep, c, act, lengths, product);
    case CIFG: return cell_backward<CIFG>(grad_h, w_hh, peep, c, act, lengths, product);
    case NFG: return cell_backward<NFG>(grad_h, w_hh, peep, c, act, lengths, product);
    case NOG: return cell_backward<NOG>(grad_h, w_hh, peep, c, act, lengths, product);
    case NOAF: return cell_backward<NOAF>(grad_h, w_hh, peep, c, act, lengths, product);
  }
  TORCH_CHECK(false, "unknown cell ", cell);
}

}  // namespace

TORCH_LIBRARY(asr_peephole_lstm, m) {
  m.def("forward(Tensor(a!) xg, Tensor bias, Tensor w_hh, Tensor peep, Tensor lengths,"
        " int cell=0, int product=0) -> (Tensor, Tensor)",
        &lstm_forward);
  m.def("mkl_available() -> bool", [] { return mkl_available(); });
  m.def("backward(Tensor grad_h, Tensor w_hh, Tensor peep, Tensor c, Tensor act,"
        " Tensor lengths, int cell=0, int product=0) -> Tensor",
        &lstm_backward);
}
