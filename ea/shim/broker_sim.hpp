// A small simulated broker behind MetaTrader 5's and MetaTrader 4's trade functions.
//
// Symbols come from $SB_MARKET_FILE (reloaded when it changes), one a line:
//   NAME BID ASK DIGITS VOLUME_MIN VOLUME_STEP VOLUME_MAX CONTRACT_SIZE TRADE_MODE MARKET_OPEN
//   [TICK_SIZE TICK_VALUE]
// (TRADE_MODE 0 = disabled, 4 = full; MARKET_OPEN 0/1; the tick size defaults to the point
// and the tick value to CONTRACT_SIZE x TICK_SIZE, a symbol quoted in the account's
// currency). Profits are counted in ticks: price move / TICK_SIZE x TICK_VALUE x lots.
// Orders, positions and history are kept in $SB_BROKER_FILE, written after every change,
// so they outlive a killed EA the way a real trade server's do.
//
// The trade server works between the EA's events: before every OnTimer (and once before
// OnInit, for what happened while the terminal was off) pending orders whose price the
// market reached fill, and positions whose stop loss or take profit the price went beyond
// close at that level (MT5: a deal with DEAL_REASON_SL / _TP; MT4: "[sl]" / "[tp]" added
// to the comment). $SB_PRICE_PATH scripts the market: a file of steps, one taken per timer tick,
// started again whenever the file changes:
//   NAME BID ASK     the symbol's prices from now on
//   close TICKET     the owner closes that position by hand at the market
//   stopout TICKET   the broker closes it for lack of margin ("so:" in MT4's comment)
// The account: $SB_BALANCE (default 10000) plus every closed profit, in $SB_CURRENCY
// (default USD), leverage 100. Hooks for the tests:
//   SB_TRADE_ALLOWED=0        the terminal's algo-trading button is off
//   SB_CONNECTED=0            the terminal is not connected to the trade server
//   SB_BROKER_COMMENT=TEXT    the trade server replaces the comment of every new order
//   SB_TRADE_TIMEOUT=KIND     the first trade call of KIND is done, but answers with a
//                             timeout (MT5 retcode 10012, MT4 error 128)
//   SB_CRASH_AFTER_TRADE=KIND the process exits right after the first successful trade
//                             call of KIND (open, modify, close, delete), before the EA
//                             can journal its result
//   SB_CRASH_BEFORE_TRADE=KIND the process exits as a trade call of KIND starts, before the
//                             trade server has done anything
#pragma once

#include <fstream>
#include <sstream>

#include "mql_shim.hpp"

// ------------------------------------------------------------------ the book

struct SimSymbol {
    string name;
    double bid = 0, ask = 0;
    int digits = 5;
    double volume_min = 0.01, volume_step = 0.01, volume_max = 100, contract = 100000;
    int trade_mode = 4;
    int open = 1;
    double tick_size = 0, tick_value = 0;
    bool selected = false;
};

// A ticket: a pending order, an open position, or history (closed / deleted).
struct SimTicket {
    long ticket = 0;
    string symbol;
    int type = 0;  // 0 buy, 1 sell, 2 buy limit, 3 sell limit, 4 buy stop, 5 sell stop
    double volume = 0, price = 0, sl = 0, tp = 0;
    long magic = 0;
    string comment;
    long open_time = 0;
    int state = 0;  // 0 live, 1 closed, 2 deleted
    double close_price = 0, profit = 0;
    long close_time = 0;
};

struct SimDeal {
    long ticket = 0, order = 0, position = 0;
    string symbol;
    int type = 0, entry = 0;  // entry 0 in, 1 out
    double volume = 0, price = 0, profit = 0;
    long magic = 0, time = 0;
    string comment;
    int reason = 0;  // MT5's DEAL_REASON: 0 client, 3 expert, 4 sl, 5 tp, 6 stop-out
};

struct SimBook {
    std::vector<SimSymbol> symbols;
    std::vector<SimTicket> tickets;
    std::vector<SimDeal> deals;
    long next_ticket = 5000001;
    long next_deal = 9000001;
    bool loaded = false;
    long market_mtime = -1;
    std::vector<string> path;  // $SB_PRICE_PATH's steps
    size_t path_step = 0;
    long path_mtime = -1;
};

inline SimBook &sim() {
    static SimBook book;
    return book;
}

// A comment as one word of the state file: "-" when empty, spaces as %20.
inline string sim_field(const string &text) {
    string out = text;
    StringReplace(out, "%", "%25");
    StringReplace(out, " ", "%20");
    return out.empty() ? "-" : out;
}
inline string sim_unfield(const string &text) {
    if (text == "-") return "";
    string out = text;
    StringReplace(out, "%20", " ");
    StringReplace(out, "%25", "%");
    return out;
}

inline void sim_save() {
    const char *path = std::getenv("SB_BROKER_FILE");
    if (!path) return;
    string temp = string(path) + ".tmp";
    {
        std::ofstream out(temp);
        SimBook &b = sim();
        out.precision(10);
        out << "next " << b.next_ticket << " " << b.next_deal << "\n";
        for (const SimTicket &t : b.tickets)
            out << "ticket " << t.ticket << " " << t.symbol << " " << t.type << " " << t.volume << " "
                << t.price << " " << t.sl << " " << t.tp << " " << t.magic << " " << sim_field(t.comment)
                << " " << t.open_time << " " << t.state << " " << t.close_price << " " << t.profit
                << " " << t.close_time << "\n";
        for (const SimDeal &d : b.deals)
            out << "deal " << d.ticket << " " << d.order << " " << d.position << " " << d.symbol << " "
                << d.type << " " << d.entry << " " << d.volume << " " << d.price << " " << d.profit
                << " " << d.magic << " " << d.time << " " << sim_field(d.comment) << " " << d.reason << "\n";
    }
    std::rename(temp.c_str(), path);
}

