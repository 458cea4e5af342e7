//+------------------------------------------------------------------+
//| SignalBridge/Engine.mqh                                          |
//| The EA's loop: poll the instructions, journal each one, ack it,  |
//| execute it through the platform's Broker file, report the fill   |
//| or the error, and after a restart reconcile the journal with the |
//| terminal before anything else. Include a Broker file first       |
//| (BrokerMT5.mqh or BrokerMT4.mqh).                                |
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

#define SB_VERSION "1.0.0"
#define SB_TIMER_MS 500
#define SB_MAX_BACKOFF_S 60
#define SB_REPORT_TIMEOUT_MS 15000
#define SB_MAX_MESSAGE 400
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

   //------------------------------------------------------------ reports

   void              QueueAck(const string instruction_id)
     {
      SbJsonObject body;
      string report_id = SbReportId(instruction_id, SB_STEP_ACK);
      body.Str("report_id", report_id);
      body.Str("instruction_id", instruction_id);
      m_journal.Queue(report_id, "ack", instruction_id, body.Text());
     }

   void              QueueFill(const string instruction_id, const string symbol, SbTradeResult &result)
     {
      int digits = SbSymbolDigits(symbol);
      SbJsonObject body;
      string report_id = SbReportId(instruction_id, SB_STEP_FILL);
      body.Str("report_id", report_id);
      body.Str("instruction_id", instruction_id);
      body.Int("ticket", result.ticket);
      body.Str("price", SbDecimal(result.price, digits > 0 ? digits : 8));
      body.Str("volume", SbDecimal(result.volume, 8));
      if(result.has_profit)
         body.Str("profit", SbDecimal(result.profit, 2));
      body.Str("executed_at", SbIsoTime(m_http.clock.Now()));
      m_journal.Queue(report_id, "fill", instruction_id, body.Text());
      SbLogInfo("report", "fill of " + instruction_id + " queued: ticket " + IntegerToString(result.ticket) + ", price " +
                SbDecimal(result.price, digits) + ", volume " + SbDecimal(result.volume, 8) +
                (result.has_profit ? ", profit " + SbDecimal(result.profit, 2) : ""));
     }

   void              QueueError(const string instruction_id, const int code, const string message)
     {
      SbJsonObject body;
      string report_id = SbReportId(instruction_id, SB_STEP_ERROR);
      body.Str("report_id", report_id);
      body.Str("instruction_id", instruction_id);
      body.Int("code", code);
      body.Str("message", StringSubstr(message, 0, SB_MAX_MESSAGE));
      m_journal.Queue(report_id, "error", instruction_id, body.Text());
      SbLogError("report", "error " + IntegerToString(code) + " for " + instruction_id + " queued: " + message);
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

   //------------------------------------------------------------ execution

   //--- the instruction is refused without a trade: error report, step done
   void              Refuse(const int e, const int code, const string message)
     {
      m_journal.entries[e].state = SB_STATE_DONE;
      m_journal.entries[e].updated = m_http.clock.Now();
      QueueError(m_journal.entries[e].id, code, message);
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

   //--- the open of the signal and its live ticket; -1 (and a 90007 error) when this EA holds none
   int               OwnTicket(const int e, SbTicketInfo &info)
     {
      string signal_id = m_journal.entries[e].signal_id;
      int o = m_journal.FindOpen(signal_id);
      if(o < 0 || m_journal.entries[o].ticket_kind == SB_TICKET_NONE)
        {
         Refuse(e, SB_ERR_NOTHING_OWN, "this EA opened nothing for signal " + signal_id);
         return -1;
        }
      if(m_journal.entries[o].ticket_kind == SB_TICKET_CLOSED)
        {
         Refuse(e, SB_ERR_NOTHING_OWN, "ticket #" + IntegerToString(m_journal.entries[o].ticket) + " of signal " + signal_id + " is already closed");
         return -1;
        }
      long ticket = SbBrokerFollow(m_journal.entries[o].ticket, m_magic);
      if(ticket != m_journal.entries[o].ticket)
        {
         SbLogInfo("journal", "signal " + signal_id + ": ticket #" + IntegerToString(m_journal.entries[o].ticket) + " continues as #" + IntegerToString(ticket));
         m_journal.entries[o].ticket = ticket;
        }
      if(SbBrokerFind(ticket, m_magic, info) == SB_TICKET_NONE)
        {
         m_journal.entries[o].ticket_kind = SB_TICKET_CLOSED;
         Refuse(e, SB_ERR_NOTHING_OWN, "ticket #" + IntegerToString(ticket) + " of signal " + signal_id +
                " is no longer open (closed by stop loss, take profit or by hand?)");
         return -1;
        }
      m_journal.entries[o].ticket_kind = info.kind;
      return o;
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
      double minimum, step, maximum;
      SbBrokerLimits(ins.symbol, minimum, step, maximum);
      string note;
      SbOrderRequest order;
      order.symbol = ins.symbol;
      order.side = ins.side;
      order.order_type = ins.order_type;
      order.price = ins.entry;
      order.stop_loss = ins.stop_loss;
      order.take_profit = ins.take_profit;
      order.volume = SbOpenVolume(ins.volume, minimum, step, maximum, note);
      order.magic = m_magic;
      order.comment = StringSubstr("sb:" + ins.id, 0, 31);
      order.slippage = m_slippage;
      if(note != "")
         SbLogInfo("trade", ins.id + ": " + note);
      m_journal.entries[e].comment = order.comment;
      m_journal.entries[e].volume = order.volume;
      if(!BeforeTrade(e))
         return;
      SbTradeResult result;
      if(!SbBrokerOpen(order, result))
        {
         Failed(e, result);
         return;
        }
      m_journal.entries[e].ticket = result.ticket;
      m_journal.entries[e].price = result.price;
      m_journal.entries[e].updated = m_http.clock.Now();
      if(result.pending)
        {
         m_journal.entries[e].ticket_kind = SB_TICKET_ORDER;
         m_journal.entries[e].state = SB_STATE_PLACED;
         SbLogInfo("trade", ins.id + ": pending order #" + IntegerToString(result.ticket) + " placed; its fill is reported when it fills");
        }
      else
        {
         m_journal.entries[e].ticket_kind = SB_TICKET_POSITION;
         m_journal.entries[e].state = SB_STATE_DONE;
         QueueFill(ins.id, ins.symbol, result);
        }
      Save();
     }

   void              ApplyModify(const int e, SbTicketInfo &info)
     {
      string why;
      if(!SbBrokerTradingAllowed(info.symbol, why))
        {
         Refuse(e, SB_ERR_NOT_ALLOWED, why);
         return;
        }
      m_journal.entries[e].ticket = info.ticket;
      m_journal.entries[e].ticket_kind = info.kind;
      if(!BeforeTrade(e))
         return;
      SbTradeResult result;
      if(!SbBrokerModify(info.ticket, info.kind, m_journal.entries[e].stop_loss, m_journal.entries[e].take_profit, result))
        {
         Failed(e, result);
         return;
        }
      result.price = info.price;
      result.volume = info.volume;
      m_journal.entries[e].state = SB_STATE_DONE;
      m_journal.entries[e].updated = m_http.clock.Now();
      QueueFill(m_journal.entries[e].id, info.symbol, result);
      Save();
     }

   void              ExecuteModify(const int e, SbInstruction &ins)
     {
      m_journal.entries[e].stop_loss = ins.stop_loss;
      m_journal.entries[e].take_profit = ins.take_profit;
      SbTicketInfo info;
      if(OwnTicket(e, info) < 0)
         return;
      ApplyModify(e, info);
     }

   void              FinishClose(const int e, const int o, SbTradeResult &result)
     {
      if(result.remainder > 0)
         m_journal.entries[o].ticket = result.remainder;
      SbTicketInfo left;
      if(SbBrokerFind(m_journal.entries[o].ticket, m_magic, left) == SB_TICKET_NONE)
         m_journal.entries[o].ticket_kind = SB_TICKET_CLOSED;
      m_journal.entries[e].state = SB_STATE_DONE;
      m_journal.entries[e].updated = m_http.clock.Now();
      QueueFill(m_journal.entries[e].id, m_journal.entries[e].symbol, result);
      Save();
     }

   void              FinishDelete(const int e, const int o, const bool with_profit)
     {
      SbTradeResult result;
      result.ok = true;
      result.ticket = m_journal.entries[e].ticket;
      result.price = m_journal.entries[e].price;
      result.volume = m_journal.entries[e].volume;
      result.has_profit = with_profit;
      m_journal.entries[o].ticket_kind = SB_TICKET_CLOSED;
      m_journal.entries[e].state = SB_STATE_DONE;
      m_journal.entries[e].updated = m_http.clock.Now();
      QueueFill(m_journal.entries[e].id, m_journal.entries[e].symbol, result);
      Save();
     }

   void              ApplyDelete(const int e, const int o, SbTicketInfo &info, const bool with_profit)
     {
      m_journal.entries[e].ticket = info.ticket;
      m_journal.entries[e].ticket_kind = SB_TICKET_ORDER;
      m_journal.entries[e].price = info.price;
      m_journal.entries[e].volume = info.volume;
      if(!BeforeTrade(e))
         return;
      SbTradeResult result;
      if(!SbBrokerDelete(info.ticket, result))
        {
         Failed(e, result);
         return;
        }
      FinishDelete(e, o, with_profit);
     }

   void              ExecuteClose(const int e, SbInstruction &ins)
     {
      SbTicketInfo info;
      int o = OwnTicket(e, info);
      if(o < 0)
         return;
      string why;
      if(!SbBrokerTradingAllowed(info.symbol, why))
        {
         Refuse(e, SB_ERR_NOT_ALLOWED, why);
         return;
        }
      if(info.kind == SB_TICKET_ORDER)
        {
         // Nothing filled yet: closing the signal deletes the pending order.
         ApplyDelete(e, o, info, true);
         return;
        }
      double minimum, step, maximum;
      SbBrokerLimits(info.symbol, minimum, step, maximum);
      double part = SbCloseVolume(info.volume, ins.fraction, minimum, step);
      if(part <= 0)
        {
         Refuse(e, SB_ERR_VOLUME_MIN, "closing " + SbDecimal(ins.fraction, 4) + " of " + SbDecimal(info.volume, 8) +
                " lots rounds below the symbol's minimum " + SbDecimal(minimum, 8) + "; nothing closed");
         return;
        }
      m_journal.entries[e].ticket = info.ticket;
      m_journal.entries[e].ticket_kind = SB_TICKET_POSITION;
      m_journal.entries[e].volume = info.volume;
      m_journal.entries[e].part = part;
      if(!BeforeTrade(e))
         return;
      SbTradeResult result;
      if(!SbBrokerClose(info.ticket, part, m_slippage, result))
        {
         Failed(e, result);
         return;
        }
      FinishClose(e, o, result);
     }

   void              ExecuteCancel(const int e, SbInstruction &ins)
     {
      SbTicketInfo info;
      int o = OwnTicket(e, info);
      if(o < 0)
         return;
      if(info.kind != SB_TICKET_ORDER)
        {
         Refuse(e, SB_ERR_NOTHING_OWN, "the pending order of signal " + ins.signal_id + " has already filled as position #" +
                IntegerToString(info.ticket) + "; cancel deletes only a pending order");
         return;
        }
      string why;
      if(!SbBrokerTradingAllowed(info.symbol, why))
        {
         Refuse(e, SB_ERR_NOT_ALLOWED, why);
         return;
        }
      ApplyDelete(e, o, info, false);
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
      string what = ins.id + ": " + ins.action + " " + ins.symbol + " (signal " + ins.signal_id + ")";
      if(ins.action == "open")
         what += " " + ins.side + " " + ins.order_type + " " + SbDecimal(ins.volume, 8) + " lots";
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
      else
         ExecuteCancel(e, ins);
     }

   bool              Poll(void)
     {
      string response;
      int status = m_http.Send("GET", "/api/v1/ea/instructions?wait=" + IntegerToString(m_wait), "", m_wait * 1000 + 15000, response);
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

   //------------------------------------------------------------ recovery

   //--- long enough connected after the start that what the terminal does not show is
   //--- not there (the terminal loads positions and history as it connects)
   bool              Settled(void)
     {
      return TimeGMT() - m_started >= SB_RECONCILE_GRACE_S && SbBrokerConnected();
     }

   //--- an open the EA made before it stopped, found in the terminal: journaled and reported
   void              Recovered(const int e, SbTicketInfo &info, const string how)
     {
      string id = m_journal.entries[e].id;
      SbLogInfo("reconcile", id + ": the open was done before the EA stopped: " + how);
      m_journal.entries[e].ticket = info.ticket;
      m_journal.entries[e].ticket_kind = info.kind;
      m_journal.entries[e].price = info.price;
      m_journal.entries[e].updated = m_http.clock.Now();
      if(info.kind == SB_TICKET_ORDER)
         m_journal.entries[e].state = SB_STATE_PLACED;
      else
        {
         m_journal.entries[e].state = SB_STATE_DONE;
         SbTradeResult result;
         result.ok = true;
         result.ticket = info.ticket;
         result.price = info.price;
         result.volume = info.volume;
         QueueFill(id, m_journal.entries[e].symbol, result);
        }
      Save();
     }

   bool              Claimed(const long ticket)
     {
      for(int i = 0; i < ArraySize(m_journal.entries); i++)
         if(m_journal.entries[i].ticket == ticket)
            return true;
      return false;
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
         if(action == "open")
           {
            SbTicketInfo info;
            if(SbBrokerFindByComment(m_journal.entries[e].comment, m_magic, m_journal.entries[e].trading_since, info))
               Recovered(e, info, "ticket #" + IntegerToString(info.ticket));
            else if(settled && FindUnclaimed(e, info))
               Recovered(e, info, "ticket #" + IntegerToString(info.ticket) + ", found by magic number, symbol and volume (its comment is now \"" +
                         info.comment + "\")");
            else if(settled)
               Refuse(e, SB_ERR_NOTHING_OWN, "the EA stopped while opening and the terminal shows no trade of it (comment " +
                      m_journal.entries[e].comment + "); nothing was opened and it is not tried again");
           }
         else if(action == "close")
           {
            SbTradeResult result;
            int o = m_journal.FindOpen(m_journal.entries[e].signal_id);
            if(SbBrokerFindClose(m_journal.entries[e].ticket, m_magic, m_journal.entries[e].volume, result) && o >= 0)
              {
               SbLogInfo("reconcile", id + ": the close was done before the EA stopped");
               FinishClose(e, o, result);
              }
            else if(settled)
               Refuse(e, SB_ERR_NOTHING_OWN, "the EA stopped while closing #" + IntegerToString(m_journal.entries[e].ticket) +
                      " and finds no close of it; nothing was closed and it is not tried again; check the position");
           }
         else if(action == "modify")
           {
            // Setting the same stop loss and take profit again is harmless: do it.
            SbTicketInfo info;
            if(SbBrokerFind(m_journal.entries[e].ticket, m_magic, info) != SB_TICKET_NONE)
              {
               if(waited)
                  ApplyModify(e, info);
              }
            else if(settled)
               Refuse(e, SB_ERR_NOTHING_OWN, "ticket #" + IntegerToString(m_journal.entries[e].ticket) + " is no longer open");
           }
         else
           {
            // cancel (or a close that deleted a pending order): done when the order is gone
            SbTicketInfo info;
            int o = m_journal.FindOpen(m_journal.entries[e].signal_id);
            int kind = SbBrokerFind(m_journal.entries[e].ticket, m_magic, info);
            if(kind == SB_TICKET_ORDER && o >= 0)
              {
               if(waited)
                  ApplyDelete(e, o, info, action == "close");
              }
            else if(kind == SB_TICKET_NONE && o >= 0)
              {
               if(settled)
                  FinishDelete(e, o, action == "close");
              }
            else
               Refuse(e, SB_ERR_NOTHING_OWN, "the pending order #" + IntegerToString(m_journal.entries[e].ticket) + " has filled; not deleted");
           }
        }
     }

   //--- a cancel (or a close of a pending order) of the signal whose delete call was under
   //--- way when the EA stopped: Reconcile concludes it, so the order it deleted is no news
   bool              DeleteInFlight(const string signal_id)
     {
      for(int i = 0; i < ArraySize(m_journal.entries); i++)
         if(m_journal.entries[i].state == SB_STATE_TRADING && m_journal.entries[i].signal_id == signal_id &&
            m_journal.entries[i].action != "open" && m_journal.entries[i].action != "modify")
            return true;
      return false;
     }

   //--- pending orders placed for opens: filled (fill report) or gone (error report)
   void              WatchPlaced(void)
     {
      for(int e = 0; e < ArraySize(m_journal.entries); e++)
        {
         if(m_journal.entries[e].state != SB_STATE_PLACED)
            continue;
         SbTicketInfo info;
         int kind = SbBrokerFind(m_journal.entries[e].ticket, m_magic, info);
         if(kind == SB_TICKET_ORDER || (kind == SB_TICKET_NONE && (!Settled() || DeleteInFlight(m_journal.entries[e].signal_id))))
            continue;
         m_journal.entries[e].updated = m_http.clock.Now();
         m_journal.entries[e].state = SB_STATE_DONE;
         if(kind == SB_TICKET_POSITION)
           {
            SbLogInfo("trade", m_journal.entries[e].id + ": pending order #" + IntegerToString(m_journal.entries[e].ticket) +
                      " filled as position #" + IntegerToString(info.ticket));
            m_journal.entries[e].ticket = info.ticket;
            m_journal.entries[e].ticket_kind = SB_TICKET_POSITION;
            SbTradeResult result;
            result.ok = true;
            result.ticket = info.ticket;
            result.price = info.price;
            result.volume = info.volume;
            QueueFill(m_journal.entries[e].id, m_journal.entries[e].symbol, result);
           }
         else if(m_journal.entries[e].ticket_kind != SB_TICKET_CLOSED)
           {
            m_journal.entries[e].ticket_kind = SB_TICKET_CLOSED;
            QueueError(m_journal.entries[e].id, SB_ERR_NOTHING_OWN, "pending order #" + IntegerToString(m_journal.entries[e].ticket) +
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
      m_told_disconnected = false;
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
      if(m_backing_off && (int)(m_resume_ms - GetTickCount()) > 0)
         return;
      m_backing_off = false;
      if(!SbBrokerConnected())
        {
         // Its positions and history may not be loaded yet: only reports go out.
         if(!m_told_disconnected)
            SbLogInfo("setup", "waiting for the terminal to connect to the trade server before anything else");
         m_told_disconnected = true;
         Flush();
         return;
        }
      m_told_disconnected = false;
      Reconcile();
      WatchPlaced();
      if(!Flush())
         return;
      if(!Poll() || m_backing_off)
         return;
      m_backoff_s = 0;
      m_last_refusal = "";
      Flush();
     }

   //--- a trade event (OnTradeTransaction / OnTrade): look at pending orders now
   void              TradeEvent(void)
     {
      if(m_ready)
         WatchPlaced();
     }

   bool              Ready(void) { return m_ready; }
  };

#endif
