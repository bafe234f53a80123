#include "serve/http.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "util/error.h"
#include "util/text.h"

namespace tailor {

using Clock = std::chrono::steady_clock;

std::string ServerRequest::header(const std::string& name) const {
  std::string want = ascii_lower(name);
  for (const auto& [k, v] : headers)
    if (ascii_lower(k) == want) return v;
  return "";
}

// ---- bodies -------------------------------------------------------------------------------------

Inflated inflate_body(const std::string& encoding, const std::string& in, size_t limit, std::string& out,
                      std::string& error) {
  // gzip: gzip header only; deflate: a zlib header (or gzip, auto-detected), else raw deflate.
  int window = (encoding == "gzip" || encoding == "x-gzip") ? 15 + 16 : 15 + 32;
  for (int attempt = 0; attempt < 2; ++attempt) {
    z_stream z{};
    if (inflateInit2(&z, window) != Z_OK) {
      error = "cannot start the zlib inflater";
      return Inflated::Corrupt;
    }
    out.clear();
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    z.avail_in = static_cast<uInt>(in.size());
    char buf[65536];
    int rc = Z_OK;
    while (rc != Z_STREAM_END) {
      z.next_out = reinterpret_cast<Bytef*>(buf);
      z.avail_out = sizeof buf;
      rc = inflate(&z, Z_NO_FLUSH);
      if (rc != Z_OK && rc != Z_STREAM_END) break;
      size_t got = sizeof buf - z.avail_out;
      if (out.size() + got > limit) {
        inflateEnd(&z);
        out.clear();
        return Inflated::TooLarge;
      }
      out.append(buf, got);
    }
    std::string message = z.msg ? z.msg : "";
    size_t left = z.avail_in;
    inflateEnd(&z);
    if (rc == Z_STREAM_END) {
      if (left != 0) {
        error = std::to_string(left) + " bytes after the end of the " + encoding + " stream";
        return Inflated::Corrupt;
      }
      return Inflated::Ok;
    }
    if (rc == Z_DATA_ERROR && window == 15 + 32 && attempt == 0) {  // deflate without a zlib header
      window = -15;
      continue;
    }
    error = rc == Z_BUF_ERROR ? "the " + encoding + " body is truncated (" + std::to_string(in.size()) + " bytes)"
                              : "corrupt " + encoding + " body: " + (message.empty() ? "zlib error" : message);
    return Inflated::Corrupt;
  }
  return Inflated::Corrupt;
}

static const char* reason_phrase(int status) {
  switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 411: return "Length Required";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Status";
  }
}

static std::string serialize(const ServerResponse& r, bool head_request, bool close) {
  std::string out = "HTTP/1.1 " + std::to_string(r.status) + " " + reason_phrase(r.status) + "\r\n";
  if (!r.content_type.empty()) out += "Content-Type: " + r.content_type + "\r\n";
  out += "Content-Length: " + std::to_string(r.body.size()) + "\r\n";
  out += close ? "Connection: close\r\n" : "Connection: keep-alive\r\n";
  for (const auto& [k, v] : r.headers) out += k + ": " + v + "\r\n";
  out += "\r\n";
  if (!head_request) out += r.body;
  return out;
}

// ---- the server's state -------------------------------------------------------------------------

