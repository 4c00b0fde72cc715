// Google Benchmark micro-benchmarks of the hot paths, on the same libraries the binaries link:
// JSON -> XML (MB/s of JSON; the default shape, the compact typeless one and the one with the
// most options changed), the Fernet stream both ways (MB/s of plaintext), and the state
// stores (operations/s on a real SQLite file). `build/bin/micro_bench --benchmark_repetitions=3`.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "outbox_store.hpp"
#include "transfer/fernet.hpp"
#include "transfer/json_to_xml.hpp"
#include "transfer/key_file.hpp"
#include "transfer/upload_ledger.hpp"

namespace transfer {
namespace {

// A document shaped like the bench corpus: records with strings, numbers, booleans, nulls and
// small nested lists, about `bytes` long.
std::string sample_json(size_t bytes) {
  std::string s = "{\"records\":[";
  for (int i = 0; s.size() < bytes; ++i) {
    if (i) s += ',';
    s += "{\"id\":" + std::to_string(i) + ",\"name\":\"customer " + std::to_string(i) +
         " <&> ünï\",\"active\":" + (i % 2 ? "true" : "false") + ",\"score\":" + std::to_string(i * 1.25) +
         ",\"tags\":[\"a\",\"b\",\"c\"],\"note\":null,\"address\":{\"city\":\"Zürich\",\"zip\":\"8001\"}}";
  }
  return s + "]}";
}

class CountingSink : public XmlSink {
 public:
  Status write(const char*, size_t size) override {
    bytes += size;
    return ok_status();
  }
  Status reset() override {
    bytes = 0;
    return ok_status();
  }
  uint64_t bytes = 0;
};

FernetKey bench_key() { return parse_key_text("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", "k")->at(0); }

// Converts `json` once per iteration into a sink that only counts.
void convert_each_iteration(benchmark::State& state, const std::string& json,
                            const JsonToXmlOptions& options = {}) {
  uint64_t xml = 0;
  for (auto _ : state) {
    MemoryJsonSource in(json);
    CountingSink out;
    auto r = convert_json_to_xml(in, out, options, "bench");
    if (!r) state.SkipWithError(r.error().message.c_str());
    xml = out.bytes;
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * json.size()));
  state.counters["xml_per_json"] = static_cast<double>(xml) / static_cast<double>(json.size());
}

void BM_JsonToXml(benchmark::State& state) {
  convert_each_iteration(state, sample_json(static_cast<size_t>(state.range(0))));
}
BENCHMARK(BM_JsonToXml)->Arg(2 << 10)->Arg(1 << 20)->Unit(benchmark::kMillisecond);

// The compact, typeless shape (XML_PRETTY=off, XML_TYPE_ATTRS=off): the one most asked for.
void BM_JsonToXmlCompactTypeless(benchmark::State& state) {
  JsonToXmlOptions options;
  options.pretty = false;
  options.type_attrs = false;
  convert_each_iteration(state, sample_json(static_cast<size_t>(state.range(0))), options);
}
BENCHMARK(BM_JsonToXmlCompactTypeless)->Arg(2 << 10)->Arg(1 << 20)->Unit(benchmark::kMillisecond);

// The options that change the most (the memory test's): typeless, item wrap off, compact, CDATA.
void BM_JsonToXmlMostChanged(benchmark::State& state) {
  JsonToXmlOptions options;
  options.type_attrs = false;
  options.item_wrap = false;
  options.pretty = false;
  options.cdata = true;
  convert_each_iteration(state, sample_json(static_cast<size_t>(state.range(0))), options);
}
BENCHMARK(BM_JsonToXmlMostChanged)->Arg(2 << 10)->Arg(1 << 20)->Unit(benchmark::kMillisecond);

// The same on a real file, for instance one of the harness's corpus (gen_json.py): set
// BENCH_JSON_FILE. Skipped without it.
void BM_JsonToXmlFile(benchmark::State& state) {
  const char* path = std::getenv("BENCH_JSON_FILE");
  if (path == nullptr) {
    state.SkipWithError("BENCH_JSON_FILE is not set");
    return;
  }
  std::ifstream file(path, std::ios::binary);
  convert_each_iteration(state, std::string(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>()));
}
BENCHMARK(BM_JsonToXmlFile)->Unit(benchmark::kMillisecond);

void BM_FernetEncrypt(benchmark::State& state) {
  const std::string plain(static_cast<size_t>(state.range(0)), 'x');
  const FernetKey key = bench_key();
  std::string out;
  for (auto _ : state) {
    auto enc = FernetStreamEncryptor::create(key);
    out.clear();
    for (size_t off = 0; off < plain.size(); off += 1 << 16) {
      enc->update(plain.data() + off, std::min<size_t>(1 << 16, plain.size() - off), out);
      if (out.size() > (1 << 20)) out.clear();  // a socket would take it
    }
    enc->finish(out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * plain.size()));
}
BENCHMARK(BM_FernetEncrypt)->Arg(2 << 10)->Arg(16 << 20)->Unit(benchmark::kMillisecond);

void BM_FernetDecrypt(benchmark::State& state) {
  const std::string plain(static_cast<size_t>(state.range(0)), 'x');
  const FernetKey key = bench_key();
  const std::string token = *fernet_encrypt(key, plain);
  for (auto _ : state) {
    uint64_t got = 0;
    auto dec = FernetStreamDecryptor::create({key}, [&](size_t, const char*, size_t n) {
      got += n;
      return ok_status();
    });
    for (size_t off = 0; off < token.size(); off += 1 << 16) {
      if (!dec->update(token.data() + off, std::min<size_t>(1 << 16, token.size() - off))) state.SkipWithError("update");
    }
    if (!dec->finish(0)) state.SkipWithError("finish");
    benchmark::DoNotOptimize(got);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * plain.size()));
}
BENCHMARK(BM_FernetDecrypt)->Arg(2 << 10)->Arg(16 << 20)->Unit(benchmark::kMillisecond);

