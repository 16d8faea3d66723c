#pragma once
// fp32 block product for the distributed algorithms: one thread, no allocation after the first
// call, tuned for the small tiles a PE holds (tens of rows and columns). The mesh code calls it once
// per PE from its own parallel loop over PEs, where gemm_f32's internal threading and per-call
// panel allocation would dominate.
//
// Same summation order as gemm_f32 / gemm_f32_ref (fp32_gemm.hpp), so the three agree bit for bit:
// per output element acc = 0; acc = acc + a_k * b_k for k ascending; then C = acc or C = C + acc.
#include <cstdint>

namespace wm::kernels {

// C (M, N), ldc {=, +=} A (M, K), lda . B, where B is (K, N), ldb, or with b_trans B is (N, K), ldb
// and the product is A . B^T.
void gemm_f32_tile(std::int64_t M, std::int64_t N, std::int64_t K, const float* A, std::int64_t lda,
                   const float* B, std::int64_t ldb, bool b_trans, float* C, std::int64_t ldc, bool accumulate);

// Matrix-vector product on weights stored in row panels, the layout a PE keeps a stationary fp32
// GEMV block in. Rows come in groups of 64 stored column by column: element (64g + c, k) at
// 64g K + 64k + c, so a group is one sequential stream (per-PE blocks are short, and one stream
// keeps the hardware prefetcher ahead where four shorter ones did not). The R = M mod 64 rows after
// the last group, from row r0 = M - R on, are panels of 16: panel p holds rows r0 + 16p ..
// r0 + 16p + w - 1 (w = min(16, R - 16p)) column by column, element (r0 + 16p + j, k) at
// (r0 + 16p) K + k w + j. M K floats in all, no padding. One vector load then feeds 16 rows at
// once, where the row-major gemv_f32 must go row by row to keep each row's order. Same summation
// order as gemv_f32_ref (acc = 0; acc = acc + a_ik x_k for k ascending; y = acc or y = y + acc), so
// the two agree bit for bit. One thread; reads exactly M K floats of Ap.
void pack_f32_panels(std::int64_t M, std::int64_t K, const float* A, std::int64_t lda, float* Ap);
void gemv_f32_panels(std::int64_t M, std::int64_t K, const float* Ap, const float* x, float* y, bool accumulate);
// The same with OpenMP threads over blocks of panels (rows from a multiple of 64 on are a panel
// layout of their own); each row is still one thread's serial sum, so the result does not depend on
// the thread count. For a whole matrix on the host (benchmarks), not for per-PE blocks.
void gemv_f32_panels_mt(std::int64_t M, std::int64_t K, const float* Ap, const float* x, float* y, bool accumulate);

// The same panels holding bf16 values: weights that are exact in bf16 (the low 16 bits of every
// float are zero, as in checkpoints released in bf16 and in the synthetic weights) stored as their
// upper halves, half the bytes for a GEMV that streams its weights from memory. Same layout as the
// fp32 panels except inside a group's column: its 64 values come as two runs of 32 (rows 0-31,
// then 32-63), each with rows j and j + 16 interleaved (row 32h + j at slot 32h + 2j, row
// 32h + 16 + j at 32h + 2j + 1), so 16 words widen to 32 floats with a shift and a mask. The
// kernel widens each value exactly and runs gemv_f32_panels' arithmetic, so on such weights the
// two (and gemv_f32_ref) agree bit for bit. pack_bf16_panels throws std::invalid_argument on a value that
// is not exact in bf16; bf16_exact tells beforehand.
bool bf16_exact(std::int64_t M, std::int64_t K, const float* A, std::int64_t lda);
void pack_bf16_panels(std::int64_t M, std::int64_t K, const float* A, std::int64_t lda, std::uint16_t* Ap);
void gemv_bf16_panels(std::int64_t M, std::int64_t K, const std::uint16_t* Ap, const float* x, float* y,
                      bool accumulate);
void gemv_bf16_panels_mt(std::int64_t M, std::int64_t K, const std::uint16_t* Ap, const float* x, float* y,
                         bool accumulate);

}  // namespace wm::kernels