namespace {

// What to do once a response is written.
enum class After { KeepAlive, Drain, Close };
// Idle: between requests; Head/Body: reading a request; Handling: a handler has it; Writing: the
// response goes out; Draining: after a refusal, input is read and dropped so the client sees the
// response (closing with unread input would reset the connection and lose it).
enum class Phase { Idle, Head, Body, Handling, Writing, Draining };

struct Conn {
  uint64_t id = 0;
  int fd = -1;
  std::string remote;
  Phase phase = Phase::Idle;
  Clock::time_point deadline;
  std::string in;       // received and not yet consumed
  size_t scanned = 0;   // bytes of `in` already searched for the end of the headers
  ServerRequest req;      // the request being read
  bool keep_alive = true;
  bool chunked = false;
  size_t content_length = 0;
  int chunk_state = 0;  // 0 size line, 1 data, 2 CRLF after data, 3 trailer
  size_t chunk_left = 0;
  size_t trailer_bytes = 0;
  std::string raw;      // the chunked body so far
  size_t held = 0;      // body bytes handed to a handler, still counted as buffered
  size_t counted = 0;   // this connection's share of State::buffered
  std::string out;
  size_t out_done = 0;
  After after = After::KeepAlive;
  bool gone = false;    // the client hung up while its request was handled
  bool closed = false;  // closed; freed at the end of the loop's round (callers may still hold it)
  size_t drained = 0;
};

struct Job {
  uint64_t conn = 0;
  ServerRequest req;
};
struct Finished {
  uint64_t conn = 0;
  ServerResponse response;
  bool head = false;
};

constexpr uint64_t kListenId = 0;
constexpr uint64_t kWakeId = 1;
constexpr size_t kReadChunk = 65536;
constexpr size_t kMaxHeaders = 100;
constexpr size_t kMaxChunkLine = 1024;
constexpr size_t kMaxTrailerBytes = 16384;
constexpr size_t kMaxDrainBytes = 64u << 20;
constexpr int kDrainMs = 2000;

}  // namespace

struct HttpServer::State {
  HttpLimits limits;
  HttpHandlers handlers;
  int listen_fd = -1;
  int epoll_fd = -1;
  int wake_fd = -1;
  int spare_fd = -1;  // closed to accept (and refuse) one connection when out of descriptors
  std::thread loop_thread;
  std::vector<std::thread> workers;
  std::unordered_map<uint64_t, std::unique_ptr<Conn>> conns;
  std::vector<uint64_t> closed;  // closed this round, freed by free_closed()
  std::atomic<size_t> conn_count{0};
  uint64_t next_id = 2;
  size_t buffered = 0;  // request bytes held, all connections (loop thread only)
  std::atomic<bool> stopping{false};
  bool stop_seen = false;
  std::mutex mutex;  // guards the two queues and workers_done
  std::condition_variable work_ready;
  std::deque<Job> waiting;
  std::deque<Finished> finished;
  bool workers_done = false;

  void loop();
  void worker();
  void wake();
  void accept_all(Clock::time_point now);
  void on_event(Conn& c, uint32_t events, Clock::time_point now);
  void read_some(Conn& c, Clock::time_point now);
  void parse(Conn& c, Clock::time_point now);
  bool parse_head(Conn& c, const std::string& head);
  bool parse_chunks(Conn& c);
  void dispatch(Conn& c, Clock::time_point now);
  void refuse(Conn& c, int status, const std::string& message, Clock::time_point now);
  void respond(Conn& c, const ServerResponse& r, bool head, Clock::time_point now);
  void write_some(Conn& c, Clock::time_point now);
  void after_write(Conn& c, Clock::time_point now);
  void start_request(Conn& c, Clock::time_point now);
  void recount(Conn& c);
  void watch(Conn& c, uint32_t events);
  void close_conn(uint64_t id);
  void free_closed();
  void check_deadlines(Clock::time_point now);
  void begin_stop();
};

static void set_nonblocking(int fd) { ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL, 0) | O_NONBLOCK); }

void HttpServer::State::wake() {
  uint64_t one = 1;
  ssize_t r = ::write(wake_fd, &one, sizeof one);
  (void)r;
}

void HttpServer::State::watch(Conn& c, uint32_t events) {
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = c.id;
  ::epoll_ctl(epoll_fd, EPOLL_CTL_MOD, c.fd, &ev);
}

void HttpServer::State::recount(Conn& c) {
  size_t now_held = c.in.size() + c.raw.size() + c.held;
  buffered = buffered - c.counted + now_held;
  c.counted = now_held;
}

// Closes now, frees later: the functions up the stack may still hold the Conn (a refusal deep in
// parsing closes it), so it is freed only between rounds of the loop.
void HttpServer::State::close_conn(uint64_t id) {
  auto it = conns.find(id);
  if (it == conns.end() || it->second->closed) return;
  Conn& c = *it->second;
  buffered -= c.counted;
  c.counted = 0;
  if (!c.gone) ::epoll_ctl(epoll_fd, EPOLL_CTL_DEL, c.fd, nullptr);
  ::close(c.fd);
  c.fd = -1;
  c.closed = true;
  closed.push_back(id);
}

