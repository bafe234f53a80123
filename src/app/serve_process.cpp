#include "app/serve_process.h"

#include <algorithm>

#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <ctime>

#include "infer/load.h"
#include "util/error.h"
#include "util/signals.h"
#include "util/torch_threads.h"

namespace tailor {

static int listening_port(int port_flag) {
  if (port_flag >= 0) return port_flag;
  const char* p = std::getenv("SAGEMAKER_BIND_TO_PORT");
  if (!p) return 8080;
  char* end = nullptr;
  long v = std::strtol(p, &end, 10);
  if (*p == '\0' || *end != '\0' || v < 1 || v > 65535)
    throw Error(std::string("SAGEMAKER_BIND_TO_PORT=\"") + p + "\" is not a port number");
  return static_cast<int>(v);
}

// Blocks until SIGTERM/SIGINT (returns it) or a failed model load (returns 0), announcing readiness
// once. The signals must be blocked in every thread (see run_serve_process) so this one takes them.
static int wait_for_signal(Server& server, const sigset_t& signals) {
  bool announced = false;
  while (!server.load_failed()) {
    timespec wait{0, 200 * 1000 * 1000};
    int s = sigtimedwait(&signals, nullptr, &wait);
    if (s == SIGTERM || s == SIGINT) return s;
    if (!announced && server.ready()) {
      std::fprintf(stderr, "tailor serve: model loaded, ready\n");
      announced = true;
    }
  }
  return 0;
}

void run_serve_process(const ServeProcessOptions& po) {
  const bool container = po.model_dir.empty();
  const std::string model_dir = container ? "/opt/ml/model" : po.model_dir;
  ServeOptions o = po.server;
  o.host = !po.host.empty() ? po.host : (container ? "0.0.0.0" : "127.0.0.1");
  o.port = listening_port(po.port);
  // Batch transform tells the container the payload size it chose (up to 100 MB): bodies that size
  // must be read, so the limit follows it.
  if (const char* mb = std::getenv("SAGEMAKER_MAX_PAYLOAD_IN_MB"); mb && *mb) {
    char* end = nullptr;
    long v = std::strtol(mb, &end, 10);
    if (*end != '\0' || v < 1 || v > 1024)
      throw Error(std::string("SAGEMAKER_MAX_PAYLOAD_IN_MB=\"") + mb + "\" is not a size in MB from 1 to 1024");
    o.max_payload_bytes = std::max(o.max_payload_bytes, static_cast<size_t>(v) << 20);
  }
  if (!po.auth_token_env.empty()) {
    const char* t = std::getenv(po.auth_token_env.c_str());
    if (!t || !*t) throw Error("--auth-token-env " + po.auth_token_env + ": the variable is not set or empty");
    o.auth_token = t;
  }
  // /describe: attributes only, or attributes + a description from a writer (made now, so a missing
  // credential fails at start rather than on every request).
  if (po.writer.kind != "none") {
    std::shared_ptr<const Writer> writer = make_writer(po.writer);
    o.describer = [writer](const std::map<std::string, std::string>& attributes) {
      ProductAttributes list;
      for (const auto& [name, value] : attributes) list.push_back({name, value});
      return writer->write(list);
    };
  }

  init_torch_threads();
  LoadOptions load;
  load.device = po.device;
  load.dtype = po.dtype;
  load.quantize = po.quantize;
  AnswererFactory factory = [model_dir, load] { return load_answerer(model_dir, load); };

  // SIGTERM/SIGINT are taken by sigtimedwait below; blocked before any thread starts.
  sigset_t signals = block_stop_signals();

  Server server(o, factory);
  int port = server.start();
  std::fprintf(stderr, "tailor serve: listening on http://%s:%d, loading %s on %s\n", o.host.c_str(), port,
               model_dir.c_str(), load.device.c_str());
  int signal_number = wait_for_signal(server, signals);
  if (signal_number)
    std::fprintf(stderr, "tailor serve: %s, finishing requests in flight\n", signal_number == SIGTERM ? "SIGTERM" : "SIGINT");
  server.stop();
  if (server.load_failed()) throw Error("cannot load the model " + model_dir + ": " + server.load_error());
  std::fprintf(stderr, "tailor serve: stopped\n");
}

}  // namespace tailor
