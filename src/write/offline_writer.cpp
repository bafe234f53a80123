// The offline writer: natural sentences built from every given attribute, no network. Each slot
// (opening, fabric, fit, collar, ...) has a few phrasings; a hash of the attributes picks them and
// the order of the middle sentences, so the same product always reads the same and neighbours vary.
#include <algorithm>
#include <cstdint>

#include "write/writer.h"

namespace tailor {

static std::string lower(std::string s) {
  for (char& c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return s;
}

static std::string capitalize(std::string s) {
  if (!s.empty() && s[0] >= 'a' && s[0] <= 'z') s[0] = static_cast<char>(s[0] - 'a' + 'A');
  return s;
}

static bool contains(const std::string& text, const std::string& word) {
  return lower(text).find(word) != std::string::npos;
}

// "Slim" -> "slim fit", "Slim Fit" -> "slim fit": the noun is added only when the value lacks it.
static std::string with_noun(const std::string& value, const std::string& noun) {
  std::string v = lower(value);
  return contains(v, noun) ? v : v + " " + noun;
}

static std::string a_or_an(const std::string& word) {
  char c = word.empty() ? 'x' : static_cast<char>(std::tolower(static_cast<unsigned char>(word[0])));
  return (c == 'a' || c == 'e' || c == 'i' || c == 'o' || c == 'u') ? "an " + word : "a " + word;
}

static uint64_t fnv1a(const std::string& s, uint64_t h = 1469598103934665603ULL) {
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return h;
}

// A well-mixed choice in [0, n) for slot `slot`.
static size_t pick(uint64_t h, uint64_t slot, size_t n) {
  uint64_t x = h + slot * 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  x ^= x >> 31;
  return static_cast<size_t>(x % n);
}

// The product noun from the article type: "Shirts" -> "shirt", "Tshirts" -> "T-shirt".
static std::string product_noun(const std::string& type) {
  std::string t = lower(type);
  if (t.empty()) return "piece";
  if (t == "tshirts" || t == "tshirt" || t == "t-shirts") return "T-shirt";
  if (t.size() > 3 && t.back() == 's' && t[t.size() - 2] != 's') t.pop_back();
  return t;
}

struct KnownAttributes {
  std::string fabric, fit, collar, neck, pattern, sleeve_length, sleeve_styling, colour, type;
  std::vector<ProductAttribute> other;
};

static KnownAttributes sort_attributes(const ProductAttributes& attributes) {
  KnownAttributes k;
  for (const auto& a : attributes) {
    std::string n = lower(a.name);
    n.erase(std::remove(n.begin(), n.end(), ' '), n.end());
    n.erase(std::remove(n.begin(), n.end(), '_'), n.end());
    if (a.value.empty()) continue;
    if (n == "fabric") k.fabric = a.value;
    else if (n == "fit") k.fit = a.value;
    else if (n == "collar") k.collar = a.value;
    else if (n == "neck" || n == "necktype") k.neck = a.value;
    else if (n == "pattern") k.pattern = a.value;
    else if (n == "sleevelength") k.sleeve_length = a.value;
    else if (n == "sleevestyling") k.sleeve_styling = a.value;
    else if (n == "basecolour" || n == "colour" || n == "color" || n == "basecolor") k.colour = a.value;
    else if (n == "articletype" || n == "producttype" || n == "type") k.type = a.value;
    else k.other.push_back(a);
  }
  return k;
}

std::string offline_description(const ProductAttributes& attributes) {
  KnownAttributes k = sort_attributes(attributes);
  // Order-independent hash: the same attributes in another order read the same.
  std::vector<std::string> keyed;
  for (const auto& a : attributes) keyed.push_back(a.name + "=" + a.value);
  std::sort(keyed.begin(), keyed.end());
  uint64_t h = 1469598103934665603ULL;
  for (const auto& s : keyed) h = fnv1a(s + "\n", h);

  std::string noun = product_noun(k.type);
  std::string colour_noun = k.colour.empty() ? noun : lower(k.colour) + " " + noun;
  std::string opening;
  switch (pick(h, 1, 3)) {
    case 0: opening = "Meet the " + colour_noun + " you will reach for again and again."; break;
    case 1: opening = "This " + colour_noun + " is made for days that ask a lot of you."; break;
    default: opening = "Here is " + a_or_an(colour_noun) + " that keeps things simple and sharp."; break;
  }

  std::vector<std::string> middle;
  if (!k.fabric.empty()) {
    std::string f = with_noun(k.fabric, "fabric");
    switch (pick(h, 2, 3)) {
      case 0: middle.push_back("Cut from " + f + ", it feels soft against the skin and moves easily with you."); break;
      case 1: middle.push_back("The " + f + " breathes well and falls naturally as you move through the day."); break;
      default: middle.push_back("It is made from " + f + " that drapes lightly and stays comfortable from morning to evening.");
    }
  }
  if (!k.fit.empty()) {
    std::string f = with_noun(k.fit, "fit");
    switch (pick(h, 3, 3)) {
      case 0: middle.push_back("The " + f + " gives a clean line without feeling tight."); break;
      case 1: middle.push_back(capitalize(a_or_an(f)) + " keeps the shape neat while leaving room to move."); break;
      default: middle.push_back("Tailored to " + a_or_an(f) + ", it sits well on the shoulders and through the body.");
    }
  }
  if (!k.collar.empty()) {
    std::string c = with_noun(k.collar, "collar");
    switch (pick(h, 4, 3)) {
      case 0: middle.push_back(capitalize(a_or_an(c)) + " frames the face and looks just as good open as buttoned up."); break;
      case 1: middle.push_back("The " + c + " adds a crisp, polished finish."); break;
      default: middle.push_back("Finished with " + a_or_an(c) + ", it moves easily from desk to dinner.");
    }
  }
  if (!k.neck.empty()) {
    std::string n = contains(k.neck, "collar") ? lower(k.neck) : with_noun(k.neck, "neck");
    switch (pick(h, 5, 3)) {
      case 0: middle.push_back("The " + n + " keeps the look relaxed and easy."); break;
      case 1: middle.push_back(capitalize(a_or_an(n)) + " sits comfortably and pairs well with a jacket."); break;
      default: middle.push_back("With its " + n + ", it layers effortlessly.");
    }
  }
  if (!k.pattern.empty()) {
    std::string p = with_noun(k.pattern, "pattern");
    switch (pick(h, 6, 3)) {
      case 0: middle.push_back("Its " + p + " is easy to style with everything in your wardrobe."); break;
      case 1: middle.push_back("The " + p + " brings quiet character to the look."); break;
      default: middle.push_back(capitalize(a_or_an(p)) + " gives it an easy, confident personality.");
    }
  }
  std::string len = lower(k.sleeve_length), sty = lower(k.sleeve_styling);
  if (!len.empty() && contains(len, "sleeveless")) {
    middle.push_back(capitalize(len) + ", it keeps you cool when the temperature rises.");
    len.clear();
  }
  if (!len.empty() && !sty.empty()) {
    switch (pick(h, 7, 3)) {
      case 0: middle.push_back("The " + len + " are finished as " + sty + ", easy to push up when the day warms up."); break;
      case 1: middle.push_back("It comes with " + len + ", styled as " + sty + " for a relaxed finish."); break;
      default: middle.push_back("Its " + len + ", finished as " + sty + ", suit work and weekend alike.");
    }
  } else if (!len.empty()) {
    switch (pick(h, 7, 2)) {
      case 0: middle.push_back("Its " + len + " make it an easy pick in any season."); break;
      default: middle.push_back("With " + len + ", it is ready for whatever the day brings.");
    }
  } else if (!sty.empty()) {
    switch (pick(h, 7, 2)) {
      case 0: middle.push_back("The sleeves are finished as " + sty + "."); break;
      default: middle.push_back("Its " + sty + " add a thoughtful finishing touch.");
    }
  }
  for (const auto& o : k.other) middle.push_back("Its " + lower(o.name) + " is " + lower(o.value) + ".");
  // Vary the order of the middle sentences a little: rotate by a hashed amount.
  if (middle.size() > 1) std::rotate(middle.begin(), middle.begin() + pick(h, 8, middle.size()), middle.end());

  std::string closing;
  if (!k.type.empty()) {
    switch (pick(h, 9, 3)) {
      case 0: closing = "A versatile addition to our " + k.type + " collection."; break;
      case 1: closing = "One of the easiest picks in our " + k.type + " range, it is made to be worn often."; break;
      default: closing = "Add it to your " + k.type + " rotation and wear it with confidence.";
    }
  } else {
    const char* v[] = {"Made to be worn often and loved for longer.", "An easy favourite for every week.",
                       "Simple to wear, hard to take off."};
    closing = v[pick(h, 9, 3)];
  }

  std::string text = opening;
  for (const auto& s : middle) text += " " + s;
  text += " " + closing;
  return text;
}

namespace {
class OfflineWriter : public Writer {
 public:
  std::string write(const ProductAttributes& attributes) const override { return offline_description(attributes); }
  std::string name() const override { return "offline"; }
  std::string model() const override { return "offline-v1"; }
};
}  // namespace

std::unique_ptr<Writer> make_offline_writer(const WriterConfig& config) { return std::make_unique<OfflineWriter>(); }

}  // namespace tailor