inline void sim_load_market() {
    const char *path = std::getenv("SB_MARKET_FILE");
    if (!path) return;
    struct stat info;
    if (stat(path, &info) != 0) return;
    long mtime = (long)info.st_mtim.tv_sec * 1000000000L + info.st_mtim.tv_nsec;
    SimBook &b = sim();
    if (mtime == b.market_mtime) return;
    b.market_mtime = mtime;
    std::ifstream in(path);
    string line;
    while (std::getline(in, line)) {
        std::istringstream row(line);
        SimSymbol s;
        if (!(row >> s.name >> s.bid >> s.ask >> s.digits >> s.volume_min >> s.volume_step >>
              s.volume_max >> s.contract >> s.trade_mode >> s.open))
            continue;
        if (!(row >> s.tick_size >> s.tick_value)) {
            s.tick_size = std::pow(10.0, -s.digits);
            s.tick_value = s.contract * s.tick_size;
        }
        bool known = false;
        for (SimSymbol &old : b.symbols)
            if (old.name == s.name) {
                s.selected = old.selected;
                old = s;
                known = true;
            }
        if (!known) b.symbols.push_back(s);
    }
}

inline void sim_load() {
    SimBook &b = sim();
    if (b.loaded) return;
    b.loaded = true;
    sim_load_market();
    const char *path = std::getenv("SB_BROKER_FILE");
    if (!path) return;
    std::ifstream in(path);
    string line;
    while (std::getline(in, line)) {
        std::istringstream row(line);
        string kind;
        row >> kind;
        if (kind == "next") {
            row >> b.next_ticket >> b.next_deal;
        } else if (kind == "ticket") {
            SimTicket t;
            row >> t.ticket >> t.symbol >> t.type >> t.volume >> t.price >> t.sl >> t.tp >> t.magic >>
                t.comment >> t.open_time >> t.state >> t.close_price >> t.profit >> t.close_time;
            t.comment = sim_unfield(t.comment);
            b.tickets.push_back(t);
        } else if (kind == "deal") {
            SimDeal d;
            row >> d.ticket >> d.order >> d.position >> d.symbol >> d.type >> d.entry >> d.volume >>
                d.price >> d.profit >> d.magic >> d.time >> d.comment;
            if (!(row >> d.reason)) d.reason = 0;
            d.comment = sim_unfield(d.comment);
            b.deals.push_back(d);
        }
    }
}

inline SimSymbol *sim_symbol(const string &name) {
    sim_load();
    sim_load_market();
    for (SimSymbol &s : sim().symbols)
        if (s.name == name) return &s;
    return nullptr;
}

inline SimTicket *sim_ticket(long ticket) {
    sim_load();
    for (SimTicket &t : sim().tickets)
        if (t.ticket == ticket) return &t;
    return nullptr;
}

inline bool sim_trade_allowed() {
    const char *flag = std::getenv("SB_TRADE_ALLOWED");
    return !flag || string(flag) != "0";
}

inline string sim_comment(const string &asked) {
    const char *replaced = std::getenv("SB_BROKER_COMMENT");
    return replaced ? string(replaced) : asked;
}

inline bool sim_connected() {
    const char *flag = std::getenv("SB_CONNECTED");
    return !flag || string(flag) != "0";
}

inline bool sim_timed_out(const char *kind) {
    static bool done = false;
    const char *timeout = std::getenv("SB_TRADE_TIMEOUT");
    if (done || !timeout || string(timeout) != kind) return false;
    done = true;
    std::printf("shim: the %s trade call is done but answers with a timeout\n", kind);
    std::fflush(stdout);
    return true;
}

inline void sim_after_trade(const char *kind) {
    sim_save();
    const char *crash = std::getenv("SB_CRASH_AFTER_TRADE");
    if (crash && string(crash) == kind) {
        std::printf("shim: crash after the %s trade call\n", kind);
        std::fflush(stdout);
        _exit(137);
    }
}

inline void sim_before_trade(const char *kind) {
    const char *crash = std::getenv("SB_CRASH_BEFORE_TRADE");
    if (crash && string(crash) == kind) {
        std::printf("shim: crash before the %s trade call\n", kind);
        std::fflush(stdout);
        _exit(137);
    }
}

inline double sim_profit(const SimTicket &t, double close_price, double volume) {
    SimSymbol *s = sim_symbol(t.symbol);
    double tick_size = s ? s->tick_size : 0.00001, tick_value = s ? s->tick_value : 1;
    double move = t.type == 0 ? close_price - t.price : t.price - close_price;
    return std::round(move / tick_size * tick_value * volume * 100.0) / 100.0;
}

inline void sim_deal(const SimTicket &t, int type, int entry, double volume, double price, double profit,
                     long magic, const string &comment, int reason = 0) {
    SimDeal d;
    d.ticket = sim().next_deal++;
    d.order = t.ticket;
    d.position = t.ticket;
    d.symbol = t.symbol;
    d.type = type;
    d.entry = entry;
    d.volume = volume;
    d.price = price;
    d.profit = profit;
    d.magic = magic;
    d.time = (long)std::time(nullptr);
    d.comment = comment;
    d.reason = reason;
    sim().deals.push_back(d);
}

// The trade server closes a whole position by itself (reason: 0 by hand, 4 stop loss,
// 5 take profit, 6 stop-out), the way each platform records it.
inline void sim_close_by_server(SimTicket &t, double price, int reason) {
    double profit = sim_profit(t, price, t.volume);
    t.state = 1;
    t.close_price = price;
    t.close_time = (long)std::time(nullptr);
    t.profit += profit;
#ifdef __MQL4__
    if (reason == 4) t.comment += "[sl]";
    if (reason == 5) t.comment += "[tp]";
    if (reason == 6) t.comment = "so: margin level 20%";
#endif
    sim_deal(t, 1 - t.type, 1, t.volume, price, profit, t.magic, reason == 4 ? "sl" : reason == 5 ? "tp" : "", reason);
}

