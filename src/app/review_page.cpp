#include "app/review_page.h"

#include <algorithm>
#include <cctype>
#include <cstdio>

#include "app/charts.h"

namespace tailor {

const char* const kReviewScript = R"js(// tailor review: keyboard shortcuts. Every action is a plain form button; this only presses them.
(function () {
  'use strict';
  var actions = { a: 'approve', r: 'reject', s: 'skip', g: 'regenerate', w: 'save', u: 'reopen' };
  function press(action) {
    var b = document.querySelector('button[name="action"][value="' + action + '"]');
    if (b) { b.click(); return true; }
    return false;
  }
  function inField(el) {
    return el && (el.tagName === 'TEXTAREA' || el.tagName === 'SELECT' ||
                  (el.tagName === 'INPUT' && el.type !== 'submit' && el.type !== 'button'));
  }
  document.addEventListener('keydown', function (ev) {
    if (ev.key === 'Enter' && (ev.ctrlKey || ev.metaKey)) { if (press('save')) ev.preventDefault(); return; }
    if (ev.key === 'Escape') { if (document.activeElement) document.activeElement.blur(); return; }
    if (ev.ctrlKey || ev.metaKey || ev.altKey || inField(ev.target)) return;
    if (actions[ev.key]) { if (press(actions[ev.key])) ev.preventDefault(); return; }
    if (ev.key === 'e') {
      var d = document.getElementById('description');
      if (d) { d.focus(); ev.preventDefault(); }
      return;
    }
    if (/^[1-9]$/.test(ev.key)) {
      var select = document.querySelectorAll('select.attr')[Number(ev.key) - 1];
      if (select) { select.focus(); ev.preventDefault(); }
      return;
    }
    if (ev.key === 'j' || ev.key === 'k') {
      var link = document.querySelector(ev.key === 'j' ? 'a[rel="next"]' : 'a[rel="prev"]');
      if (link) { window.location.href = link.href; ev.preventDefault(); }
      return;
    }
    if (ev.key === '/') {
      var f = document.querySelector('#filters select, #filters input');
      if (f) { f.focus(); ev.preventDefault(); }
    }
  });
  // An attribute changed since the description was written: say so until it is regenerated or saved.
  Array.prototype.forEach.call(document.querySelectorAll('select.attr'), function (s) {
    s.addEventListener('change', function () {
      var note = document.getElementById('stale');
      if (note) note.hidden = false;
    });
  });
})();
)js";

