// A small Chrome DevTools Protocol driver for tests: Debian's headless chromium started with
// --remote-debugging-pipe speaks CDP as NUL-terminated JSON messages, commands in on its fd 3,
// replies and events out on its fd 4 (no websocket needed). Enough to open pages, run JavaScript,
// press keys, wait for loads and take screenshots.
#pragma once
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <deque>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "serve/base64.h"
#include "util/fs.h"

namespace tailor::test {

using cdp_json = nlohmann::json;

// $TAILOR_CHROMIUM, else the first of Debian's names found on PATH; "" when there is none.
inline std::string find_chromium() {
  if (const char* env = std::getenv("TAILOR_CHROMIUM"); env && *env) return file_exists(env) ? env : "";
  for (const char* dir : {"/usr/bin", "/usr/local/bin", "/bin"})
    for (const char* name : {"chromium", "chromium-browser", "google-chrome"}) {
      std::string p = std::string(dir) + "/" + name;
      if (access(p.c_str(), X_OK) == 0) return p;
    }
  return "";
}

inline const char* chromium_missing_message() {
  return "chromium not found: the review page tests drive a real headless browser. Install Debian's "
         "chromium (bash scripts/setup.sh does) or set TAILOR_CHROMIUM to a Chromium binary";
}

class Chromium {
 public:
  // Starts the browser with a fresh profile in profile_dir; throws std::runtime_error when it cannot.
  explicit Chromium(const std::string& profile_dir) {
    std::string bin = find_chromium();
    if (bin.empty()) throw std::runtime_error(chromium_missing_message());
    int to_browser[2], from_browser[2];
    if (pipe(to_browser) != 0 || pipe(from_browser) != 0) throw std::runtime_error("pipe() failed");
    pid_ = fork();
    if (pid_ == 0) {
      // The browser reads commands on fd 3 and writes to fd 4: move the ends there (via high fds,
      // so that one dup2 does not close the other end).
      int in = fcntl(to_browser[0], F_DUPFD, 10), out = fcntl(from_browser[1], F_DUPFD, 10);
      dup2(in, 3);
      dup2(out, 4);
      int devnull = open("/dev/null", O_WRONLY);
      dup2(devnull, 1);
      dup2(devnull, 2);
      for (int fd = 5; fd < 1024; ++fd) close(fd);
      std::string profile = "--user-data-dir=" + profile_dir;
      execl(bin.c_str(), bin.c_str(), "--headless=new", "--remote-debugging-pipe", "--no-sandbox", "--disable-gpu",
            "--disable-dev-shm-usage", "--no-first-run", "--no-default-browser-check", "--disable-extensions",
            "--disable-background-networking", "--disable-sync", "--hide-scrollbars", "--mute-audio",
            profile.c_str(), "about:blank", static_cast<char*>(nullptr));
      _exit(127);
    }
    close(to_browser[0]);
    close(from_browser[1]);
    write_fd_ = to_browser[1];
    read_fd_ = from_browser[0];
    call("Target.setDiscoverTargets", {{"discover", false}});
  }