// The next step of $SB_PRICE_PATH, if any (see the top of this file).
inline bool sim_path_step() {
    const char *file = std::getenv("SB_PRICE_PATH");
    if (!file) return false;
    SimBook &b = sim();
    struct stat info;
    if (stat(file, &info) == 0) {
        long mtime = (long)info.st_mtim.tv_sec * 1000000000L + info.st_mtim.tv_nsec;
        if (mtime != b.path_mtime) {
            b.path_mtime = mtime;
            b.path.clear();
            b.path_step = 0;
            std::ifstream in(file);
            string line;
            while (std::getline(in, line))
                if (!line.empty()) b.path.push_back(line);
        }
    }
    if (b.path_step >= b.path.size()) return false;
    std::istringstream row(b.path[b.path_step++]);
    string first;
    row >> first;
    if (first == "close" || first == "stopout") {
        long ticket = 0;
        row >> ticket;
        for (SimTicket &t : b.tickets) {
            if (t.ticket != ticket || t.state != 0 || t.type > 1) continue;
            SimSymbol *s = sim_symbol(t.symbol);
            if (s) sim_close_by_server(t, t.type == 0 ? s->bid : s->ask, first == "close" ? 0 : 6);
        }
        return true;
    }
    double bid = 0, ask = 0;
    row >> bid >> ask;
    for (SimSymbol &s : b.symbols)
        if (s.name == first) {
            s.bid = bid;
            s.ask = ask;
        }
    return false;
}

inline double sim_balance() {
    const char *start = std::getenv("SB_BALANCE");
    double balance = start ? std::atof(start) : 10000;
    for (const SimTicket &t : sim().tickets) balance += t.profit;
    return balance;
}

inline double sim_floating(const SimTicket &t) {
    SimSymbol *s = sim_symbol(t.symbol);
    if (!s || t.state != 0 || t.type > 1) return 0;
    return sim_profit(t, t.type == 0 ? s->bid : s->ask, t.volume);
}

inline double sim_equity() {
    double equity = sim_balance();
    for (const SimTicket &t : sim().tickets) equity += sim_floating(t);
    return equity;
}

inline string sim_currency() {
    const char *currency = std::getenv("SB_CURRENCY");
    return currency ? currency : "USD";
}

// Pending orders whose price the market reached become positions, stop losses and take
// profits the price went beyond close (the harness calls this before every OnTimer, as a
// real terminal's trade server works between the EA's events); true when something changed.
inline bool sim_tick() {
    sim_load();
    sim_load_market();
    bool changed = sim_path_step();
    for (SimTicket &t : sim().tickets) {
        if (t.state != 0 || t.type > 1 || (t.sl <= 0 && t.tp <= 0)) continue;
        SimSymbol *s = sim_symbol(t.symbol);
        if (!s) continue;
        double price = t.type == 0 ? s->bid : s->ask;
        // Beyond the level, not at it (a stop set at the very price stays until it moves).
        bool stop = t.sl > 0 && (t.type == 0 ? price < t.sl - 1e-9 : price > t.sl + 1e-9);
        bool take = t.tp > 0 && (t.type == 0 ? price > t.tp + 1e-9 : price < t.tp - 1e-9);
        if (!stop && !take) continue;
        sim_close_by_server(t, stop ? t.sl : t.tp, stop ? 4 : 5);
        changed = true;
    }
    for (SimTicket &t : sim().tickets) {
        if (t.state != 0 || t.type < 2) continue;
        SimSymbol *s = sim_symbol(t.symbol);
        if (!s) continue;
        bool hit = (t.type == 2 && s->ask <= t.price) || (t.type == 3 && s->bid >= t.price) ||
                   (t.type == 4 && s->ask >= t.price) || (t.type == 5 && s->bid <= t.price);
        if (!hit) continue;
        t.type = t.type % 2;
        t.open_time = (long)std::time(nullptr);
        sim_deal(t, t.type, 0, t.volume, t.price, 0, t.magic, t.comment);
        changed = true;
    }
    if (changed) sim_save();
    return changed;
}

inline bool sim_volume_ok(const SimSymbol &s, double volume) {
    if (volume < s.volume_min - 1e-9 || volume > s.volume_max + 1e-9) return false;
    double steps = volume / s.volume_step;
    return std::fabs(steps - std::round(steps)) < 1e-6;
}

inline long sim_now() { return (long)std::time(nullptr); }

// ------------------------------------------------------------------ the account (both)

enum ENUM_ACCOUNT_INFO {
    ACCOUNT_TRADE_ALLOWED,
    ACCOUNT_TRADE_EXPERT,
    ACCOUNT_LEVERAGE,
    ACCOUNT_BALANCE,
    ACCOUNT_EQUITY,
    ACCOUNT_MARGIN_FREE,
    ACCOUNT_CURRENCY,
    ACCOUNT_COMPANY,
    ACCOUNT_SERVER
};
inline long AccountInfoInteger(int property) { return property == ACCOUNT_LEVERAGE ? 100 : 1; }
inline double AccountInfoDouble(int property) {
    sim_load();
    if (property == ACCOUNT_BALANCE) return sim_balance();
    if (property == ACCOUNT_EQUITY) return sim_equity();
    if (property == ACCOUNT_MARGIN_FREE) return sim_equity();
    return 0;
}
inline string AccountInfoString(int property) {
    if (property == ACCOUNT_CURRENCY) return sim_currency();
    if (property == ACCOUNT_COMPANY) return "Simulated Broker Ltd";
    if (property == ACCOUNT_SERVER) return "Sim-Demo";
    return "";
}

// ------------------------------------------------------------------ MetaTrader 5
#ifdef __MQL5__

