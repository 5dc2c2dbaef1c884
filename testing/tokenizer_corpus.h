// A multilingual text corpus for checking a byte-level BPE tokenizer against another
// implementation and for measuring its speed: prose in many scripts (Latin with accents,
// Greek, Cyrillic, Arabic, Hebrew, Devanagari, Bengali, Tamil, Thai, Georgian, Armenian,
// Chinese, Japanese, Korean), code in several languages, JSON, numbers of every length from 1
// to 30 digits and mixed with other characters, whitespace runs (spaces, tabs, newlines,
// \r\n, Unicode spaces), emoji (skin tones, ZWJ sequences, flags, keycaps), combining marks,
// and DeepSeek's control-token spellings inside plain text.
//
// Deterministic: the same arguments always give the same strings (a fixed-seed generator
// mixes the fragments). Every string is valid UTF-8. Pure functions; thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace dsv4::fixtures {

// The hand-written fragments, one concern each (a language, a code sample, a whitespace
// pattern, ...). Views of static storage.
std::vector<std::string_view> TokenizerCorpusFragments();

// Strings that test one thing each: every fragment; numbers of every length 1..30 (alone,
// after a space, after letters, with separators); runs of each whitespace character of
// lengths 1..12 alone and between words; each emoji alone and repeated.
std::vector<std::string> TokenizerCorpusCases();

// `count` strings of 1..`max_parts` pieces drawn from the cases above and glued together
// without separators (so pieces meet at every kind of boundary), seeded by `seed`.
std::vector<std::string> TokenizerCorpusMixes(size_t count, size_t max_parts, uint64_t seed);

// About `bytes` bytes (at least that many; the last line completes) of mixed text: lines
// drawn from the fragments and cases, seeded by `seed`. For long-input tests and speed.
std::string TokenizerCorpusText(size_t bytes, uint64_t seed);

}  // namespace dsv4::fixtures