void HttpServer::State::free_closed() {
  for (uint64_t id : closed) conns.erase(id);
  closed.clear();
  conn_count = conns.size();
}

void HttpServer::State::accept_all(Clock::time_point now) {
  for (int i = 0; i < 256; ++i) {
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    int fd = ::accept4(listen_fd, reinterpret_cast<sockaddr*>(&addr), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if ((errno == EMFILE || errno == ENFILE) && spare_fd >= 0) {  // take the one waiting and close it
        ::close(spare_fd);
        int drop = ::accept(listen_fd, nullptr, nullptr);
        if (drop >= 0) ::close(drop);
        spare_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
      }
      return;  // EAGAIN or an error of one connection
    }
    if (conns.size() >= limits.max_connections) {
      // Best effort: the socket buffer of a new connection has room for this.
      ServerResponse r = handlers.error(503, "the server has " + std::to_string(conns.size()) +
                                               " connections open, its limit (max connections): retry later");
      r.headers.push_back({"Retry-After", "1"});
      std::string bytes = serialize(r, false, true);
      ssize_t w = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      (void)w;
      ::close(fd);
      continue;
    }
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    auto c = std::make_unique<Conn>();
    c->id = next_id++;
    c->fd = fd;
    char host[NI_MAXHOST] = "", port[NI_MAXSERV] = "";
    if (::getnameinfo(reinterpret_cast<sockaddr*>(&addr), len, host, sizeof host, port, sizeof port,
                      NI_NUMERICHOST | NI_NUMERICSERV) == 0)
      c->remote = std::string(host) + ":" + port;
    c->deadline = now + std::chrono::milliseconds(limits.idle_timeout_ms);
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.u64 = c->id;
    if (::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &ev) != 0) {
      ::close(fd);
      continue;
    }
    conns.emplace(c->id, std::move(c));
    conn_count = conns.size();
  }
}

void HttpServer::State::start_request(Conn& c, Clock::time_point now) {
  c.phase = Phase::Head;
  c.req = ServerRequest{};
  c.req.remote = c.remote;
  c.req.start = now;
  c.deadline = now + std::chrono::milliseconds(limits.request_deadline_ms);
  c.scanned = 0;
  c.chunked = false;
  c.content_length = 0;
  c.chunk_state = 0;
  c.chunk_left = 0;
  c.trailer_bytes = 0;
  c.raw.clear();
}

void HttpServer::State::on_event(Conn& c, uint32_t events, Clock::time_point now) {
  if (c.closed) return;
  if (c.phase == Phase::Handling) {
    // Not reading now; a hang-up (level-triggered) would fire again and again: stop watching it.
    if (events & (EPOLLHUP | EPOLLERR)) {
      c.gone = true;
      ::epoll_ctl(epoll_fd, EPOLL_CTL_DEL, c.fd, nullptr);
    }
    return;
  }
  if (c.phase == Phase::Writing) {
    if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) write_some(c, now);
    return;
  }
  if (events & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP)) read_some(c, now);
}

void HttpServer::State::read_some(Conn& c, Clock::time_point now) {
  char buf[kReadChunk];
  ssize_t n = ::recv(c.fd, buf, sizeof buf, 0);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
  if (n <= 0) {  // end of input or a reset: nothing more can be answered
    close_conn(c.id);
    return;
  }
  if (c.phase == Phase::Draining) {
    c.drained += static_cast<size_t>(n);
    if (c.drained > kMaxDrainBytes) close_conn(c.id);
    return;
  }
  if (c.phase == Phase::Idle) start_request(c, now);
  c.in.append(buf, static_cast<size_t>(n));
  recount(c);
  if (buffered > limits.max_buffered_bytes) {
    refuse(c, 503,
           "the server holds " + std::to_string(buffered) + " bytes of requests being read, over its limit of " +
               std::to_string(limits.max_buffered_bytes) + " bytes: retry later", now);
    return;
  }
  parse(c, now);
}

