// The MQL runtime, as much of it as SignalBridge's include files use, for g++ on Linux.
//
// The shared logic under ea/include is written in the part of MQL that is also C++; after
// ea/shim/mql2cpp.py has rewritten its dynamic arrays (T name[] -> MqlArray<T> name), g++
// compiles it against this header. Strings are std::string (bytes; the EA only sends
// ASCII), files live in $SB_FILES_DIR, WebRequest speaks plain HTTP/1.1 over a real
// socket, and the trade functions are in broker_sim.hpp (a small simulated broker).
//
// Test hooks (environment variables, all optional):
//   SB_FILES_DIR         the terminal's Files folder (default ".")
//   SB_ALLOWED_URLS      space-separated URL prefixes allowed for WebRequest; unset = all
//   SB_CLOCK_SKEW        seconds added to TimeGMT() (a terminal whose clock is wrong)
//   SB_CRASH_AFTER_POST  a path; the process exits once the server has answered a POST
//                        to it, before the EA sees the answer
#pragma once

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <map>
#include <sstream>
#include <string>
#include <vector>

typedef unsigned char uchar;
typedef unsigned short ushort;
typedef unsigned int uint;
typedef unsigned long ulong;
typedef long datetime;
typedef std::string string;

// ------------------------------------------------------------------ constants

#define INIT_SUCCEEDED 0
#define INIT_FAILED 1
#define INIT_PARAMETERS_INCORRECT 32767
#define WHOLE_ARRAY -1
#define CP_ACP 0
#define CP_UTF8 65001
#define INVALID_HANDLE -1
#define FILE_READ 1
#define FILE_WRITE 2
#define FILE_BIN 4
#define FILE_CSV 8
#define FILE_TXT 16
#define FILE_ANSI 32
#define FILE_SHARE_READ 128
#define FILE_SHARE_WRITE 256
#define FILE_REWRITE 1
#define FILE_COMMON 4096
#define REASON_PROGRAM 0
#define REASON_REMOVE 1
#define REASON_RECOMPILE 2
#define REASON_CHARTCHANGE 3
#define REASON_PARAMETERS 5
#define ERR_SUCCESS 0
#define ERR_SHIM_FILE 5004
#define ERR_SHIM_WEBREQUEST_FAILED 5203

#ifdef __MQL5__
#define ERR_SHIM_URL_NOT_ALLOWED 4014
#else
#define ERR_SHIM_URL_NOT_ALLOWED 4060
#endif

// ------------------------------------------------------------------ arrays

template <typename T>
class MqlArray {
   public:
    std::vector<T> items;
    T &operator[](int index) {
        check(index);
        return items[(size_t)index];
    }
    const T &operator[](int index) const {
        check(index);
        return items[(size_t)index];
    }

   private:
    void check(int index) const {
        if (index < 0 || (size_t)index >= items.size()) {
            std::fprintf(stderr, "critical: array out of range (%d of %zu)\n", index,
                         items.size());
            std::abort();
        }
    }
};

template <typename T>
int ArraySize(const MqlArray<T> &array) {
    return (int)array.items.size();
}

template <typename T>
int ArrayResize(MqlArray<T> &array, int size, int reserve = 0) {
    (void)reserve;
    if (size < 0) return -1;
    array.items.resize((size_t)size);
    return size;
}

template <typename T>
void ArrayFree(MqlArray<T> &array) {
    array.items.clear();
}

// ------------------------------------------------------------------ last error

inline int &shim_last_error() {
    static int value = 0;
    return value;
}
inline int GetLastError() { return shim_last_error(); }
inline void ResetLastError() { shim_last_error() = 0; }
inline void SetUserError(ushort code) { shim_last_error() = 65536 + code; }

// ------------------------------------------------------------------ strings

inline int StringLen(const string &text) { return (int)text.size(); }

inline string StringSubstr(const string &text, int start, int length = -1) {
    if (start < 0 || (size_t)start >= text.size()) return "";
    if (length < 0) return text.substr((size_t)start);
    return text.substr((size_t)start, (size_t)length);
}

