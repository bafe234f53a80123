#include "catalog/images.h"

#include <png.h>
#include <turbojpeg.h>

#include <csetjmp>
#include <cstdio>
#include <cstring>

#include "util/error.h"
#include "util/fs.h"

namespace tailor {

// Garbage headers can claim huge sizes; refuse anything beyond this before allocating.
static const int64_t kMaxPixels = 64ll * 1024 * 1024;

static std::string hex_bytes(const uint8_t* data, size_t size, size_t n) {
  std::string s;
  char b[4];
  for (size_t i = 0; i < size && i < n; ++i) {
    std::snprintf(b, sizeof b, "%s%02x", i ? " " : "", data[i]);
    s += b;
  }
  return s;
}

static bool is_jpeg(const uint8_t* d, size_t n) { return n >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF; }
static bool is_png(const uint8_t* d, size_t n) {
  static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};
  return n >= 8 && std::memcmp(d, sig, 8) == 0;
}

// A JPEG ends with the EOI marker FF D9 (trailing zero padding is tolerated).
static bool jpeg_has_end_marker(const uint8_t* d, size_t n) {
  while (n > 0 && d[n - 1] == 0) --n;
  return n >= 2 && d[n - 2] == 0xFF && d[n - 1] == 0xD9;
}

// One TurboJPEG handle per thread and direction; handles are not thread-safe but are reusable.
struct TjHandle {
  tjhandle h = nullptr;
  explicit TjHandle(bool compress) { h = compress ? tjInitCompress() : tjInitDecompress(); }
  ~TjHandle() {
    if (h) tjDestroy(h);
  }
};

static tjhandle decompressor() {
  thread_local TjHandle t(false);
  if (!t.h) throw Error("cannot initialise the JPEG decoder: " + std::string(tjGetErrorStr2(nullptr)));
  return t.h;
}

static tjhandle compressor() {
  thread_local TjHandle t(true);
  if (!t.h) throw Error("cannot initialise the JPEG encoder: " + std::string(tjGetErrorStr2(nullptr)));
  return t.h;
}

static ImageRGB decode_jpeg(const uint8_t* data, size_t size) {
  tjhandle tj = decompressor();
  bool has_end = jpeg_has_end_marker(data, size);
  auto fail = [&](const char* stage) -> Error {
    std::string msg = tjGetErrorStr2(tj);
    if (!has_end || msg.find("Premature end") != std::string::npos)
      return Error("truncated JPEG (" + std::to_string(size) + " bytes, no end-of-image marker): " + stage +
                   ": " + msg);
    return Error(std::string("corrupt JPEG data: ") + stage + ": " + msg);
  };
  int w = 0, h = 0, subsamp = 0, colorspace = 0;
  if (tjDecompressHeader3(tj, data, static_cast<unsigned long>(size), &w, &h, &subsamp, &colorspace) != 0)
    throw fail("header");
  if ((w <= 0 || h <= 0) && !has_end)
    throw Error("truncated JPEG (" + std::to_string(size) + " bytes, no end-of-image marker): no frame header");
  if (w <= 0 || h <= 0 || static_cast<int64_t>(w) * h > kMaxPixels)
    throw Error("corrupt JPEG data: implausible size " + std::to_string(w) + "x" + std::to_string(h));
  ImageRGB img;
  img.width = w;
  img.height = h;
  img.pixels.resize(static_cast<size_t>(w) * h * 3);
  if (colorspace == TJCS_CMYK || colorspace == TJCS_YCCK) {
    // TurboJPEG decodes CMYK only to CMYK. Such files (Photoshop's) store inverted CMYK (Adobe
    // convention); PIL's convert("RGB") then gives R = C*K/255 etc. on the stored values.
    std::vector<uint8_t> cmyk(static_cast<size_t>(w) * h * 4);
    if (tjDecompress2(tj, data, static_cast<unsigned long>(size), cmyk.data(), w, 0, h, TJPF_CMYK,
                      TJFLAG_STOPONWARNING) != 0)
      throw fail("decode");
    for (size_t i = 0, n = static_cast<size_t>(w) * h; i < n; ++i) {
      unsigned k = cmyk[i * 4 + 3];
      for (int c = 0; c < 3; ++c) img.pixels[i * 3 + c] = static_cast<uint8_t>((cmyk[i * 4 + c] * k + 127) / 255);
    }
    return img;
  }
  // Warnings (e.g. "Premature end of JPEG file", "Corrupt JPEG data: bad Huffman code") mean the
  // decoder filled in pixels it did not have; such an image must not reach training, so they fail.
  if (tjDecompress2(tj, data, static_cast<unsigned long>(size), img.pixels.data(), w, 0, h, TJPF_RGB,
                    TJFLAG_STOPONWARNING) != 0)
    throw fail("decode");
  return img;
}

