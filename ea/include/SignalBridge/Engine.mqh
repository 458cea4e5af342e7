//+------------------------------------------------------------------+
//| SignalBridge/Engine.mqh                                          |
//| The EA's loop: poll the instructions, journal each one, ack it,  |
//| execute it through the platform's Broker file (v1.1: sized, one  |
//| position per leg, guarded), report the fill or the error, manage |
//| its positions on the broker's side (breakeven, trailing), report |
//| the closes the server did not order and the stop-loss moves, and |
//| send the device state; after a restart reconcile the journal     |
//| with the terminal before anything else. Include a Broker file    |
//| first (BrokerMT5.mqh or BrokerMT4.mqh).                          |
//+------------------------------------------------------------------+
#ifndef SB_ENGINE_MQH
#define SB_ENGINE_MQH

#include <SignalBridge/Log.mqh>
#include <SignalBridge/Json.mqh>
#include <SignalBridge/Signing.mqh>
#include <SignalBridge/Clock.mqh>
#include <SignalBridge/Http.mqh>
#include <SignalBridge/Instruction.mqh>
#include <SignalBridge/Volume.mqh>
#include <SignalBridge/ReportId.mqh>
#include <SignalBridge/Journal.mqh>
#include <SignalBridge/Broker.mqh>
#include <SignalBridge/Stops.mqh>

#define SB_VERSION "1.1.0"
#define SB_TIMER_MS 500
#define SB_MAX_BACKOFF_S 60
#define SB_REPORT_TIMEOUT_MS 15000
#define SB_MAX_MESSAGE 400
#define SB_STATE_EVERY_MS 60000      // the device state at least this often
#define SB_STATE_AFTER_MS 2000       // and after a trade event, no more often than this
#define SB_SL_EVENT_EVERY_S 10       // one sl_moved per position per this many seconds
#define SB_MANAGED_WAIT_S 1          // the longest poll wait while a stop is managed
#define SB_MANAGE_PAUSE_MS 10000     // after a refused stop move, before the next try
#define SB_STATE_MAX_POSITIONS 200   // what the server takes in one state
#define SB_STATE_MAX_SYMBOLS 100
//--- after a restart, how long the terminal may take to show a trade the EA was making
//--- when it stopped, before the EA concludes there is none
#ifndef SB_RECONCILE_GRACE_S
#define SB_RECONCILE_GRACE_S 30
#endif

//--- value as a decimal string with at most digits decimals and no trailing zeros
string SbDecimal(const double value, const int digits)
  {
   string text = DoubleToString(value, digits);
   if(StringFind(text, ".") < 0)
      return text;
   int end = StringLen(text);
   while(end > 0 && StringGetCharacter(text, end - 1) == '0')
      end--;
   if(end > 0 && StringGetCharacter(text, end - 1) == '.')
      end--;
   text = StringSubstr(text, 0, end);
   if(text == "-0")
      text = "0";
   return text;
  }