inline int StringFind(const string &text, const string &match, int start = 0) {
    if (start < 0) start = 0;
    size_t found = text.find(match, (size_t)start);
    return found == string::npos ? -1 : (int)found;
}

inline ushort StringGetCharacter(const string &text, int pos) {
    if (pos < 0 || (size_t)pos >= text.size()) return 0;
    return (uchar)text[(size_t)pos];
}

inline string ShortToString(ushort code) {
    string out;
    if (code < 0x80) {
        out += (char)code;
    } else if (code < 0x800) {
        out += (char)(0xC0 | (code >> 6));
        out += (char)(0x80 | (code & 0x3F));
    } else {
        out += (char)(0xE0 | (code >> 12));
        out += (char)(0x80 | ((code >> 6) & 0x3F));
        out += (char)(0x80 | (code & 0x3F));
    }
    return out;
}

inline string CharToString(uchar code) { return string(1, (char)code); }

inline long StringToInteger(const string &text) { return std::strtol(text.c_str(), nullptr, 10); }

inline double StringToDouble(const string &text) { return std::strtod(text.c_str(), nullptr); }

inline string IntegerToString(long number, int length = 0, ushort fill = ' ') {
    string out = std::to_string(number);
    while ((int)out.size() < length) out = string(1, (char)fill) + out;
    return out;
}

inline string DoubleToString(double value, int digits = 8) {
    char buffer[64];
    std::snprintf(buffer, sizeof buffer, "%.*f", digits, value);
    return buffer;
}

inline bool StringToUpper(string &text) {
    for (char &c : text)
        if (c >= 'a' && c <= 'z') c = (char)(c - 32);
    return true;
}

inline bool StringToLower(string &text) {
    for (char &c : text)
        if (c >= 'A' && c <= 'Z') c = (char)(c + 32);
    return true;
}

inline int StringReplace(string &text, const string &find, const string &replacement) {
    if (find.empty()) return 0;
    int count = 0;
    size_t pos = 0;
    while ((pos = text.find(find, pos)) != string::npos) {
        text.replace(pos, find.size(), replacement);
        pos += replacement.size();
        count++;
    }
    return count;
}

template <typename C>
int StringToCharArray(const string &text, MqlArray<C> &array, int start = 0, int count = -1,
                      uint codepage = CP_ACP) {
    (void)codepage;
    size_t n = count < 0 ? text.size() + 1 : std::min((size_t)count, text.size());
    array.items.resize((size_t)start + n);
    for (size_t i = 0; i < n; i++)
        array.items[(size_t)start + i] = i < text.size() ? (C)text[i] : (C)0;
    return (int)n;
}

template <typename C>
string CharArrayToString(const MqlArray<C> &array, int start = 0, int count = -1,
                         uint codepage = CP_ACP) {
    (void)codepage;
    string out;
    size_t end = count < 0 ? array.items.size() : std::min(array.items.size(), (size_t)(start + count));
    for (size_t i = (size_t)start; i < end; i++) {
        if (array.items[i] == 0) break;
        out += (char)array.items[i];
    }
    return out;
}

inline int StringSplit(const string &text, ushort separator, MqlArray<string> &result) {
    result.items.clear();
    if (text.empty()) return 0;
    size_t start = 0;
    while (true) {
        size_t pos = text.find((char)separator, start);
        if (pos == string::npos) {
            result.items.push_back(text.substr(start));
            break;
        }
        result.items.push_back(text.substr(start, pos - start));
        start = pos + 1;
    }
    return (int)result.items.size();
}

// ------------------------------------------------------------------ maths

inline double MathAbs(double x) { return std::fabs(x); }
inline double MathFloor(double x) { return std::floor(x); }
inline double MathCeil(double x) { return std::ceil(x); }
inline double MathRound(double x) { return std::round(x); }
inline double MathPow(double x, double y) { return std::pow(x, y); }
inline double MathLog10(double x) { return std::log10(x); }
inline double MathMin(double a, double b) { return a < b ? a : b; }
inline double MathMax(double a, double b) { return a > b ? a : b; }
inline int MathRand() { return std::rand() & 0x7FFF; }
inline void MathSrand(int seed) { std::srand((unsigned)seed); }
inline double NormalizeDouble(double value, int digits) {
    double scale = std::pow(10.0, digits);
    return std::round(value * scale) / scale;
}