// ---- PNG (libpng's low-level API: it lets us mirror PIL's convert("RGB"): no gamma correction,
// palette/grey expanded, alpha dropped, 16-bit reduced to 8-bit) --------------------------------

struct PngReadState {
  const uint8_t* data;
  size_t size;
  size_t pos;
  char error[256];
  bool truncated;
};

static void png_read_mem(png_structp png, png_bytep out, png_size_t n) {
  PngReadState* st = static_cast<PngReadState*>(png_get_io_ptr(png));
  if (st->size - st->pos < n) {
    st->truncated = true;
    std::snprintf(st->error, sizeof st->error, "data ends at byte %zu, %zu more needed", st->size,
                  static_cast<size_t>(n - (st->size - st->pos)));
    png_longjmp(png, 1);
  }
  std::memcpy(out, st->data + st->pos, n);
  st->pos += n;
}

static void png_on_error(png_structp png, png_const_charp msg) {
  PngReadState* st = static_cast<PngReadState*>(png_get_error_ptr(png));
  std::snprintf(st->error, sizeof st->error, "%s", msg);
  png_longjmp(png, 1);
}

static void png_on_warning(png_structp, png_const_charp) {}  // ancillary-chunk problems: ignored

// Returns false with st->error set on failure. No C++ object with a destructor lives in this frame
// across setjmp; the output vector belongs to the caller.
static bool png_decode_into(png_structp png, png_infop info, PngReadState* st, ImageRGB* img,
                            std::vector<png_bytep>* rows) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_set_read_fn(png, st, png_read_mem);
  png_set_user_limits(png, 1 << 16, 1 << 16);
  png_read_info(png, info);
  png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
  int bit_depth = png_get_bit_depth(png, info), color_type = png_get_color_type(png, info);
  if (static_cast<int64_t>(w) * h > kMaxPixels) {
    std::snprintf(st->error, sizeof st->error, "implausible size %ux%u", w, h);
    return false;
  }
  if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (color_type == PNG_COLOR_TYPE_GRAY && bit_depth < 8) png_set_expand_gray_1_2_4_to_8(png);
  if (bit_depth == 16) png_set_strip_16(png);
  if (color_type == PNG_COLOR_TYPE_GRAY || color_type == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(png);
  // Palette expansion also turns tRNS into an alpha channel; drop it like a real one.
  if ((color_type & PNG_COLOR_MASK_ALPHA) || png_get_valid(png, info, PNG_INFO_tRNS)) png_set_strip_alpha(png);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  if (png_get_rowbytes(png, info) != static_cast<size_t>(w) * 3) {
    std::snprintf(st->error, sizeof st->error,
                  "unexpected row layout after conversion to RGB (colour type %d, bit depth %d, %zu bytes per row)",
                  color_type, bit_depth, static_cast<size_t>(png_get_rowbytes(png, info)));
    return false;
  }
  img->width = static_cast<int>(w);
  img->height = static_cast<int>(h);
  img->pixels.resize(static_cast<size_t>(w) * h * 3);
  rows->resize(h);
  for (png_uint_32 y = 0; y < h; ++y) (*rows)[y] = img->pixels.data() + static_cast<size_t>(y) * w * 3;
  png_read_image(png, rows->data());
  png_read_end(png, nullptr);
  return true;
}

