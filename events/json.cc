#include "events/json.h"

#include <flatbuffers/idl.h>
#include <fmt/format.h>

#include <cassert>

#include "events/qudao_schema.h"

namespace qudao {
namespace {

// A parser that has read the schema; one per thread because flatbuffers::Parser is not
// thread-safe. indent_step < 0 prints JSON on one line.
flatbuffers::Parser& parser(JsonStyle style) {
  auto make = [](int indent) {
    flatbuffers::IDLOptions opts;
    opts.strict_json = true;
    opts.output_default_scalars_in_json = true;
    opts.natural_utf8 = true;
    opts.indent_step = indent;
    auto p = std::make_unique<flatbuffers::Parser>(opts);
    const bool ok = p->Parse(kSchemaText);
    assert(ok && "the embedded schema parses");
    (void)ok;
    return p;
  };
  thread_local std::unique_ptr<flatbuffers::Parser> compact = make(-1);
  thread_local std::unique_ptr<flatbuffers::Parser> pretty = make(2);
  return style == JsonStyle::pretty ? *pretty : *compact;
}

// flatbuffers reports "error: [<file>:]<line>: <col>: error: <what>"; keep "line L, column C: what".
std::string tidy_parser_error(const std::string& e) {
  std::string msg = e;
  while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
  const std::string tag = "error: ";
  if (msg.rfind(tag, 0) == 0) msg = msg.substr(tag.size());
  unsigned line = 0, col = 0;
  char what[512] = {0};
  if (!msg.empty() && msg[0] == ':') msg.erase(0, 1);  // an empty file name
  if (std::sscanf(msg.c_str(), "%u: %u: error: %511[^\n]", &line, &col, what) == 3) {
    return fmt::format("line {}, column {}: {}", line, col, what);
  }
  return msg;
}

}  // namespace

std::variant<std::string, Rejection> to_json(std::span<const std::uint8_t> bytes, JsonStyle style) {
  if (bytes.size() > kEventBytesMax || bytes.size() < flatbuffers::kFileIdentifierLength + sizeof(flatbuffers::uoffset_t) ||
      !flatbuffers::BufferHasIdentifier(bytes.data(), fb::EnvelopeIdentifier())) {
    return Rejection{RejectReason::malformed, "", "not a qudao event: missing file identifier \"QDAO\" or too large"};
  }
  flatbuffers::Verifier verifier(bytes.data(), bytes.size(), kVerifierDepthMax, kVerifierTablesMax);
  if (!fb::VerifyEnvelopeBuffer(verifier)) {
    return Rejection{RejectReason::malformed, "", "FlatBuffers verification failed (truncated or corrupt bytes)"};
  }
  if (fb::GetEnvelope(bytes.data())->payload_type() > fb::Payload::MAX) {
    return Rejection{RejectReason::unsupported_schema_version, "payload",
                     fmt::format("unknown event type {}", static_cast<int>(fb::GetEnvelope(bytes.data())->payload_type()))};
  }
  std::string text;
  if (!flatbuffers::GenerateText(parser(style), bytes.data(), &text)) {
    return Rejection{RejectReason::malformed, "", "cannot print the event as JSON"};
  }
  while (!text.empty() && text.back() == '\n') text.pop_back();
  return text;
}

std::variant<std::vector<std::uint8_t>, Rejection> from_json(std::string_view json) {
  if (json.size() > kEventBytesMax) {
    return Rejection{RejectReason::malformed, "",
                     fmt::format("JSON document is {} bytes, the limit is {}", json.size(), kEventBytesMax)};
  }
  if (const auto nul = json.find('\0'); nul != std::string_view::npos) {
    return Rejection{RejectReason::malformed, "", fmt::format("invalid JSON event: a NUL byte at offset {}", nul)};
  }
  flatbuffers::Parser& p = parser(JsonStyle::compact);
  const std::string doc(json);  // the parser needs a NUL-terminated string
  if (!p.ParseJson(doc.c_str())) {
    Rejection r{RejectReason::malformed, "", fmt::format("invalid JSON event: {}", tidy_parser_error(p.error_))};
    // FlatBuffers 2.0.8's ParseJson leaves the fields a failed parse had read on the parser's
    // private field stack, so a reused parser grows with every rejected document; only Parse()
    // clears that stack. An empty document fails right after the clear and defines nothing.
    (void)p.Parse("");
    return r;
  }
  std::vector<std::uint8_t> bytes(p.builder_.GetBufferPointer(), p.builder_.GetBufferPointer() + p.builder_.GetSize());
  Decoded d = decode(bytes);
  if (auto* r = std::get_if<Rejection>(&d)) return std::move(*r);
  return bytes;
}

}  // namespace qudao