enum ENUM_SYMBOL_INFO {
    SYMBOL_DIGITS,
    SYMBOL_TRADE_MODE,
    SYMBOL_FILLING_MODE,
    SYMBOL_VOLUME_MIN,
    SYMBOL_VOLUME_STEP,
    SYMBOL_VOLUME_MAX,
    SYMBOL_BID,
    SYMBOL_ASK,
    SYMBOL_POINT,
    SYMBOL_TRADE_TICK_SIZE,
    SYMBOL_TRADE_TICK_VALUE
};
enum { SYMBOL_TRADE_MODE_DISABLED = 0, SYMBOL_TRADE_MODE_CLOSEONLY = 3, SYMBOL_TRADE_MODE_FULL = 4 };
enum { SYMBOL_FILLING_FOK = 1, SYMBOL_FILLING_IOC = 2 };
enum { TERMINAL_CONNECTED, TERMINAL_TRADE_ALLOWED, TERMINAL_BUILD };
enum { MQL_TRADE_ALLOWED };
enum ENUM_TRADE_REQUEST_ACTIONS {
    TRADE_ACTION_DEAL = 1,
    TRADE_ACTION_PENDING = 5,
    TRADE_ACTION_SLTP = 6,
    TRADE_ACTION_MODIFY = 7,
    TRADE_ACTION_REMOVE = 8,
    TRADE_ACTION_CLOSE_BY = 10
};
enum ENUM_ORDER_TYPE {
    ORDER_TYPE_BUY,
    ORDER_TYPE_SELL,
    ORDER_TYPE_BUY_LIMIT,
    ORDER_TYPE_SELL_LIMIT,
    ORDER_TYPE_BUY_STOP,
    ORDER_TYPE_SELL_STOP
};
enum ENUM_ORDER_TYPE_FILLING { ORDER_FILLING_FOK, ORDER_FILLING_IOC, ORDER_FILLING_RETURN };
enum ENUM_ORDER_TYPE_TIME { ORDER_TIME_GTC, ORDER_TIME_DAY, ORDER_TIME_SPECIFIED };
enum { POSITION_TYPE_BUY, POSITION_TYPE_SELL };
enum { DEAL_ENTRY_IN, DEAL_ENTRY_OUT, DEAL_ENTRY_INOUT, DEAL_ENTRY_OUT_BY };
enum ENUM_POSITION_PROPERTY {
    POSITION_IDENTIFIER,
    POSITION_MAGIC,
    POSITION_TYPE,
    POSITION_SYMBOL,
    POSITION_COMMENT,
    POSITION_VOLUME,
    POSITION_PRICE_OPEN,
    POSITION_SL,
    POSITION_TP,
    POSITION_PROFIT,
    POSITION_SWAP
};
enum ENUM_ORDER_PROPERTY {
    ORDER_MAGIC,
    ORDER_TYPE_TIME,
    ORDER_TIME_EXPIRATION,
    ORDER_SYMBOL,
    ORDER_COMMENT,
    ORDER_VOLUME_CURRENT,
    ORDER_PRICE_OPEN,
    ORDER_SL,
    ORDER_TP,
    ORDER_TYPE
};
enum ENUM_DEAL_PROPERTY {
    DEAL_POSITION_ID,
    DEAL_PRICE,
    DEAL_MAGIC,
    DEAL_COMMENT,
    DEAL_ENTRY,
    DEAL_SYMBOL,
    DEAL_VOLUME,
    DEAL_PROFIT,
    DEAL_SWAP,
    DEAL_COMMISSION,
    DEAL_TIME,
    DEAL_REASON,
    DEAL_TYPE
};
enum { DEAL_TYPE_BUY = 0, DEAL_TYPE_SELL = 1 };
enum { DEAL_REASON_CLIENT = 0, DEAL_REASON_MOBILE = 1, DEAL_REASON_WEB = 2, DEAL_REASON_EXPERT = 3,
       DEAL_REASON_SL = 4, DEAL_REASON_TP = 5, DEAL_REASON_SO = 6 };
enum ENUM_TRADE_TRANSACTION_TYPE { TRADE_TRANSACTION_ORDER_DELETE, TRADE_TRANSACTION_DEAL_ADD };

#define TRADE_RETCODE_PLACED 10008
#define TRADE_RETCODE_DONE 10009
#define TRADE_RETCODE_DONE_PARTIAL 10010
#define TRADE_RETCODE_TIMEOUT 10012
#define TRADE_RETCODE_INVALID 10013
#define TRADE_RETCODE_INVALID_VOLUME 10014
#define TRADE_RETCODE_INVALID_PRICE 10015
#define TRADE_RETCODE_INVALID_STOPS 10016
#define TRADE_RETCODE_TRADE_DISABLED 10017
#define TRADE_RETCODE_MARKET_CLOSED 10018
#define TRADE_RETCODE_NO_CHANGES 10025
#define TRADE_RETCODE_SERVER_DISABLES_AT 10026
#define TRADE_RETCODE_CLIENT_DISABLES_AT 10027
#define TRADE_RETCODE_POSITION_CLOSED 10036
#define TRADE_RETCODE_LONG_ONLY 10042
#define TRADE_RETCODE_SHORT_ONLY 10043
#define TRADE_RETCODE_CLOSE_ONLY 10044
#define ERR_TRADE_POSITION_NOT_FOUND 4753
#define ERR_TRADE_ORDER_NOT_FOUND 4754
#define ERR_TRADE_DEAL_NOT_FOUND 4755
#define ERR_MARKET_UNKNOWN_SYMBOL 4301

struct MqlTick {
    datetime time;
    double bid, ask, last;
    ulong volume;
};

struct MqlTradeRequest {
    ENUM_TRADE_REQUEST_ACTIONS action;
    ulong magic, order;
    string symbol;
    double volume, price, stoplimit, sl, tp;
    ulong deviation;
    ENUM_ORDER_TYPE type;
    ENUM_ORDER_TYPE_FILLING type_filling;
    ENUM_ORDER_TYPE_TIME type_time;
    datetime expiration;
    string comment;
    ulong position, position_by;
};

struct MqlTradeResult {
    uint retcode;
    ulong deal, order;
    double volume, price, bid, ask;
    string comment;
    uint request_id;
    int retcode_external;
};

struct MqlTradeTransaction {
    ulong deal, order;
    string symbol;
    ENUM_TRADE_TRANSACTION_TYPE type;
};

template <typename T>
void ZeroMemory(T &value) {
    value = T();
}

inline long SymbolInfoInteger(const string &name, int property) {
    SimSymbol *s = sim_symbol(name);
    if (!s) {
        shim_last_error() = ERR_MARKET_UNKNOWN_SYMBOL;
        return 0;
    }
    if (property == SYMBOL_DIGITS) return s->digits;
    if (property == SYMBOL_TRADE_MODE) return s->trade_mode;
    if (property == SYMBOL_FILLING_MODE) return SYMBOL_FILLING_FOK | SYMBOL_FILLING_IOC;
    return 0;
}

