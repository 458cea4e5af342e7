//+------------------------------------------------------------------+
//| SignalBridge/Journal.mqh                                         |
//| What the EA did and still owes, in the terminal's Files folder,   |
//| one file per device id: every instruction (its step and tickets), |
//| every position or order the EA placed for one (a "holding", one   |
//| per leg, with its management state), and every report the server |
//| has not accepted yet. It is saved                                 |
//| before each trade call and after it; a save writes a new file and |
//| renames it over the old, so a crash leaves one whole journal.     |
//+------------------------------------------------------------------+
#ifndef SB_JOURNAL_MQH
#define SB_JOURNAL_MQH

#include <SignalBridge/Log.mqh>

//--- the steps of an instruction
#define SB_STATE_RECEIVED 1  // journaled and acked; the trade call has not started
#define SB_STATE_TRADING  2  // saved just before the trade call; after a crash: reconcile
#define SB_STATE_DONE     3  // finished (traded, or refused with an error report)
#define SB_STATE_PLACED   4  // v1.0 journals: a pending order is placed (now a holding's kind)

//--- what an open's ticket is
#define SB_TICKET_NONE     0  // a holding: planned, its trade call not made yet
#define SB_TICKET_POSITION 1
#define SB_TICKET_ORDER    2
#define SB_TICKET_CLOSED   3  // the position or order is gone (closed, cancelled)

#define SB_JOURNAL_KEEP_S (30 * 86400)

class SbEntry
  {
public:
   string            id;             // instruction id
   string            signal_id;
   string            action;
   string            symbol;
   int               state;
   long              ticket;         // open: the position or pending order; others: what they acted on
   int               ticket_kind;    // SB_TICKET_*
   string            comment;        // open: the order comment that ties the trade to the instruction
   double            volume;         // open: the volume sent; close: the position's volume before the call
   double            part;           // close: the volume asked to close
   double            price;          // the open or order price of what it acted on
   double            stop_loss;      // modify: the stop loss asked for (0: none)
   double            take_profit;    // modify: the take profit asked for (0: none)
   datetime          updated;
   datetime          trading_since;  // when the trade call started (server time)
   int               leg;            // open, close, close_all: the leg whose trade call is under way (-1: none)
   string            detail;         // modify: its take profits "tp0,tp1"; close: its fraction
                     SbEntry(void) { Clear(); }
   void              Clear(void)
     {
      id = ""; signal_id = ""; action = ""; symbol = ""; state = 0; ticket = 0;
      ticket_kind = SB_TICKET_NONE; comment = ""; volume = 0; part = 0; price = 0; stop_loss = 0;
      take_profit = 0; updated = 0; trading_since = 0; leg = -1; detail = "";
     }
  };

//--- a position or pending order the EA placed for an open: one per leg (leg -1 when the
//--- open has no legs), from the moment it is planned until 30 days after it closed
class SbHolding
  {
public:
   string            instruction_id; // the open
   string            signal_id;
   int               leg;
   string            symbol;
   string            side;           // buy, sell
   string            order_type;     // market, limit, stop
   int               kind;           // SB_TICKET_NONE (planned), _POSITION, _ORDER, _CLOSED
   long              ticket;
   string            comment;
   double            volume;
   double            price;          // planned: the entry (limit, stop); then the open price
   double            stop_loss;      // as the broker has it (0: none)
   double            take_profit;
   int               be_after_leg;   // breakeven once this leg closed at its take profit (-1: none)
   int               be_offset;      // points
   int               trail_distance; // points (0: no trailing)
   int               trail_step;
   int               trail_after_be; // 1: trailing starts after breakeven
   int               be_armed;       // 1: the leg after_leg closed at its take profit
   int               be_done;        // 1: the stop loss is at breakeven (or beyond)
   double            sl_reported;    // the stop loss the server knows of
   int               sl_events;      // sl_moved events sent (numbers their report ids)
   datetime          sl_event_at;    // when the last one was queued
   datetime          closed_at;
                     SbHolding(void) { Clear(); }
   void              Clear(void)
     {
      instruction_id = ""; signal_id = ""; leg = -1; symbol = ""; side = ""; order_type = ""; kind = SB_TICKET_NONE;
      ticket = 0; comment = ""; volume = 0; price = 0; stop_loss = 0; take_profit = 0; be_after_leg = -1; be_offset = 0;
      trail_distance = 0; trail_step = 0; trail_after_be = 0; be_armed = 0; be_done = 0; sl_reported = 0; sl_events = 0;
      sl_event_at = 0; closed_at = 0;
     }
   bool              Live(void) { return kind == SB_TICKET_POSITION || kind == SB_TICKET_ORDER; }
   //--- breakeven or trailing still has work to do on it
   bool              Managed(void) { return kind == SB_TICKET_POSITION && (trail_distance > 0 || (be_after_leg >= 0 && be_done == 0 && leg != be_after_leg)); }
  };

