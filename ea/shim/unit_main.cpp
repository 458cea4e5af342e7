// Drives SignalBridge's shared include files from the command line for the unit tests
// (tests/test_ea_mql.py): one command per call, its result on stdout.
#include "mql_shim.hpp"

#include <SignalBridge/Sha256.mqh>
#include <SignalBridge/Signing.mqh>
#include <SignalBridge/Json.mqh>
#include <SignalBridge/Instruction.mqh>
#include <SignalBridge/Volume.mqh>
#include <SignalBridge/Stops.mqh>
#include <SignalBridge/Clock.mqh>
#include <SignalBridge/ReportId.mqh>
#include <SignalBridge/Journal.mqh>
#include <SignalBridge/Http.mqh>

static MqlArray<uchar> from_hex(const string &hex) {
    MqlArray<uchar> out;
    for (size_t i = 0; i + 1 < hex.size(); i += 2)
        out.items.push_back((uchar)std::strtoul(hex.substr(i, 2).c_str(), nullptr, 16));
    return out;
}

static string unescape(const string &text) {
    string out;
    for (size_t i = 0; i < text.size(); i++) {
        if (text[i] == '\\' && i + 1 < text.size()) {
            char e = text[++i];
            out += e == 'n' ? '\n' : e == 'r' ? '\r' : e == 't' ? '\t' : e;
        } else {
            out += text[i];
        }
    }
    return out;
}

static string show(const string &text) { return SbJsonQuote(text); }

static void dump_journal(SbJournal &journal) {
    for (int i = 0; i < ArraySize(journal.entries); i++) {
        SbEntry &e = journal.entries[i];
        std::printf("E %s %s %s %s %d %ld %d %s %s %s %s %s %s %ld %ld\n", e.id.c_str(), e.signal_id.c_str(),
                    e.action.c_str(), e.symbol.c_str(), e.state, e.ticket, e.ticket_kind, show(e.comment).c_str(),
                    DoubleToString(e.volume, 8).c_str(), DoubleToString(e.part, 8).c_str(),
                    DoubleToString(e.price, 8).c_str(), DoubleToString(e.stop_loss, 8).c_str(),
                    DoubleToString(e.take_profit, 8).c_str(), (long)e.updated, (long)e.trading_since);
    }
    for (int i = 0; i < ArraySize(journal.outbox); i++) {
        SbOutgoing &r = journal.outbox[i];
        std::printf("R %s %s %s %s\n", r.report_id.c_str(), r.kind.c_str(), r.instruction_id.c_str(),
                    show(r.body).c_str());
    }
}

static void dump_holdings(SbJournal &journal) {
    for (int i = 0; i < ArraySize(journal.holdings); i++) {
        SbHolding &h = journal.holdings[i];
        std::printf("H %s %s %d %s %s %s %d %ld %s %s %s %s %s %d %d %d %d %d %d %d\n", h.instruction_id.c_str(),
                    h.signal_id.c_str(), h.leg, h.symbol.c_str(), h.side.c_str(), h.order_type.c_str(), h.kind, h.ticket,
                    show(h.comment).c_str(), DoubleToString(h.volume, 8).c_str(), DoubleToString(h.price, 8).c_str(),
                    DoubleToString(h.stop_loss, 8).c_str(), DoubleToString(h.take_profit, 8).c_str(), h.be_after_leg,
                    h.be_offset, h.trail_distance, h.trail_step, h.trail_after_be, h.be_armed, h.be_done);
    }
}

