#include "testing/tokenizer_corpus.h"

#include <array>

namespace dsv4::fixtures {
namespace {

// Written for this project. Each fragment exercises one script or one kind of text; the
// translations are loose, what matters is the characters.
constexpr std::string_view kFragments[] = {
    // Latin scripts with accents and ligatures.
    "The quick brown fox jumps over the lazy dog. It's a dog's life, isn't it? We'll see; "
    "they'd've known.",
    "Le cœur a ses raisons que la raison ne connaît point. À bientôt, garçon! Où est l'hôtel?",
    "Größere Übungen führen zu schönen Ergebnissen: Straße, Maß, Äpfel und Öl.",
    "¿Qué tal? ¡Muy bien! El niño comió piñas en Año Nuevo.",
    "Tiếng Việt có nhiều dấu: người, được, những, trường học.",
    "Zażółć gęślą jaźń. Příliš žluťoučký kůň úpěl ďábelské ódy. Ærø, Ø, å.",
    "İstanbul'da ılık bir gün; Şişli'de çay içtik. Ğ ğ ı İ.",
    // Greek, Cyrillic, Georgian, Armenian.
    "Η γρήγορη καφέ αλεπού πηδάει πάνω από τον τεμπέλη σκύλο. Ωμέγα ΣΊΣΥΦΟΣ ς.",
    "Съешь же ещё этих мягких французских булок, да выпей чаю. Ёлка, ЙОД.",
    "Україна: ґанок, їжак, європейський. Беларуская мова: ў.",
    "ქართული ენა ძალიან ლამაზია. Հայերեն լեզուն հին է։",
    // Right-to-left scripts.
    "مرحبا بالعالم! كيف حالك اليوم؟ الأرقام: ١٢٣٤٥٦٧٨٩٠ والعربية جميلة.",
    "فارسی: سلام دنیا، حال شما چطور است؟ ۱۲۳۴",
    "שלום עולם! מה שלומך היום? עִבְרִית עם ניקוד.",
    // Indic and Southeast Asian scripts (combining vowel signs and viramas).
    "नमस्ते दुनिया! आप कैसे हैं? हिन्दी में क्षत्रिय, ज्ञान, श्री। १२३",
    "বাংলা ভাষা সুন্দর। আমি ভাত খাই।",
    "தமிழ் ஒரு பழமையான மொழி. வணக்கம்!",
    "ภาษาไทยไม่มีช่องว่างระหว่างคำ สวัสดีครับ ๑๒๓",
    "ລາວ ພາສາ. ខ្មែរ ភាសា។ မြန်မာစာ",
    // CJK.
    "中文没有空格，分词很重要。我爱北京天安门！今天是2024年12月31日。",
    "繁體中文：臺灣、香港。「引號」『雙引號』——破折號……省略號。",
    "日本語のテキスト：ひらがな、カタカナ、漢字。東京は雨です。ｶﾀｶﾅ半角。",
    "한국어 텍스트입니다. 안녕하세요! 서울은 맑음. 한글 자모: ㄱㄴㄷ ㅏㅑ.",
    "Mixed 中英文 text with 日本語 and 한국어 inside English words like数字123abc.",
    // Code.
    "#include <vector>\n\nint main(int argc, char** argv) {\n  std::vector<int> v{1, 2, 3};\n"
    "  for (auto& x : v) x *= 2;\n  return v.size() > 2 ? 0 : 1;\n}\n",
    "def fib(n: int) -> int:\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n    a, b = 0, 1\n"
    "    for _ in range(n):\n        a, b = b, a + b\n    return a\n\nprint(f\"{fib(30)=}\")\n",
    "fn main() {\n    let xs: Vec<u64> = (1..=10).map(|x| x * x).collect();\n"
    "    println!(\"{:?}\", xs);\n}\n",
    "const f = async (url) => {\n\tconst r = await fetch(url);\n\treturn r.ok ? r.json() : null;\n};"
    "\n// TODO: handle errors\nexport default f;\n",
    "package main\n\nimport \"fmt\"\n\nfunc main() {\n\tfmt.Println(\"hello, 世界\")\n}\n",
    "SELECT id, name FROM users WHERE age >= 18 AND name LIKE '%son' ORDER BY id DESC;",
    "#!/bin/sh\nset -eu\nfor f in *.txt; do\n  wc -l \"$f\" | awk '{print $1}' >> out.log\ndone\n",
    "<!DOCTYPE html>\n<html><body><p class=\"x\">Hi &amp; bye</p><br/></body></html>\n",
    "\\begin{equation} E = mc^2 \\quad \\int_0^\\infty e^{-x^2} dx = \\frac{\\sqrt{\\pi}}{2} "
    "\\end{equation}",
    "x+=1;y-=2;z*=3;w/=4;a%=5;b<<=6;c>>=7;d&&=e||f;g?\?=h;i!==j;k===l;m=>n;o::p;q->r;",
    // JSON.
    "{\"name\": \"DeepSeek-V4\", \"vocab_size\": 129280, \"ratio\": 0.125, \"ok\": true, "
    "\"list\": [1, 2.5, -3e10, null], \"nested\": {\"k\": \"v\\n\\t\\\"q\\\"\"}}",
    "[{\"id\":1,\"tags\":[\"a\",\"b\"]},{\"id\":2,\"tags\":[]},{\"emoji\":\"😀\",\"cjk\":\"中文\"}]",
    // Numbers and mixes.
    "Pi is 3.14159265358979323846, e is 2.71828, and 1,234,567.89 is large; 1e-10 is small.",
    "Version v1.2.3-rc.4 (build 20240131), port 8080, IP 192.168.0.1, 0x7FFFFFFF, 0b1010, 1_000.",
    "Dates: 2024-01-31, 31/12/1999, 12:34:56.789Z; phone +1 (555) 123-4567; ISBN 978-3-16.",
    "Fullwidth １２３４５ and superscripts x² y³, fractions ½ ¾, roman Ⅻ, circled ①②③.",
    // Punctuation and symbols.
    "Wait... what?! \"Quoted\" 'single' `tick` (paren) [bracket] {brace} <angle> @user #tag $5 "
    "%20 ^hat &amp *star ~tilde |pipe \\back /slash",
    "Math: ∑ᵢ xᵢ² ≤ ∫ f(x) dx ≈ √2 ± ∞; ∀x ∈ ℝ, ∃y: x ≠ y → ¬P ∧ Q ∨ R. °C €100 £5 ¥7 ₹9.",
    "!!!\n\n???\r\n...\n---\n***\n___\n###\n",
    "Combining: e\xCC\x81 a\xCC\x8A n\xCC\x83 o\xCC\x88\xCC\x81 and lone \xCC\x81 mark, "
    "Z̤̈ͅa̐l̛͕g̗o.",
    // Emoji.
    "Emoji: 😀😃😄 👍👍🏻👍🏽👍🏿 ❤️ ✨ 🎉 🔥",
    "Families: 👨‍👩‍👧‍👦 👩‍❤️‍👨 🧑🏾‍💻 🏳️‍🌈 🏴‍☠️ and flags 🇺🇸 🇯🇵 🇩🇪 🇧🇷 🇪🇺, "
    "keycaps 1️⃣ #️⃣, © ®️ ™.",
    // Whitespace.
    "  leading spaces, trailing spaces   \n\n\tTabbed\tline\t\n    four-space indent\n\r\n\r\n",
    "word\u00a0nbsp\u2002en\u2003em\u2009thin\u3000ideographic\u200bzero-width\u2028line\u2029para"
    "\u0085nel\u000bvt\u000cff",
    "\t\t\t\n \n \n\n\n    \t  \r\n  \r\r\n\n",
    // DeepSeek control-token spellings inside text.
    "<｜begin▁of▁sentence｜>You are helpful.<｜User｜>Hi there<｜Assistant｜></think>Hello!"
    "<｜end▁of▁sentence｜>",
    "<｜User｜><｜User｜> <｜Assistant｜>\n<｜Assistant｜>x<|EOT|>y<｜tool▁calls▁begin｜>"
    "<｜tool▁call▁begin｜>function<｜tool▁sep｜>f\n<｜tool▁call▁end｜><｜tool▁calls▁end｜>",
    "Not tokens: <｜User <｜User｜ ｜User｜> <|User|> <｜user｜> <｜fim▁hole｜x "
    "<｜place▁holder▁no▁5｜>",
    "<think>reasoning</think> and <dsml:invoke name=\"f\"> </dsml:invoke> ｜DSML｜ "
    "<｜latest_reminder｜>",
    // Odd characters.
    "Control chars: \x01\x02\x1f\x7f and private use \uE000\uF8FF, BOM \uFEFF, "
    "replacement \uFFFD, max \U0010FFFD, astral 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝟙𝟚𝟛 𓀀 🀄.",
    "ALL CAPS SHOUTING, camelCaseWords, snake_case_words, kebab-case-words, PascalCase, "
    "HTTPServerError, iPhone, McDonald's, O'Neil, a.b.c, e.g., i.e.",
    "URLs: https://example.com/path?q=1&r=%E4%B8%AD#frag mailto:someone@example.org "
    "C:\\Users\\name\\file.txt ~/dir/.hidden",
};

// Emoji and other grapheme clusters the cases repeat.
constexpr std::string_view kEmoji[] = {
    "😀", "👍🏽", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇺🇸", "🇯🇵🇰🇷", "1️⃣", "❤️", "🧑🏿‍🚀", "🫠", "©", "𝔘",
};

// Whitespace characters whose runs the cases build.
constexpr std::string_view kSpaces[] = {
    " ", "\t", "\n", "\r\n", "\r", "\u00a0", "\u3000", "\u2003", " \n", "\t\n", "\n ",
};

// A small fixed-seed generator (SplitMix64) so the corpus never depends on the library's
// random engines.
class Mixer {
 public:
  explicit Mixer(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  size_t Below(size_t n) { return static_cast<size_t>(Next() % n); }

 private:
  uint64_t state_;
};

std::string Digits(size_t length, size_t offset) {
  std::string s;
  for (size_t i = 0; i < length; ++i) s += static_cast<char>('0' + (i * 7 + offset) % 10);
  return s;
}

}  // namespace

std::vector<std::string_view> TokenizerCorpusFragments() {
  return {std::begin(kFragments), std::end(kFragments)};
}

std::vector<std::string> TokenizerCorpusCases() {
  std::vector<std::string> cases(std::begin(kFragments), std::end(kFragments));
  for (size_t n = 1; n <= 30; ++n) {
    const std::string d = Digits(n, n);
    cases.push_back(d);
    cases.push_back(" " + d);
    cases.push_back("abc" + d + "xyz");
    cases.push_back("x=" + d + ";");
    cases.push_back(d + "." + Digits(n % 7 + 1, 3) + "%");
    cases.push_back("中" + d + "文");
    cases.push_back("-" + d + ",\n");
  }
  cases.push_back("1 12 123 1234 12345 123456 1234567 12345678 123456789 1234567890");
  cases.push_back("١٢٣٤٥٦٧ ۱۲۳۴ १२३४ ১২৩ ๑๒๓๔ １２３４５６７ ²³⁴ ½¼ Ⅻ ①②");
  for (std::string_view space : kSpaces) {
    for (size_t n = 1; n <= 12; ++n) {
      std::string run;
      for (size_t i = 0; i < n; ++i) run += space;
      cases.push_back(run);
      cases.push_back("a" + run + "b");
      cases.push_back("word" + run + "?" + run + "中");
    }
  }
  for (std::string_view emoji : kEmoji) {
    cases.emplace_back(emoji);
    const std::string e(emoji);
    cases.push_back(e + e + e);
    std::string around = "a";
    around.append(e).append(" b").append(e).append("中");
    cases.push_back(std::move(around));
  }
  return cases;
}

std::vector<std::string> TokenizerCorpusMixes(size_t count, size_t max_parts, uint64_t seed) {
  const std::vector<std::string> cases = TokenizerCorpusCases();
  Mixer mix(seed);
  std::vector<std::string> out;
  out.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    const size_t parts = 1 + mix.Below(max_parts);
    std::string s;
    for (size_t p = 0; p < parts; ++p) {
      const std::string& c = cases[mix.Below(cases.size())];
      // A random cut on a character boundary, so pieces meet mid-word and mid-number.
      size_t begin = mix.Below(c.size() + 1);
      while (begin < c.size() && (static_cast<uint8_t>(c[begin]) & 0xC0) == 0x80) ++begin;
      s += std::string_view(c).substr(begin);
    }
    out.push_back(std::move(s));
  }
  return out;
}

std::string TokenizerCorpusText(size_t bytes, uint64_t seed) {
  const std::vector<std::string> cases = TokenizerCorpusCases();
  Mixer mix(seed);
  std::string text;
  text.reserve(bytes + 4096);
  while (text.size() < bytes) {
    // Mostly whole fragments (prose and code dominate real text), some short cases.
    const size_t pick = mix.Below(4) == 0 ? mix.Below(cases.size()) : mix.Below(std::size(kFragments));
    text += cases[pick];
    text += mix.Below(3) == 0 ? "\n\n" : "\n";
  }
  return text;
}

}  // namespace dsv4::fixtures