class SbOutgoing
  {
public:
   string            report_id;
   string            kind;            // ack, fill, error
   string            instruction_id;
   string            body;            // the exact JSON sent, so a resend is a duplicate
  };

string SbJournalEscape(const string text)
  {
   string out = text;
   StringReplace(out, "\\", "\\\\");
   StringReplace(out, "\t", "\\t");
   StringReplace(out, "\n", "\\n");
   StringReplace(out, "\r", "\\r");
   return out;
  }

string SbJournalUnescape(const string text)
  {
   string out = "";
   int length = StringLen(text);
   for(int i = 0; i < length; i++)
     {
      ushort c = StringGetCharacter(text, i);
      if(c == '\\' && i + 1 < length)
        {
         ushort e = StringGetCharacter(text, i + 1);
         i++;
         if(e == 't')
            out += "\t";
         else if(e == 'n')
            out += "\n";
         else if(e == 'r')
            out += "\r";
         else
            out += ShortToString(e);
        }
      else
         out += StringSubstr(text, i, 1);
     }
   return out;
  }

class SbJournal
  {
public:
   SbEntry           entries[];   // every instruction the EA still needs to know of
   SbHolding         holdings[];  // what it placed for opens, in the order placed
   SbOutgoing        outbox[];    // reports the server has not accepted yet, oldest first

private:
   string            m_name;
   long              m_sequence;
   string            m_error;

   bool              ReadFile(const string name, string &text)
     {
      ResetLastError();
      int handle = FileOpen(name, FILE_READ | FILE_BIN);
      if(handle == INVALID_HANDLE)
        {
         m_error = "cannot open " + name + " (error " + IntegerToString(GetLastError()) + ")";
         return false;
        }
      uchar bytes[];
      FileReadArray(handle, bytes);
      FileClose(handle);
      text = CharArrayToString(bytes, 0, WHOLE_ARRAY, CP_UTF8);
      return true;
     }

   //--- parses one journal text into the lists; false when it is not a whole journal
   bool              Decode(const string text, long &sequence)
     {
      string lines[];
      int count = StringSplit(text, '\n', lines);
      if(count < 2)
         return false;
      string head[];
      if(StringSplit(lines[0], '\t', head) != 2 || head[0] != "SBJ1")
         return false;
      sequence = StringToInteger(head[1]);
      ArrayResize(entries, 0);
      ArrayResize(holdings, 0);
      ArrayResize(outbox, 0);
      bool ended = false;
      int records = 0;
      for(int i = 1; i < count; i++)
        {
         if(lines[i] == "")
            continue;
         string f[];
         int n = StringSplit(lines[i], '\t', f);
         if(f[0] == "END" && n == 2)
           {
            ended = StringToInteger(f[1]) == records;
            break;
           }
         if(f[0] == "E" && (n == 16 || n == 18))
           {
            int e = ArraySize(entries);
            ArrayResize(entries, e + 1);
            entries[e].id = f[1];
            entries[e].signal_id = f[2];
            entries[e].action = f[3];
            entries[e].symbol = f[4];
            entries[e].state = (int)StringToInteger(f[5]);
            entries[e].ticket = StringToInteger(f[6]);
            entries[e].ticket_kind = (int)StringToInteger(f[7]);
            entries[e].comment = SbJournalUnescape(f[8]);
            entries[e].volume = StringToDouble(f[9]);
            entries[e].part = StringToDouble(f[10]);
            entries[e].updated = (datetime)StringToInteger(f[11]);
            entries[e].trading_since = (datetime)StringToInteger(f[12]);
            entries[e].price = StringToDouble(f[13]);
            entries[e].stop_loss = StringToDouble(f[14]);
            entries[e].take_profit = StringToDouble(f[15]);
            entries[e].leg = n == 18 ? (int)StringToInteger(f[16]) : -1;
            entries[e].detail = n == 18 ? SbJournalUnescape(f[17]) : "";
           }
         else if(f[0] == "H" && n == 25)
           {
            int h = ArraySize(holdings);
            ArrayResize(holdings, h + 1);
            holdings[h].instruction_id = f[1];
            holdings[h].signal_id = f[2];
            holdings[h].leg = (int)StringToInteger(f[3]);
            holdings[h].symbol = f[4];
            holdings[h].side = f[5];
            holdings[h].order_type = f[6];
            holdings[h].kind = (int)StringToInteger(f[7]);
            holdings[h].ticket = StringToInteger(f[8]);
            holdings[h].comment = SbJournalUnescape(f[9]);
            holdings[h].volume = StringToDouble(f[10]);
            holdings[h].price = StringToDouble(f[11]);
            holdings[h].stop_loss = StringToDouble(f[12]);
            holdings[h].take_profit = StringToDouble(f[13]);
            holdings[h].be_after_leg = (int)StringToInteger(f[14]);
            holdings[h].be_offset = (int)StringToInteger(f[15]);
            holdings[h].trail_distance = (int)StringToInteger(f[16]);
            holdings[h].trail_step = (int)StringToInteger(f[17]);
            holdings[h].trail_after_be = (int)StringToInteger(f[18]);
            holdings[h].be_armed = (int)StringToInteger(f[19]);
            holdings[h].be_done = (int)StringToInteger(f[20]);
            holdings[h].sl_reported = StringToDouble(f[21]);
            holdings[h].sl_events = (int)StringToInteger(f[22]);
            holdings[h].sl_event_at = (datetime)StringToInteger(f[23]);
            holdings[h].closed_at = (datetime)StringToInteger(f[24]);
           }
         else if(f[0] == "R" && n == 5)
           {
            int r = ArraySize(outbox);
            ArrayResize(outbox, r + 1);
            outbox[r].report_id = f[1];
            outbox[r].kind = f[2];
            outbox[r].instruction_id = f[3];
            outbox[r].body = SbJournalUnescape(f[4]);
           }
         else
            return false;
         records++;
        }
      return ended;
     }

public:
                     SbJournal(void) { m_name = ""; m_sequence = 0; m_error = ""; }
   string            Name(void) { return m_name; }
   string            Error(void) { return m_error; }

   //--- loads the journal of a device (none yet is an empty journal); false and Error()
   //--- when the file exists but cannot be read whole
   bool              Open(const string device_id)
     {
      m_name = "SignalBridge_" + device_id + ".journal";
      m_error = "";
      m_sequence = 0;
      ArrayResize(entries, 0);
      ArrayResize(outbox, 0);
      string temp = m_name + ".tmp";
      long main_sequence = -1;
      string text;
      if(FileIsExist(m_name))
        {
         if(!ReadFile(m_name, text))
            return false;
         if(!Decode(text, main_sequence))
            main_sequence = -1;
        }
      if(FileIsExist(temp))
        {
         string temp_text;
         long temp_sequence = -1;
         if(ReadFile(temp, temp_text) && Decode(temp_text, temp_sequence) && temp_sequence > main_sequence)
            text = temp_text;
         else
            temp_sequence = -1;
         if(temp_sequence < 0 && main_sequence < 0 && FileIsExist(m_name))
           {
            m_error = m_name + " is damaged and " + temp + " cannot replace it";
            return false;
           }
        }
      else if(main_sequence < 0 && FileIsExist(m_name))
        {
         m_error = m_name + " is damaged (not a whole journal)";
         return false;
        }
      if(text == "")
         return true;
      long sequence = 0;
      if(!Decode(text, sequence))
        {
         m_error = m_name + " cannot be read";
         return false;
        }
      m_sequence = sequence;
      Upgrade();
      return true;
     }

   //--- a journal of EA 1.0 holds each open's ticket in its entry: it becomes a holding
   void              Upgrade(void)
     {
      for(int e = 0; e < ArraySize(entries); e++)
        {
         bool trading = entries[e].state == SB_STATE_TRADING;
         if(entries[e].action != "open" || HoldingsOf(entries[e].id) > 0 ||
            (!trading && entries[e].ticket_kind != SB_TICKET_POSITION && entries[e].ticket_kind != SB_TICKET_ORDER))
            continue;
         // An open under way when EA 1.0 stopped: its one position, planned, for Reconcile.
         int h = AddHolding(entries[e].id, entries[e].signal_id, -1, entries[e].symbol);
         holdings[h].kind = trading ? SB_TICKET_NONE : entries[e].ticket_kind;
         holdings[h].ticket = entries[e].ticket;
         holdings[h].comment = entries[e].comment;
         holdings[h].volume = entries[e].volume;
         holdings[h].price = entries[e].price;
         if(entries[e].state == SB_STATE_PLACED)
            entries[e].state = SB_STATE_DONE;
        }
     }

   //--- writes the whole journal to <name>.tmp and renames it over <name>
   bool              Save(const datetime now)
     {
      m_sequence++;
      string text = "SBJ1\t" + IntegerToString(m_sequence) + "\n";
      int records = 0;
      for(int i = 0; i < ArraySize(entries); i++)
        {
         bool finished = entries[i].state == SB_STATE_DONE && !HoldsLive(entries[i].id);
         if(finished && now - entries[i].updated > SB_JOURNAL_KEEP_S && !HasReportFor(entries[i].id))
            continue;
         text += "E\t" + entries[i].id + "\t" + entries[i].signal_id + "\t" + entries[i].action + "\t" +
                 entries[i].symbol + "\t" + IntegerToString(entries[i].state) + "\t" +
                 IntegerToString(entries[i].ticket) + "\t" + IntegerToString(entries[i].ticket_kind) + "\t" +
                 SbJournalEscape(entries[i].comment) + "\t" + DoubleToString(entries[i].volume, 8) + "\t" +
                 DoubleToString(entries[i].part, 8) + "\t" + IntegerToString(entries[i].updated) + "\t" +
                 IntegerToString(entries[i].trading_since) + "\t" + DoubleToString(entries[i].price, 8) + "\t" +
                 DoubleToString(entries[i].stop_loss, 8) + "\t" + DoubleToString(entries[i].take_profit, 8) + "\t" +
                 IntegerToString(entries[i].leg) + "\t" + SbJournalEscape(entries[i].detail) + "\n";
         records++;
        }
      for(int i = 0; i < ArraySize(holdings); i++)
        {
         if(holdings[i].kind == SB_TICKET_CLOSED && now - holdings[i].closed_at > SB_JOURNAL_KEEP_S)
            continue;
         text += "H\t" + holdings[i].instruction_id + "\t" + holdings[i].signal_id + "\t" + IntegerToString(holdings[i].leg) + "\t" +
                 holdings[i].symbol + "\t" + holdings[i].side + "\t" + holdings[i].order_type + "\t" +
                 IntegerToString(holdings[i].kind) + "\t" + IntegerToString(holdings[i].ticket) + "\t" +
                 SbJournalEscape(holdings[i].comment) + "\t" + DoubleToString(holdings[i].volume, 8) + "\t" +
                 DoubleToString(holdings[i].price, 8) + "\t" + DoubleToString(holdings[i].stop_loss, 8) + "\t" +
                 DoubleToString(holdings[i].take_profit, 8) + "\t" + IntegerToString(holdings[i].be_after_leg) + "\t" +
                 IntegerToString(holdings[i].be_offset) + "\t" + IntegerToString(holdings[i].trail_distance) + "\t" +
                 IntegerToString(holdings[i].trail_step) + "\t" + IntegerToString(holdings[i].trail_after_be) + "\t" +
                 IntegerToString(holdings[i].be_armed) + "\t" + IntegerToString(holdings[i].be_done) + "\t" +
                 DoubleToString(holdings[i].sl_reported, 8) + "\t" + IntegerToString(holdings[i].sl_events) + "\t" +
                 IntegerToString(holdings[i].sl_event_at) + "\t" + IntegerToString(holdings[i].closed_at) + "\n";
         records++;
        }
      for(int i = 0; i < ArraySize(outbox); i++)
        {
         text += "R\t" + outbox[i].report_id + "\t" + outbox[i].kind + "\t" + outbox[i].instruction_id + "\t" +
                 SbJournalEscape(outbox[i].body) + "\n";
         records++;
        }
      text += "END\t" + IntegerToString(records) + "\n";
      string temp = m_name + ".tmp";
      ResetLastError();
      int handle = FileOpen(temp, FILE_WRITE | FILE_BIN);
      if(handle == INVALID_HANDLE)
        {
         SbLogError("journal", "cannot write " + temp + " (error " + IntegerToString(GetLastError()) + ")");
         return false;
        }
      uchar bytes[];
      int length = StringToCharArray(text, bytes, 0, WHOLE_ARRAY, CP_UTF8) - 1;
      uint written = FileWriteArray(handle, bytes, 0, length);
      FileFlush(handle);
      FileClose(handle);
      if((int)written != length)
        {
         SbLogError("journal", "wrote " + IntegerToString(written) + " of " + IntegerToString(length) +
                    " bytes to " + temp + " (error " + IntegerToString(GetLastError()) + ")");
         return false;
        }
      ResetLastError();
      if(!FileMove(temp, 0, m_name, FILE_REWRITE))
        {
         SbLogError("journal", "cannot rename " + temp + " to " + m_name + " (error " + IntegerToString(GetLastError()) + ")");
         return false;
        }
      return true;
     }

   int               Find(const string instruction_id)
     {
      for(int i = ArraySize(entries) - 1; i >= 0; i--)
         if(entries[i].id == instruction_id)
            return i;
      return -1;
     }

   //--- the open of a signal (the entry that holds its ticket), or -1
   int               FindOpen(const string signal_id)
     {
      for(int i = ArraySize(entries) - 1; i >= 0; i--)
         if(entries[i].signal_id == signal_id && entries[i].action == "open")
            return i;
      return -1;
     }

   int               Add(const string id, const string signal_id, const string action, const string symbol, const datetime now)
     {
      int e = ArraySize(entries);
      ArrayResize(entries, e + 1);
      entries[e].Clear();
      entries[e].id = id;
      entries[e].signal_id = signal_id;
      entries[e].action = action;
      entries[e].symbol = symbol;
      entries[e].state = SB_STATE_RECEIVED;
      entries[e].updated = now;
      return e;
     }

   //--- the holding of an open's leg, or -1
   int               FindHolding(const string instruction_id, const int leg)
     {
      for(int i = 0; i < ArraySize(holdings); i++)
         if(holdings[i].instruction_id == instruction_id && holdings[i].leg == leg)
            return i;
      return -1;
     }

   //--- the holding of a ticket (live or closed), or -1
   int               FindTicket(const long ticket)
     {
      for(int i = ArraySize(holdings) - 1; i >= 0; i--)
         if(holdings[i].ticket == ticket && holdings[i].kind != SB_TICKET_NONE)
            return i;
      return -1;
     }

   int               HoldingsOf(const string instruction_id)
     {
      int count = 0;
      for(int i = 0; i < ArraySize(holdings); i++)
         if(holdings[i].instruction_id == instruction_id)
            count++;
      return count;
     }

   //--- an open with a position or order still live, or a leg still to open
   bool              HoldsLive(const string instruction_id)
     {
      for(int i = 0; i < ArraySize(holdings); i++)
         if(holdings[i].instruction_id == instruction_id && holdings[i].kind != SB_TICKET_CLOSED)
            return true;
      return false;
     }

   int               AddHolding(const string instruction_id, const string signal_id, const int leg, const string symbol)
     {
      int h = ArraySize(holdings);
      ArrayResize(holdings, h + 1);
      holdings[h].Clear();
      holdings[h].instruction_id = instruction_id;
      holdings[h].signal_id = signal_id;
      holdings[h].leg = leg;
      holdings[h].symbol = symbol;
      return h;
     }

   bool              HasReport(const string report_id)
     {
      for(int i = 0; i < ArraySize(outbox); i++)
         if(outbox[i].report_id == report_id)
            return true;
      return false;
     }

   bool              HasReportFor(const string instruction_id)
     {
      for(int i = 0; i < ArraySize(outbox); i++)
         if(outbox[i].instruction_id == instruction_id)
            return true;
      return false;
     }

   //--- queues a report (once per report id)
   void              Queue(const string report_id, const string kind, const string instruction_id, const string body)
     {
      if(HasReport(report_id))
         return;
      int r = ArraySize(outbox);
      ArrayResize(outbox, r + 1);
      outbox[r].report_id = report_id;
      outbox[r].kind = kind;
      outbox[r].instruction_id = instruction_id;
      outbox[r].body = body;
     }

   //--- the server accepted (or refused for good) the report: it leaves the queue
   void              Remove(const string report_id)
     {
      int kept = 0;
      for(int i = 0; i < ArraySize(outbox); i++)
        {
         if(outbox[i].report_id == report_id)
            continue;
         if(kept != i)
           {
            outbox[kept].report_id = outbox[i].report_id;
            outbox[kept].kind = outbox[i].kind;
            outbox[kept].instruction_id = outbox[i].instruction_id;
            outbox[kept].body = outbox[i].body;
           }
         kept++;
        }
      ArrayResize(outbox, kept);
     }
  };

#endif