int main(int argc, char **argv) {
    std::vector<string> a(argv + 1, argv + argc);
    if (a.empty()) return 2;
    const string &cmd = a[0];
    if (cmd == "sha256" && a.size() == 2) {
        MqlArray<uchar> digest;
        SbSha256(from_hex(a[1]), digest);
        std::printf("%s\n", SbHex(digest).c_str());
    } else if (cmd == "hmac" && a.size() == 3) {
        MqlArray<uchar> digest;
        SbHmacSha256(from_hex(a[1]), from_hex(a[2]), digest);
        std::printf("%s\n", SbHex(digest).c_str());
    } else if (cmd == "canonical" && a.size() == 6) {
        std::printf("%s", SbCanonicalString(a[1], a[2], a[3], a[4], from_hex(a[5])).c_str());
    } else if (cmd == "sign" && a.size() == 7) {
        std::printf("%s\n", SbSignRequest(a[1], a[2], a[3], a[4], a[5], from_hex(a[6])).c_str());
    } else if (cmd == "selftest") {
        string problem;
        bool ok = SbSigningSelfTest(problem);
        std::printf("%s %s\n", ok ? "ok" : "failed", problem.c_str());
        return ok ? 0 : 1;
    } else if (cmd == "nonce" && a.size() == 2) {
        for (int i = 0; i < std::atoi(a[1].c_str()); i++)
            std::printf("%s\n", SbNewNonce("dev_AAAAAAAAAAAAAAAA", (ulong)i).c_str());
    } else if (cmd == "json" && a.size() == 2) {
        SbJson json;
        bool ok = json.Parse(a[1]);
        std::printf("%s %s\n", ok ? "ok" : "error", json.Error().c_str());
    } else if (cmd == "quote" && a.size() == 2) {
        std::printf("%s\n", SbJsonQuote(a[1]).c_str());
    } else if (cmd == "parse" && a.size() == 2) {
        SbJson json;
        if (!json.Parse(a[1])) {
            std::printf("json-error %s\n", json.Error().c_str());
            return 0;
        }
        SbInstruction ins;
        string problem;
        bool ok = SbParseInstruction(json, json.Root(), ins, problem);
        std::printf("%s\n", ok ? "ok" : ("malformed " + problem).c_str());
        std::printf("id=%s\nsignal_id=%s\naction=%s\nsymbol=%s\nside=%s\norder_type=%s\n", ins.id.c_str(),
                    ins.signal_id.c_str(), ins.action.c_str(), ins.symbol.c_str(), ins.side.c_str(),
                    ins.order_type.c_str());
        std::printf("entry=%s\nstop_loss=%s\ntake_profit=%s\nvolume=%s\nfraction=%s\n",
                    DoubleToString(ins.entry, 8).c_str(), DoubleToString(ins.stop_loss, 8).c_str(),
                    DoubleToString(ins.take_profit, 8).c_str(), DoubleToString(ins.volume, 8).c_str(),
                    DoubleToString(ins.fraction, 8).c_str());
        std::printf("comment=%s\nissued_at=%ld\nexpires_at=%ld\n", show(ins.comment).c_str(), (long)ins.issued_at,
                    (long)ins.expires_at);
        string take_profits, legs;
        for (int i = 0; i < ArraySize(ins.take_profits); i++)
            take_profits += (i ? "," : "") + DoubleToString(ins.take_profits[i], 5);
        for (int i = 0; i < ins.Legs(); i++)
            legs += (i ? "," : "") + DoubleToString(ins.leg_take_profit[i], 5) + "@" + DoubleToString(ins.leg_share[i], 4);
        std::printf("take_profits=%s\nsizing=%s %s %s %s %s %s\nlegs=%s\n", take_profits.c_str(), ins.sizing_mode.c_str(),
                    DoubleToString(ins.sizing_lots, 2).c_str(), DoubleToString(ins.sizing_percent, 2).c_str(),
                    ins.sizing_of_equity ? "equity" : "balance", DoubleToString(ins.sizing_amount, 2).c_str(),
                    DoubleToString(ins.sizing_max_lots, 2).c_str(), legs.c_str());
        std::printf("breakeven=%d %d\ntrailing=%d %d %s\nguards=%d %s %d\n", ins.be_after_leg, ins.be_offset,
                    ins.trail_distance, ins.trail_step, ins.trail_after_be ? "after_breakeven" : "at_open", ins.max_spread,
                    DoubleToString(ins.reference_price, 5).c_str(), ins.max_distance);
    } else if (cmd == "volume" && a.size() == 5) {
        string note;
        double v = SbOpenVolume(std::atof(a[1].c_str()), std::atof(a[2].c_str()), std::atof(a[3].c_str()),
                                std::atof(a[4].c_str()), note);
        std::printf("%s\n%s\n", DoubleToString(v, 8).c_str(), note.c_str());
    } else if (cmd == "closevolume" && a.size() == 5) {
        double v = SbCloseVolume(std::atof(a[1].c_str()), std::atof(a[2].c_str()), std::atof(a[3].c_str()),
                                 std::atof(a[4].c_str()));
        std::printf("%s\n", DoubleToString(v, 8).c_str());
    } else if (cmd == "risklots" && a.size() == 9) {
        // risklots RISK PRICE STOP_LOSS TICK_SIZE TICK_VALUE STEP MAX_LOTS MAXIMUM
        double v = SbRiskLots(std::atof(a[1].c_str()), std::atof(a[2].c_str()), std::atof(a[3].c_str()),
                              std::atof(a[4].c_str()), std::atof(a[5].c_str()), std::atof(a[6].c_str()),
                              std::atof(a[7].c_str()), std::atof(a[8].c_str()));
        std::printf("%s\n", DoubleToString(v, 8).c_str());
    } else if (cmd == "legs" && a.size() >= 5) {
        // legs VOLUME MINIMUM STEP SHARE...
        MqlArray<double> shares, volumes;
        for (size_t i = 4; i < a.size(); i++) shares.items.push_back(std::atof(a[i].c_str()));
        int kept = SbLegVolumes(std::atof(a[1].c_str()), shares, std::atof(a[2].c_str()), std::atof(a[3].c_str()), volumes);
        std::printf("%d", kept);
        for (int i = 0; i < ArraySize(volumes); i++) std::printf(" %s", DoubleToString(volumes[i], 8).c_str());
        std::printf("\n");
    } else if (cmd == "trail" && a.size() == 9) {
        // trail buy|sell BID ASK STOP_LOSS DISTANCE STEP POINT DIGITS
        double v = SbTrailStop(a[1] == "buy", std::atof(a[2].c_str()), std::atof(a[3].c_str()), std::atof(a[4].c_str()),
                               std::atoi(a[5].c_str()), std::atoi(a[6].c_str()), std::atof(a[7].c_str()),
                               std::atoi(a[8].c_str()));
        std::printf("%s\n", DoubleToString(v, 8).c_str());
    } else if (cmd == "breakeven" && a.size() == 7) {
        // breakeven buy|sell OPEN STOP_LOSS OFFSET POINT DIGITS
        double v = SbBreakevenStop(a[1] == "buy", std::atof(a[2].c_str()), std::atof(a[3].c_str()),
                                   std::atoi(a[4].c_str()), std::atof(a[5].c_str()), std::atoi(a[6].c_str()));
        std::printf("%s\n", DoubleToString(v, 8).c_str());
    } else if (cmd == "reportid" && a.size() == 3) {
        std::printf("%s\n", SbReportId(a[1], a[2]).c_str());
    } else if (cmd == "clock" && a.size() == 3) {
        SbClock clock;
        bool learned = clock.LearnFromHeaders(unescape(a[1]), (datetime)std::atol(a[2].c_str()));
        std::printf("%s %ld %ld\n", learned ? "learned" : "unknown", clock.Offset(),
                    (long)clock.At((datetime)std::atol(a[2].c_str())));
    } else if (cmd == "isotime" && a.size() == 2) {
        std::printf("%s\n", SbIsoTime((datetime)std::atol(a[1].c_str())).c_str());
    } else if (cmd == "parsetime" && a.size() == 2) {
        datetime value = 0;
        bool ok = SbParseIsoTime(a[1], value);
        std::printf("%s %ld\n", ok ? "ok" : "error", (long)value);
    } else if (cmd == "url" && a.size() == 2) {
        string origin, prefix;
        bool ok = SbSplitUrl(a[1], origin, prefix);
        std::printf("%s %s %s\n", ok ? "ok" : "error", origin.c_str(), prefix.c_str());
    } else if (cmd == "journal-add" && a.size() >= 4) {
        // journal-add DEVICE entry ID SIGNAL ACTION SYMBOL STATE TICKET KIND COMMENT
        // journal-add DEVICE report REPORT_ID KIND INSTRUCTION_ID BODY
        // journal-add DEVICE remove REPORT_ID
        SbJournal journal;
        if (!journal.Open(a[1])) {
            std::printf("open-error %s\n", journal.Error().c_str());
            return 1;
        }
        if (a[2] == "entry" && a.size() == 11) {
            int e = journal.Add(a[3], a[4], a[5], a[6], TimeGMT());
            journal.entries[e].state = std::atoi(a[7].c_str());
            journal.entries[e].ticket = std::atol(a[8].c_str());
            journal.entries[e].ticket_kind = std::atoi(a[9].c_str());
            journal.entries[e].comment = unescape(a[10]);
            journal.entries[e].volume = 0.25;
            journal.entries[e].price = 1.08512;
            journal.entries[e].stop_loss = 1.08;
            journal.entries[e].take_profit = 1.095;
            journal.entries[e].trading_since = 1767225600;
        } else if (a[2] == "holding" && a.size() == 9) {
            // journal-add DEVICE holding INSTRUCTION SIGNAL LEG KIND TICKET COMMENT
            int h = journal.AddHolding(a[3], a[4], std::atoi(a[5].c_str()), "EURUSD.m");
            journal.holdings[h].kind = std::atoi(a[6].c_str());
            journal.holdings[h].ticket = std::atol(a[7].c_str());
            journal.holdings[h].comment = unescape(a[8]);
            journal.holdings[h].side = "sell";
            journal.holdings[h].order_type = "limit";
            journal.holdings[h].volume = 0.3;
            journal.holdings[h].price = 1.1;
            journal.holdings[h].stop_loss = 1.12;
            journal.holdings[h].take_profit = 1.05;
            journal.holdings[h].be_after_leg = 0;
            journal.holdings[h].be_offset = 10;
            journal.holdings[h].trail_distance = 200;
            journal.holdings[h].trail_step = 50;
            journal.holdings[h].trail_after_be = 1;
            journal.holdings[h].be_armed = 1;
            journal.holdings[h].closed_at = TimeGMT();
        } else if (a[2] == "report" && a.size() == 7) {
            journal.Queue(a[3], a[4], a[5], a[6]);
        } else if (a[2] == "remove" && a.size() == 4) {
            journal.Remove(a[3]);
        } else {
            return 2;
        }
        if (!journal.Save(TimeGMT())) return 1;
        dump_journal(journal);
    } else if ((cmd == "journal-dump" || cmd == "journal-holdings") && a.size() == 2) {
        SbJournal journal;
        if (!journal.Open(a[1])) {
            std::printf("open-error %s\n", journal.Error().c_str());
            return 1;
        }
        if (cmd == "journal-dump")
            dump_journal(journal);
        else
            dump_holdings(journal);
    } else {
        std::fprintf(stderr, "unknown command\n");
        return 2;
    }
    return 0;
}