inline double SymbolInfoDouble(const string &name, int property) {
    SimSymbol *s = sim_symbol(name);
    if (!s) {
        shim_last_error() = ERR_MARKET_UNKNOWN_SYMBOL;
        return 0;
    }
    if (property == SYMBOL_VOLUME_MIN) return s->volume_min;
    if (property == SYMBOL_VOLUME_STEP) return s->volume_step;
    if (property == SYMBOL_VOLUME_MAX) return s->volume_max;
    if (property == SYMBOL_BID) return s->bid;
    if (property == SYMBOL_ASK) return s->ask;
    if (property == SYMBOL_POINT) return std::pow(10.0, -s->digits);
    if (property == SYMBOL_TRADE_TICK_SIZE) return s->tick_size;
    if (property == SYMBOL_TRADE_TICK_VALUE) return s->tick_value;
    return 0;
}

inline bool SymbolSelect(const string &name, bool select) {
    SimSymbol *s = sim_symbol(name);
    if (!s) {
        shim_last_error() = ERR_MARKET_UNKNOWN_SYMBOL;
        return false;
    }
    s->selected = select;
    return true;
}

inline bool SymbolInfoTick(const string &name, MqlTick &tick) {
    SimSymbol *s = sim_symbol(name);
    if (!s) {
        shim_last_error() = ERR_MARKET_UNKNOWN_SYMBOL;
        return false;
    }
    tick.time = sim_now();
    tick.bid = s->bid;
    tick.ask = s->ask;
    tick.last = s->bid;
    tick.volume = 0;
    return true;
}

inline long TerminalInfoInteger(int property) {
    if (property == TERMINAL_TRADE_ALLOWED) return sim_trade_allowed() ? 1 : 0;
    if (property == TERMINAL_CONNECTED) return sim_connected() ? 1 : 0;
    if (property == TERMINAL_BUILD) return 4620;
    return 0;
}
inline long MQLInfoInteger(int property) { return property == MQL_TRADE_ALLOWED ? 1 : 0; }

// The trade server: checks like a real one, answers with its retcodes.
inline bool OrderSend(const MqlTradeRequest &request, MqlTradeResult &result) {
    sim_load();
    result = MqlTradeResult();
    auto fail = [&](uint code, const char *comment) {
        result.retcode = code;
        result.comment = comment;
        shim_last_error() = 4756;  // ERR_TRADE_SEND_FAILED
        return false;
    };
    if (!sim_trade_allowed()) return fail(TRADE_RETCODE_CLIENT_DISABLES_AT, "AutoTrading disabled by client");
    if (request.action == TRADE_ACTION_DEAL || request.action == TRADE_ACTION_PENDING)
        sim_before_trade(request.position > 0 ? "close" : "open");
    if (request.action == TRADE_ACTION_DEAL || request.action == TRADE_ACTION_PENDING) {
        SimSymbol *s = sim_symbol(request.symbol);
        if (!s) return fail(TRADE_RETCODE_INVALID, "Invalid request");
        if (s->trade_mode == SYMBOL_TRADE_MODE_DISABLED) return fail(TRADE_RETCODE_TRADE_DISABLED, "Trade disabled");
        if (!s->open) return fail(TRADE_RETCODE_MARKET_CLOSED, "Market closed");
        if (!sim_volume_ok(*s, request.volume)) return fail(TRADE_RETCODE_INVALID_VOLUME, "Invalid volume");
        if (request.action == TRADE_ACTION_DEAL && request.position > 0) {
            SimTicket *t = sim_ticket((long)request.position);
            if (!t || t->state != 0 || t->type > 1) return fail(TRADE_RETCODE_POSITION_CLOSED, "Position doesn't exist");
            if (request.volume > t->volume + 1e-9) return fail(TRADE_RETCODE_INVALID_VOLUME, "Invalid volume");
            double price = t->type == 0 ? s->bid : s->ask;
            double profit = sim_profit(*t, price, request.volume);
            t->volume = std::round((t->volume - request.volume) * 1e8) / 1e8;
            if (t->volume <= 1e-9) {
                t->state = 1;
                t->close_price = price;
                t->close_time = sim_now();
            }
            t->profit += profit;
            sim_deal(*t, 1 - t->type, DEAL_ENTRY_OUT, request.volume, price, profit, (long)request.magic, request.comment,
                     DEAL_REASON_EXPERT);
            result.retcode = TRADE_RETCODE_DONE;
            result.deal = (ulong)sim().deals.back().ticket;
            result.order = (ulong)sim().next_ticket++;
            result.volume = request.volume;
            result.price = price;
            result.comment = "Request executed";
            sim_after_trade("close");
            return true;
        }
        SimTicket t;
        t.ticket = sim().next_ticket++;
        t.symbol = request.symbol;
        t.type = (int)request.type;
        t.volume = request.volume;
        t.sl = request.sl;
        t.tp = request.tp;
        t.magic = (long)request.magic;
        t.comment = sim_comment(request.comment);
        t.open_time = sim_now();
        if (request.action == TRADE_ACTION_DEAL) {
            if (t.type > 1) return fail(TRADE_RETCODE_INVALID, "Invalid request");
            t.price = t.type == 0 ? s->ask : s->bid;
            sim().tickets.push_back(t);
            sim_deal(t, t.type, DEAL_ENTRY_IN, t.volume, t.price, 0, t.magic, t.comment);
            result.deal = (ulong)sim().deals.back().ticket;
        } else {
            if (t.type < 2 || request.price <= 0) return fail(TRADE_RETCODE_INVALID_PRICE, "Invalid price");
            t.price = request.price;
            sim().tickets.push_back(t);
        }
        result.retcode = request.action == TRADE_ACTION_DEAL ? TRADE_RETCODE_DONE : TRADE_RETCODE_PLACED;
        result.order = (ulong)t.ticket;
        result.volume = t.volume;
        result.price = t.price;
        result.comment = "Request executed";
        sim_after_trade("open");
        if (sim_timed_out("open")) {
            result = MqlTradeResult();
            return fail(TRADE_RETCODE_TIMEOUT, "Request timeout");
        }
        return true;
    }
    if (request.action == TRADE_ACTION_SLTP || request.action == TRADE_ACTION_MODIFY) {
        long ticket = (long)(request.action == TRADE_ACTION_SLTP ? request.position : request.order);
        SimTicket *t = sim_ticket(ticket);
        bool position = request.action == TRADE_ACTION_SLTP;
        if (!t || t->state != 0 || (position ? t->type > 1 : t->type < 2))
            return fail(position ? TRADE_RETCODE_POSITION_CLOSED : TRADE_RETCODE_INVALID, "Invalid request");
        if (std::fabs(t->sl - request.sl) < 1e-12 && std::fabs(t->tp - request.tp) < 1e-12 &&
            (position || std::fabs(t->price - request.price) < 1e-12))
            return fail(TRADE_RETCODE_NO_CHANGES, "No changes");
        t->sl = request.sl;
        t->tp = request.tp;
        if (!position) t->price = request.price;
        result.retcode = TRADE_RETCODE_DONE;
        result.order = (ulong)ticket;
        result.comment = "Request executed";
        sim_after_trade("modify");
        return true;
    }
    if (request.action == TRADE_ACTION_REMOVE) {
        SimTicket *t = sim_ticket((long)request.order);
        if (!t || t->state != 0 || t->type < 2) return fail(TRADE_RETCODE_INVALID, "Invalid request");
        t->state = 2;
        t->close_time = sim_now();
        result.retcode = TRADE_RETCODE_DONE;
        result.order = request.order;
        result.comment = "Request executed";
        sim_after_trade("delete");
        return true;
    }
    return fail(TRADE_RETCODE_INVALID, "Invalid request");
}

