// Reading prepare's train.jsonl / val.jsonl back for training and evaluation.
#pragma once
#include <string>
#include <vector>

namespace tailor {

// One question/answer pair, as prepare writes it (one JSON object per line).
struct VqaPair {
  std::string id;         // product id ("15970")
  std::string image;      // absolute path of an image that decoded without error during prepare
  std::string attribute;  // "Sleeve Length"
  std::string question;   // "What is the sleeve length of the shirt in this picture?"
  std::string prompt;     // "Question: What is the sleeve length ... Answer: "
  std::string answer;     // "Sleeve Length: Long Sleeves" (the training target)
  std::string value;      // "Long Sleeves"
};

// Every line must be a JSON object with the seven string fields above; blank lines are ignored.
// Errors name the file, the line number and the field.
std::vector<VqaPair> read_pairs(const std::string& jsonl_path);

// Adds `extra` pairs (e.g. `tailor review`'s corrections) to `pairs`: a pair for a product and
// attribute already in `pairs` replaces that one (a reviewer's value wins over the catalog's); the
// rest are appended in their order.
void merge_pairs(std::vector<VqaPair>& pairs, const std::vector<VqaPair>& extra);

// The JSON line prepare writes for a pair (fields in the order above).
std::string pair_to_json_line(const VqaPair& p);

}  // namespace tailor
