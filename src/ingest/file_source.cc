#include "ingest/file_source.h"

#include "common/memory.h"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>

#include <simdjson.h>

#include "ingest/csv_parser.h"

namespace sibyl {
namespace {

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// Reads a file (or stdin), gunzipping gzip content (detected by its magic bytes, so a
// misnamed file still works). Plain files are read with read(2) straight into the
// caller's buffer, saving zlib's extra copy.
class InputStream {
 public:
  static Result<std::unique_ptr<InputStream>> Open(const std::string& path) {
    int fd = path == "-" ? dup(STDIN_FILENO) : open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return IoError("cannot open {}: {}", path, std::strerror(errno));
    auto stream = std::unique_ptr<InputStream>(new InputStream(path, fd));
    if (path == "-") {
      // A pipe cannot be rewound after peeking: let zlib sniff it (it passes plain
      // bytes through).
      stream->gz_ = gzdopen(fd, "rb");
      if (stream->gz_ == nullptr) return IoError("cannot read stdin");
      stream->fd_ = -1;
      gzbuffer(stream->gz_, 1 << 20);
      return stream;
    }
    // Peek at the magic; what was read is replayed by Read.
    while (stream->peeked_.size() < 2) {
      char c[2];
      ssize_t got = read(fd, c, 2 - stream->peeked_.size());
      if (got < 0 && errno == EINTR) continue;
      if (got < 0) return IoError("reading {}: {}", path, std::strerror(errno));
      if (got == 0) break;
      stream->peeked_.append(c, static_cast<size_t>(got));
    }
    if (stream->peeked_ == "\x1f\x8b") {
      // zlib reads from the fd's position: rewind so it sees the magic too.
      if (lseek(fd, 0, SEEK_SET) != 0) {
        return IoError("cannot rewind {}: {}", path, std::strerror(errno));
      }
      stream->peeked_.clear();
      stream->gz_ = gzdopen(fd, "rb");
      if (stream->gz_ == nullptr) return IoError("cannot read {} as gzip", path);
      stream->fd_ = -1;  // owned by zlib now
      gzbuffer(stream->gz_, 1 << 20);
    }
    return stream;
  }
  ~InputStream() {
    if (gz_ != nullptr) gzclose(gz_);
    if (fd_ >= 0) close(fd_);
  }

  // Appends up to `n` bytes to `out`; returns how many (0 at the end).
  Result<size_t> Read(std::string& out, size_t n) {
    size_t old = out.size();
    out.resize(old + n);
    Result<size_t> got = ReadInto(out.data() + old, n);
    out.resize(old + (got.ok() ? *got : 0));
    return got;
  }

  // Reads up to `n` bytes into `dest`; returns how many (0 at the end).
  Result<size_t> ReadInto(char* dest, size_t n) {
    size_t total = std::min(n, peeked_.size());
    std::memcpy(dest, peeked_.data(), total);
    peeked_.erase(0, total);
    while (total < n) {
      unsigned want = static_cast<unsigned>(std::min<size_t>(n - total, 1u << 30));
      long got;
      if (gz_ != nullptr) {
        got = gzread(gz_, dest + total, want);
        if (got < 0) {
          int code;
          const char* message = gzerror(gz_, &code);
          return IoError("reading {}: {}", path_, message);
        }
      } else {
        got = read(fd_, dest + total, want);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) return IoError("reading {}: {}", path_, std::strerror(errno));
      }
      if (got == 0) break;
      total += static_cast<size_t>(got);
    }
    return total;
  }

 private:
  InputStream(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  std::string path_;
  int fd_;
  gzFile gz_ = nullptr;
  std::string peeked_;
};

// Whether the first line holds a complete JSON value (else the file is one body that
// spans lines).
bool FirstLineIsCompleteJson(std::string_view head) {
  size_t newline = head.find('\n');
  std::string_view line = head.substr(0, newline);
  simdjson::dom::parser parser;
  simdjson::padded_string padded(line);
  simdjson::dom::element element;
  return parser.parse(padded).get(element) == simdjson::SUCCESS;
}

// What parsing a chunk found besides its events and errors.
struct ChunkCounts {
  uint64_t skipped = 0;  // rows skipped on purpose (CSV rows without an id)
  uint64_t newlines = 0;  // newline characters in the chunk, if the parser counted them
  bool counted_newlines = false;
};

// Parses the chunks of one file; one instance per worker thread.
class ChunkParser {
 public:
  virtual ~ChunkParser() = default;
  virtual ChunkCounts Parse(std::string_view text, uint64_t first_line, EventBatch& batch,
                            std::vector<IngestError>& errors) = 0;
};

class JsonLinesChunkParser final : public ChunkParser {
 public:
  explicit JsonLinesChunkParser(const JsonParseOptions& options) : parser_(options) {}
  ChunkCounts Parse(std::string_view text, uint64_t first_line, EventBatch& batch,
                    std::vector<IngestError>& errors) override {
    // The parser walks every line anyway: its count saves a second pass over the chunk.
    return {0, parser_.ParseLines(text, 0, first_line, batch, errors), true};
  }