// Selection state of the position, order and deal functions.
inline long &sim_selected_position() {
    static long value = 0;
    return value;
}
inline long &sim_selected_order() {
    static long value = 0;
    return value;
}

inline std::vector<SimTicket *> sim_live(bool positions) {
    std::vector<SimTicket *> out;
    sim_load();
    for (SimTicket &t : sim().tickets)
        if (t.state == 0 && (positions ? t.type < 2 : t.type >= 2)) out.push_back(&t);
    return out;
}

inline bool PositionSelectByTicket(ulong ticket) {
    SimTicket *t = sim_ticket((long)ticket);
    if (!t || t->state != 0 || t->type > 1) {
        shim_last_error() = ERR_TRADE_POSITION_NOT_FOUND;
        return false;
    }
    sim_selected_position() = (long)ticket;
    return true;
}
inline int PositionsTotal() { return (int)sim_live(true).size(); }
inline ulong PositionGetTicket(int index) {
    std::vector<SimTicket *> live = sim_live(true);
    if (index < 0 || index >= (int)live.size()) return 0;
    sim_selected_position() = live[(size_t)index]->ticket;
    return (ulong)live[(size_t)index]->ticket;
}
inline long PositionGetInteger(int property) {
    SimTicket *t = sim_ticket(sim_selected_position());
    if (!t) return 0;
    if (property == POSITION_IDENTIFIER) return t->ticket;
    if (property == POSITION_MAGIC) return t->magic;
    if (property == POSITION_TYPE) return t->type;
    return 0;
}
inline double PositionGetDouble(int property) {
    SimTicket *t = sim_ticket(sim_selected_position());
    if (!t) return 0;
    if (property == POSITION_VOLUME) return t->volume;
    if (property == POSITION_PRICE_OPEN) return t->price;
    if (property == POSITION_SL) return t->sl;
    if (property == POSITION_TP) return t->tp;
    if (property == POSITION_PROFIT) return sim_floating(*t);
    return 0;
}
inline string PositionGetString(int property) {
    SimTicket *t = sim_ticket(sim_selected_position());
    if (!t) return "";
    if (property == POSITION_SYMBOL) return t->symbol;
    if (property == POSITION_COMMENT) return t->comment;
    return "";
}

inline bool OrderSelect(ulong ticket) {
    SimTicket *t = sim_ticket((long)ticket);
    if (!t || t->state != 0 || t->type < 2) {
        shim_last_error() = ERR_TRADE_ORDER_NOT_FOUND;
        return false;
    }
    sim_selected_order() = (long)ticket;
    return true;
}
inline int OrdersTotal() { return (int)sim_live(false).size(); }
inline ulong OrderGetTicket(int index) {
    std::vector<SimTicket *> live = sim_live(false);
    if (index < 0 || index >= (int)live.size()) return 0;
    sim_selected_order() = live[(size_t)index]->ticket;
    return (ulong)live[(size_t)index]->ticket;
}
inline long OrderGetInteger(int property) {
    SimTicket *t = sim_ticket(sim_selected_order());
    if (!t) return 0;
    if (property == ORDER_MAGIC) return t->magic;
    if (property == ORDER_TYPE) return t->type;
    return 0;
}
inline double OrderGetDouble(int property) {
    SimTicket *t = sim_ticket(sim_selected_order());
    if (!t) return 0;
    if (property == ORDER_VOLUME_CURRENT) return t->volume;
    if (property == ORDER_PRICE_OPEN) return t->price;
    if (property == ORDER_SL) return t->sl;
    if (property == ORDER_TP) return t->tp;
    return 0;
}
inline string OrderGetString(int property) {
    SimTicket *t = sim_ticket(sim_selected_order());
    if (!t) return "";
    if (property == ORDER_SYMBOL) return t->symbol;
    if (property == ORDER_COMMENT) return t->comment;
    return "";
}