//--- dev_ and 16-32 letters and digits
bool SbValidDeviceId(const string id)
  {
   int length = StringLen(id);
   if(length < 20 || length > 36 || StringSubstr(id, 0, 4) != "dev_")
      return false;
   for(int i = 4; i < length; i++)
     {
      ushort c = StringGetCharacter(id, i);
      if(!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
         return false;
     }
   return true;
  }

//--- 32-64 characters of [A-Za-z0-9_-]
bool SbValidSecret(const string secret)
  {
   int length = StringLen(secret);
   if(length < 32 || length > 64)
      return false;
   for(int i = 0; i < length; i++)
      if(!SbIsIdChar(StringGetCharacter(secret, i)))
         return false;
   return true;
  }

//--- a report id's step for a leg: "fill" for an open without legs, "fill1" for leg 1
string SbLegStep(const string step, const int leg)
  {
   return leg < 0 ? step : step + IntegerToString(leg);
  }

//--- prices as a comma list (a modify's take profits in the journal) and back
string SbPriceList(const double &prices[])
  {
   string text = "";
   for(int i = 0; i < ArraySize(prices); i++)
      text += (i > 0 ? "," : "") + DoubleToString(prices[i], 10);
   return text;
  }

void SbReadPriceList(const string text, double &prices[])
  {
   string parts[];
   int count = text == "" ? 0 : StringSplit(text, ',', parts);
   ArrayResize(prices, count);
   for(int i = 0; i < count; i++)
      prices[i] = StringToDouble(parts[i]);
  }

class SbEngine
  {
private:
   SbHttp            m_http;
   SbJournal         m_journal;
   string            m_device;
   long              m_magic;
   int               m_wait;
   int               m_slippage;
   int               m_max_age;
   int               m_lock;
   bool              m_ready;
   uint              m_resume_ms;      // GetTickCount() before which the loop waits (backoff)
   bool              m_backing_off;
   int               m_backoff_s;
   datetime          m_started;
   string            m_last_refusal;
   bool              m_told_disconnected;
   int               m_server_wait;    // the server's poll_wait (-1: not told yet)
   bool              m_old_server;     // the server has no /api/v1/ea/state: protocol 1.0
   bool              m_state_sent;     // a state went out since the start
   bool              m_state_due;      // a trade event since the last state
   uint              m_state_ms;       // GetTickCount() of the last state sent (or tried)
   uint              m_manage_resume_ms; // stop moves wait until then after a refusal
   bool              m_manage_paused;

   //------------------------------------------------------------ reports

   void              QueueAck(const string instruction_id)
     {
      SbJsonObject body;
      string report_id = SbReportId(instruction_id, SB_STEP_ACK);
      body.Str("report_id", report_id);
      body.Str("instruction_id", instruction_id);
      m_journal.Queue(report_id, "ack", instruction_id, body.Text());
     }

   void              QueueFill(const string instruction_id, const int leg, const string symbol, SbTradeResult &result)
     {
      int digits = SbSymbolDigits(symbol);
      SbJsonObject body;
      string report_id = SbReportId(instruction_id, SbLegStep(SB_STEP_FILL, leg));
      body.Str("report_id", report_id);
      body.Str("instruction_id", instruction_id);
      body.Int("ticket", result.ticket);
      body.Str("price", SbDecimal(result.price, digits > 0 ? digits : 8));
      body.Str("volume", SbDecimal(result.volume, 8));
      if(result.has_profit)
         body.Str("profit", SbDecimal(result.profit, 2));
      body.Str("executed_at", SbIsoTime(m_http.clock.Now()));
      if(leg >= 0)
         body.Int("leg", leg);
      m_journal.Queue(report_id, "fill", instruction_id, body.Text());
      m_state_due = true;
      SbLogInfo("report", "fill of " + instruction_id + (leg >= 0 ? " leg " + IntegerToString(leg) : "") + " queued: ticket " +
                IntegerToString(result.ticket) + ", price " + SbDecimal(result.price, digits) + ", volume " + SbDecimal(result.volume, 8) +
                (result.has_profit ? ", profit " + SbDecimal(result.profit, 2) : ""));
     }

   void              QueueError(const string instruction_id, const int leg, const int code, const string message)
     {
      SbJsonObject body;
      string report_id = SbReportId(instruction_id, SbLegStep(SB_STEP_ERROR, leg));
      body.Str("report_id", report_id);
      body.Str("instruction_id", instruction_id);
      body.Int("code", code);
      body.Str("message", StringSubstr(message, 0, SB_MAX_MESSAGE));
      m_journal.Queue(report_id, "error", instruction_id, body.Text());
      SbLogError("report", "error " + IntegerToString(code) + " for " + instruction_id + (leg >= 0 ? " leg " + IntegerToString(leg) : "") +
                 " queued: " + message);
     }

   //--- a position event of section 5.4 (not to a server of protocol 1.0, which has no
   //--- endpoint for it); its report id is derived from the open, the leg and the event
   void              QueueEvent(const int h, const string step, const string event, const string fields)
     {
      if(m_old_server)
         return;
      string instruction_id = m_journal.holdings[h].instruction_id;
      SbJsonObject body;
      string report_id = SbReportId(instruction_id, step);
      body.Str("report_id", report_id);
      body.Str("instruction_id", instruction_id);
      if(m_journal.holdings[h].leg >= 0)
         body.Int("leg", m_journal.holdings[h].leg);
      body.Int("ticket", m_journal.holdings[h].ticket);
      body.Str("event", event);
      string text = body.Text();
      text = StringSubstr(text, 0, StringLen(text) - 1) + fields + ",\"executed_at\":" + SbJsonQuote(SbIsoTime(m_http.clock.Now())) + "}";
      m_journal.Queue(report_id, "event", instruction_id, text);
      m_state_due = true;
     }

   bool              Save(void)
     {
      if(m_journal.Save(m_http.clock.Now()))
         return true;
      SbLogAlert("journal", "the journal " + m_journal.Name() + " cannot be saved; the EA stops trading until it can");
      return false;
     }

   void              Backoff(void)
     {
      m_backoff_s = m_backoff_s <= 0 ? 1 : (int)MathMin(SB_MAX_BACKOFF_S, m_backoff_s * 2);
      m_resume_ms = GetTickCount() + (uint)(m_backoff_s * 1000);
      m_backing_off = true;
      SbLogInfo("network", "retrying in " + IntegerToString(m_backoff_s) + " s");
     }

   //--- a request that did not succeed: the reason in the log (and an Alert when the
   //--- owner must act), then the loop backs off
   void              Refused(const string what, const int status, const string response)
     {
      string text;
      bool alert = false;
      if(status == SB_HTTP_NOT_ALLOWED)
         text = "waiting for WebRequest to be allowed for " + m_http.Origin();
      else if(status == SB_HTTP_NETWORK)
         text = what + ": no answer from " + m_http.Origin() + " (WebRequest error " + IntegerToString(m_http.LastError()) + ")";
      else
        {
         string code = SbErrorCode(response);
         text = what + ": HTTP " + IntegerToString(status) + " " + code + ": " + SbErrorMessage(response);
         alert = code == "invalid_signature" || code == "missing_credentials" || code == "stale_timestamp";
        }
      if(alert && text != m_last_refusal)
         SbLogAlert("server", text);
      else
         SbLogError("network", text);
      m_last_refusal = text;
      Backoff();
     }

   //--- sends the queued reports, oldest first; false when the server could not be reached
   bool              Flush(void)
     {
      while(ArraySize(m_journal.outbox) > 0)
        {
         string report_id = m_journal.outbox[0].report_id;
         string kind = m_journal.outbox[0].kind;
         string response;
         int status = m_http.Send("POST", "/api/v1/exec/" + kind, m_journal.outbox[0].body, SB_REPORT_TIMEOUT_MS, response);
         if(status == 200 || status == 201)
           {
            SbLogInfo("report", kind + " " + report_id + " accepted (" + (status == 200 ? "duplicate of one already stored" : "stored") + ")");
            m_journal.Remove(report_id);
            Save();
            continue;
           }
         if(status == 400 || status == 404 || status == 409 || status == 413 || status == 422)
           {
            // Sending it again would get the same answer: say so and let it go.
            SbLogAlert("report", kind + " " + report_id + " refused for good: HTTP " + IntegerToString(status) + " " +
                       SbErrorCode(response) + ": " + SbErrorMessage(response));
            m_journal.Remove(report_id);
            Save();
            continue;
           }
         Refused("report " + report_id, status, response);
         return false;
        }
      return true;
     }

   //------------------------------------------------------------ the device state (5.1)

   bool              StateDue(void)
     {
      uint since = GetTickCount() - m_state_ms;
      return !m_state_sent || since >= SB_STATE_EVERY_MS || (m_state_due && since >= SB_STATE_AFTER_MS);
     }

   //--- the symbols this EA trades for signals: of its holdings and its opens
   void              TradedSymbols(string &symbols[])
     {
      ArrayResize(symbols, 0);
      for(int i = 0; i < ArraySize(m_journal.holdings) + ArraySize(m_journal.entries); i++)
        {
         string name = i < ArraySize(m_journal.holdings) ? m_journal.holdings[i].symbol :
                       (m_journal.entries[i - ArraySize(m_journal.holdings)].action == "open" ? m_journal.entries[i - ArraySize(m_journal.holdings)].symbol : "");
         bool known = name == "";
         for(int j = 0; j < ArraySize(symbols) && !known; j++)
            known = symbols[j] == name;
         if(known)
            continue;
         ArrayResize(symbols, ArraySize(symbols) + 1);
         symbols[ArraySize(symbols) - 1] = name;
        }
     }

   string            StateBody(void)
     {
      SbAccountData account;
      SbBrokerAccount(account);
      SbJsonObject ea;
      ea.Str("name", "SignalBridge");
      ea.Str("version", SB_VERSION);
      ea.Str("platform", SB_PLATFORM);
      ea.Int("build", TerminalInfoInteger(TERMINAL_BUILD));
      SbJsonObject figures;
      figures.Str("currency", account.currency);
      figures.Str("balance", SbDecimal(account.balance, 2));
      figures.Str("equity", SbDecimal(account.equity, 2));
      figures.Str("margin_free", SbDecimal(account.margin_free, 2));
      figures.Int("leverage", account.leverage);
      figures.Raw("trade_allowed", account.trade_allowed ? "true" : "false");
      if(account.company != "")
         figures.Str("company", account.company);
      if(account.server != "")
         figures.Str("server", account.server);
      string positions = "";
      int count = 0;
      for(int h = 0; h < ArraySize(m_journal.holdings); h++)
        {
         if(m_journal.holdings[h].kind != SB_TICKET_POSITION || m_journal.holdings[h].side == "" || count >= SB_STATE_MAX_POSITIONS)
            continue;
         count++;
         int digits = SbSymbolDigits(m_journal.holdings[h].symbol);
         SbJsonObject position;
         position.Int("ticket", m_journal.holdings[h].ticket);
         position.Str("instruction_id", m_journal.holdings[h].instruction_id);
         position.Int("leg", m_journal.holdings[h].leg < 0 ? 0 : m_journal.holdings[h].leg);
         position.Str("symbol", m_journal.holdings[h].symbol);
         position.Str("side", m_journal.holdings[h].side);
         position.Str("volume", SbDecimal(m_journal.holdings[h].volume, 8));
         position.Str("open_price", SbDecimal(m_journal.holdings[h].price, digits));
         if(m_journal.holdings[h].stop_loss > 0)
            position.Str("stop_loss", SbDecimal(m_journal.holdings[h].stop_loss, digits));
         if(m_journal.holdings[h].take_profit > 0)
            position.Str("take_profit", SbDecimal(m_journal.holdings[h].take_profit, digits));
         position.Str("profit", SbDecimal(SbBrokerProfit(m_journal.holdings[h].ticket), 2));
         positions += (positions == "" ? "" : ",") + position.Text();
        }
      string names[];
      TradedSymbols(names);
      string symbols = "";
      count = 0;
      for(int i = 0; i < ArraySize(names) && count < SB_STATE_MAX_SYMBOLS; i++)
        {
         SbSymbolData data;
         if(!SbBrokerSymbol(names[i], data) || data.tick_size <= 0 || data.tick_value <= 0 || data.volume_min <= 0 ||
            data.volume_step <= 0 || data.volume_max <= 0)
            continue;
         count++;
         SbJsonObject symbol;
         symbol.Str("name", names[i]);
         symbol.Str("tick_size", SbDecimal(data.tick_size, 10));
         symbol.Str("tick_value", SbDecimal(data.tick_value, 8));
         symbol.Str("volume_min", SbDecimal(data.volume_min, 8));
         symbol.Str("volume_step", SbDecimal(data.volume_step, 8));
         symbol.Str("volume_max", SbDecimal(data.volume_max, 8));
         symbols += (symbols == "" ? "" : ",") + symbol.Text();
        }
      SbJsonObject body;
      body.Str("protocol", "1.1");
      body.Raw("ea", ea.Text());
      body.Raw("account", figures.Text());
      body.Raw("positions", "[" + positions + "]");
      body.Raw("symbols", "[" + symbols + "]");
      return body.Text();
     }

   //--- POST /api/v1/ea/state; the answer's poll_wait is the wait of the next polls. A
   //--- failure is tried again later and holds nothing else up.
   void              SendState(void)
     {
      m_state_ms = GetTickCount();
      m_state_sent = true;
      m_state_due = false;
      string response;
      int status = m_http.Send("POST", "/api/v1/ea/state", StateBody(), SB_REPORT_TIMEOUT_MS, response);
      if(status == 200)
        {
         if(m_old_server)
            SbLogInfo("setup", "the server now takes the device state (protocol 1.1)");
         m_old_server = false;
         SbJson json;
         int wait = -1;
         if(json.Parse(response) && json.MemberType(json.Root(), "poll_wait") == SB_JSON_NUMBER)
            wait = (int)StringToInteger(json.MemberText(json.Root(), "poll_wait"));
         if(wait >= 0 && wait <= 25 && wait != m_server_wait)
            SbLogInfo("poll", "the server suggests polls of " + IntegerToString(wait) + " s; this EA waits at most " +
                      IntegerToString(MathMin(wait, m_wait)) + " s (PollWaitSeconds " + IntegerToString(m_wait) + ")");
         if(wait >= 0 && wait <= 25)
            m_server_wait = wait;
         SbLogDebug("state", "sent");
         return;
        }
      if(status == 404 || status == 405)
        {
         if(!m_old_server)
            SbLogInfo("setup", "the server speaks protocol 1.0 (no device state): the EA trades as a 1.0 device and reports no position events");
         m_old_server = true;
         return;
        }
      if(status == SB_HTTP_NETWORK || status == SB_HTTP_NOT_ALLOWED || status >= 500)
        {
         SbLogDebug("state", "not sent (" + IntegerToString(status) + "); tried again later");
         m_state_due = true;
         return;
        }
      SbLogError("state", "HTTP " + IntegerToString(status) + " " + SbErrorCode(response) + ": " + SbErrorMessage(response));
     }

   //--- the wait of the next poll: PollWaitSeconds, shorter when the server says so (its
   //--- 0, "something is pending", counts for one poll), and short while a stop is managed
   //--- (WebRequest blocks the EA's only thread meanwhile)
   int               PollWait(void)
     {
      int wait = m_wait;
      if(m_server_wait >= 0 && m_server_wait < wait)
         wait = m_server_wait;
      if(m_server_wait == 0)
         m_server_wait = -1;
      for(int h = 0; h < ArraySize(m_journal.holdings); h++)
         if(m_journal.holdings[h].Managed() && wait > SB_MANAGED_WAIT_S)
            wait = SB_MANAGED_WAIT_S;
      return wait;
     }

   //------------------------------------------------------------ execution

   //--- the instruction is refused without a trade: error report, step done
   void              Refuse(const int e, const int code, const string message)
     {
      m_journal.entries[e].state = SB_STATE_DONE;
      m_journal.entries[e].updated = m_http.clock.Now();
      QueueError(m_journal.entries[e].id, -1, code, message);
      Save();
     }

   //--- a trade call that failed: refused, or when the trade server did not say whether it
   //--- did it (a timeout), left to Reconcile to find out in the terminal
   void              Failed(const int e, SbTradeResult &result)
     {
      if(!result.unknown)
        {
         Refuse(e, result.code, result.message);
         return;
        }
      SbLogError("trade", m_journal.entries[e].id + ": " + result.message +
                 "; the trade server did not say whether it was done: the EA looks for it in the terminal");
     }

   //--- the step of entry e is about to call the trade server: saved first
   bool              BeforeTrade(const int e)
     {
      m_journal.entries[e].state = SB_STATE_TRADING;
      m_journal.entries[e].trading_since = m_http.clock.Now();
      m_journal.entries[e].updated = m_journal.entries[e].trading_since;
      return Save();
     }

   void              Finished(const int e)
     {
      m_journal.entries[e].state = SB_STATE_DONE;
      m_journal.entries[e].leg = -1;
      m_journal.entries[e].updated = m_http.clock.Now();
      Save();
     }

   //--- the live positions and orders of the signal of entry e, in leg order; when there
   //--- are none and refuse is set, error 90007 (the v1 messages) and false
   bool              OwnHoldings(const int e, int &list[], const bool refuse)
     {
      WatchPlaced();  // a pending order that just filled is a position of the signal now
      ArrayResize(list, 0);
      string signal_id = m_journal.entries[e].signal_id;
      int o = m_journal.FindOpen(signal_id);
      if(o < 0 || m_journal.HoldingsOf(m_journal.entries[o].id) == 0)
        {
         if(refuse)
            Refuse(e, SB_ERR_NOTHING_OWN, "this EA opened nothing for signal " + signal_id);
         return false;
        }
      string gone = "";
      for(int h = 0; h < ArraySize(m_journal.holdings); h++)
        {
         if(m_journal.holdings[h].instruction_id != m_journal.entries[o].id)
            continue;
         if(m_journal.holdings[h].kind == SB_TICKET_CLOSED && gone == "")
            gone = "ticket #" + IntegerToString(m_journal.holdings[h].ticket) + " of signal " + signal_id + " is already closed";
         if(!m_journal.holdings[h].Live())
            continue;
         long ticket = SbBrokerFollow(m_journal.holdings[h].ticket, m_magic);
         if(ticket != m_journal.holdings[h].ticket)
           {
            SbLogInfo("journal", "signal " + signal_id + ": ticket #" + IntegerToString(m_journal.holdings[h].ticket) + " continues as #" + IntegerToString(ticket));
            m_journal.holdings[h].ticket = ticket;
           }
         SbTicketInfo info;
         int kind = SbBrokerFind(ticket, m_magic, info);
         if(kind == SB_TICKET_NONE)
           {
            // Closed by the broker or by hand: WatchHoldings reports it.
            gone = "ticket #" + IntegerToString(ticket) + " of signal " + signal_id + " is no longer open (closed by stop loss, take profit or by hand?)";
            continue;
           }
         m_journal.holdings[h].ticket = info.ticket;
         m_journal.holdings[h].volume = info.volume;
         ArrayResize(list, ArraySize(list) + 1);
         list[ArraySize(list) - 1] = h;
        }
      if(ArraySize(list) > 0)
         return true;
      if(refuse)
         Refuse(e, SB_ERR_NOTHING_OWN, gone != "" ? gone : "this EA opened nothing for signal " + signal_id);
      return false;
     }

   //--- open: the volume to trade (sizing of 5.2, or the v1 volume); false when refused
   bool              OpenVolume(const int e, SbInstruction &ins, SbSymbolData &data, double &volume)
     {
      string note = "";
      if(ins.sizing_mode == "risk_percent" || ins.sizing_mode == "risk_money")
        {
         SbAccountData account;
         SbBrokerAccount(account);
         double base = ins.sizing_of_equity ? account.equity : account.balance;
         double risk = ins.sizing_mode == "risk_money" ? ins.sizing_amount : ins.sizing_percent / 100.0 * base;
         double price = ins.order_type != "market" ? ins.entry : (ins.side == "buy" ? data.ask : data.bid);
         double lots = SbRiskLots(risk, price, ins.stop_loss, data.tick_size, data.tick_value, data.volume_step, ins.sizing_max_lots, data.volume_max);
         string what = "risk " + SbDecimal(risk, 2) + " " + account.currency + " at the stop loss " + SbDecimal(ins.stop_loss, data.digits) +
                       " from " + SbDecimal(price, data.digits) + " (tick size " + SbDecimal(data.tick_size, 10) + ", tick value " +
                       SbDecimal(data.tick_value, 8) + ")";
         if(lots <= 0 && (data.tick_size <= 0 || data.tick_value <= 0))
           {
            SbLogInfo("trade", ins.id + ": " + what + " cannot be sized here: the server's estimate " + SbDecimal(ins.volume, 8) + " lots");
            volume = SbOpenVolume(ins.volume, data.volume_min, data.volume_step, data.volume_max, note);
           }
         else if(lots < data.volume_min - 1e-12 || lots <= 0)
           {
            Refuse(e, SB_ERR_VOLUME_MIN, what + " is " + SbDecimal(lots, 8) + " lots, below the symbol's minimum " +
                   SbDecimal(data.volume_min, 8) + "; not opened");
            return false;
           }
         else
           {
            volume = lots;
            SbLogInfo("trade", ins.id + ": " + what + ": " + SbDecimal(lots, 8) + " lots");
           }
        }
      else
        {
         double requested = ins.sizing_mode == "fixed" ? ins.sizing_lots : ins.volume;
         volume = SbOpenVolume(requested, data.volume_min, data.volume_step, data.volume_max, note);
        }
      if(note != "")
         SbLogInfo("trade", ins.id + ": " + note);
      return true;
     }

   //--- market opens: the spread and the distance from the provider's price (5.2 guards)
   bool              Guarded(const int e, SbInstruction &ins, SbSymbolData &data)
     {
      if(ins.order_type != "market")
         return true;
      if(ins.max_spread >= 0 && data.Spread() > ins.max_spread)
        {
         Refuse(e, SB_ERR_SPREAD, "the spread of " + ins.symbol + " is " + IntegerToString(data.Spread()) + " points, above max_spread_points " +
                IntegerToString(ins.max_spread) + "; not opened");
         return false;
        }
      if(ins.max_distance >= 0 && ins.reference_price > 0 && data.point > 0)
        {
         double price = ins.side == "buy" ? data.ask : data.bid;
         int distance = (int)MathRound(MathAbs(price - ins.reference_price) / data.point);
         if(distance > ins.max_distance)
           {
            Refuse(e, SB_ERR_DISTANCE, ins.symbol + " is at " + SbDecimal(price, data.digits) + ", " + IntegerToString(distance) +
                   " points from the provider's price " + SbDecimal(ins.reference_price, data.digits) + " (max_distance_points " +
                   IntegerToString(ins.max_distance) + "); not opened");
            return false;
           }
        }
      return true;
     }

   void              ExecuteOpen(const int e, SbInstruction &ins)
     {
      datetime now = m_http.clock.Now();
      if(ins.expires_at > 0 && now > ins.expires_at)
        {
         Refuse(e, SB_ERR_STALE, "arrived after it expired at " + SbIsoTime(ins.expires_at) + " (now " + SbIsoTime(now) + "); not opened");
         return;
        }
      if(m_max_age > 0 && now - ins.issued_at > m_max_age)
        {
         Refuse(e, SB_ERR_STALE, "issued " + IntegerToString(now - ins.issued_at) + " s ago, more than MaxAgeSeconds (" +
                IntegerToString(m_max_age) + "); not opened");
         return;
        }
      string why;
      SbSymbolData data;
      if(!SbBrokerSelectSymbol(ins.symbol, why))
        {
         Refuse(e, SB_ERR_SYMBOL, why);
         return;
        }
      if(!SbBrokerTradingAllowed(ins.symbol, why))
        {
         Refuse(e, SB_ERR_NOT_ALLOWED, why);
         return;
        }
      if(!SbBrokerSymbol(ins.symbol, data))
        {
         Refuse(e, SB_ERR_SYMBOL, "no price for " + ins.symbol + " (error " + IntegerToString(GetLastError()) + ")");
         return;
        }
      double volume = 0;
      if(!Guarded(e, ins, data) || !OpenVolume(e, ins, data, volume))
         return;
      double volumes[];
      int legs = 1;
      ArrayResize(volumes, 1);
      volumes[0] = volume;
      if(ins.Legs() > 0)
        {
         legs = SbLegVolumes(volume, ins.leg_share, data.volume_min, data.volume_step, volumes);
         if(legs < ins.Legs())
            SbLogInfo("trade", ins.id + ": " + SbDecimal(volume, 8) + " lots cannot give " + IntegerToString(ins.Legs()) +
                      " legs the minimum " + SbDecimal(data.volume_min, 8) + " each: " + IntegerToString(legs) + " leg(s), the rest to the first");
        }
      // Every leg planned in the journal first: a restart finishes the ones not opened yet.
      for(int i = 0; i < legs; i++)
        {
         int leg = ins.Legs() > 0 ? i : -1;
         int h = m_journal.AddHolding(ins.id, ins.signal_id, leg, ins.symbol);
         m_journal.holdings[h].side = ins.side;
         m_journal.holdings[h].order_type = ins.order_type;
         m_journal.holdings[h].price = ins.entry;
         m_journal.holdings[h].volume = volumes[i];
         m_journal.holdings[h].stop_loss = ins.stop_loss;
         m_journal.holdings[h].take_profit = leg >= 0 ? ins.leg_take_profit[i] : ins.take_profit;
         m_journal.holdings[h].comment = StringSubstr((leg >= 0 ? "sb" + IntegerToString(leg) + ":" : "sb:") + ins.id, 0, 31);
         m_journal.holdings[h].be_after_leg = ins.be_after_leg;
         m_journal.holdings[h].be_offset = ins.be_offset;
         m_journal.holdings[h].trail_distance = ins.trail_distance;
         m_journal.holdings[h].trail_step = ins.trail_step;
         m_journal.holdings[h].trail_after_be = ins.trail_after_be ? 1 : 0;
        }
      OpenPlanned(e);
     }

   //--- opens the planned legs of the open of entry e, one trade call each
   void              OpenPlanned(const int e)
     {
      string id = m_journal.entries[e].id;
      for(int h = 0; h < ArraySize(m_journal.holdings); h++)
        {
         if(m_journal.holdings[h].instruction_id != id || m_journal.holdings[h].kind != SB_TICKET_NONE)
            continue;
         SbOrderRequest order;
         order.symbol = m_journal.holdings[h].symbol;
         order.side = m_journal.holdings[h].side;
         order.order_type = m_journal.holdings[h].order_type;
         order.price = m_journal.holdings[h].price;
         order.stop_loss = m_journal.holdings[h].stop_loss;
         order.take_profit = m_journal.holdings[h].take_profit;
         order.volume = m_journal.holdings[h].volume;
         order.magic = m_magic;
         order.comment = m_journal.holdings[h].comment;
         order.slippage = m_slippage;
         m_journal.entries[e].comment = order.comment;
         m_journal.entries[e].volume = order.volume;
         m_journal.entries[e].leg = m_journal.holdings[h].leg;
         if(!BeforeTrade(e))
            return;
         SbTradeResult result;
         if(!SbBrokerOpen(order, result))
           {
            if(result.unknown)
              {
               Failed(e, result);
               return;
              }
            m_journal.holdings[h].kind = SB_TICKET_CLOSED;
            m_journal.holdings[h].closed_at = m_http.clock.Now();
            QueueError(id, m_journal.holdings[h].leg, result.code, result.message);
            Save();
            continue;
           }
         Opened(e, h, result.ticket, result.pending ? SB_TICKET_ORDER : SB_TICKET_POSITION, result.price, result.volume);
        }
      Finished(e);
     }

   //--- a leg's trade is in the terminal: its holding, and its fill (a pending order's
   //--- when it fills)
   void              Opened(const int e, const int h, const long ticket, const int kind, const double price, const double volume)
     {
      m_journal.holdings[h].ticket = ticket;
      m_journal.holdings[h].kind = kind == SB_TICKET_ORDER ? SB_TICKET_ORDER : SB_TICKET_POSITION;
      m_journal.holdings[h].price = price;
      m_journal.holdings[h].volume = volume;
      m_journal.holdings[h].sl_reported = m_journal.holdings[h].stop_loss;
      if(m_journal.entries[e].ticket == 0)
        {
         m_journal.entries[e].ticket = ticket;
         m_journal.entries[e].ticket_kind = m_journal.holdings[h].kind;
         m_journal.entries[e].price = price;
        }
      m_journal.entries[e].updated = m_http.clock.Now();
      if(kind == SB_TICKET_ORDER)
         SbLogInfo("trade", m_journal.entries[e].id + ": pending order #" + IntegerToString(ticket) + " placed; its fill is reported when it fills");
      else
        {
         SbTradeResult result;
         result.ok = true;
         result.ticket = ticket;
         result.price = price;
         result.volume = volume;
         QueueFill(m_journal.entries[e].id, m_journal.holdings[h].leg, m_journal.holdings[h].symbol, result);
        }
      m_state_due = true;
      Save();
     }

   //--- modify: the stop loss to every open leg, take_profit[i] to leg i where the list
   //--- has one (an open without legs: take_profit[0], none when the list is empty)
   void              ApplyModify(const int e)
     {
      int list[];
      if(!OwnHoldings(e, list, true))
         return;
      string why;
      if(!SbBrokerTradingAllowed(m_journal.holdings[list[0]].symbol, why))
        {
         Refuse(e, SB_ERR_NOT_ALLOWED, why);
         return;
        }
      double take_profits[];
      SbReadPriceList(m_journal.entries[e].detail, take_profits);
      double stop_loss = m_journal.entries[e].stop_loss;
      for(int i = 0; i < ArraySize(list); i++)
        {
         int h = list[i];
         int leg = m_journal.holdings[h].leg;
         double take_profit = m_journal.entries[e].take_profit;
         if(leg >= 0)
            take_profit = leg < ArraySize(take_profits) ? take_profits[leg] : m_journal.holdings[h].take_profit;
         m_journal.entries[e].ticket = m_journal.holdings[h].ticket;
         m_journal.entries[e].ticket_kind = m_journal.holdings[h].kind;
         if(!BeforeTrade(e))
            return;
         SbTradeResult result;
         if(!SbBrokerModify(m_journal.holdings[h].ticket, m_journal.holdings[h].kind, stop_loss, take_profit, result))
           {
            Failed(e, result);
            return;
           }
         m_journal.holdings[h].stop_loss = stop_loss;
         m_journal.holdings[h].take_profit = take_profit;
         m_journal.holdings[h].sl_reported = stop_loss;  // the server asked for it: no event
        }
      SbTradeResult done;
      done.ok = true;
      done.ticket = m_journal.holdings[list[0]].ticket;
      done.price = m_journal.holdings[list[0]].price;
      done.volume = m_journal.holdings[list[0]].volume;
      m_journal.entries[e].state = SB_STATE_DONE;
      m_journal.entries[e].updated = m_http.clock.Now();
      QueueFill(m_journal.entries[e].id, -1, m_journal.holdings[list[0]].symbol, done);
      Save();
     }

   void              ExecuteModify(const int e, SbInstruction &ins)
     {
      m_journal.entries[e].stop_loss = ins.stop_loss;
      m_journal.entries[e].take_profit = ins.take_profit;
      m_journal.entries[e].detail = SbPriceList(ins.take_profits);
      ApplyModify(e);
     }

   //--- a leg's close is done: its fill; the holding follows the rest or is closed (by the
   //--- server's order: no event)
   void              ClosedPart(const int e, const int h, SbTradeResult &result)
     {
      if(result.remainder > 0)
         m_journal.holdings[h].ticket = result.remainder;
      SbTicketInfo left;
      if(SbBrokerFind(m_journal.holdings[h].ticket, m_magic, left) == SB_TICKET_NONE)
        {
         m_journal.holdings[h].kind = SB_TICKET_CLOSED;
         m_journal.holdings[h].closed_at = m_http.clock.Now();
        }
      else
         m_journal.holdings[h].volume = left.volume;
      m_journal.entries[e].updated = m_http.clock.Now();
      QueueFill(m_journal.entries[e].id, m_journal.holdings[h].leg, m_journal.entries[e].symbol, result);
      Save();
     }

   //--- a pending order of the signal is deleted: the fill of the close or cancel
   void              Deleted(const int e, const int h, const bool with_profit)
     {
      SbTradeResult result;
      result.ok = true;
      result.ticket = m_journal.entries[e].ticket;
      result.price = m_journal.entries[e].price;
      result.volume = m_journal.entries[e].volume;
      result.has_profit = with_profit;
      m_journal.holdings[h].kind = SB_TICKET_CLOSED;
      m_journal.holdings[h].closed_at = m_http.clock.Now();
      m_journal.entries[e].updated = m_http.clock.Now();
      QueueFill(m_journal.entries[e].id, m_journal.holdings[h].leg, m_journal.entries[e].symbol, result);
      Save();
     }

   bool              DeleteOrder(const int e, const int h, const bool with_profit)
     {
      m_journal.entries[e].ticket = m_journal.holdings[h].ticket;
      m_journal.entries[e].ticket_kind = SB_TICKET_ORDER;
      m_journal.entries[e].price = m_journal.holdings[h].price;
      m_journal.entries[e].volume = m_journal.holdings[h].volume;
      m_journal.entries[e].leg = m_journal.holdings[h].leg;
      if(!BeforeTrade(e))
         return false;
      SbTradeResult result;
      if(!SbBrokerDelete(m_journal.holdings[h].ticket, result))
        {
         Failed(e, result);
         return false;
        }
      Deleted(e, h, with_profit);
      return true;
     }

   //--- close: fraction of each open leg after leg after_leg (-2: all), rounded down to the
   //--- step (a leg whose part rounds below the minimum is left alone); a pending order of
   //--- the signal is deleted
   void              CloseLegs(const int e, const int after_leg)
     {
      bool resumed = after_leg > -2;
      int list[];
      if(!OwnHoldings(e, list, !resumed))
        {
         if(resumed)
            Finished(e);
         return;
        }
      string why;
      if(!SbBrokerTradingAllowed(m_journal.holdings[list[0]].symbol, why))
        {
         Refuse(e, SB_ERR_NOT_ALLOWED, why);
         return;
        }
      double fraction = StringToDouble(m_journal.entries[e].detail);
      double minimum, step, maximum;
      SbBrokerLimits(m_journal.holdings[list[0]].symbol, minimum, step, maximum);
      bool acted = resumed;
      for(int i = 0; i < ArraySize(list); i++)
        {
         int h = list[i];
         if(m_journal.holdings[h].leg <= after_leg)
            continue;
         if(m_journal.holdings[h].kind == SB_TICKET_ORDER)
           {
            // Nothing filled yet: closing the signal deletes the pending order.
            if(!DeleteOrder(e, h, true))
               return;
            acted = true;
            continue;
           }
         double part = SbCloseVolume(m_journal.holdings[h].volume, fraction, minimum, step);
         if(part <= 0)
            continue;
         m_journal.entries[e].ticket = m_journal.holdings[h].ticket;
         m_journal.entries[e].ticket_kind = SB_TICKET_POSITION;
         m_journal.entries[e].volume = m_journal.holdings[h].volume;
         m_journal.entries[e].part = part;
         m_journal.entries[e].leg = m_journal.holdings[h].leg;
         if(!BeforeTrade(e))
            return;
         SbTradeResult result;
         if(!SbBrokerClose(m_journal.holdings[h].ticket, part, m_slippage, result))
           {
            Failed(e, result);
            return;
           }
         ClosedPart(e, h, result);
         acted = true;
        }
      if(!acted)
        {
         Refuse(e, SB_ERR_VOLUME_MIN, "closing " + SbDecimal(fraction, 4) + " of " + SbDecimal(m_journal.holdings[list[0]].volume, 8) +
                " lots rounds below the symbol's minimum " + SbDecimal(minimum, 8) + "; nothing closed");
         return;
        }
      Finished(e);
     }

   void              ExecuteClose(const int e, SbInstruction &ins)
     {
      m_journal.entries[e].detail = DoubleToString(ins.fraction, 10);
      CloseLegs(e, -2);
     }

   //--- cancel: the signal's pending orders (legs after after_leg; -2: all) are deleted
   void              CancelLegs(const int e, const int after_leg)
     {
      bool resumed = after_leg > -2;
      int list[];
      if(!OwnHoldings(e, list, !resumed))
        {
         if(resumed)
            Finished(e);
         return;
        }
      int orders = 0;
      for(int i = 0; i < ArraySize(list); i++)
         if(m_journal.holdings[list[i]].kind == SB_TICKET_ORDER)
            orders++;
      if(orders == 0 && !resumed)
        {
         Refuse(e, SB_ERR_NOTHING_OWN, "the pending order of signal " + m_journal.entries[e].signal_id + " has already filled as position #" +
                IntegerToString(m_journal.holdings[list[0]].ticket) + "; cancel deletes only a pending order");
         return;
        }
      string why;
      if(orders > 0 && !SbBrokerTradingAllowed(m_journal.holdings[list[0]].symbol, why))
        {
         Refuse(e, SB_ERR_NOT_ALLOWED, why);
         return;
        }
      for(int i = 0; i < ArraySize(list); i++)
        {
         int h = list[i];
         if(m_journal.holdings[h].kind == SB_TICKET_ORDER && m_journal.holdings[h].leg > after_leg && !DeleteOrder(e, h, false))
            return;
        }
      Finished(e);
     }

   //--- close_all (5.3): every position and pending order this EA placed for instructions,
   //--- and nothing else; each position closed is a closed event with reason close_all
   void              ExecuteCloseAll(const int e)
     {
      int failures = 0;
      string first_failure = "";
      int first_code = 0;
      for(int h = 0; h < ArraySize(m_journal.holdings); h++)
        {
         if(!m_journal.holdings[h].Live())
            continue;
         long ticket = SbBrokerFollow(m_journal.holdings[h].ticket, m_magic);
         m_journal.holdings[h].ticket = ticket;
         SbTicketInfo info;
         int kind = SbBrokerFind(ticket, m_magic, info);
         if(kind == SB_TICKET_NONE)
            continue;  // closed already: WatchHoldings reports how
         string why;
         SbTradeResult result;
         m_journal.entries[e].ticket = ticket;
         m_journal.entries[e].ticket_kind = kind;
         m_journal.entries[e].volume = info.volume;
         m_journal.entries[e].leg = m_journal.holdings[h].leg;
         bool done = SbBrokerTradingAllowed(info.symbol, why);
         if(done)
           {
            if(!BeforeTrade(e))
               return;
            done = kind == SB_TICKET_ORDER ? SbBrokerDelete(ticket, result) : SbBrokerClose(ticket, info.volume, m_slippage, result);
            if(!done && result.unknown)
              {
               Failed(e, result);
               return;
              }
            why = result.message;
           }
         if(!done)
           {
            failures++;
            if(first_failure == "")
              {
               first_failure = "#" + IntegerToString(ticket) + ": " + why;
               first_code = result.code != 0 ? result.code : SB_ERR_NOT_ALLOWED;
              }
            continue;
           }
         if(kind == SB_TICKET_ORDER)
           {
            m_journal.holdings[h].kind = SB_TICKET_CLOSED;
            m_journal.holdings[h].closed_at = m_http.clock.Now();
            Save();
            continue;
           }
         SbClosedInfo closed;
         closed.price = result.price;
         closed.volume = result.volume;
         closed.profit = result.profit;
         ReportClosed(h, closed, "close_all");
        }
      if(failures > 0)
        {
         Refuse(e, first_code, IntegerToString(failures) + " position(s) or order(s) of this EA not closed; the first, " + first_failure);
         return;
        }
      Finished(e);
     }

   //------------------------------------------------------------ instructions

   void              Handle(SbJson &json, const int node)
     {
      SbInstruction ins;
      string problem;
      bool readable = SbParseInstruction(json, node, ins, problem);
      if(ins.id == "")
        {
         SbLogError("instruction", "an instruction without a usable id is ignored: " + problem);
         return;
        }
      int known = m_journal.Find(ins.id);
      if(known >= 0)
        {
         if(!m_journal.HasReportFor(ins.id))
            SbLogDebug("instruction", ins.id + " was handled before (step " + IntegerToString(m_journal.entries[known].state) + "); not again");
         return;
        }
      int e = m_journal.Add(ins.id, ins.signal_id, ins.action, ins.symbol, m_http.clock.Now());
      if(!readable)
        {
         SbLogError("instruction", ins.id + " cannot be read: " + problem);
         Refuse(e, SB_ERR_MALFORMED, "the instruction cannot be read: " + problem);
         return;
        }
      string what = ins.id + ": " + ins.action;
      if(ins.action != "close_all")
         what += " " + ins.symbol + " (signal " + ins.signal_id + ")";
      if(ins.action == "open")
        {
         what += " " + ins.side + " " + ins.order_type + " " + SbDecimal(ins.volume, 8) + " lots";
         if(ins.sizing_mode != "")
            what += ", sizing " + ins.sizing_mode;
         if(ins.Legs() > 0)
            what += ", " + IntegerToString(ins.Legs()) + " legs";
        }
      SbLogInfo("instruction", what);
      QueueAck(ins.id);
      if(!Save())
         return;
      if(!m_backing_off)
         Flush();
      if(ins.action == "open")
         ExecuteOpen(e, ins);
      else if(ins.action == "modify")
         ExecuteModify(e, ins);
      else if(ins.action == "close")
         ExecuteClose(e, ins);
      else if(ins.action == "close_all")
         ExecuteCloseAll(e);
      else
         CancelLegs(e, -2);
     }

   bool              Poll(void)
     {
      string response;
      int wait = PollWait();
      int status = m_http.Send("GET", "/api/v1/ea/instructions?wait=" + IntegerToString(wait), "", wait * 1000 + 15000, response);
      if(status != 200)
        {
         Refused("poll", status, response);
         return false;
        }
      SbJson json;
      if(!json.Parse(response))
        {
         SbLogError("poll", "the answer is not JSON (" + json.Error() + ")");
         Backoff();
         return false;
        }
      int list = json.Find(json.Root(), "instructions");
      if(json.Type(list) != SB_JSON_ARRAY)
        {
         SbLogError("poll", "the answer has no instructions list");
         Backoff();
         return false;
        }
      SbLogDebug("poll", IntegerToString(json.Count(list)) + " instruction(s)");
      for(int i = 0; i < json.Count(list); i++)
         Handle(json, json.Item(list, i));
      return true;
     }

   //------------------------------------------------------------ the broker's side

   //--- a position of this EA is gone, and the server did not order it: the closed event
   //--- (once: the holding is closed in the same save); a take profit may arm breakeven
   void              ReportClosed(const int h, SbClosedInfo &closed, const string reason)
     {
      int digits = SbSymbolDigits(m_journal.holdings[h].symbol);
      m_journal.holdings[h].kind = SB_TICKET_CLOSED;
      m_journal.holdings[h].closed_at = m_http.clock.Now();
      string fields = ",\"reason\":" + SbJsonQuote(reason) + ",\"price\":" + SbJsonQuote(SbDecimal(closed.price, digits > 0 ? digits : 8)) +
                      ",\"volume\":" + SbJsonQuote(SbDecimal(closed.volume, 8)) + ",\"profit\":" + SbJsonQuote(SbDecimal(closed.profit, 2));
      QueueEvent(h, SbLegStep("closed", m_journal.holdings[h].leg), "closed", fields);
      SbLogInfo("trade", "position #" + IntegerToString(m_journal.holdings[h].ticket) + " of " + m_journal.holdings[h].instruction_id +
                (m_journal.holdings[h].leg >= 0 ? " leg " + IntegerToString(m_journal.holdings[h].leg) : "") + " closed (" + reason + ") at " +
                SbDecimal(closed.price, digits) + ", " + SbDecimal(closed.volume, 8) + " lots, profit " + SbDecimal(closed.profit, 2));
      if(reason == "tp")
         for(int i = 0; i < ArraySize(m_journal.holdings); i++)
            if(m_journal.holdings[i].instruction_id == m_journal.holdings[h].instruction_id && i != h &&
               m_journal.holdings[i].be_after_leg == m_journal.holdings[h].leg && m_journal.holdings[i].be_done == 0)
               m_journal.holdings[i].be_armed = 1;
      Save();
     }

   //--- a close or close_all of ours under way on ticket: Reconcile concludes it
   bool              CloseInFlight(const long ticket)
     {
      for(int i = 0; i < ArraySize(m_journal.entries); i++)
         if(m_journal.entries[i].state == SB_STATE_TRADING && m_journal.entries[i].ticket == ticket &&
            (m_journal.entries[i].action == "close" || m_journal.entries[i].action == "close_all"))
            return true;
      return false;
     }

   //--- the positions this EA holds: the broker's stops and volume, and the closes it did
   //--- not make (take profit, stop loss, stop-out, by hand) from the history
   void              WatchHoldings(void)
     {
      for(int h = 0; h < ArraySize(m_journal.holdings); h++)
        {
         if(m_journal.holdings[h].kind != SB_TICKET_POSITION || CloseInFlight(m_journal.holdings[h].ticket))
            continue;
         long ticket = SbBrokerFollow(m_journal.holdings[h].ticket, m_magic);
         if(ticket != m_journal.holdings[h].ticket)
           {
            SbLogInfo("journal", m_journal.holdings[h].instruction_id + ": ticket #" + IntegerToString(m_journal.holdings[h].ticket) +
                      " continues as #" + IntegerToString(ticket));
            m_journal.holdings[h].ticket = ticket;
            Save();
           }
         SbTicketInfo info;
         if(SbBrokerFind(ticket, m_magic, info) == SB_TICKET_POSITION)
           {
            if(m_journal.holdings[h].side == "")
               m_journal.holdings[h].side = info.side;
            if(m_journal.holdings[h].stop_loss != info.stop_loss || m_journal.holdings[h].volume != info.volume)
               m_state_due = true;
            m_journal.holdings[h].stop_loss = info.stop_loss;
            m_journal.holdings[h].take_profit = info.take_profit;
            m_journal.holdings[h].volume = info.volume;
            continue;
           }
         SbClosedInfo closed;
         if(SbBrokerClosed(ticket, m_magic, closed))
            ReportClosed(h, closed, closed.reason);
        }
     }

   //--- moves a position's stop loss on the broker's side; false when refused (then stop
   //--- moves pause a while rather than ask every half second)
   bool              MoveStop(const int h, const double level, const string why)
     {
      SbTradeResult result;
      if(!SbBrokerModify(m_journal.holdings[h].ticket, SB_TICKET_POSITION, level, m_journal.holdings[h].take_profit, result))
        {
         SbLogError("trade", m_journal.holdings[h].instruction_id + ": " + why + " stop " + DoubleToString(level, 8) + " refused (" +
                    result.message + "); tried again in " + IntegerToString(SB_MANAGE_PAUSE_MS / 1000) + " s");
         m_manage_paused = true;
         m_manage_resume_ms = GetTickCount() + SB_MANAGE_PAUSE_MS;
         return false;
        }
      SbLogInfo("trade", m_journal.holdings[h].instruction_id + (m_journal.holdings[h].leg >= 0 ? " leg " + IntegerToString(m_journal.holdings[h].leg) : "") +
                ": " + why + ": stop loss of #" + IntegerToString(m_journal.holdings[h].ticket) + " " +
                DoubleToString(m_journal.holdings[h].stop_loss, 8) + " -> " + DoubleToString(level, 8));
      m_journal.holdings[h].stop_loss = level;
      m_state_due = true;
      return true;
     }

   //--- breakeven and trailing (5.2) on the broker's side, then the sl_moved events: one
   //--- per position per SB_SL_EVENT_EVERY_S, with the latest level
   void              Manage(void)
     {
      if(m_manage_paused && (int)(m_manage_resume_ms - GetTickCount()) > 0)
         return;
      m_manage_paused = false;
      for(int h = 0; h < ArraySize(m_journal.holdings); h++)
        {
         if(m_journal.holdings[h].kind != SB_TICKET_POSITION || CloseInFlight(m_journal.holdings[h].ticket))
            continue;
         bool changed = false;
         bool buy = m_journal.holdings[h].side == "buy";
         SbSymbolData data;
         bool managed = m_journal.holdings[h].trail_distance > 0 || m_journal.holdings[h].be_armed != 0;
         if(managed && m_journal.holdings[h].side != "" && SbBrokerSymbol(m_journal.holdings[h].symbol, data) && data.point > 0)
           {
            if(m_journal.holdings[h].be_armed != 0 && m_journal.holdings[h].be_done == 0)
              {
               double target = SbBreakevenStop(buy, m_journal.holdings[h].price, m_journal.holdings[h].stop_loss, m_journal.holdings[h].be_offset,
                                               data.point, data.digits);
               if(target <= 0 || MoveStop(h, target, "breakeven"))
                 {
                  m_journal.holdings[h].be_done = 1;
                  changed = true;
                 }
              }
            if(m_journal.holdings[h].trail_distance > 0 && (m_journal.holdings[h].trail_after_be == 0 || m_journal.holdings[h].be_done != 0) && !m_manage_paused)
              {
               double level = SbTrailStop(buy, data.bid, data.ask, m_journal.holdings[h].stop_loss, m_journal.holdings[h].trail_distance,
                                          m_journal.holdings[h].trail_step, data.point, data.digits);
               if(level > 0 && MoveStop(h, level, "trailing"))
                  changed = true;
              }
           }
         datetime now = m_http.clock.Now();
         if(MathAbs(m_journal.holdings[h].stop_loss - m_journal.holdings[h].sl_reported) > 1e-10 &&
            now - m_journal.holdings[h].sl_event_at >= SB_SL_EVENT_EVERY_S)
           {
            int digits = SbSymbolDigits(m_journal.holdings[h].symbol);
            double level = m_journal.holdings[h].stop_loss;
            m_journal.holdings[h].sl_events++;
            m_journal.holdings[h].sl_event_at = now;
            m_journal.holdings[h].sl_reported = level;
            QueueEvent(h, SbLegStep("sl", m_journal.holdings[h].leg) + "n" + IntegerToString(m_journal.holdings[h].sl_events), "sl_moved",
                       ",\"stop_loss\":" + (level > 0 ? SbJsonQuote(SbDecimal(level, digits)) : "null"));
            changed = true;
           }
         if(changed)
            Save();
        }
     }

   //------------------------------------------------------------ recovery

   //--- long enough connected after the start that what the terminal does not show is
   //--- not there (the terminal loads positions and history as it connects)
   bool              Settled(void)
     {
      return TimeGMT() - m_started >= SB_RECONCILE_GRACE_S && SbBrokerConnected();
     }

   //--- an open's leg the EA made before it stopped, found in the terminal: its holding
   //--- and its fill; the legs not opened yet follow
   void              Recovered(const int e, const int h, SbTicketInfo &info, const string how)
     {
      SbLogInfo("reconcile", m_journal.entries[e].id + ": the open was done before the EA stopped: " + how);
      if(m_journal.holdings[h].side == "")
         m_journal.holdings[h].side = info.side;
      Opened(e, h, info.ticket, info.kind == SB_TICKET_ORDER ? SB_TICKET_ORDER : SB_TICKET_POSITION, info.price, info.volume);
      OpenPlanned(e);
     }

   bool              Claimed(const long ticket)
     {
      for(int i = 0; i < ArraySize(m_journal.entries); i++)
         if(m_journal.entries[i].ticket == ticket)
            return true;
      return m_journal.FindTicket(ticket) >= 0;
     }

   //--- when a broker rewrote the comment: the one live trade of this EA on the symbol with
   //--- the volume sent that no instruction of the journal holds; false when none, or more
   //--- than one (then it does not guess)
   bool              FindUnclaimed(const int e, SbTicketInfo &info)
     {
      long tickets[];
      SbBrokerOwnTickets(m_magic, m_journal.entries[e].symbol, tickets);
      long match = 0;
      int matches = 0;
      for(int i = 0; i < ArraySize(tickets); i++)
        {
         if(Claimed(tickets[i]) || SbBrokerFind(tickets[i], m_magic, info) == SB_TICKET_NONE ||
            MathAbs(info.volume - m_journal.entries[e].volume) > 1e-9)
            continue;
         match = tickets[i];
         matches++;
        }
      if(matches > 1)
         SbLogError("reconcile", m_journal.entries[e].id + ": " + IntegerToString(matches) +
                    " trades of this EA could be the interrupted open; none is taken for it");
      return matches == 1 && SbBrokerFind(match, m_magic, info) != SB_TICKET_NONE;
     }

   void              ReconcileOpen(const int e, const bool settled)
     {
      string id = m_journal.entries[e].id;
      int h = m_journal.FindHolding(id, m_journal.entries[e].leg);
      if(h < 0 || m_journal.holdings[h].kind != SB_TICKET_NONE)
        {
         OpenPlanned(e);
         return;
        }
      SbTicketInfo info;
      if(SbBrokerFindByComment(m_journal.holdings[h].comment, m_magic, m_journal.entries[e].trading_since, info))
         Recovered(e, h, info, "ticket #" + IntegerToString(info.ticket));
      else if(settled && FindUnclaimed(e, info))
         Recovered(e, h, info, "ticket #" + IntegerToString(info.ticket) + ", found by magic number, symbol and volume (its comment is now \"" +
                   info.comment + "\")");
      else if(settled)
        {
         m_journal.holdings[h].kind = SB_TICKET_CLOSED;
         m_journal.holdings[h].closed_at = m_http.clock.Now();
         QueueError(id, m_journal.holdings[h].leg, SB_ERR_NOTHING_OWN, "the EA stopped while opening and the terminal shows no trade of it (comment " +
                    m_journal.holdings[h].comment + "); nothing was opened and it is not tried again");
         Save();
         OpenPlanned(e);
        }
     }

   //--- steps the EA was in when it stopped: found in the terminal, or concluded
   void              Reconcile(void)
     {
      for(int e = 0; e < ArraySize(m_journal.entries); e++)
        {
         if(m_journal.entries[e].state != SB_STATE_TRADING)
            continue;
         // The call started long enough ago (before a restart, or a timeout's grace ago)
         bool waited = m_http.clock.Now() - m_journal.entries[e].trading_since >= SB_RECONCILE_GRACE_S;
         bool settled = Settled() && waited;
         string id = m_journal.entries[e].id;
         string action = m_journal.entries[e].action;
         int h = m_journal.FindTicket(m_journal.entries[e].ticket);
         if(action == "open")
            ReconcileOpen(e, settled);
         else if(action == "modify")
           {
            // Setting the same stop loss and take profit again is harmless: do it.
            if(waited)
               ApplyModify(e);
           }
         else if(action == "close_all")
           {
            SbTicketInfo info;
            SbClosedInfo closed;
            if(h >= 0 && m_journal.holdings[h].kind == SB_TICKET_POSITION && SbBrokerFind(m_journal.entries[e].ticket, m_magic, info) == SB_TICKET_NONE &&
               SbBrokerClosed(m_journal.entries[e].ticket, m_magic, closed))
              {
               SbLogInfo("reconcile", id + ": the close of #" + IntegerToString(m_journal.entries[e].ticket) + " was done before the EA stopped");
               ReportClosed(h, closed, "close_all");
              }
            else if(h >= 0 && m_journal.holdings[h].kind == SB_TICKET_ORDER && SbBrokerFind(m_journal.entries[e].ticket, m_magic, info) == SB_TICKET_NONE)
              {
               m_journal.holdings[h].kind = SB_TICKET_CLOSED;
               m_journal.holdings[h].closed_at = m_http.clock.Now();
              }
            else if(!waited)
               continue;
            ExecuteCloseAll(e);
           }
         else if(action == "close" && m_journal.entries[e].ticket_kind == SB_TICKET_POSITION)
           {
            SbTradeResult result;
            if(h >= 0 && SbBrokerFindClose(m_journal.entries[e].ticket, m_magic, m_journal.entries[e].volume, result))
              {
               SbLogInfo("reconcile", id + ": the close was done before the EA stopped");
               ClosedPart(e, h, result);
               CloseLegs(e, m_journal.entries[e].leg);
              }
            else if(settled)
               Refuse(e, SB_ERR_NOTHING_OWN, "the EA stopped while closing #" + IntegerToString(m_journal.entries[e].ticket) +
                      " and finds no close of it; nothing was closed and it is not tried again; check the position");
           }
         else
           {
            // cancel, or a close that deletes a pending order: done when the order is gone
            SbTicketInfo info;
            int kind = SbBrokerFind(m_journal.entries[e].ticket, m_magic, info);
            bool close = action == "close";
            if(kind == SB_TICKET_ORDER && h >= 0)
              {
               if(waited && DeleteOrder(e, h, close))
                 {
                  if(close)
                     CloseLegs(e, m_journal.entries[e].leg);
                  else
                     CancelLegs(e, m_journal.entries[e].leg);
                 }
              }
            else if(kind == SB_TICKET_NONE && h >= 0)
              {
               if(settled)
                 {
                  Deleted(e, h, close);
                  if(close)
                     CloseLegs(e, m_journal.entries[e].leg);
                  else
                     CancelLegs(e, m_journal.entries[e].leg);
                 }
              }
            else
               Refuse(e, SB_ERR_NOTHING_OWN, "the pending order #" + IntegerToString(m_journal.entries[e].ticket) + " has filled; not deleted");
           }
        }
     }

   //--- a cancel (or a close of a pending order, or close_all) whose delete call was under
   //--- way when the EA stopped: Reconcile concludes it, so the order it deleted is no news
   bool              DeleteInFlight(const string signal_id)
     {
      for(int i = 0; i < ArraySize(m_journal.entries); i++)
         if(m_journal.entries[i].state == SB_STATE_TRADING && m_journal.entries[i].action != "open" && m_journal.entries[i].action != "modify" &&
            (m_journal.entries[i].signal_id == signal_id || m_journal.entries[i].action == "close_all"))
            return true;
      return false;
     }

   //--- pending orders placed for opens: filled (fill report) or gone (error report)
   void              WatchPlaced(void)
     {
      for(int h = 0; h < ArraySize(m_journal.holdings); h++)
        {
         if(m_journal.holdings[h].kind != SB_TICKET_ORDER)
            continue;
         SbTicketInfo info;
         int kind = SbBrokerFind(m_journal.holdings[h].ticket, m_magic, info);
         if(kind == SB_TICKET_ORDER || (kind == SB_TICKET_NONE && (!Settled() || DeleteInFlight(m_journal.holdings[h].signal_id))))
            continue;
         string id = m_journal.holdings[h].instruction_id;
         if(kind == SB_TICKET_POSITION)
           {
            SbLogInfo("trade", id + ": pending order #" + IntegerToString(m_journal.holdings[h].ticket) + " filled as position #" + IntegerToString(info.ticket));
            m_journal.holdings[h].ticket = info.ticket;
            m_journal.holdings[h].kind = SB_TICKET_POSITION;
            m_journal.holdings[h].price = info.price;
            m_journal.holdings[h].volume = info.volume;
            m_journal.holdings[h].sl_reported = info.stop_loss;
            SbTradeResult result;
            result.ok = true;
            result.ticket = info.ticket;
            result.price = info.price;
            result.volume = info.volume;
            QueueFill(id, m_journal.holdings[h].leg, m_journal.holdings[h].symbol, result);
           }
         else
           {
            m_journal.holdings[h].kind = SB_TICKET_CLOSED;
            m_journal.holdings[h].closed_at = m_http.clock.Now();
            QueueError(id, m_journal.holdings[h].leg, SB_ERR_NOTHING_OWN, "pending order #" + IntegerToString(m_journal.holdings[h].ticket) +
                       " is gone before it filled (expired, or deleted by hand)");
           }
         Save();
        }
     }

public:
                     SbEngine(void)
     {
      m_ready = false; m_lock = INVALID_HANDLE; m_resume_ms = 0; m_backing_off = false; m_backoff_s = 0;
      m_started = 0; m_magic = 0; m_wait = 0; m_slippage = 0; m_max_age = 0; m_last_refusal = "";
      m_told_disconnected = false; m_server_wait = -1; m_old_server = false; m_state_sent = false; m_state_due = false;
      m_state_ms = 0; m_manage_resume_ms = 0; m_manage_paused = false;
     }

   int               Init(const string url, const string device_id, const string secret, const long magic, const int wait,
                          const int slippage, const int max_age, const int detail)
     {
      g_sb_log_detail = detail;
      m_ready = false;
      string device = device_id;
      string key = secret;
      string problem;
      if(!SbValidDeviceId(device))
        {
         SbLogAlert("setup", "DeviceId must be the Device ID shown in the chat (dev_ and 16-32 letters and digits), not \"" + device + "\"");
         return INIT_PARAMETERS_INCORRECT;
        }
      if(!SbValidSecret(key))
        {
         SbLogAlert("setup", "Secret must be the Secret shown in the chat (32-64 characters of letters, digits, _ and -)");
         return INIT_PARAMETERS_INCORRECT;
        }
      if(wait < 0 || wait > 25 || slippage < 0 || max_age < 0 || magic <= 0)
        {
         SbLogAlert("setup", "PollWaitSeconds must be 0-25, SlippagePoints and MaxAgeSeconds 0 or more, MagicNumber above 0");
         return INIT_PARAMETERS_INCORRECT;
        }
      if(!m_http.Setup(url, device, key, SB_WEBREQUEST_NOT_ALLOWED))
        {
         SbLogAlert("setup", "ServerUrl must be the server's address starting with https:// (or http://), not \"" + url + "\"");
         return INIT_PARAMETERS_INCORRECT;
        }
      if(!SbSigningSelfTest(problem))
        {
         SbLogAlert("setup", "the signing self-test failed (" + problem + "); this build cannot sign requests and does not start");
         return INIT_FAILED;
        }
      SbLogInfo("setup", "signing self-test passed (both test vectors of the protocol)");
      string lock_name = "SignalBridge_" + device + ".lock";
      ResetLastError();
      m_lock = FileOpen(lock_name, FILE_WRITE | FILE_BIN);
      if(m_lock == INVALID_HANDLE)
        {
         SbLogAlert("setup", "Device ID " + device + " already runs in another EA of this terminal (" + lock_name +
                    " is in use, error " + IntegerToString(GetLastError()) + "); one device per EA");
         return INIT_FAILED;
        }
      if(!m_journal.Open(device))
        {
         SbLogAlert("journal", m_journal.Error() + ". The EA does not start: it cannot know what it already did. Keep the file for support.");
         FileClose(m_lock);
         m_lock = INVALID_HANDLE;
         return INIT_FAILED;
        }
      m_device = device;
      m_magic = magic;
      m_wait = wait;
      m_slippage = slippage;
      m_max_age = max_age;
      m_started = TimeGMT();
      m_backing_off = false;
      m_backoff_s = 0;
      m_state_sent = false;
      m_server_wait = -1;
      int unfinished = 0;
      for(int e = 0; e < ArraySize(m_journal.entries); e++)
         if(m_journal.entries[e].state == SB_STATE_TRADING)
            unfinished++;
      string version = SB_VERSION;
      string platform = SB_PLATFORM;
      SbLogInfo("setup", "SignalBridge " + version + " (" + platform + ") for " + device + " at " + m_http.Origin() +
                ", magic " + IntegerToString(magic) + ", poll wait " + IntegerToString(wait) + " s; journal " + m_journal.Name() +
                ": " + IntegerToString(ArraySize(m_journal.entries)) + " instruction(s), " +
                IntegerToString(ArraySize(m_journal.outbox)) + " report(s) to send, " + IntegerToString(unfinished) +
                " trade call(s) to reconcile");
      if(!EventSetMillisecondTimer(SB_TIMER_MS))
        {
         SbLogAlert("setup", "the timer cannot be set (error " + IntegerToString(GetLastError()) + ")");
         FileClose(m_lock);
         m_lock = INVALID_HANDLE;
         return INIT_FAILED;
        }
      m_ready = true;
      return INIT_SUCCEEDED;
     }

   void              Deinit(const int reason)
     {
      EventKillTimer();
      if(m_ready)
         m_journal.Save(m_http.clock.Now());
      if(m_lock != INVALID_HANDLE)
         FileClose(m_lock);
      m_lock = INVALID_HANDLE;
      m_ready = false;
      SbLogInfo("setup", "stopped (reason " + IntegerToString(reason) + ")");
     }

   //--- one turn of the loop (OnTimer)
   void              Tick(void)
     {
      if(!m_ready)
         return;
      if(!SbBrokerConnected())
        {
         // Its positions and history may not be loaded yet: only reports go out.
         if(!m_told_disconnected)
            SbLogInfo("setup", "waiting for the terminal to connect to the trade server before anything else");
         m_told_disconnected = true;
         if(!m_backing_off || (int)(m_resume_ms - GetTickCount()) <= 0)
           {
            m_backing_off = false;
            Flush();
           }
         return;
        }
      m_told_disconnected = false;
      // The first state tells which protocol the server speaks (events or none).
      if(!m_state_sent && !m_backing_off)
         SendState();
      // The broker's side first, every turn, whether the server answers or not.
      Reconcile();
      WatchPlaced();
      WatchHoldings();
      Manage();
      if(m_backing_off && (int)(m_resume_ms - GetTickCount()) > 0)
         return;
      m_backing_off = false;
      if(StateDue())
         SendState();
      if(!Flush())
         return;
      if(!Poll() || m_backing_off)
         return;
      m_backoff_s = 0;
      m_last_refusal = "";
      Flush();
     }

   //--- a trade event (OnTradeTransaction): look at pending orders and positions now
   void              TradeEvent(void)
     {
      if(!m_ready)
         return;
      WatchPlaced();
      WatchHoldings();
      m_state_due = true;
     }

   bool              Ready(void) { return m_ready; }
  };

#endif