 private:
  JsonEventParser parser_;
};

class CsvChunkParser final : public ChunkParser {
 public:
  explicit CsvChunkParser(std::shared_ptr<const CsvParser> parser) : parser_(std::move(parser)) {}
  ChunkCounts Parse(std::string_view text, uint64_t first_line, EventBatch& batch,
                    std::vector<IngestError>& errors) override {
    return {parser_->ParseRows(text, 0, first_line, batch, errors), 0, false};
  }

 private:
  std::shared_ptr<const CsvParser> parser_;
};

// memchr hops from line to line with vector instructions; std::count looks at every byte
// (it was a tenth of the ingest's CPU time).
uint64_t CountNewlines(std::string_view text) {
  uint64_t lines = 0;
  const char* p = text.data();
  const char* end = p + text.size();
  while (p < end) {
    const void* hit = std::memchr(p, '\n', static_cast<size_t>(end - p));
    if (hit == nullptr) break;
    ++lines;
    p = static_cast<const char*>(hit) + 1;
  }
  return lines;
}

// Where the complete units of `text` end: after the last newline (JSON lines) or the
// last newline outside quotes (CSV).
using SplitFunction = size_t (*)(std::string_view text);

size_t SplitAfterLastNewline(std::string_view text) {
  size_t at = text.rfind('\n');
  return at == std::string_view::npos ? 0 : at + 1;
}

// A three-stage pipeline: one thread reads chunks, `threads` workers parse them, and the
// calling thread hands results to the sink in file order. At most `max_in_flight`
// chunks exist at once, which bounds memory.
class Pipeline {
 public:
  Pipeline(std::string name, int threads, size_t chunk_bytes,
           std::function<std::unique_ptr<ChunkParser>()> make_parser, SplitFunction split,
           std::function<void(EventBatch&)> prepare, bool lines_by_reader = false)
      : name_(std::move(name)),
        threads_(threads),
        chunk_bytes_(chunk_bytes),
        make_parser_(std::move(make_parser)),
        split_(split),
        prepare_(std::move(prepare)),
        max_in_flight_(static_cast<size_t>(threads) * 2 + 2),
        lines_by_reader_(lines_by_reader) {}

  // `carry` holds bytes already read (the header probe); `first_line` is its first line.
  Status Run(InputStream& input, std::string carry, uint64_t first_line, const BatchSink& sink,
             FileParseStats& stats) {
    next_line_ = first_line;
    reader_line_ = first_line;
    std::thread reader([&] { ReadAll(input, std::move(carry)); });
    std::vector<std::thread> workers;
    for (int i = 0; i < threads_; ++i) workers.emplace_back([this] { Work(); });
    Status status = Deliver(sink, stats);
    {
      std::lock_guard lock(mu_);
      if (!status.ok()) cancelled_ = true;
    }
    cv_.notify_all();
    reader.join();
    for (auto& w : workers) w.join();
    if (!status.ok()) return status;
    stats.bytes = bytes_;
    return read_status_;
  }

 private:
  struct Job {
    std::unique_ptr<char[]> text;  // text_size bytes, then room for kInputPadding
    size_t text_size = 0;
    uint64_t first_line = 0;  // when lines_by_reader_
    uint64_t lines = 0;       // newlines in the text, counted by the worker otherwise
    EventBatch batch;
    std::vector<IngestError> errors;
    uint64_t skipped = 0;
    bool done = false;
  };