// ------------------------------------------------------------------ time

inline datetime TimeGMT() {
    const char *skew = std::getenv("SB_CLOCK_SKEW");
    return (datetime)std::time(nullptr) + (skew ? std::atol(skew) : 0);
}
inline datetime TimeLocal() { return TimeGMT(); }
inline datetime TimeCurrent() { return (datetime)std::time(nullptr); }
inline uint GetTickCount() {
    using namespace std::chrono;
    return (uint)duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count();
}
inline ulong GetMicrosecondCount() {
    using namespace std::chrono;
    return (ulong)duration_cast<microseconds>(steady_clock::now().time_since_epoch()).count();
}

// ------------------------------------------------------------------ output

inline void shim_append(std::ostringstream &) {}
template <typename T, typename... Rest>
void shim_append(std::ostringstream &out, const T &first, const Rest &...rest) {
    out << first;
    shim_append(out, rest...);
}

template <typename... Args>
string shim_join(const Args &...args) {
    std::ostringstream out;
    shim_append(out, args...);
    return out.str();
}

inline void shim_line(const char *prefix, const string &text) {
    std::printf("%s%s\n", prefix, text.c_str());
    std::fflush(stdout);
}

template <typename... Args>
void Print(const Args &...args) {
    shim_line("", shim_join(args...));
}

template <typename... Args>
void Alert(const Args &...args) {
    shim_line("ALERT: ", shim_join(args...));
}

template <typename... Args>
void Comment(const Args &...args) {
    shim_line("COMMENT: ", shim_join(args...));
}

// ------------------------------------------------------------------ files

inline string shim_files_dir() {
    const char *dir = std::getenv("SB_FILES_DIR");
    return dir ? dir : ".";
}

inline std::map<int, std::FILE *> &shim_files() {
    static std::map<int, std::FILE *> files;
    return files;
}

inline bool shim_valid_name(const string &name) {
    return !name.empty() && name.find("..") == string::npos && name[0] != '/';
}

inline int FileOpen(const string &name, int flags, short delimiter = '\t', uint codepage = CP_ACP) {
    (void)delimiter;
    (void)codepage;
    if (!shim_valid_name(name)) {
        shim_last_error() = ERR_SHIM_FILE;
        return INVALID_HANDLE;
    }
    string path = shim_files_dir() + "/" + name;
    const char *mode = (flags & FILE_WRITE) ? ((flags & FILE_READ) ? "r+b" : "wb") : "rb";
    std::FILE *file = std::fopen(path.c_str(), mode);
    if (!file && (flags & FILE_WRITE) && (flags & FILE_READ)) file = std::fopen(path.c_str(), "w+b");
    if (!file) {
        shim_last_error() = ERR_SHIM_FILE;
        return INVALID_HANDLE;
    }
    // Without FILE_SHARE_* a file open for writing is the opener's alone, as on Windows.
    if ((flags & FILE_WRITE) && !(flags & (FILE_SHARE_READ | FILE_SHARE_WRITE)) &&
        flock(fileno(file), LOCK_EX | LOCK_NB) != 0) {
        std::fclose(file);
        shim_last_error() = ERR_SHIM_FILE;
        return INVALID_HANDLE;
    }
    static int next_handle = 1;
    int handle = next_handle++;
    shim_files()[handle] = file;
    return handle;
}

inline std::FILE *shim_file(int handle) {
    auto found = shim_files().find(handle);
    return found == shim_files().end() ? nullptr : found->second;
}

inline void FileClose(int handle) {
    std::FILE *file = shim_file(handle);
    if (file) {
        std::fclose(file);
        shim_files().erase(handle);
    }
}

inline void FileFlush(int handle) {
    std::FILE *file = shim_file(handle);
    if (file) {
        std::fflush(file);
        fsync(fileno(file));
    }
}