inline std::vector<long> &sim_history() {
    static std::vector<long> selected;
    return selected;
}
inline bool HistorySelect(datetime from, datetime to) {
    sim_load();
    sim_history().clear();
    for (const SimDeal &d : sim().deals)
        if (d.time >= from && d.time <= to) sim_history().push_back(d.ticket);
    return true;
}
inline bool HistorySelectByPosition(ulong position) {
    sim_load();
    sim_history().clear();
    for (const SimDeal &d : sim().deals)
        if (d.position == (long)position) sim_history().push_back(d.ticket);
    return true;
}
inline int HistoryDealsTotal() { return (int)sim_history().size(); }
inline ulong HistoryDealGetTicket(int index) {
    if (index < 0 || index >= (int)sim_history().size()) return 0;
    return (ulong)sim_history()[(size_t)index];
}
inline SimDeal *sim_find_deal(ulong ticket) {
    sim_load();
    for (SimDeal &d : sim().deals)
        if (d.ticket == (long)ticket) return &d;
    shim_last_error() = ERR_TRADE_DEAL_NOT_FOUND;
    return nullptr;
}
inline bool HistoryDealSelect(ulong ticket) { return sim_find_deal(ticket) != nullptr; }
inline long HistoryDealGetInteger(ulong ticket, int property) {
    SimDeal *d = sim_find_deal(ticket);
    if (!d) return 0;
    if (property == DEAL_POSITION_ID) return d->position;
    if (property == DEAL_MAGIC) return d->magic;
    if (property == DEAL_ENTRY) return d->entry;
    if (property == DEAL_TIME) return d->time;
    if (property == DEAL_REASON) return d->reason;
    if (property == DEAL_TYPE) return d->type;
    return 0;
}
inline double HistoryDealGetDouble(ulong ticket, int property) {
    SimDeal *d = sim_find_deal(ticket);
    if (!d) return 0;
    if (property == DEAL_PRICE) return d->price;
    if (property == DEAL_VOLUME) return d->volume;
    if (property == DEAL_PROFIT) return d->profit;
    return 0;
}
inline string HistoryDealGetString(ulong ticket, int property) {
    SimDeal *d = sim_find_deal(ticket);
    if (!d) return "";
    if (property == DEAL_SYMBOL) return d->symbol;
    if (property == DEAL_COMMENT) return d->comment;
    return "";
}

#endif  // __MQL5__

// ------------------------------------------------------------------ MetaTrader 4
#ifdef __MQL4__

#define OP_BUY 0
#define OP_SELL 1
#define OP_BUYLIMIT 2
#define OP_SELLLIMIT 3
#define OP_BUYSTOP 4
#define OP_SELLSTOP 5
#define SELECT_BY_POS 0
#define SELECT_BY_TICKET 1
#define MODE_TRADES 0
#define MODE_HISTORY 1
#define MODE_BID 9
#define MODE_ASK 10
#define MODE_POINT 11
#define MODE_DIGITS 12
#define MODE_TICKVALUE 16
#define MODE_TICKSIZE 17
#define MODE_TRADEALLOWED 22
#define MODE_MINLOT 23
#define MODE_LOTSTEP 24
#define MODE_MAXLOT 25
#define clrNONE -1
#define ERR_NO_RESULT 1
#define ERR_COMMON_ERROR 2
#define ERR_INVALID_PRICE 129
#define ERR_INVALID_STOPS 130
#define ERR_INVALID_TRADE_VOLUME 131
#define ERR_TRADE_TIMEOUT 128
#define ERR_MARKET_CLOSED 132
#define ERR_TRADE_DISABLED 133
#define ERR_INVALID_TICKET 4108
#define ERR_TRADE_NOT_ALLOWED 4109
#define ERR_LONGS_NOT_ALLOWED 4110
#define ERR_SHORTS_NOT_ALLOWED 4111
#define ERR_TRADE_EXPERT_DISABLED_BY_SERVER 4112
#define ERR_UNKNOWN_SYMBOL 4106
enum { TERMINAL_BUILD };
inline long TerminalInfoInteger(int property) { return property == TERMINAL_BUILD ? 1420 : 0; }

inline double MarketInfo(const string &name, int mode) {
    SimSymbol *s = sim_symbol(name);
    if (!s) {
        shim_last_error() = ERR_UNKNOWN_SYMBOL;
        return 0;
    }
    if (mode == MODE_BID) return s->bid;
    if (mode == MODE_ASK) return s->ask;
    if (mode == MODE_DIGITS) return s->digits;
    if (mode == MODE_POINT) return std::pow(10.0, -s->digits);
    if (mode == MODE_TICKSIZE) return s->tick_size;
    if (mode == MODE_TICKVALUE) return s->tick_value;
    if (mode == MODE_TRADEALLOWED) return s->trade_mode == 0 ? 0 : 1;
    if (mode == MODE_MINLOT) return s->volume_min;
    if (mode == MODE_LOTSTEP) return s->volume_step;
    if (mode == MODE_MAXLOT) return s->volume_max;
    return 0;
}
inline bool SymbolSelect(const string &name, bool select) {
    SimSymbol *s = sim_symbol(name);
    if (!s) {
        shim_last_error() = ERR_UNKNOWN_SYMBOL;
        return false;
    }
    s->selected = select;
    return true;
}
inline bool RefreshRates() {
    sim_load_market();
    return true;
}
inline bool IsConnected() { return sim_connected(); }
inline bool IsExpertEnabled() { return sim_trade_allowed(); }
inline bool IsTradeAllowed() { return sim_trade_allowed(); }
inline bool IsTradeContextBusy() { return false; }

inline long &sim_selected() {
    static long value = 0;
    return value;
}

inline bool sim_mt4_check(SimSymbol *s, double volume) {
    if (!sim_trade_allowed()) {
        shim_last_error() = ERR_TRADE_NOT_ALLOWED;
        return false;
    }
    if (!s) {
        shim_last_error() = ERR_UNKNOWN_SYMBOL;
        return false;
    }
    if (s->trade_mode == 0) {
        shim_last_error() = ERR_TRADE_DISABLED;
        return false;
    }
    if (!s->open) {
        shim_last_error() = ERR_MARKET_CLOSED;
        return false;
    }
    if (!sim_volume_ok(*s, volume)) {
        shim_last_error() = ERR_INVALID_TRADE_VOLUME;
        return false;
    }
    return true;
}