  void ReadAll(InputStream& input, std::string carry) {
    bool eof = false;
    while (!eof) {
      // Raw buffers, not std::string: a string would be zero-filled before the read, and
      // reallocated (copied) to add the parser's padding afterwards.
      size_t capacity = std::max(chunk_bytes_, carry.size());
      std::unique_ptr<char[]> buffer(new char[capacity + kInputPadding]);
      size_t size = carry.size();
      std::memcpy(buffer.get(), carry.data(), size);
      carry.clear();
      Status status;
      while (!eof && size < capacity) {
        Result<size_t> got = input.ReadInto(buffer.get() + size, capacity - size);
        if (!got.ok()) {
          status = got.status();
          break;
        }
        size += *got;
        eof = *got == 0;
      }
      if (!status.ok()) {
        Finish(status);
        return;
      }
      std::string_view text(buffer.get(), size);
      size_t cut = eof ? size : split_(text);
      if (cut == 0 && !eof) {
        // One unit longer than a chunk: keep reading until it ends.
        carry.assign(text);
        chunk_bytes_ *= 2;
        continue;
      }
      carry.assign(text.substr(cut));
      if (cut > 0) {
        bytes_ += cut;
        if (!Enqueue(std::move(buffer), cut)) return;
      }
    }
    Finish(Status::Ok());
  }

  // Hands a chunk to the workers; false if parsing was cancelled.
  bool Enqueue(std::unique_ptr<char[]> buffer, size_t size) {
    auto job = std::make_unique<Job>();
    if (lines_by_reader_) {
      job->first_line = reader_line_;
      reader_line_ += CountNewlines(std::string_view(buffer.get(), size));
    }
    job->text = std::move(buffer);
    job->text_size = size;
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return cancelled_ || order_.size() < max_in_flight_; });
    if (cancelled_) return false;
    todo_.push_back(job.get());
    order_.push_back(std::move(job));
    cv_.notify_all();
    return true;
  }

  void Finish(Status status) {
    std::lock_guard lock(mu_);
    read_status_ = std::move(status);
    read_done_ = true;
    cv_.notify_all();
  }

  // Items per input byte in a worker's previous chunk (0: none seen yet).
  struct Density {
    double events = 0, properties = 0, updates = 0;
    static size_t Expect(double seen, double first_guess, size_t bytes) {
      const double per_byte = seen > 0 ? seen * 1.25 : first_guess;
      return static_cast<size_t>(per_byte * static_cast<double>(bytes)) + 64;
    }
    void Learn(const EventBatch& batch, size_t bytes) {
      if (bytes < (size_t{1} << 16)) return;  // too small a sample
      const double b = static_cast<double>(bytes);
      events = static_cast<double>(batch.events.size()) / b;
      properties = static_cast<double>(batch.properties.size()) / b;
      updates = static_cast<double>(batch.user_updates.size()) / b;
    }
  };

