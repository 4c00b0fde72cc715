#pragma once
// GET /files and GET /files/<name>: the ledger as JSON, metadata only (never content).
//   /files?limit=N&after=CURSOR  -> {"files":[...],"next":"<cursor>"|null}, oldest first; pass
//                                   `next` back as `after` for the following page (a client that
//                                   keeps polling with the last cursor sees new deliveries only)
//   /files/<name>                -> one entry: <name> is an output file ("books.xml") or an
//                                   upload name ("books", its newest delivery); 404 when unknown
// Each entry: name, file, bytes, sha256, first_received_at, last_received_at, duplicates,
// key_index. limit defaults to 100 and is at most 1000, and names are at most 255 bytes, so a
// page stays under about 500 kB.

#include <map>
#include <string>

#include "http_server.hpp"
#include "transfer/upload_ledger.hpp"

namespace transfer::receiver {

inline constexpr int64_t kDefaultFilesLimit = 100;
inline constexpr int64_t kMaxFilesLimit = 1000;

PlainResponse list_files(UploadLedger& ledger, const std::map<std::string, std::string>& query);
PlainResponse describe_file(UploadLedger& ledger, const std::string& name);

}  // namespace transfer::receiver
