#pragma once
// The pipeline store on Redis, shared by every worker of one Redis: a deploy
// through any worker reaches all of them. Keys, under a prefix P ("xerv"):
//
//   P:pipelines      hash: name -> the pipeline as stored (core::write_change,
//                    then its revision and seq)
//   P:pipelines:seq  the seq of the last change (the control log's order)
//   P:pipelines:log  stream: one entry per change (field "c", the same form),
//                    trimmed to about log_max entries
//
// A publish reads the pipeline and the seq under WATCH, applies the store
// rules (core::apply_publish) and writes the hash, the seq and the log entry
// in one MULTI/EXEC; a publish elsewhere in between aborts the EXEC and this
// one starts over. A store's own publishes take turns (a WATCH lasts until
// its connection's next EXEC). Each worker's store reads the log with XREAD BLOCK on a
// second connection and hands every change, in seq order, to its watches; it
// starts from the log's end as it was at start(), and after a dropped
// connection goes on from the last entry it read.
//
// Lives on shard 0 (the control shard), with its two clients.

#include <memory>
#include <string>
#include <vector>

#include "backends/change_feed.h"
#include "backends/redis/client.h"
#include "core/dispatch.h"
#include "io/event.h"
#include "io/fifo_lock.h"
#include "io/gate.h"

namespace xerv::backends::redis {

struct store_options {
  std::string prefix = "xerv";
  size_t log_max = 10'000;
  std::chrono::milliseconds block{1000};  // each XREAD BLOCK of the log reader
};

class pipeline_store final : public core::pipeline_store {
 public:
  // `commands` for reads and transactions, `blocking` for the log reader:
  // clients of this store's own (WATCH and BLOCK hold a connection).
  pipeline_store(client& commands, client& blocking, store_options o = {});
  ~pipeline_store() override;

  // Finds where the log ends and starts reading it; unavailable while Redis is.
  io::task<io::result<void>> start();
  io::task<void> stop();

  io::task<io::result<std::vector<core::pipeline_change>>> load() override;
  io::task<io::result<core::pipeline_change>> publish(core::pipeline_change c, uint64_t expected_revision) override;
  std::unique_ptr<core::pipeline_watch> watch() override;

  uint64_t races() const { return _races; }  // publishes that started over (another worker's came first)

 private:
  io::task<void> read_log();
  io::task<io::result<core::pipeline_change>> try_publish(const core::pipeline_change& c, uint64_t expected,
                                                          bool& raced);

  client& _commands;
  client& _blocking;
  store_options _o;
  std::string _hash, _seq_key, _log;
  std::string _last_id = "0-0";  // the last log entry read
  change_feed _feed;
  io::fifo_lock _publishing;
  uint64_t _races = 0;
  io::cancel_source _stop;
  io::gate _gate;
};

}  // namespace xerv::backends::redis