  void Work() {
    std::unique_ptr<ChunkParser> parser = make_parser_();
    Density density;
    while (true) {
      Job* job;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] { return cancelled_ || !todo_.empty() || read_done_; });
        if (cancelled_ || todo_.empty()) return;
        job = todo_.front();
        todo_.pop_front();
        if (!spare_batches_.empty()) {
          job->batch = std::move(spare_batches_.back());
          spare_batches_.pop_back();
        }
      }
      job->batch.files.push_back(name_);
      // Reserve so the vectors rarely grow (and copy) while parsing, and prefault what is
      // reserved: first touches of fresh pages are very slow on VMs. The first chunk is
      // sized for dense input (~350-byte events with many properties); later ones for
      // what this thread's previous chunk held, with a margin, since a reservation for
      // the densest input prefaulted about twice the memory typical chunks use.
      // A batch the sink has finished with comes back with its memory (Deliver): most
      // chunks need no fresh memory at all. Estimates carry a 25% margin and vary from
      // chunk to chunk, so a recycled vector within that margin is kept (a rare chunk
      // that needs more grows it), and a vector that must grow gets headroom: growing
      // by the few percent the estimate moved reallocated most batches, fresh.
      auto reserve = [](auto& v, size_t n) {
        if (v.capacity() * 5 >= n * 4) return;
        v.reserve(n + n / 4);
        Prefault(v.data(), v.capacity() * sizeof(v[0]));
      };
      reserve(job->batch.events, density.Expect(density.events, 1.0 / 256, job->text_size));
      reserve(job->batch.properties, density.Expect(density.properties, 1.0 / 64, job->text_size));
      reserve(job->batch.user_updates, density.Expect(density.updates, 1.0 / 32, job->text_size));
      std::string_view text = AdoptInput(job->batch, std::move(job->text), job->text_size);
      // Lines are numbered from 1 within the chunk and shifted in Deliver, which knows
      // where the chunk starts, so the reader thread only reads (and the count runs over
      // text this thread has just parsed). CSV insert_id templates use the row number
      // itself: there the reader counts.
      ChunkCounts counts = parser->Parse(text, lines_by_reader_ ? job->first_line : 1, job->batch, job->errors);
      job->skipped = counts.skipped;
      density.Learn(job->batch, job->text_size);
      if (!lines_by_reader_) job->lines = counts.counted_newlines ? counts.newlines : CountNewlines(text);
      if (prepare_) prepare_(job->batch);
      {
        std::lock_guard lock(mu_);
        job->done = true;
      }
      cv_.notify_all();
    }
  }

  Status Deliver(const BatchSink& sink, FileParseStats& stats) {
    while (true) {
      std::unique_ptr<Job> job;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] {
          return (!order_.empty() && order_.front()->done) || (read_done_ && order_.empty());
        });
        if (order_.empty()) return Status::Ok();
        job = std::move(order_.front());
        order_.pop_front();
      }
      cv_.notify_all();
      if (uint64_t shift = next_line_ - 1; shift != 0 && !lines_by_reader_) {
        for (ParsedEvent& e : job->batch.events)
          if (e.position.line > 0) e.position.line += shift;
        for (IngestError& e : job->errors)
          if (e.position.line > 0) e.position.line += shift;
      }
      next_line_ += job->lines;
      stats.events += job->batch.events.size();
      stats.errors += job->errors.size();
      stats.skipped_rows += job->skipped;
      RETURN_IF_ERROR(sink(std::move(job->batch), std::move(job->errors)));
      // The sink may have kept the batch (moved from, it is empty); otherwise its memory
      // parses a later chunk. Cleared here, so the input it held is freed now.
      job->batch.Clear();
      std::lock_guard lock(mu_);
      if (spare_batches_.size() < static_cast<size_t>(threads_)) spare_batches_.push_back(std::move(job->batch));
    }
  }

  const std::string name_;
  const int threads_;
  size_t chunk_bytes_;
  std::function<std::unique_ptr<ChunkParser>()> make_parser_;
  SplitFunction split_;
  std::function<void(EventBatch&)> prepare_;
  const size_t max_in_flight_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job*> todo_;                  // read, not yet parsed
  std::deque<std::unique_ptr<Job>> order_; // every chunk in flight, in file order
  std::vector<EventBatch> spare_batches_;  // delivered, cleared, for workers to refill
  uint64_t bytes_ = 0;  // written by the reader, read after it is joined
  uint64_t next_line_ = 1;    // Deliver's: the line the next chunk starts at
  uint64_t reader_line_ = 1;  // the reader's, when lines_by_reader_
  bool lines_by_reader_ = false;
  bool read_done_ = false;
  bool cancelled_ = false;
  Status read_status_;
};

Status ParseBodyFile(const std::string& name, InputStream& input, std::string text,
                     const FileParseOptions& options, const BatchSink& sink,
                     FileParseStats& stats) {
  while (true) {
    ASSIGN_OR_RETURN(size_t got, input.Read(text, 16 << 20));
    if (got == 0) break;
  }
  stats.bytes = text.size();
  EventBatch batch;
  batch.files.push_back(name);
  std::vector<IngestError> errors;
  std::string_view view = AdoptInput(batch, std::move(text));
  JsonEventParser parser(options.json);
  Status status = parser.ParseBody(view, options.body_kind, batch, errors, 0);
  if (!status.ok()) {
    // Not one body after all (say, NDJSON whose first line is broken): report by line.
    std::vector<IngestError> line_errors;
    EventBatch line_batch;
    line_batch.files.push_back(name);
    parser.ParseLines(view, 0, 1, line_batch, line_errors);
    if (line_batch.events.empty()) return status.WithContext(name);
    line_batch.Append(std::move(batch));  // keeps the buffer the views point into alive
    stats.events = line_batch.events.size();
    stats.errors = line_errors.size();
    return sink(std::move(line_batch), std::move(line_errors));
  }
  stats.events = batch.events.size();
  stats.errors = errors.size();
  return sink(std::move(batch), std::move(errors));
}

}  // namespace

