#pragma once
// MPI handles that free themselves. A communicator, datatype or reduction operation is owned by one
// object and freed by its destructor, on every path out of the scope that made it (errors included),
// unless MPI is already finalised (freeing is then neither possible nor needed). Move-only; an empty
// handle (MPI_COMM_NULL, ...) frees nothing.
//
//   MpiComm sub = split_comm(comm, rank < k ? 0 : MPI_UNDEFINED, rank);  // ranks 0..k-1
//   if (sub) run_on(sub.get());                                          // freed at the end of scope
#include <mpi.h>

#include <utility>

namespace wm {

namespace detail {
struct CommHandle {
  using Handle = MPI_Comm;
  static Handle null() { return MPI_COMM_NULL; }
  static void free(Handle& h) { MPI_Comm_free(&h); }
};
struct DatatypeHandle {
  using Handle = MPI_Datatype;
  static Handle null() { return MPI_DATATYPE_NULL; }
  static void free(Handle& h) { MPI_Type_free(&h); }
};
struct OpHandle {
  using Handle = MPI_Op;
  static Handle null() { return MPI_OP_NULL; }
  static void free(Handle& h) { MPI_Op_free(&h); }
};
}  // namespace detail

template <class Kind>
class MpiHandle {
 public:
  using Handle = typename Kind::Handle;
  MpiHandle() = default;
  explicit MpiHandle(Handle h) noexcept : h_(h) {}  // takes ownership of h
  ~MpiHandle() { reset(); }
  MpiHandle(MpiHandle&& o) noexcept : h_(std::exchange(o.h_, Kind::null())) {}
  MpiHandle& operator=(MpiHandle&& o) noexcept {
    if (this != &o) {
      reset();
      h_ = std::exchange(o.h_, Kind::null());
    }
    return *this;
  }
  MpiHandle(const MpiHandle&) = delete;
  MpiHandle& operator=(const MpiHandle&) = delete;

  Handle get() const noexcept { return h_; }
  explicit operator bool() const noexcept { return h_ != Kind::null(); }
  void reset() noexcept {
    if (h_ == Kind::null()) return;
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) Kind::free(h_);
    h_ = Kind::null();
  }

 private:
  Handle h_ = Kind::null();
};

using MpiComm = MpiHandle<detail::CommHandle>;
using MpiDatatype = MpiHandle<detail::DatatypeHandle>;
using MpiOp = MpiHandle<detail::OpHandle>;

// MPI_Comm_split: the ranks of `parent` with the same `color`, ordered by `key`; empty on the ranks
// that pass MPI_UNDEFINED. Collective over parent.
inline MpiComm split_comm(MPI_Comm parent, int color, int key) {
  MPI_Comm c = MPI_COMM_NULL;
  MPI_Comm_split(parent, color, key, &c);
  return MpiComm(c);
}

// MPI_Comm_dup. Collective over parent.
inline MpiComm dup_comm(MPI_Comm parent) {
  MPI_Comm c = MPI_COMM_NULL;
  MPI_Comm_dup(parent, &c);
  return MpiComm(c);
}

// `count` consecutive elements of `base` as one element, committed.
inline MpiDatatype contiguous_type(int count, MPI_Datatype base) {
  MPI_Datatype t = MPI_DATATYPE_NULL;
  MPI_Type_contiguous(count, base, &t);
  MPI_Type_commit(&t);
  return MpiDatatype(t);
}

// A user reduction (MPI_Op_create).
inline MpiOp make_op(MPI_User_function* f, bool commutative) {
  MPI_Op op = MPI_OP_NULL;
  MPI_Op_create(f, commutative ? 1 : 0, &op);
  return MpiOp(op);
}

}  // namespace wm
