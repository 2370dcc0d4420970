#pragma once
// Operating errors are values. result<T> holds a T or a std::error_code; io maps
// negative CQE results to the system category and its own conditions to io::errc.

#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>

#include "io/assert.h"

namespace xerv::io {

enum class errc {
  ok = 0,
  cancelled,       // the operation's cancel_source fired
  timed_out,       // a deadline passed
  closed,          // the peer or the object was closed
  queue_full,      // a bounded queue refused the item
  not_supported,   // the kernel or file system lacks a feature
};

const std::error_category& io_category();
inline std::error_code make_error_code(errc e) { return {static_cast<int>(e), io_category()}; }
inline std::error_code from_errno(int err) { return {err, std::system_category()}; }

template <class T>
class [[nodiscard]] result {
 public:
  result(T value) : _v(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit by design
  result(std::error_code ec) : _v(std::in_place_index<1>, ec) { ASSERT(ec, "error result without error"); }
  result(errc e) : result(make_error_code(e)) {}

  bool ok() const { return _v.index() == 0; }
  explicit operator bool() const { return ok(); }
  std::error_code error() const { return ok() ? std::error_code{} : std::get<1>(_v); }

  T& value() & {
    ASSERT(ok(), "value() on error: %s", std::get<1>(_v).message().c_str());
    return std::get<0>(_v);
  }
  T&& value() && {
    ASSERT(ok(), "value() on error: %s", std::get<1>(_v).message().c_str());
    return std::get<0>(std::move(_v));
  }
  const T& value() const& {
    ASSERT(ok(), "value() on error: %s", std::get<1>(_v).message().c_str());
    return std::get<0>(_v);
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }

 private:
  std::variant<T, std::error_code> _v;
};

template <>
class [[nodiscard]] result<void> {
 public:
  result() = default;
  result(std::error_code ec) : _ec(ec) {}
  result(errc e) : _ec(make_error_code(e)) {}
  bool ok() const { return !_ec; }
  explicit operator bool() const { return ok(); }
  std::error_code error() const { return _ec; }

 private:
  std::error_code _ec;
};

}  // namespace xerv::io

template <>
struct std::is_error_code_enum<xerv::io::errc> : std::true_type {};
