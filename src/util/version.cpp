// The program's version string, one place.
namespace tailor {
const char* version() { return "0.1.0"; }
}  // namespace tailor