// Request line and headers (without the blank line). False: refused.
bool HttpServer::State::parse_head(Conn& c, const std::string& head) {
  Clock::time_point now = Clock::now();
  std::vector<std::string> lines;
  for (size_t at = 0; at <= head.size();) {
    size_t e = head.find("\r\n", at);
    if (e == std::string::npos) e = head.size();
    lines.push_back(head.substr(at, e - at));
    at = e + 2;
  }
  const std::string& line = lines[0];
  size_t s1 = line.find(' ');
  size_t s2 = s1 == std::string::npos ? s1 : line.find(' ', s1 + 1);
  if (s2 == std::string::npos || line.find(' ', s2 + 1) != std::string::npos) {
    refuse(c, 400, "malformed request line (want \"METHOD /path HTTP/1.1\")", now);
    return false;
  }
  c.req.method = line.substr(0, s1);
  std::string target = line.substr(s1 + 1, s2 - s1 - 1);
  std::string version = line.substr(s2 + 1);
  bool token = !c.req.method.empty();
  for (char ch : c.req.method) token = token && std::isupper(static_cast<unsigned char>(ch));
  if (!token) {
    c.req.method.clear();
    refuse(c, 400, "malformed request line: the method must be an upper-case token", now);
    return false;
  }
  if (target.empty() || target[0] != '/') {
    refuse(c, 400, "malformed request target: it must start with '/'", now);
    return false;
  }
  size_t q = target.find('?');
  c.req.path = target.substr(0, q);
  if (q != std::string::npos) c.req.query = target.substr(q + 1);
  if (version != "HTTP/1.1" && version != "HTTP/1.0") {
    refuse(c, 505, "unsupported HTTP version (HTTP/1.0 and HTTP/1.1 are served)", now);
    return false;
  }
  if (lines.size() - 1 > kMaxHeaders) {
    refuse(c, 431, "more than " + std::to_string(kMaxHeaders) + " request headers", now);
    return false;
  }
  for (size_t i = 1; i < lines.size(); ++i) {
    const std::string& h = lines[i];
    size_t colon = h.find(':');
    bool bad = colon == std::string::npos || colon == 0 || h.find('\r') != std::string::npos ||
               h.find('\0') != std::string::npos;
    for (size_t k = 0; !bad && k < colon; ++k) {
      unsigned char ch = static_cast<unsigned char>(h[k]);
      bad = ch <= ' ' || ch >= 127;
    }
    if (bad) {
      refuse(c, 400, "malformed header line " + std::to_string(i) + " (want \"Name: value\")", now);
      return false;
    }
    c.req.headers.push_back({h.substr(0, colon), trim(h.substr(colon + 1))});
  }
  std::string connection = ascii_lower(c.req.header("Connection"));
  c.keep_alive = version == "HTTP/1.1" ? connection.find("close") == std::string::npos
                                       : connection.find("keep-alive") != std::string::npos;
  // Body framing (RFC 9112 6): chunked, or Content-Length; never both; a request without either has
  // no body, and a POST without either is refused (not read until the client closes).
  std::string te = ascii_lower(c.req.header("Transfer-Encoding"));
  std::string cl = c.req.header("Content-Length");
  size_t cl_count = 0;
  for (const auto& kv : c.req.headers) cl_count += ascii_lower(kv.first) == "content-length";
  if (!te.empty()) {
    if (te != "chunked") {
      refuse(c, 501, "Transfer-Encoding \"" + te + "\" is not supported (only chunked)", now);
      return false;
    }
    if (cl_count) {
      refuse(c, 400, "both Transfer-Encoding and Content-Length are set", now);
      return false;
    }
    c.chunked = true;
  } else if (cl_count) {
    bool digits = !cl.empty() && cl.size() <= 19 && cl_count == 1;
    for (char ch : cl) digits = digits && ch >= '0' && ch <= '9';
    if (!digits) {
      refuse(c, 400, "invalid Content-Length (one decimal number wanted)", now);
      return false;
    }
    c.content_length = std::stoull(cl);
    if (c.content_length > limits.max_body_bytes) {
      refuse(c, 413,
             "request body too large: Content-Length " + cl + " is over the limit of " +
                 std::to_string(limits.max_body_bytes) + " bytes", now);
      return false;
    }
  } else if (c.req.method == "POST" || c.req.method == "PUT" || c.req.method == "PATCH") {
    refuse(c, 411, "a " + c.req.method + " body needs Content-Length or Transfer-Encoding: chunked", now);
    return false;
  }
  if (ascii_lower(c.req.header("Expect")) == "100-continue") {
    static const char kContinue[] = "HTTP/1.1 100 Continue\r\n\r\n";
    ssize_t w = ::send(c.fd, kContinue, sizeof kContinue - 1, MSG_NOSIGNAL);
    (void)w;
  }
  return true;
}

