#pragma once
// A whole file mapped read-only into memory (mmap, MAP_PRIVATE). Weight files are read through the
// mapping: the pages of a tensor are faulted in when a rank decodes its rows and can be dropped by
// the kernel under memory pressure, so a 1-GB checkpoint costs no heap. The mapping is shared by
// every thread and never written.
#include <cstddef>
#include <cstdint>
#include <string>

namespace wm::io {

class MappedFile {
 public:
  // Maps `path`. Throws FileFormatError "<path>: cannot open: <reason>" when the file cannot be
  // opened or mapped, or is not a regular file. An empty file maps to size() == 0.
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::string& path() const { return path_; }
  const std::uint8_t* data() const { return data_; }
  std::int64_t size() const { return size_; }

 private:
  std::string path_;
  const std::uint8_t* data_ = nullptr;
  std::int64_t size_ = 0;
};

}  // namespace wm::io
