// Test support for the serve tests: image codecs and small helpers.
//
// TEMPORARY: tailor::decode_image / encode_png / encode_jpeg are declared in src/catalog/images.h
// and implemented by the catalog stage, which is being written in parallel. Until it lands these
// minimal weak definitions (libpng simplified API, libturbojpeg) let the server tests link and run;
// once the real ones are in tailor_base they win over these (weak symbols) and this block can go.
#pragma once
#include <png.h>
#include <turbojpeg.h>

#include <cstring>
#include <string>
#include <vector>

#include "catalog/images.h"
#include "util/error.h"
#include "util/fs.h"

namespace tailor {

__attribute__((weak)) ImageRGB decode_image(const uint8_t* data, size_t size) {
  if (size == 0) throw Error("image: empty data");
  ImageRGB img;
  if (size >= 8 && std::memcmp(data, "\x89PNG\r\n\x1a\n", 8) == 0) {
    png_image p;
    std::memset(&p, 0, sizeof p);
    p.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_memory(&p, data, size)) throw Error(std::string("PNG: ") + p.message);
    p.format = PNG_FORMAT_RGB;
    img.width = static_cast<int>(p.width);
    img.height = static_cast<int>(p.height);
    img.pixels.resize(static_cast<size_t>(p.width) * p.height * 3);
    if (!png_image_finish_read(&p, nullptr, img.pixels.data(), 0, nullptr))
      throw Error(std::string("PNG: ") + p.message);
    return img;
  }
  if (size >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF) {
    tjhandle h = tjInitDecompress();
    int w = 0, hgt = 0, sub = 0, cs = 0;
    if (tjDecompressHeader3(h, data, static_cast<unsigned long>(size), &w, &hgt, &sub, &cs) != 0) {
      std::string m = tjGetErrorStr2(h);
      tjDestroy(h);
      throw Error("JPEG: " + m);
    }
    img.width = w;
    img.height = hgt;
    img.pixels.resize(static_cast<size_t>(w) * hgt * 3);
    if (tjDecompress2(h, data, static_cast<unsigned long>(size), img.pixels.data(), w, 0, hgt, TJPF_RGB, 0) != 0) {
      std::string m = tjGetErrorStr2(h);
      tjDestroy(h);
      throw Error("JPEG: " + m);
    }
    tjDestroy(h);
    return img;
  }
  throw Error("image: not a JPEG or PNG (first bytes do not match either signature)");
}

__attribute__((weak)) ImageRGB decode_image(const std::vector<uint8_t>& bytes) {
  return decode_image(bytes.data(), bytes.size());
}

__attribute__((weak)) ImageRGB load_image(const std::string& path) {
  std::vector<uint8_t> b = read_file_bytes(path);
  try {
    return decode_image(b);
  } catch (const Error& e) {
    throw Error(path + ": " + e.what());
  }
}

__attribute__((weak)) std::vector<uint8_t> encode_png(const ImageRGB& img) {
  png_image p;
  std::memset(&p, 0, sizeof p);
  p.version = PNG_IMAGE_VERSION;
  p.width = static_cast<png_uint_32>(img.width);
  p.height = static_cast<png_uint_32>(img.height);
  p.format = PNG_FORMAT_RGB;
  png_alloc_size_t n = 0;
  if (!png_image_write_to_memory(&p, nullptr, &n, 0, img.pixels.data(), 0, nullptr)) throw Error("PNG encode failed");
  std::vector<uint8_t> out(n);
  if (!png_image_write_to_memory(&p, out.data(), &n, 0, img.pixels.data(), 0, nullptr)) throw Error("PNG encode failed");
  out.resize(n);
  return out;
}

__attribute__((weak)) std::vector<uint8_t> encode_jpeg(const ImageRGB& img, int quality) {
  tjhandle h = tjInitCompress();
  unsigned char* buf = nullptr;
  unsigned long n = 0;
  int rc = tjCompress2(h, img.pixels.data(), img.width, 0, img.height, TJPF_RGB, &buf, &n, TJSAMP_444, quality, 0);
  if (rc != 0) {
    tjDestroy(h);
    throw Error("JPEG encode failed");
  }
  std::vector<uint8_t> out(buf, buf + n);
  tjFree(buf);
  tjDestroy(h);
  return out;
}

}  // namespace tailor

namespace tailor::test {

inline ImageRGB solid_image(int w, int h, uint8_t r, uint8_t g, uint8_t b) {
  ImageRGB img;
  img.width = w;
  img.height = h;
  img.pixels.resize(static_cast<size_t>(w) * h * 3);
  for (size_t i = 0; i < img.pixels.size(); i += 3) {
    img.pixels[i] = r;
    img.pixels[i + 1] = g;
    img.pixels[i + 2] = b;
  }
  return img;
}

inline std::string as_string(const std::vector<uint8_t>& v) { return std::string(v.begin(), v.end()); }

}  // namespace tailor::test