// Decodes chunks from c.in into c.raw. True when the last chunk and the trailer are in; false when
// more input is needed or the request was refused (phase changed).
bool HttpServer::State::parse_chunks(Conn& c) {
  Clock::time_point now = Clock::now();
  size_t pos = 0;
  bool complete = false;
  bool refused = false;
  while (!complete && !refused) {
    if (c.chunk_state == 0 || c.chunk_state == 3) {  // a size line or a trailer line
      size_t e = c.in.find("\r\n", pos);
      if (e == std::string::npos) {
        if (c.in.size() - pos > kMaxChunkLine) {
          refuse(c, 400, "malformed chunked body: a chunk-size or trailer line over " + std::to_string(kMaxChunkLine) + " bytes", now);
          refused = true;
        }
        break;
      }
      std::string line = c.in.substr(pos, e - pos);
      pos = e + 2;
      if (c.chunk_state == 3) {
        c.trailer_bytes += line.size() + 2;
        if (line.empty()) complete = true;
        else if (c.trailer_bytes > kMaxTrailerBytes) {
          refuse(c, 431, "chunked trailer over " + std::to_string(kMaxTrailerBytes) + " bytes", now);
          refused = true;
        }
        continue;
      }
      std::string hex = trim(line.substr(0, line.find(';')));
      bool ok = !hex.empty() && hex.size() <= 15;
      for (char ch : hex) ok = ok && std::isxdigit(static_cast<unsigned char>(ch));
      if (!ok) {
        refuse(c, 400, "malformed chunked body: bad chunk size at body byte " + std::to_string(c.raw.size()), now);
        refused = true;
        break;
      }
      size_t size = std::stoull(hex, nullptr, 16);
      if (size > limits.max_body_bytes || c.raw.size() + size > limits.max_body_bytes) {
        refuse(c, 413,
               "request body too large: the chunked body passes the limit of " + std::to_string(limits.max_body_bytes) +
                   " bytes", now);
        refused = true;
        break;
      }
      if (size == 0) c.chunk_state = 3;
      else {
        c.chunk_state = 1;
        c.chunk_left = size;
      }
    } else if (c.chunk_state == 1) {
      size_t take = std::min(c.chunk_left, c.in.size() - pos);
      if (take == 0) break;
      c.raw.append(c.in, pos, take);
      pos += take;
      c.chunk_left -= take;
      if (c.chunk_left == 0) c.chunk_state = 2;
    } else {  // the CRLF that ends a chunk's data
      if (c.in.size() - pos < 2) break;
      if (c.in.compare(pos, 2, "\r\n") != 0) {
        refuse(c, 400, "malformed chunked body: no CRLF after a chunk's data at body byte " + std::to_string(c.raw.size()), now);
        refused = true;
        break;
      }
      pos += 2;
      c.chunk_state = 0;
    }
  }
  if (!refused) c.in.erase(0, pos);
  return complete;
}

