// Runs a translated SignalBridge.mq5 / .mq4 the way a terminal does: OnInit, then OnTimer
// at the timer's interval until SIGTERM, $SB_STOP_FILE appears or $SB_RUN_SECONDS pass,
// then OnDeinit; the simulated trade server works before each OnTimer (and MT5's EA gets
// OnTradeTransaction when it changed something). The inputs come from the environment (SB_SERVER_URL, SB_DEVICE_ID,
// SB_SECRET, SB_MAGIC, SB_POLL_WAIT, SB_SLIPPAGE, SB_MAX_AGE, SB_LOG_DETAIL).
// Built with -DSB_EA_SOURCE='"<translated file>"' and -D__MQL5__ or -D__MQL4__.
#include <csignal>

#include "mql_shim.hpp"
#include "broker_sim.hpp"

#include SB_EA_SOURCE

static volatile std::sig_atomic_t g_stop = 0;

// What the trade server did by itself reaches an MT5 EA as a trade transaction (MT4 has
// none: its EA finds the change at its next timer).
static void trade_event() {
#ifdef __MQL5__
    MqlTradeTransaction transaction;
    ZeroMemory(transaction);
    transaction.type = TRADE_TRANSACTION_DEAL_ADD;
    MqlTradeRequest request;
    MqlTradeResult result;
    ZeroMemory(request);
    ZeroMemory(result);
    OnTradeTransaction(transaction, request, result);
#endif
}
static void on_signal(int) { g_stop = 1; }

static string env(const char *name, const char *fallback) {
    const char *value = std::getenv(name);
    return value ? value : fallback;
}

int main() {
    std::signal(SIGTERM, on_signal);
    std::signal(SIGINT, on_signal);
    std::srand((unsigned)(std::time(nullptr) ^ getpid()));
    ServerUrl = env("SB_SERVER_URL", "");
    DeviceId = env("SB_DEVICE_ID", "");
    Secret = env("SB_SECRET", "");
    MagicNumber = std::atol(env("SB_MAGIC", "20260113").c_str());
    PollWaitSeconds = std::atoi(env("SB_POLL_WAIT", "1").c_str());
    SlippagePoints = std::atoi(env("SB_SLIPPAGE", "20").c_str());
    MaxAgeSeconds = std::atoi(env("SB_MAX_AGE", "120").c_str());
    LogDetail = (ENUM_SB_LOG_DETAIL)std::atoi(env("SB_LOG_DETAIL", "2").c_str());
    string stop_file = env("SB_STOP_FILE", "");
    double seconds = std::atof(env("SB_RUN_SECONDS", "60").c_str());

    sim_load();
    sim_tick();  // what the trade server did while the terminal was off
    int rc = OnInit();
    std::printf("harness: OnInit returned %d\n", rc);
    std::fflush(stdout);
    if (rc != INIT_SUCCEEDED) return 3;
    auto start = std::chrono::steady_clock::now();
    while (!g_stop) {
        struct stat info;
        if (!stop_file.empty() && stat(stop_file.c_str(), &info) == 0) break;
        double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        if (elapsed > seconds) break;
        if (sim_tick()) trade_event();
        OnTimer();
        int interval = shim_timer_ms() > 0 ? shim_timer_ms() : 1000;
        usleep((useconds_t)interval * 1000);
    }
    shim_stopped() = true;
    OnDeinit(REASON_REMOVE);
    std::printf("harness: stopped\n");
    return 0;
}