const char* const kReviewStyle = R"css(body{font-family:sans-serif;margin:0;color:#222}
header{display:flex;gap:1.5em;align-items:center;padding:.6em 1.2em;background:#1f3550;color:#fff}
header a{color:#fff}header .counts{margin-left:auto}main{padding:1em 1.2em;max-width:80em}
table{border-collapse:collapse}td,th{border-bottom:1px solid #ddd;padding:.3em .6em;text-align:left;vertical-align:top}
.thumb{width:64px;height:64px;object-fit:contain;background:#f4f4f4}
.product{display:flex;gap:2em;align-items:flex-start}.photo img{width:320px;max-height:420px;object-fit:contain;background:#f4f4f4}
.attrs td:first-child{font-weight:bold}.conf{color:#555;font-variant-numeric:tabular-nums}.low{color:#b00;font-weight:bold}
.was{color:#777;font-size:.9em}textarea{width:100%;min-height:9em;font:inherit}
.actions button{margin:.3em .4em .3em 0;padding:.4em .9em;font-size:1em}kbd{border:1px solid #999;border-radius:3px;padding:0 .25em;font-size:.85em}
.message{padding:.6em 1em;border-radius:4px;background:#eef5ff;margin:.6em 0}.error{background:#fde8e8;color:#8a1010;border:1px solid #e4a0a0}
.status-approved{color:#060}.status-rejected{color:#b00}.status-skipped{color:#a60}
#filters{display:flex;gap:1em;flex-wrap:wrap;align-items:end;margin-bottom:1em}#filters label{display:flex;flex-direction:column;font-size:.9em}
.keys{color:#555;font-size:.9em}.charts svg{display:block;margin:.5em 0 1.5em}
)css";

namespace {

std::string confidence_text(const std::optional<double>& c) {
  if (!c) return "&mdash;";
  char b[32];
  std::snprintf(b, sizeof b, "%.2f", *c);
  return b;
}

std::string status_html(const std::string& status) {
  return "<span class=\"status-" + escape_html(status) + "\">" + escape_html(status) + "</span>";
}

std::string head(const std::string& title) {
  return "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
         "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
         "<title>" + escape_html(title) + " · tailor review</title>"
         "<link rel=\"stylesheet\" href=\"/static/review.css\"></head><body>\n";
}

std::string header_bar(const ReviewCounts* counts) {
  std::string h = "<header><strong>tailor review</strong><a href=\"/\">Queue</a><a href=\"/summary\">Summary</a>"
                  "<a href=\"/export/approved.jsonl\">approved.jsonl</a><a href=\"/export/approved.csv\">approved.csv</a>"
                  "<a href=\"/export/corrections.jsonl\">corrections.jsonl</a>";
  if (counts)
    h += "<span class=\"counts\" id=\"counts\">done <b id=\"done\">" + std::to_string(counts->done()) +
         "</b> · left <b id=\"left\">" + std::to_string(counts->left()) + "</b> (approved " +
         std::to_string(counts->approved) + ", rejected " + std::to_string(counts->rejected) + ", skipped " +
         std::to_string(counts->skipped) + " of " + std::to_string(counts->total) + ")</span>";
  return h + "</header>\n<main>\n";
}

std::string foot() { return "</main>\n<script src=\"/static/review.js\"></script>\n</body></html>\n"; }

std::string option(const std::string& value, const std::string& label, bool selected) {
  return "<option value=\"" + escape_html(value) + "\"" + (selected ? " selected" : "") + ">" + escape_html(label) +
         "</option>";
}

std::string filter_form(const QueueView& v) {
  const QueueFilter& f = v.filter;
  std::string h = "<form id=\"filters\" method=\"get\" action=\"/\">";
  h += "<label>status<select name=\"status\">";
  for (const char* s : {"pending", "skipped", "approved", "rejected", "all"}) h += option(s, s, f.status == s);
  h += "</select></label><label>attribute<select name=\"attribute\">" + option("", "any", f.attribute.empty());
  for (const auto& a : v.attributes) h += option(a, a, f.attribute == a);
  h += "</select></label><label>confidence at most<input name=\"max_confidence\" type=\"number\" min=\"0\" max=\"1\" "
       "step=\"0.05\" value=\"" + (f.max_confidence ? confidence_text(f.max_confidence) : std::string()) + "\"></label>";
  h += "<label>article type<select name=\"article_type\">" + option("", "any", f.article_type.empty());
  for (const auto& t : v.article_types) h += option(t, t, f.article_type == t);
  h += "</select></label><button type=\"submit\">Filter</button></form>\n";
  return h;
}

std::string attribute_row(const ReviewAttribute& a, const std::vector<std::string>& allowed, bool low) {
  std::string field = "attr:" + a.name;
  std::string h = "<tr><td><label for=\"" + escape_html(field) + "\">" + escape_html(a.name) + "</label></td><td>";
  h += "<select class=\"attr\" id=\"" + escape_html(field) + "\" name=\"" + escape_html(field) + "\">";
  bool has_current = std::find(allowed.begin(), allowed.end(), a.value) != allowed.end();
  if (!has_current) h += option(a.value, a.value, true);
  for (const auto& v : allowed) h += option(v, v, v == a.value);
  h += "</select>";
  if (a.value != a.predicted) h += " <span class=\"was\">model: " + escape_html(a.predicted) + "</span>";
  h += "</td><td class=\"conf" + std::string(low ? " low" : "") + "\">" + confidence_text(a.confidence) + "</td></tr>\n";
  return h;
}

}  // namespace

std::string url_encode(const std::string& s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

std::string filter_query(const QueueFilter& f) {
  std::string q = "status=" + url_encode(f.status);
  if (!f.attribute.empty()) q += "&attribute=" + url_encode(f.attribute);
  if (f.max_confidence) q += "&max_confidence=" + confidence_text(f.max_confidence);
  if (!f.article_type.empty()) q += "&article_type=" + url_encode(f.article_type);
  return q;
}

std::string render_queue(const QueueView& v) {
  std::string h = head("Queue") + header_bar(&v.counts);
  h += "<h1>Queue</h1>\n" + filter_form(v);
  if (!v.message.empty()) h += "<p class=\"message\">" + escape_html(v.message) + "</p>\n";
  std::string q = filter_query(v.filter);
  if (v.products.empty()) {
    h += "<p class=\"message\" id=\"empty\">Nothing in this queue.</p>\n";
  } else {
    h += "<p class=\"keys\">" + std::to_string(v.products.size()) + " products, lowest confidence first. "
         "<kbd>j</kbd> opens the first; <kbd>/</kbd> goes to the filters.</p>\n";
    h += "<table id=\"queue\"><tr><th></th><th>product</th><th>article type</th><th>lowest confidence</th>"
         "<th>status</th><th>reviewer</th></tr>\n";
    for (size_t i = 0; i < v.products.size(); ++i) {
      const auto& p = v.products[i];
      std::string href = "/product/" + url_encode(p.id) + "?" + q;
      h += "<tr class=\"item\" data-id=\"" + escape_html(p.id) + "\"><td><img class=\"thumb\" loading=\"lazy\" alt=\"\" src=\"/photo/" +
           url_encode(p.id) + "\"></td><td><a href=\"" + escape_html(href) + "\"" + (i == 0 ? " rel=\"next\"" : "") + ">" +
           escape_html(p.id) + "</a> " + escape_html(p.name) + "</td><td>" + escape_html(p.article_type) + "</td><td class=\"conf\">" +
           confidence_text(p.min_confidence) + "</td><td>" + status_html(p.status) + "</td><td>" + escape_html(p.reviewer) +
           "</td></tr>\n";
    }
    h += "</table>\n";
  }
  return h + foot();
}

std::string render_product(const ProductView& v) {
  const ReviewProduct& p = v.product;
  std::string q = filter_query(v.filter);
  std::string h = head("Product " + p.id) + header_bar(&v.counts);
  h += "<nav class=\"keys\"><a href=\"/?" + escape_html(q) + "\">&larr; queue</a>";
  if (v.position > 0) h += " · " + std::to_string(v.position) + " of " + std::to_string(v.queue_size) + " in this queue";
  if (!v.prev_id.empty()) h += " · <a rel=\"prev\" href=\"/product/" + escape_html(url_encode(v.prev_id) + "?" + q) + "\">previous (k)</a>";
  if (!v.next_id.empty()) h += " · <a rel=\"next\" href=\"/product/" + escape_html(url_encode(v.next_id) + "?" + q) + "\">next (j)</a>";
  h += "</nav>\n";
  if (!v.message.empty())
    h += "<p class=\"message" + std::string(v.message_is_error ? " error" : "") + "\" id=\"message\" role=\"alert\">" +
         escape_html(v.message) + "</p>\n";
  h += "<h1 id=\"title\">" + escape_html(p.name.empty() ? "Product " + p.id : p.name) + "</h1>\n";
  h += "<p>id <b id=\"product-id\">" + escape_html(p.id) + "</b> · " + escape_html(p.article_type) + " · status <b id=\"status\">" +
       status_html(p.status) + "</b> · version <span id=\"version\">" + std::to_string(p.version) + "</span>";
  if (!p.reviewer.empty()) h += " · last change by " + escape_html(p.reviewer) + " at " + escape_html(p.updated_at);
  h += "</p>\n<div class=\"product\"><div class=\"photo\">";
  if (p.image_error.empty()) h += "<img id=\"photo\" alt=\"photo of product " + escape_html(p.id) + "\" src=\"/photo/" + url_encode(p.id) + "\">";
  else h += "<p class=\"message error\">" + escape_html(p.image_error) + "</p>";
  // The queue's filter rides in the action's query: after a decision the server goes on in that queue.
  h += "</div>\n<form method=\"post\" id=\"review\" action=\"/product/" + escape_html(url_encode(p.id) + "?" + q) + "\">\n";
  h += "<input type=\"hidden\" name=\"version\" value=\"" + std::to_string(p.version) + "\">\n";
  h += "<table class=\"attrs\"><tr><th>attribute</th><th>value</th><th>confidence</th></tr>\n";
  for (const auto& a : p.attributes) {
    auto it = v.allowed.find(a.name);
    bool low = a.confidence && p.min_confidence && *a.confidence == *p.min_confidence && p.attributes.size() > 1;
    h += attribute_row(a, it == v.allowed.end() ? std::vector<std::string>{} : it->second, low);
  }
  h += "</table>\n<p><label for=\"description\"><b>Description</b> (<kbd>e</kbd>)</label>"
       "<span id=\"stale\" class=\"was\" hidden> an attribute changed: regenerate (<kbd>g</kbd>) or edit the text</span><br>"
       "<textarea id=\"description\" name=\"description\">" + escape_html(p.description) + "</textarea></p>\n";
  if (p.description != p.original_description)
    h += "<details><summary class=\"was\">as written by " + escape_html(p.writer) + "</summary><p class=\"was\">" +
         escape_html(p.original_description) + "</p></details>\n";
  h += "<p><label>Reviewer <input id=\"reviewer\" name=\"reviewer\" value=\"" + escape_html(v.reviewer) +
       "\" autocomplete=\"name\" placeholder=\"your name\"></label></p>\n<p class=\"actions\">"
       "<button name=\"action\" value=\"approve\" type=\"submit\">Approve <kbd>a</kbd></button>"
       "<button name=\"action\" value=\"reject\" type=\"submit\">Reject <kbd>r</kbd></button>"
       "<button name=\"action\" value=\"skip\" type=\"submit\">Skip <kbd>s</kbd></button>"
       "<button name=\"action\" value=\"save\" type=\"submit\">Save <kbd>w</kbd></button>"
       "<button name=\"action\" value=\"regenerate\" type=\"submit\">Regenerate description <kbd>g</kbd></button>";
  if (p.status != kStatusPending) h += "<button name=\"action\" value=\"reopen\" type=\"submit\">Back to pending <kbd>u</kbd></button>";
  h += "</p>\n<p class=\"keys\"><kbd>1</kbd>–<kbd>9</kbd> attribute · <kbd>e</kbd> description · <kbd>Esc</kbd> leave a field · "
       "<kbd>Ctrl</kbd>+<kbd>Enter</kbd> save · <kbd>j</kbd>/<kbd>k</kbd> next/previous</p>\n</form></div>\n";
  return h + foot();
}

std::string render_summary(const SummaryView& v) {
  std::string h = head("Summary") + header_bar(&v.counts);
  h += "<h1>Summary</h1>\n<p>" + std::to_string(v.counts.done()) + " of " + std::to_string(v.counts.total) +
       " products decided (" + std::to_string(v.counts.approved) + " approved, " + std::to_string(v.counts.rejected) +
       " rejected); " + std::to_string(v.counts.left()) + " left (" + std::to_string(v.counts.skipped) + " skipped).</p>\n";
  if (!v.notes.empty()) h += "<p class=\"keys\">" + escape_html(v.notes) + "</p>\n";
  return h + v.charts + foot();
}

std::string render_login(const std::string& message) {
  std::string h = head("Log in") + header_bar(nullptr) + "<h1>Log in</h1>\n";
  if (!message.empty()) h += "<p class=\"message error\" role=\"alert\">" + escape_html(message) + "</p>\n";
  h += "<form method=\"post\" action=\"/login\"><label>Password or token <input type=\"password\" name=\"password\" "
       "autofocus></label> <button type=\"submit\">Log in</button></form>\n";
  return h + foot();
}

std::string render_message(const std::string& title, const std::string& message, const ReviewCounts* counts) {
  return head(title) + header_bar(counts) + "<h1>" + escape_html(title) + "</h1>\n<p class=\"message error\" id=\"message\" role=\"alert\">" +
         escape_html(message) + "</p>\n<p><a href=\"/\">back to the queue</a></p>\n" + foot();
}

}  // namespace tailor