void HttpServer::State::parse(Conn& c, Clock::time_point now) {
  if (c.phase == Phase::Head) {
    while (c.in.compare(0, 2, "\r\n") == 0) {  // blank lines before a request are allowed (RFC 9112 2.2)
      c.in.erase(0, 2);
      c.scanned = 0;
    }
    size_t end = c.in.find("\r\n\r\n", c.scanned >= 3 ? c.scanned - 3 : 0);
    if (end == std::string::npos) {
      c.scanned = c.in.size();
      if (c.in.size() > limits.max_header_bytes)
        refuse(c, 431,
               "request headers too large: over the limit of " + std::to_string(limits.max_header_bytes) + " bytes", now);
      return;
    }
    if (end + 4 > limits.max_header_bytes) {
      refuse(c, 431,
             "request headers too large: over the limit of " + std::to_string(limits.max_header_bytes) + " bytes", now);
      return;
    }
    std::string head = c.in.substr(0, end);
    c.in.erase(0, end + 4);
    if (!parse_head(c, head) || c.closed) return;
    c.phase = Phase::Body;
  }
  if (c.phase != Phase::Body) return;
  if (c.chunked) {
    if (!parse_chunks(c)) {
      if (!c.closed && c.phase == Phase::Body) recount(c);
      return;
    }
    c.req.body = std::move(c.raw);
    c.raw.clear();
  } else {
    if (c.in.size() < c.content_length) return;
    c.req.body = c.in.substr(0, c.content_length);
    c.in.erase(0, c.content_length);
  }
  dispatch(c, now);
}

void HttpServer::State::dispatch(Conn& c, Clock::time_point now) {
  c.req.bytes_in = c.req.body.size();
  c.held = c.req.body.size();
  recount(c);
  c.phase = Phase::Handling;
  watch(c, 0);
  if (handlers.quick && handlers.quick(c.req)) {
    ServerResponse r = handlers.handle(c.req);
    if (handlers.done) handlers.done(c.req, r);
    respond(c, r, c.req.method == "HEAD", now);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mutex);
    if (waiting.size() < limits.max_waiting) {
      waiting.push_back(Job{c.id, std::move(c.req)});
      work_ready.notify_one();
      return;
    }
  }
  c.keep_alive = false;
  refuse(c, 503,
         "the server has " + std::to_string(limits.max_waiting) + " requests waiting for a worker, its limit: retry later", now);
}

// The layer's own refusals. The connection ends after the answer; the rest of the request is read
// and dropped for a while (Drain) so that the client sees the answer rather than a reset.
void HttpServer::State::refuse(Conn& c, int status, const std::string& message, Clock::time_point now) {
  ServerResponse r = handlers.error(status, message);
  if (status == 503) r.headers.push_back({"Retry-After", "1"});
  if (handlers.done) handlers.done(c.req, r);
  c.keep_alive = false;
  c.after = After::Drain;
  respond(c, r, false, now);
}

void HttpServer::State::respond(Conn& c, const ServerResponse& r, bool head, Clock::time_point now) {
  if (c.closed) return;
  bool close = !c.keep_alive || stopping;
  if (close && c.after == After::KeepAlive) c.after = After::Close;
  c.out = serialize(r, head, close);
  c.out_done = 0;
  c.held = 0;
  recount(c);
  c.phase = Phase::Writing;
  c.deadline = now + std::chrono::milliseconds(limits.write_timeout_ms);
  if (c.gone) {
    close_conn(c.id);
    return;
  }
  write_some(c, now);
}

void HttpServer::State::write_some(Conn& c, Clock::time_point now) {
  while (c.out_done < c.out.size()) {
    ssize_t n = ::send(c.fd, c.out.data() + c.out_done, c.out.size() - c.out_done, MSG_NOSIGNAL);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      watch(c, EPOLLOUT);
      return;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      close_conn(c.id);
      return;
    }
    c.out_done += static_cast<size_t>(n);
  }
  after_write(c, now);
}