std::string temp_db(const char* name) {
  char tmpl[] = "/tmp/transfer-bench-XXXXXX";
  return std::string(mkdtemp(tmpl)) + "/" + name;
}

// One file's life in the sender's store: seen, then delivered (two commits).
void BM_OutboxSeenThenDelivered(benchmark::State& state) {
  const std::string path = temp_db("sender.db");
  auto store = OutboxStore::open(path);
  int64_t i = 0;
  for (auto _ : state) {
    const std::string name = "f" + std::to_string(i++) + ".json";
    if (!store->record_seen(name, "h", 2048, i) || !store->mark_delivered(name, "h", 201, "{}")) {
      state.SkipWithError("store");
    }
  }
  state.SetItemsProcessed(state.iterations());
  std::filesystem::remove_all(std::filesystem::path(path).parent_path());
}
BENCHMARK(BM_OutboxSeenThenDelivered);

// The same with the daemon's group commit (steps queued, written every 25 ms in one transaction),
// with the find that precedes each file in the daemon.
void BM_OutboxSeenThenDeliveredGrouped(benchmark::State& state) {
  const std::string path = temp_db("sender.db");
  auto store = OutboxStore::open(path);
  store->set_group_commit(std::chrono::milliseconds(25));
  int64_t i = 0;
  for (auto _ : state) {
    const std::string name = "f" + std::to_string(i++) + ".json";
    if (!store->find(name, "h") || !store->record_seen(name, "h", 2048, i) ||
        !store->mark_delivered(name, "h", 201, "{}")) {
      state.SkipWithError("store");
    }
  }
  if (!store->flush()) state.SkipWithError("store");
  state.SetItemsProcessed(state.iterations());
  std::filesystem::remove_all(std::filesystem::path(path).parent_path());
}
BENCHMARK(BM_OutboxSeenThenDeliveredGrouped);

// The sender's question for every file it meets: is this version known?
void BM_OutboxFind(benchmark::State& state) {
  const std::string path = temp_db("sender.db");
  auto store = OutboxStore::open(path);
  for (int i = 0; i < 10000; ++i) (void)store->record_seen("f" + std::to_string(i) + ".json", "h", 1, 1);
  int64_t i = 0;
  for (auto _ : state) benchmark::DoNotOptimize(store->find("f" + std::to_string(i++ % 10000) + ".json", "h"));
  state.SetItemsProcessed(state.iterations());
  std::filesystem::remove_all(std::filesystem::path(path).parent_path());
}
BENCHMARK(BM_OutboxFind);

// One accepted upload in the receiver's ledger (one commit: the delivery and the request log).
void BM_LedgerRecordDelivery(benchmark::State& state) {
  const std::string path = temp_db("receiver.db");
  auto ledger = UploadLedger::open(path);
  int64_t i = 0;
  for (auto _ : state) {
    Delivery d;
    d.output_path = "/out/f" + std::to_string(i++) + ".xml";
    d.name = "f";
    d.sha256 = std::string(64, 'a');
    d.bytes = 2048;
    if (!ledger->record_delivery(d, "127.0.0.1:1")) state.SkipWithError("ledger");
  }
  state.SetItemsProcessed(state.iterations());
  std::filesystem::remove_all(std::filesystem::path(path).parent_path());
}
BENCHMARK(BM_LedgerRecordDelivery);

}  // namespace
}  // namespace transfer

BENCHMARK_MAIN();
