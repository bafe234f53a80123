// Raw HTTP bytes to tailor's server: serve/http.cpp's reader (request line, headers, Content-Length
// and chunked bodies, gzip/deflate) and then serve/server.cpp's routes and handlers (JSON, base64,
// image decoding, parameters), with an instant model behind them. Each input is one connection:
// written whole, its write side shut, the answers read until the server closes it. A 500 (an
// exception a handler did not expect) or an answer that is not HTTP is a finding.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <thread>

#include "serve/server.h"

using namespace tailor;

namespace {

class InstantAnswerer : public Answerer {
 public:
  InstantAnswerer() {
    task_.attributes = default_attributes();
    task_.values["baseColour"] = {"Red", "Blue"};
  }
  std::vector<Answer> answer(const std::vector<AnswerRequest>& requests, const GenerationOptions&) override {
    std::vector<Answer> out;
    for (const auto& r : requests) {
      Answer a;
      a.text = r.candidates.empty() ? "Colour: " + std::to_string(r.image->width) : r.candidates[0];
      if (!r.candidates.empty()) {
        a.confidence = 0.5;
        a.log_likelihoods.assign(r.candidates.size(), -1.0);
      }
      out.push_back(a);
    }
    return out;
  }
  const TaskInfo& task() const override { return task_; }
  std::string name() const override { return "instant"; }

 private:
  TaskInfo task_;
};

int start_server() {
  ServeOptions o;
  o.port = 0;
  o.http_threads = 4;
  o.max_wait_ms = 0;
  o.max_payload_bytes = 1u << 20;
  o.max_image_pixels = 4'000'000;
  o.request_deadline_ms = 2000;
  o.log_line = [](const std::string&) {};
  static Server server(o, factory_of(std::make_unique<InstantAnswerer>()));
  int port = server.start();
  while (!server.ready()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return port;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static int port = start_server();
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  // A server that stops accepting is a finding; a moment without a free local port is not.
  for (int attempt = 0; ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0; ++attempt) {
    if (attempt == 200) {
      std::fprintf(stderr, "the server accepts no connection: %s\n", std::strerror(errno));
      __builtin_trap();
    }
    ::close(fd);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    fd = ::socket(AF_INET, SOCK_STREAM, 0);
  }
  size_t done = 0;
  while (done < size) {
    ssize_t n = ::send(fd, data + done, size - done, MSG_NOSIGNAL);
    if (n <= 0) break;  // the server refused early and closed
    done += static_cast<size_t>(n);
  }
  ::shutdown(fd, SHUT_WR);
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string answer;
  char buf[65536];
  while (true) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    answer.append(buf, static_cast<size_t>(n));
  }
  // Reset rather than close: thousands of connections a second in TIME_WAIT would use up the local
  // ports (the answer is read whole by now).
  linger reset{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
  ::close(fd);
  if (!answer.empty() && answer.rfind("HTTP/1.1 ", 0) != 0) __builtin_trap();
  // Walk the responses (one per pipelined request) by their Content-Length; stop where that does not
  // work (a HEAD response has a length but no body).
  size_t at = 0;
  while (at + 12 <= answer.size() && answer.compare(at, 9, "HTTP/1.1 ") == 0) {
    if (answer.compare(at + 9, 3, "500") == 0) {
      std::fprintf(stderr, "500 from the server:\n%s\n", answer.substr(at, 600).c_str());
      __builtin_trap();
    }
    size_t head = answer.find("\r\n\r\n", at);
    size_t cl = answer.find("Content-Length: ", at);
    if (head == std::string::npos || cl == std::string::npos || cl > head) break;
    at = head + 4 + std::strtoull(answer.c_str() + cl + 16, nullptr, 10);
  }
  return 0;
}