void HttpServer::State::after_write(Conn& c, Clock::time_point now) {
  c.out.clear();
  c.out.shrink_to_fit();
  if (c.after == After::Close) {
    close_conn(c.id);
    return;
  }
  if (c.after == After::Drain) {
    ::shutdown(c.fd, SHUT_WR);
    c.in.clear();
    c.raw.clear();
    recount(c);
    c.phase = Phase::Draining;
    c.deadline = now + std::chrono::milliseconds(kDrainMs);
    watch(c, EPOLLIN | EPOLLRDHUP);
    return;
  }
  if (stop_seen) {
    close_conn(c.id);
    return;
  }
  c.phase = Phase::Idle;
  c.deadline = now + std::chrono::milliseconds(limits.idle_timeout_ms);
  watch(c, EPOLLIN | EPOLLRDHUP);
  if (!c.in.empty() && !c.closed) {  // a pipelined request is already here
    start_request(c, now);
    parse(c, now);
  }
}

void HttpServer::State::check_deadlines(Clock::time_point now) {
  std::vector<uint64_t> expired;
  for (auto& [id, c] : conns)
    if (!c->closed && c->phase != Phase::Handling && now >= c->deadline) expired.push_back(id);
  for (uint64_t id : expired) {
    auto it = conns.find(id);
    if (it == conns.end()) continue;
    Conn& c = *it->second;
    if (c.phase == Phase::Head || c.phase == Phase::Body) {
      refuse(c, 408,
             "request not received whole within " + std::to_string(limits.request_deadline_ms) +
                 " ms (the request deadline)", now);
    } else {
      close_conn(id);
    }
  }
}

void HttpServer::State::begin_stop() {
  stop_seen = true;
  ::epoll_ctl(epoll_fd, EPOLL_CTL_DEL, listen_fd, nullptr);
  ::close(listen_fd);
  listen_fd = -1;
  std::vector<uint64_t> idle;
  for (auto& [id, c] : conns)
    if (c->phase != Phase::Handling && c->phase != Phase::Writing) idle.push_back(id);
  for (uint64_t id : idle) close_conn(id);
}

void HttpServer::State::loop() {
  epoll_event events[256];
  Clock::time_point next_scan = Clock::now();
  while (true) {
    int n = ::epoll_wait(epoll_fd, events, 256, 100);
    Clock::time_point now = Clock::now();
    for (int i = 0; i < n; ++i) {
      uint64_t id = events[i].data.u64;
      if (id == kListenId) {
        if (!stop_seen) accept_all(now);
      } else if (id == kWakeId) {
        uint64_t count = 0;
        ssize_t r = ::read(wake_fd, &count, sizeof count);
        (void)r;
        std::deque<Finished> done;
        {
          std::lock_guard<std::mutex> lock(mutex);
          done.swap(finished);
        }
        for (Finished& f : done) {
          auto it = conns.find(f.conn);
          if (it != conns.end()) respond(*it->second, f.response, f.head, now);
        }
      } else {
        auto it = conns.find(id);
        if (it != conns.end()) on_event(*it->second, events[i].events, now);
      }
    }
    if (stopping && !stop_seen) begin_stop();
    if (now >= next_scan) {
      check_deadlines(now);
      next_scan = now + std::chrono::milliseconds(100);
    }
    free_closed();
    if (stop_seen && conns.empty()) break;
  }
}

void HttpServer::State::worker() {
  while (true) {
    Job job;
    {
      std::unique_lock<std::mutex> lock(mutex);
      work_ready.wait(lock, [&] { return workers_done || !waiting.empty(); });
      if (waiting.empty()) return;
      job = std::move(waiting.front());
      waiting.pop_front();
    }
    ServerResponse r;
    std::string encoding = ascii_lower(trim(job.req.header("Content-Encoding")));
    bool ok = true;
    if (!encoding.empty() && encoding != "identity") {
      if (encoding != "gzip" && encoding != "x-gzip" && encoding != "deflate") {
        r = handlers.error(415, "Content-Encoding \"" + encoding + "\" is not supported (send gzip, deflate or none)");
        ok = false;
      } else {
        std::string inflated, error;
        Inflated result = inflate_body(encoding, job.req.body, limits.max_body_bytes, inflated, error);
        if (result == Inflated::TooLarge) {
          r = handlers.error(413, "request body too large: the " + encoding + " body inflates to more than the limit of " +
                                      std::to_string(limits.max_body_bytes) + " bytes");
          ok = false;
        } else if (result == Inflated::Corrupt) {
          r = handlers.error(400, error);
          ok = false;
        } else {
          job.req.body = std::move(inflated);
        }
      }
    }
    if (ok) {
      try {
        r = handlers.handle(job.req);
      } catch (const std::exception& e) {
        r = handlers.error(500, std::string("internal error: ") + e.what());
      }
    }
    if (handlers.done) handlers.done(job.req, r);
    {
      std::lock_guard<std::mutex> lock(mutex);
      finished.push_back(Finished{job.conn, std::move(r), job.req.method == "HEAD"});
    }
    wake();
  }
}

