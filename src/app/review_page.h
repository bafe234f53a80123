// `tailor review`'s pages, rendered on the server: the queue, one product, the summary, the login.
// Plain HTML forms do every change (the page works without JavaScript); /static/review.js adds only
// the keyboard shortcuts. No inline script: the Content-Security-Policy allows scripts from the
// server's own /static/ only, so catalog text could not run even if it escaped the escaping.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "app/review_store.h"

namespace tailor {

extern const char* const kReviewScript;  // /static/review.js
extern const char* const kReviewStyle;   // /static/review.css

// "status=pending&attribute=Fit&max_confidence=0.5&article_type=Shirts", empty parts left out.
std::string filter_query(const QueueFilter& filter);
std::string url_encode(const std::string& s);

struct QueueView {
  QueueFilter filter;
  std::vector<ReviewProduct> products;  // in queue order
  ReviewCounts counts;
  std::vector<std::string> attributes, article_types;  // for the filter selects
  std::string message;                                 // e.g. "the queue is empty"
};

struct ProductView {
  ReviewProduct product;
  std::map<std::string, std::vector<std::string>> allowed;  // attribute -> values to choose from
  QueueFilter filter;                                       // the queue the reviewer came from
  ReviewCounts counts;
  std::string prev_id, next_id;                             // neighbours in that queue ("" = none)
  size_t position = 0, queue_size = 0;                      // 1-based place in the queue (0: not in it)
  std::string reviewer;
  std::string message;                                      // why the last change was refused
  bool message_is_error = false;
};

struct SummaryView {
  ReviewCounts counts;
  std::string charts;   // charts_html(...)
  std::string notes;    // plain text: where the numbers come from
};

std::string render_queue(const QueueView& view);
std::string render_product(const ProductView& view);
std::string render_summary(const SummaryView& view);
std::string render_login(const std::string& message);
std::string render_message(const std::string& title, const std::string& message, const ReviewCounts* counts);

}  // namespace tailor
