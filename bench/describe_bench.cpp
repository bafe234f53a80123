// Speed of the description path's own work (no network): SigV4 signing of a Bedrock request,
// the offline writer, and one durable JSONL append (fdatasync), per call.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <unistd.h>

#include "util/fs.h"
#include "util/sigv4.h"
#include "write/writer.h"

using namespace tailor;

static void BM_SigV4SignBedrockRequest(benchmark::State& state) {
  AwsCredentials creds{"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "token", "bench"};
  SigV4Options opts{"us-east-1", "bedrock", "20240101T000000Z"};
  std::string body(600, 'x');
  for (auto _ : state) {
    SigV4Request req{"POST", "/model/anthropic.claude-3-sonnet-20240229-v1%3A0/invoke", "",
                     {{"Content-Type", "application/json"}, {"Accept", "application/json"}}, body};
    benchmark::DoNotOptimize(sigv4_sign_request(req, "bedrock-runtime.us-east-1.amazonaws.com", creds, opts));
  }
}
BENCHMARK(BM_SigV4SignBedrockRequest);

static void BM_OfflineDescription(benchmark::State& state) {
  ProductAttributes a = {{"Fabric", "Cotton"},          {"Fit", "Slim Fit"},        {"Collar", "Spread Collar"},
                         {"Pattern", "Checked"},        {"Sleeve Length", "Long Sleeves"},
                         {"Sleeve Styling", "Roll-up Sleeves"}, {"baseColour", "Navy Blue"}, {"articleType", "Shirts"}};
  for (auto _ : state) benchmark::DoNotOptimize(offline_description(a));
}
BENCHMARK(BM_OfflineDescription);

static void BM_AppendLineDurable(benchmark::State& state) {
  std::string path = "/tmp/tailor-bench-append-" + std::to_string(::getpid()) + ".jsonl";
  std::string line(700, 'x');
  for (auto _ : state) append_line_durable(path, line);
  std::remove(path.c_str());
}
BENCHMARK(BM_AppendLineDurable);

BENCHMARK_MAIN();