inline ulong FileSize(int handle) {
    std::FILE *file = shim_file(handle);
    if (!file) return 0;
    long here = std::ftell(file);
    std::fseek(file, 0, SEEK_END);
    long size = std::ftell(file);
    std::fseek(file, here, SEEK_SET);
    return (ulong)size;
}

template <typename T>
uint FileReadArray(int handle, MqlArray<T> &array, int start = 0, int count = WHOLE_ARRAY) {
    std::FILE *file = shim_file(handle);
    if (!file) return 0;
    std::vector<T> buffer;
    T item;
    while ((count < 0 || (int)buffer.size() < count) && std::fread(&item, sizeof(T), 1, file) == 1)
        buffer.push_back(item);
    array.items.resize((size_t)start + buffer.size());
    for (size_t i = 0; i < buffer.size(); i++) array.items[(size_t)start + i] = buffer[i];
    return (uint)buffer.size();
}

template <typename T>
uint FileWriteArray(int handle, const MqlArray<T> &array, int start = 0, int count = WHOLE_ARRAY) {
    std::FILE *file = shim_file(handle);
    if (!file) return 0;
    size_t end = count < 0 ? array.items.size() : std::min(array.items.size(), (size_t)(start + count));
    if ((size_t)start >= end) return 0;
    size_t written = std::fwrite(&array.items[(size_t)start], sizeof(T), end - (size_t)start, file);
    if (written != end - (size_t)start) shim_last_error() = ERR_SHIM_FILE;
    return (uint)written;
}

inline bool FileIsExist(const string &name, int common_flag = 0) {
    (void)common_flag;
    struct stat info;
    return shim_valid_name(name) && stat((shim_files_dir() + "/" + name).c_str(), &info) == 0;
}

inline bool FileDelete(const string &name, int common_flag = 0) {
    (void)common_flag;
    if (!shim_valid_name(name) || std::remove((shim_files_dir() + "/" + name).c_str()) != 0) {
        shim_last_error() = ERR_SHIM_FILE;
        return false;
    }
    return true;
}

inline bool FileMove(const string &source, int common_flag, const string &target, int mode_flags) {
    (void)common_flag;
    if (!shim_valid_name(source) || !shim_valid_name(target)) {
        shim_last_error() = ERR_SHIM_FILE;
        return false;
    }
    if (!(mode_flags & FILE_REWRITE) && FileIsExist(target)) {
        shim_last_error() = ERR_SHIM_FILE;
        return false;
    }
    string dir = shim_files_dir() + "/";
    if (std::rename((dir + source).c_str(), (dir + target).c_str()) != 0) {
        shim_last_error() = ERR_SHIM_FILE;
        return false;
    }
    return true;
}

// ------------------------------------------------------------------ events

inline int &shim_timer_ms() {
    static int value = 0;
    return value;
}
inline bool EventSetTimer(int seconds) {
    shim_timer_ms() = seconds * 1000;
    return true;
}
inline bool EventSetMillisecondTimer(int milliseconds) {
    shim_timer_ms() = milliseconds;
    return true;
}
inline void EventKillTimer() { shim_timer_ms() = 0; }

inline bool &shim_stopped() {
    static bool value = false;
    return value;
}
inline bool IsStopped() { return shim_stopped(); }
inline void Sleep(int milliseconds) { usleep((useconds_t)milliseconds * 1000); }

// ------------------------------------------------------------------ WebRequest

inline bool shim_url_allowed(const string &url) {
    const char *allowed = std::getenv("SB_ALLOWED_URLS");
    if (!allowed) return true;
    std::istringstream words(allowed);
    string prefix;
    while (words >> prefix)
        if (url.compare(0, prefix.size(), prefix) == 0) return true;
    return false;
}