static ImageRGB decode_png(const uint8_t* data, size_t size) {
  PngReadState st{data, size, 0, {0}, false};
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &st, png_on_error, png_on_warning);
  if (!png) throw Error("cannot initialise the PNG decoder");
  png_infop info = png_create_info_struct(png);
  if (!info) {
    png_destroy_read_struct(&png, nullptr, nullptr);
    throw Error("cannot initialise the PNG decoder");
  }
  ImageRGB img;
  std::vector<png_bytep> rows;
  bool ok = png_decode_into(png, info, &st, &img, &rows);
  png_destroy_read_struct(&png, &info, nullptr);
  if (!ok) {
    if (st.truncated) throw Error("truncated PNG (" + std::to_string(size) + " bytes): " + st.error);
    throw Error(std::string("corrupt PNG data: ") + st.error);
  }
  return img;
}

ImageRGB decode_image(const uint8_t* data, size_t size) {
  if (data == nullptr || size == 0) throw Error("empty image data (0 bytes)");
  if (is_jpeg(data, size)) return decode_jpeg(data, size);
  if (is_png(data, size)) return decode_png(data, size);
  if (size < 8 && ((data[0] == 0xFF && (size < 2 || data[1] == 0xD8)) || data[0] == 0x89))
    throw Error("truncated image: only " + std::to_string(size) + " bytes (" + hex_bytes(data, size, 8) + ")");
  throw Error("unknown image format: not JPEG or PNG (first bytes: " + hex_bytes(data, size, 8) + ")");
}

ImageRGB decode_image(const std::vector<uint8_t>& bytes) { return decode_image(bytes.data(), bytes.size()); }

ImageRGB load_image(const std::string& path) {
  std::vector<uint8_t> bytes = read_file_bytes(path);
  try {
    return decode_image(bytes);
  } catch (const Error& e) {
    throw Error(path + ": " + e.what());
  }
}

static void check_image(const ImageRGB& img, const char* what) {
  if (img.width <= 0 || img.height <= 0 ||
      img.pixels.size() != static_cast<size_t>(img.width) * img.height * 3)
    throw Error(std::string(what) + ": image " + std::to_string(img.width) + "x" + std::to_string(img.height) +
                " has " + std::to_string(img.pixels.size()) + " bytes of pixels, expected width*height*3");
}

std::vector<uint8_t> encode_jpeg(const ImageRGB& img, int quality) {
  check_image(img, "encode_jpeg");
  if (quality < 1 || quality > 100) throw Error("encode_jpeg: quality " + std::to_string(quality) + " not in 1..100");
  tjhandle tj = compressor();
  unsigned char* buf = nullptr;
  unsigned long len = 0;
  if (tjCompress2(tj, img.pixels.data(), img.width, 0, img.height, TJPF_RGB, &buf, &len, TJSAMP_420, quality,
                  0) != 0) {
    std::string msg = tjGetErrorStr2(tj);
    if (buf) tjFree(buf);
    throw Error("encode_jpeg: " + msg);
  }
  std::vector<uint8_t> out(buf, buf + len);
  tjFree(buf);
  return out;
}

std::vector<uint8_t> encode_png(const ImageRGB& img) {
  check_image(img, "encode_png");
  png_image pi;
  std::memset(&pi, 0, sizeof pi);
  pi.version = PNG_IMAGE_VERSION;
  pi.width = static_cast<png_uint_32>(img.width);
  pi.height = static_cast<png_uint_32>(img.height);
  pi.format = PNG_FORMAT_RGB;
  png_alloc_size_t len = 0;
  if (!png_image_write_to_memory(&pi, nullptr, &len, 0, img.pixels.data(), 0, nullptr))
    throw Error(std::string("encode_png: ") + pi.message);
  std::vector<uint8_t> out(len);
  if (!png_image_write_to_memory(&pi, out.data(), &len, 0, img.pixels.data(), 0, nullptr))
    throw Error(std::string("encode_png: ") + pi.message);
  out.resize(len);
  return out;
}

}  // namespace tailor