HttpServer::HttpServer(HttpLimits limits, HttpHandlers handlers) : state_(std::make_unique<State>()) {
  state_->limits = limits;
  state_->handlers = std::move(handlers);
}

HttpServer::~HttpServer() { stop(); }

size_t HttpServer::connections() const { return state_->conn_count.load(); }

int HttpServer::start(const std::string& host, int port) {
  State& s = *state_;
  if (s.loop_thread.joinable()) throw Error("the HTTP server is already started");
  // Connections cost descriptors: take what the hard limit allows, keep room for files and the model.
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    if (rl.rlim_cur < rl.rlim_max) {
      rl.rlim_cur = rl.rlim_max;
      ::setrlimit(RLIMIT_NOFILE, &rl);
      ::getrlimit(RLIMIT_NOFILE, &rl);
    }
    size_t room = rl.rlim_cur > 256 ? static_cast<size_t>(rl.rlim_cur) - 128 : 64;
    s.limits.max_connections = std::min(s.limits.max_connections, room);
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  std::string port_text = std::to_string(port);
  int rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), port_text.c_str(), &hints, &found);
  if (rc != 0) throw Error("cannot listen on " + host + ":" + port_text + ": " + ::gai_strerror(rc));
  int fd = -1;
  std::string why = "no address";
  for (addrinfo* a = found; a && fd < 0; a = a->ai_next) {
    fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    int yes = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);  // quick restarts; not SO_REUSEPORT
    if (::bind(fd, a->ai_addr, a->ai_addrlen) != 0 || ::listen(fd, SOMAXCONN) != 0) {
      why = std::strerror(errno);
      ::close(fd);
      fd = -1;
    }
  }
  ::freeaddrinfo(found);
  if (fd < 0)
    throw Error("cannot listen on " + host + ":" + port_text + " (" + why + ": address in use or not available)");
  set_nonblocking(fd);
  sockaddr_storage bound{};
  socklen_t len = sizeof bound;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
  int bound_port = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                                      : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  s.listen_fd = fd;
  s.epoll_fd = ::epoll_create1(EPOLL_CLOEXEC);
  s.wake_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  s.spare_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (s.epoll_fd < 0 || s.wake_fd < 0) throw Error(std::string("cannot create the event loop: ") + std::strerror(errno));
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kListenId;
  ::epoll_ctl(s.epoll_fd, EPOLL_CTL_ADD, s.listen_fd, &ev);
  ev.data.u64 = kWakeId;
  ::epoll_ctl(s.epoll_fd, EPOLL_CTL_ADD, s.wake_fd, &ev);
  for (size_t i = 0; i < std::max<size_t>(1, s.limits.workers); ++i) s.workers.emplace_back([&s] { s.worker(); });
  s.loop_thread = std::thread([&s] { s.loop(); });
  return bound_port;
}

void HttpServer::stop() {
  State& s = *state_;
  if (!s.loop_thread.joinable()) return;
  s.stopping = true;
  s.wake();
  s.loop_thread.join();  // after every request in flight is answered
  {
    std::lock_guard<std::mutex> lock(s.mutex);
    s.workers_done = true;
  }
  s.work_ready.notify_all();
  for (auto& t : s.workers) t.join();
  s.workers.clear();
  for (auto& [id, c] : s.conns)
    if (c->fd >= 0) ::close(c->fd);
  s.conns.clear();
  ::close(s.epoll_fd);
  ::close(s.wake_fd);
  if (s.spare_fd >= 0) ::close(s.spare_fd);
}

}  // namespace tailor