// Plain HTTP/1.1 to host:port, one request per connection. Returns the status or -1.
inline int WebRequest(const string &method, const string &url, const string &headers, int timeout,
                      const MqlArray<char> &data, MqlArray<char> &result, string &result_headers) {
    result.items.clear();
    result_headers.clear();
    if (!shim_url_allowed(url)) {
        shim_last_error() = ERR_SHIM_URL_NOT_ALLOWED;
        return -1;
    }
    if (url.compare(0, 7, "http://") != 0) {
        std::fprintf(stderr, "shim: only http:// URLs are supported, not %s\n", url.c_str());
        shim_last_error() = ERR_SHIM_WEBREQUEST_FAILED;
        return -1;
    }
    string rest = url.substr(7);
    size_t slash = rest.find('/');
    string authority = slash == string::npos ? rest : rest.substr(0, slash);
    string target = slash == string::npos ? "/" : rest.substr(slash);
    string host = authority;
    string port = "80";
    size_t colon = authority.rfind(':');
    if (colon != string::npos) {
        host = authority.substr(0, colon);
        port = authority.substr(colon + 1);
    }

    struct addrinfo hints;
    std::memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    struct addrinfo *found = nullptr;
    if (getaddrinfo(host.c_str(), port.c_str(), &hints, &found) != 0 || !found) {
        shim_last_error() = ERR_SHIM_WEBREQUEST_FAILED;
        return -1;
    }
    int sock = socket(found->ai_family, found->ai_socktype, found->ai_protocol);
    struct timeval limit;
    limit.tv_sec = timeout / 1000;
    limit.tv_usec = (timeout % 1000) * 1000;
    if (sock >= 0) {
        setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
        setsockopt(sock, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
    }
    bool connected = sock >= 0 && connect(sock, found->ai_addr, found->ai_addrlen) == 0;
    freeaddrinfo(found);
    if (!connected) {
        if (sock >= 0) close(sock);
        shim_last_error() = ERR_SHIM_WEBREQUEST_FAILED;
        return -1;
    }
    string request = method + " " + target + " HTTP/1.1\r\nHost: " + authority +
                     "\r\nConnection: close\r\nAccept: */*\r\n";
    string extra = headers;
    if (!extra.empty() && extra.size() >= 2 && extra.compare(extra.size() - 2, 2, "\r\n") != 0)
        extra += "\r\n";
    request += extra;
    if (method != "GET" || !data.items.empty())
        request += "Content-Length: " + std::to_string(data.items.size()) + "\r\n";
    request += "\r\n";
    request.append(data.items.begin(), data.items.end());
    size_t sent = 0;
    while (sent < request.size()) {
        ssize_t n = send(sock, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
        if (n <= 0) {
            close(sock);
            shim_last_error() = ERR_SHIM_WEBREQUEST_FAILED;
            return -1;
        }
        sent += (size_t)n;
    }
    string response;
    char buffer[8192];
    while (true) {
        ssize_t n = recv(sock, buffer, sizeof buffer, 0);
        if (n < 0) {
            close(sock);
            shim_last_error() = ERR_SHIM_WEBREQUEST_FAILED;
            return -1;
        }
        if (n == 0) break;
        response.append(buffer, (size_t)n);
    }
    close(sock);
    size_t head_end = response.find("\r\n\r\n");
    if (response.compare(0, 5, "HTTP/") != 0 || head_end == string::npos) {
        shim_last_error() = ERR_SHIM_WEBREQUEST_FAILED;
        return -1;
    }
    size_t line_end = response.find("\r\n");
    int status = std::atoi(response.substr(9, 3).c_str());
    result_headers = response.substr(line_end + 2, head_end + 2 - (line_end + 2));
    string body = response.substr(head_end + 4);
    string lower = result_headers;
    StringToLower(lower);
    if (lower.find("transfer-encoding: chunked") != string::npos) {
        string decoded;
        size_t pos = 0;
        while (pos < body.size()) {
            size_t eol = body.find("\r\n", pos);
            if (eol == string::npos) break;
            size_t size = std::strtoul(body.substr(pos, eol - pos).c_str(), nullptr, 16);
            if (size == 0) break;
            decoded += body.substr(eol + 2, size);
            pos = eol + 2 + size + 2;
        }
        body = decoded;
    }
    result.items.assign(body.begin(), body.end());
    const char *crash = std::getenv("SB_CRASH_AFTER_POST");
    if (crash && method == "POST" && target.find(crash) == 0) {
        std::printf("shim: crash after POST %s answered %d\n", target.c_str(), status);
        std::fflush(stdout);
        _exit(137);
    }
    return status;
}
