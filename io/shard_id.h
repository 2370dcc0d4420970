#pragma once
// The id of the shard the calling thread runs, without pulling in the reactor.

namespace xerv::io {
// -1 on threads that are not shards (the main thread before run(), helper threads).
int current_shard_or_minus_one();
}  // namespace xerv::io
