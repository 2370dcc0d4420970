#pragma once
// CRC32C (Castagnoli), the checksum of every WAL record. Uses the SSE4.2 crc32
// instruction when the CPU has it (checked once), else a table.

#include <cstddef>
#include <cstdint>

namespace xerv::core {

uint32_t crc32c(const void* data, size_t n, uint32_t crc = 0);

}  // namespace xerv::core
