#pragma once
// How the wafer holds an element type (DESIGN.md section 3, "The wafer's representation, not the
// host's"). The host computes on floats in fp32 whatever wafer.dtype says; the wafer's SRAM, wire
// bytes and compute rate are charged for the wafer's width.
//   WaferFp<T>        T is floating-point data on the wafer: float, and any type that holds one
//                     float and says so by specialising WaferFp (dist::MaxFloat).
//   wafer_elem_bytes  bytes one element occupies on the wafer: wafer.dtype's width for fp data
//                     (MachineParams::wafer_fp_bytes), sizeof(T) for integers (held as they are).
//   work_of           the kind of work element-wise arithmetic on T (the adds of a reduction) is
//                     charged as (cost_model.hpp): fp element operations, or integer ones.
// Example: 48 floats per PE are 192 bytes of SRAM with wafer.dtype fp32 and 96 with fp16 or bf16;
// 48 int32 are 192 bytes either way.
#include <cstdint>
#include <type_traits>

#include "wafermesh/noc/cost_model.hpp"
#include "wafermesh/noc/params.hpp"

namespace wm {

template <class T>
struct WaferFp : std::is_floating_point<T> {};

template <class T>
uint64_t wafer_elem_bytes(const MachineParams& p) {
  return WaferFp<T>::value ? p.wafer_fp_bytes() : sizeof(T);
}

template <class T>
constexpr Work work_of() {
  return WaferFp<T>::value ? Work::elem : Work::integer;
}

}  // namespace wm