inline int OrderSend(const string &symbol, int cmd, double volume, double price, int slippage, double stoploss,
                     double takeprofit, const string &comment, int magic, datetime expiration, int arrow) {
    (void)slippage;
    (void)expiration;
    (void)arrow;
    sim_before_trade("open");
    sim_load();
    SimSymbol *s = sim_symbol(symbol);
    if (!sim_mt4_check(s, volume)) return -1;
    SimTicket t;
    t.ticket = sim().next_ticket++;
    t.symbol = symbol;
    t.type = cmd;
    t.volume = volume;
    t.price = cmd == OP_BUY ? s->ask : cmd == OP_SELL ? s->bid : price;
    if (cmd > OP_SELLSTOP || (cmd > OP_SELL && price <= 0)) {
        shim_last_error() = ERR_INVALID_PRICE;
        return -1;
    }
    t.sl = stoploss;
    t.tp = takeprofit;
    t.magic = magic;
    t.comment = sim_comment(comment);
    t.open_time = sim_now();
    sim().tickets.push_back(t);
    sim_after_trade("open");
    if (sim_timed_out("open")) {
        shim_last_error() = ERR_TRADE_TIMEOUT;
        return -1;
    }
    return (int)t.ticket;
}

inline bool OrderSelect(int index, int select, int pool = MODE_TRADES) {
    sim_load();
    if (select == SELECT_BY_TICKET) {
        SimTicket *t = sim_ticket(index);
        if (!t) {
            shim_last_error() = ERR_INVALID_TICKET;
            return false;
        }
        sim_selected() = t->ticket;
        return true;
    }
    int i = 0;
    for (SimTicket &t : sim().tickets) {
        if ((pool == MODE_TRADES) != (t.state == 0)) continue;
        if (i == index) {
            sim_selected() = t.ticket;
            return true;
        }
        i++;
    }
    return false;
}
inline int OrdersTotal() {
    sim_load();
    int n = 0;
    for (const SimTicket &t : sim().tickets) n += t.state == 0;
    return n;
}
inline int OrdersHistoryTotal() {
    sim_load();
    int n = 0;
    for (const SimTicket &t : sim().tickets) n += t.state != 0;
    return n;
}
inline SimTicket &sim_current() {
    static SimTicket none;
    SimTicket *t = sim_ticket(sim_selected());
    return t ? *t : none;
}
inline int OrderTicket() { return (int)sim_current().ticket; }
inline int OrderType() { return sim_current().type; }
inline double OrderLots() { return sim_current().volume; }
inline double OrderOpenPrice() { return sim_current().price; }
inline double OrderClosePrice() { return sim_current().close_price; }
inline double OrderStopLoss() { return sim_current().sl; }
inline double OrderTakeProfit() { return sim_current().tp; }
inline double OrderProfit() { return sim_current().state == 0 ? sim_floating(sim_current()) : sim_current().profit; }
inline double OrderSwap() { return 0; }
inline double OrderCommission() { return 0; }
inline int OrderMagicNumber() { return (int)sim_current().magic; }
inline string OrderSymbol() { return sim_current().symbol; }
inline string OrderComment() { return sim_current().comment; }
inline datetime OrderOpenTime() { return sim_current().open_time; }
inline datetime OrderCloseTime() { return sim_current().close_time; }
inline datetime OrderExpiration() { return 0; }

inline bool OrderModify(int ticket, double price, double stoploss, double takeprofit, datetime expiration, int arrow) {
    (void)expiration;
    (void)arrow;
    SimTicket *t = sim_ticket(ticket);
    if (!t || t->state != 0) {
        shim_last_error() = ERR_INVALID_TICKET;
        return false;
    }
    if (!sim_trade_allowed()) {
        shim_last_error() = ERR_TRADE_NOT_ALLOWED;
        return false;
    }
    if (std::fabs(t->sl - stoploss) < 1e-12 && std::fabs(t->tp - takeprofit) < 1e-12 &&
        std::fabs(t->price - price) < 1e-12) {
        shim_last_error() = ERR_NO_RESULT;
        return false;
    }
    t->sl = stoploss;
    t->tp = takeprofit;
    if (t->type >= 2) t->price = price;
    sim_after_trade("modify");
    return true;
}

// A partial close leaves the rest under a new ticket, as MetaTrader 4's servers do.
inline bool OrderClose(int ticket, double lots, double price, int slippage, int arrow) {
    (void)slippage;
    (void)arrow;
    sim_before_trade("close");
    SimTicket *t = sim_ticket(ticket);
    if (!t || t->state != 0 || t->type > 1) {
        shim_last_error() = ERR_INVALID_TICKET;
        return false;
    }
    SimSymbol *s = sim_symbol(t->symbol);
    if (!sim_mt4_check(s, lots)) return false;
    if (lots > t->volume + 1e-9) {
        shim_last_error() = ERR_INVALID_TRADE_VOLUME;
        return false;
    }
    double close_price = t->type == OP_BUY ? s->bid : s->ask;
    (void)price;
    double rest = std::round((t->volume - lots) * 1e8) / 1e8;
    SimTicket remainder = *t;
    t->volume = lots;
    t->state = 1;
    t->close_price = close_price;
    t->close_time = sim_now();
    t->profit = sim_profit(*t, close_price, lots);
    if (rest > 1e-9) {
        remainder.ticket = sim().next_ticket++;
        remainder.volume = rest;
        remainder.comment = "from #" + std::to_string(ticket);
        sim_ticket(ticket)->comment = "to #" + std::to_string(remainder.ticket);
        sim().tickets.push_back(remainder);
    }
    sim_after_trade("close");
    return true;
}

inline bool OrderDelete(int ticket, int arrow) {
    (void)arrow;
    SimTicket *t = sim_ticket(ticket);
    if (!t || t->state != 0 || t->type < 2) {
        shim_last_error() = ERR_INVALID_TICKET;
        return false;
    }
    t->state = 2;
    t->close_time = sim_now();
    sim_after_trade("delete");
    return true;
}

#endif  // __MQL4__