  ~Chromium() {
    if (pid_ <= 0) return;
    try {
      send("Browser.close", cdp_json::object(), "");
    } catch (...) {
    }
    for (int i = 0; i < 50; ++i) {
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    close(write_fd_);
    close(read_fd_);
  }

  // Sends a command and waits for its reply; events that arrive meanwhile are kept for wait_event.
  cdp_json call(const std::string& method, const cdp_json& params = cdp_json::object(), const std::string& session = "",
                int timeout_ms = 30000) {
    int id = send(method, params, session);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (true) {
      cdp_json m = read_message(deadline, method);
      if (m.contains("id") && m["id"] == id) {
        if (m.contains("error")) throw std::runtime_error("CDP " + method + " failed: " + m["error"].dump());
        return m.value("result", cdp_json::object());
      }
      if (m.contains("method")) events_.push_back(m);
    }
  }

  // Waits for an event of `method` on `session` (kept ones first).
  cdp_json wait_event(const std::string& method, const std::string& session, int timeout_ms = 30000) {
    for (auto it = events_.begin(); it != events_.end(); ++it)
      if ((*it)["method"] == method && it->value("sessionId", "") == session) {
        cdp_json e = *it;
        events_.erase(it);
        return e;
      }
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (true) {
      cdp_json m = read_message(deadline, method);
      if (m.value("method", "") == method && m.value("sessionId", "") == session) return m;
      if (m.contains("method")) events_.push_back(m);
    }
  }

  void forget_events(const std::string& session) {
    std::deque<cdp_json> kept;
    for (auto& e : events_)
      if (e.value("sessionId", "") != session) kept.push_back(e);
    events_.swap(kept);
  }

 private:
  int send(const std::string& method, const cdp_json& params, const std::string& session) {
    cdp_json m = {{"id", ++next_id_}, {"method", method}, {"params", params}};
    if (!session.empty()) m["sessionId"] = session;
    std::string text = m.dump();
    text.push_back('\0');
    size_t done = 0;
    while (done < text.size()) {
      ssize_t n = ::write(write_fd_, text.data() + done, text.size() - done);
      if (n <= 0) throw std::runtime_error("cannot write to chromium's pipe (did it exit?)");
      done += static_cast<size_t>(n);
    }
    return next_id_;
  }

  cdp_json read_message(std::chrono::steady_clock::time_point deadline, const std::string& waiting_for) {
    while (true) {
      size_t nul = buffer_.find('\0');
      if (nul != std::string::npos) {
        std::string text = buffer_.substr(0, nul);
        buffer_.erase(0, nul + 1);
        return cdp_json::parse(text);
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) throw std::runtime_error("chromium: timed out waiting for " + waiting_for);
      pollfd p{read_fd_, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      char chunk[65536];
      ssize_t n = ::read(read_fd_, chunk, sizeof chunk);
      if (n <= 0) throw std::runtime_error("chromium closed its pipe while waiting for " + waiting_for);
      buffer_.append(chunk, static_cast<size_t>(n));
    }
  }

  pid_t pid_ = -1;
  int write_fd_ = -1, read_fd_ = -1;
  int next_id_ = 0;
  std::string buffer_;
  std::deque<cdp_json> events_;
};

// One tab.
class BrowserPage {
 public:
  BrowserPage(Chromium& browser, int width = 1280, int height = 900) : browser_(browser) {
    std::string target = browser_.call("Target.createTarget", {{"url", "about:blank"}})["targetId"];
    session_ = browser_.call("Target.attachToTarget", {{"targetId", target}, {"flatten", true}})["sessionId"];
    browser_.call("Page.enable", cdp_json::object(), session_);
    browser_.call("Runtime.enable", cdp_json::object(), session_);
    browser_.call("Emulation.setDeviceMetricsOverride",
                  {{"width", width}, {"height", height}, {"deviceScaleFactor", 1}, {"mobile", false}}, session_);
  }

  void navigate(const std::string& url) {
    browser_.forget_events(session_);
    cdp_json r = browser_.call("Page.navigate", {{"url", url}}, session_);
    if (r.contains("errorText")) throw std::runtime_error("navigating to " + url + ": " + r["errorText"].get<std::string>());
    browser_.wait_event("Page.loadEventFired", session_);
  }

  // Runs an expression in the page and returns its value (JSON). A thrown exception throws here.
  cdp_json eval(const std::string& expression) {
    cdp_json r = browser_.call("Runtime.evaluate",
                               {{"expression", expression}, {"returnByValue", true}, {"awaitPromise", true}}, session_);
    if (r.contains("exceptionDetails"))
      throw std::runtime_error("JavaScript failed: " + expression + ": " + r["exceptionDetails"].dump());
    return r["result"].value("value", cdp_json());
  }
  std::string text(const std::string& expression) {
    cdp_json v = eval(expression);
    return v.is_string() ? v.get<std::string>() : v.dump();
  }

  // Does something that loads a new page (a click, a key) and waits for that load.
  template <typename Action>
  void and_wait_for_load(Action action) {
    browser_.forget_events(session_);
    action();
    browser_.wait_event("Page.loadEventFired", session_);
  }

  // A real key press as the keyboard sends it (keyDown with its text, then keyUp).
  void press(const std::string& key, const std::string& code, int key_code, bool with_text = true) {
    cdp_json down = {{"type", with_text ? "keyDown" : "rawKeyDown"}, {"key", key}, {"code", code},
                     {"windowsVirtualKeyCode", key_code}};
    if (with_text) down["text"] = key;
    browser_.call("Input.dispatchKeyEvent", down, session_);
    browser_.call("Input.dispatchKeyEvent",
                  {{"type", "keyUp"}, {"key", key}, {"code", code}, {"windowsVirtualKeyCode", key_code}}, session_);
  }
  void press_letter(char c) {
    std::string k(1, c);
    press(k, std::string("Key") + static_cast<char>(std::toupper(c)), std::toupper(c));
  }
  void press_escape() { press("Escape", "Escape", 27, false); }
  void type_text(const std::string& text) { browser_.call("Input.insertText", {{"text", text}}, session_); }

  // Loads every image now (lazy ones too) and waits until they are decoded or failed.
  void load_all_images() {
    eval("Promise.all(Array.from(document.images).map(i => { i.loading = 'eager'; return i.decode().catch(() => null); }))");
  }

  // PNG bytes of one element (its bounding box, scrolled or not), with a margin.
  std::vector<uint8_t> screenshot_element(const std::string& selector, int margin = 8) {
    cdp_json r = eval("(() => { const b = document.querySelector(" + cdp_json(selector).dump() +
                      ").getBoundingClientRect(); return {x: b.left + scrollX, y: b.top + scrollY, w: b.width, h: b.height}; })()");
    cdp_json clip = {{"x", std::max(0.0, r["x"].get<double>() - margin)}, {"y", std::max(0.0, r["y"].get<double>() - margin)},
                     {"width", r["w"].get<double>() + 2 * margin}, {"height", r["h"].get<double>() + 2 * margin}, {"scale", 1}};
    cdp_json shot = browser_.call("Page.captureScreenshot", {{"format", "png"}, {"clip", clip}, {"captureBeyondViewport", true}}, session_);
    return decode_base64(shot["data"].get<std::string>());
  }

  // PNG bytes of the whole page (height grown to the content).
  std::vector<uint8_t> screenshot(int width) {
    // Measured at a small height: the page grows to a tall viewport, never shrinks.
    browser_.call("Emulation.setDeviceMetricsOverride",
                  {{"width", width}, {"height", 600}, {"deviceScaleFactor", 1}, {"mobile", false}}, session_);
    load_all_images();
    int height = eval("Math.ceil(document.documentElement.scrollHeight)").get<int>();
    browser_.call("Emulation.setDeviceMetricsOverride",
                  {{"width", width}, {"height", height}, {"deviceScaleFactor", 1}, {"mobile", false}}, session_);
    cdp_json r = browser_.call("Page.captureScreenshot", {{"format", "png"}, {"captureBeyondViewport", true}}, session_);
    return decode_base64(r["data"].get<std::string>());
  }

 private:
  Chromium& browser_;
  std::string session_;
};

}  // namespace tailor::test
