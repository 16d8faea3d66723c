#pragma once
// MPI datatypes come from this trait, never picked by hand at a call site. Raw bytes (packed
// messages, trivially copyable records) travel as std::byte.
#include <mpi.h>

#include <cstddef>
#include <cstdint>

namespace wm {

template <class T>
struct MpiType;
template <> struct MpiType<int32_t> { static MPI_Datatype get() { return MPI_INT32_T; } };
template <> struct MpiType<int64_t> { static MPI_Datatype get() { return MPI_INT64_T; } };
template <> struct MpiType<uint32_t> { static MPI_Datatype get() { return MPI_UINT32_T; } };
template <> struct MpiType<uint64_t> { static MPI_Datatype get() { return MPI_UINT64_T; } };
template <> struct MpiType<int8_t> { static MPI_Datatype get() { return MPI_INT8_T; } };
template <> struct MpiType<uint8_t> { static MPI_Datatype get() { return MPI_UINT8_T; } };
template <> struct MpiType<float> { static MPI_Datatype get() { return MPI_FLOAT; } };
template <> struct MpiType<double> { static MPI_Datatype get() { return MPI_DOUBLE; } };
template <> struct MpiType<char> { static MPI_Datatype get() { return MPI_CHAR; } };
template <> struct MpiType<std::byte> { static MPI_Datatype get() { return MPI_BYTE; } };

template <class T>
MPI_Datatype mpi_type() { return MpiType<T>::get(); }

}  // namespace wm