std::string_view FileFormatName(FileFormat format) {
  switch (format) {
    case FileFormat::kAuto: return "auto";
    case FileFormat::kJsonLines: return "json-lines";
    case FileFormat::kJsonBody: return "json-body";
    case FileFormat::kCsv: return "csv";
  }
  return "?";
}

FileFormat DetectFormat(const std::string& path, std::string_view head) {
  if (EndsWith(path, ".csv") || EndsWith(path, ".csv.gz")) return FileFormat::kCsv;
  size_t start = head.find_first_not_of(" \t\r\n");
  if (start == std::string_view::npos) return FileFormat::kJsonLines;
  if (head[start] == '[') return FileFormat::kJsonBody;
  if (!FirstLineIsCompleteJson(head.substr(start))) return FileFormat::kJsonBody;
  return FileFormat::kJsonLines;
}

Result<FileParseStats> ParseFile(const std::string& path, const FileParseOptions& options,
                                 const BatchSink& sink) {
  FileParseStats stats;
  const std::string name = path == "-" ? "<stdin>" : path;
  ASSIGN_OR_RETURN(std::unique_ptr<InputStream> input, InputStream::Open(path));
  std::string head;
  // Enough to see the first line of any reasonable file (and a CSV header).
  ASSIGN_OR_RETURN(size_t got, input->Read(head, 64 << 10));
  (void)got;
  FileFormat format = options.format;
  if (format == FileFormat::kAuto) format = DetectFormat(path, head);
  stats.format = format;
  int threads = options.threads > 0 ? options.threads
                                    : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  size_t chunk_bytes = std::max<size_t>(options.chunk_bytes, 1);

  switch (format) {
    case FileFormat::kJsonBody:
      RETURN_IF_ERROR(ParseBodyFile(name, *input, std::move(head), options, sink, stats));
      return stats;
    case FileFormat::kCsv: {
      if (options.csv_mapping == nullptr) {
        return InvalidArgument("{}: a CSV file needs a column mapping (--mapping FILE)", name);
      }
      // The header is the first record; read on until it is complete.
      size_t header_end;
      while ((header_end = CsvFirstRecordEnd(head)) == std::string::npos) {
        ASSIGN_OR_RETURN(size_t more, input->Read(head, 64 << 10));
        if (more == 0) {
          header_end = head.size();
          break;
        }
      }
      // The time bounds are the receiver's (options.json.validation), whatever the format.
      std::shared_ptr<const CsvMapping> mapping = options.csv_mapping;
      const ValidationOptions& bounds = options.json.validation;
      if (mapping->validation.min_time_ms != bounds.min_time_ms ||
          mapping->validation.max_time_ms != bounds.max_time_ms) {
        auto copy = std::make_shared<CsvMapping>(*mapping);
        copy->validation.min_time_ms = bounds.min_time_ms;
        copy->validation.max_time_ms = bounds.max_time_ms;
        mapping = std::move(copy);
      }
      ASSIGN_OR_RETURN(std::shared_ptr<const CsvParser> parser,
                       CsvParser::Create(mapping, head.substr(0, header_end)));
      uint64_t header_lines = static_cast<uint64_t>(
          std::count(head.begin(), head.begin() + static_cast<ptrdiff_t>(header_end), '\n'));
      Pipeline pipeline(
          name, threads, chunk_bytes,
          [parser] { return std::make_unique<CsvChunkParser>(parser); }, &CsvCompleteRecordsEnd,
          options.prepare, /*lines_by_reader=*/true);
      RETURN_IF_ERROR(pipeline.Run(*input, head.substr(header_end), 1 + header_lines, sink, stats));
      stats.bytes += header_end;
      return stats;
    }
    case FileFormat::kAuto:
    case FileFormat::kJsonLines: {
      JsonParseOptions json = options.json;
      Pipeline pipeline(
          name, threads, chunk_bytes,
          [json] { return std::make_unique<JsonLinesChunkParser>(json); }, &SplitAfterLastNewline,
          options.prepare);
      RETURN_IF_ERROR(pipeline.Run(*input, std::move(head), 1, sink, stats));
      return stats;
    }
  }
  return Status(Internal("unknown file format"));
}

}  // namespace sibyl
