#include "backends/change_feed.h"

namespace xerv::backends {

class change_feed::watch_impl final : public core::pipeline_watch {
 public:
  explicit watch_impl(change_feed& f) : _f(&f) { f._watches.push_back(this); }
  ~watch_impl() override {
    if (_f) std::erase(_f->_watches, this);
  }
  void push(const core::pipeline_change& c) {
    _changes.push_back(c);
    _arrived.notify();
  }
  void detach() {
    _f = nullptr;
    _arrived.notify();
  }
  io::task<std::optional<core::pipeline_change>> next(io::cancel_source& stop) override {
    while (_changes.empty() && _f && !stop.cancelled()) {
      auto arrived = _arrived.wait(stop);
      co_await arrived;
    }
    if (_changes.empty() || stop.cancelled()) co_return std::nullopt;
    core::pipeline_change c = std::move(_changes.front());
    _changes.pop_front();
    co_return c;
  }

 private:
  change_feed* _f;
  std::deque<core::pipeline_change> _changes;
  io::event _arrived;
};

change_feed::~change_feed() {
  for (watch_impl* w : _watches) w->detach();
}

std::unique_ptr<core::pipeline_watch> change_feed::watch() { return std::make_unique<watch_impl>(*this); }

void change_feed::push(const core::pipeline_change& c) {
  for (watch_impl* w : _watches) w->push(c);
}

}  // namespace xerv::backends
