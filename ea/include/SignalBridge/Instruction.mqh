//+------------------------------------------------------------------+
//| SignalBridge/Instruction.mqh                                     |
//| Reads one instruction of EA_PROTOCOL.md sections 3 and 5 from the |
//| JSON tree (v1.1: sizing, legs, management, guards, close_all):    |
//| every field checked, so a malformed instruction becomes error     |
//| 90008 and never a trade.                                          |
//+------------------------------------------------------------------+
#ifndef SB_INSTRUCTION_MQH
#define SB_INSTRUCTION_MQH

#include <SignalBridge/Json.mqh>

#define SB_ERR_STALE          90001
#define SB_ERR_SYMBOL         90002
#define SB_ERR_VOLUME_MIN     90003
#define SB_ERR_SPREAD         90004
#define SB_ERR_DISTANCE       90005
#define SB_ERR_NOT_ALLOWED    90006
#define SB_ERR_NOTHING_OWN    90007
#define SB_ERR_MALFORMED      90008
#define SB_ERR_MARKET_CLOSED  90009
#define SB_MAX_LEGS           10

class SbInstruction
  {
public:
   string            id;
   string            signal_id;
   string            action;       // open, modify, close, cancel, close_all
   string            symbol;
   string            side;         // open: buy, sell
   string            order_type;   // open: market, limit, stop
   double            entry;        // limit and stop; 0 for market
   double            stop_loss;    // 0: none
   double            take_profit;  // take_profit[0]; 0: none
   double            volume;       // open
   double            fraction;     // close, (0, 1]
   string            comment;
   datetime          issued_at;
   datetime          expires_at;   // 0: none
   double            take_profits[];  // every take_profit of the list (modify: leg i gets [i])
   //--- v1.1 (section 5.2); absent parts leave the v1 behaviour
   string            sizing_mode;  // "" (absent), fixed, risk_percent, risk_money
   double            sizing_lots;
   double            sizing_percent;
   bool              sizing_of_equity;
   double            sizing_amount;
   double            sizing_max_lots; // 0: none
   double            leg_take_profit[]; // legs: empty when the open has none
   double            leg_share[];
   int               be_after_leg;  // -1: no breakeven
   int               be_offset;     // points
   int               trail_distance; // points; 0: no trailing
   int               trail_step;    // points
   bool              trail_after_be; // start: after_breakeven (else at_open)
   int               max_spread;    // points; -1: no guard
   double            reference_price; // 0: none
   int               max_distance;  // points; -1: no guard
                     SbInstruction(void) { Clear(); }
   void              Clear(void)
     {
      id = ""; signal_id = ""; action = ""; symbol = ""; side = ""; order_type = "";
      entry = 0; stop_loss = 0; take_profit = 0; volume = 0; fraction = 0; comment = "";
      issued_at = 0; expires_at = 0; ArrayResize(take_profits, 0);
      sizing_mode = ""; sizing_lots = 0; sizing_percent = 0; sizing_of_equity = false; sizing_amount = 0;
      sizing_max_lots = 0; ArrayResize(leg_take_profit, 0); ArrayResize(leg_share, 0);
      be_after_leg = -1; be_offset = 0; trail_distance = 0; trail_step = 0; trail_after_be = false;
      max_spread = -1; reference_price = 0; max_distance = -1;
     }
   int               Legs(void) { return ArraySize(leg_share); }
  };

bool SbIsIdChar(const ushort c)
  {
   return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
  }

//--- 1-64 characters of [A-Za-z0-9_-]: an id the server can be told about
bool SbIsRecordId(const string text)
  {
   int length = StringLen(text);
   if(length < 1 || length > 64)
      return false;
   for(int i = 0; i < length; i++)
      if(!SbIsIdChar(StringGetCharacter(text, i)))
         return false;
   return true;
  }

//--- a decimal string of the contract: -?[0-9]{1,18}(.[0-9]{1,12})?
bool SbParseDecimal(const string text, double &value)
  {
   int length = StringLen(text);
   int i = 0;
   if(length > 0 && StringGetCharacter(text, 0) == '-')
      i = 1;
   int whole = 0;
   while(i < length && StringGetCharacter(text, i) >= '0' && StringGetCharacter(text, i) <= '9')
     {
      i++;
      whole++;
     }
   if(whole < 1 || whole > 18)
      return false;
   if(i < length)
     {
      if(StringGetCharacter(text, i) != '.')
         return false;
      i++;
      int fraction = 0;
      while(i < length && StringGetCharacter(text, i) >= '0' && StringGetCharacter(text, i) <= '9')
        {
         i++;
         fraction++;
        }
      if(fraction < 1 || fraction > 12 || i != length)
         return false;
     }
   value = StringToDouble(text);
   return true;
  }

long SbDaysFromCivil(const long year, const long month, const long day)
  {
   long y = month <= 2 ? year - 1 : year;
   long era = (y >= 0 ? y : y - 399) / 400;
   long yoe = y - era * 400;
   long mp = month > 2 ? month - 3 : month + 9;
   long doy = (153 * mp + 2) / 5 + day - 1;
   long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
   return era * 146097 + doe - 719468;
  }

bool SbDigits(const string text, const int start, const int count, long &value)
  {
   value = 0;
   if(start + count > StringLen(text))
      return false;
   for(int i = start; i < start + count; i++)
     {
      ushort c = StringGetCharacter(text, i);
      if(c < '0' || c > '9')
         return false;
      value = value * 10 + (c - '0');
     }
   return true;
  }

//--- ISO 8601 with a zone: YYYY-MM-DDTHH:MM:SS[.fff](Z|+HH:MM|-HH:MM) -> Unix seconds
bool SbParseIsoTime(const string text, datetime &value)
  {
   long year, month, day, hour, minute, second;
   if(StringLen(text) < 20 || !SbDigits(text, 0, 4, year) || StringGetCharacter(text, 4) != '-' ||
      !SbDigits(text, 5, 2, month) || StringGetCharacter(text, 7) != '-' || !SbDigits(text, 8, 2, day))
      return false;
   ushort t = StringGetCharacter(text, 10);
   if((t != 'T' && t != 't' && t != ' ') || !SbDigits(text, 11, 2, hour) || StringGetCharacter(text, 13) != ':' ||
      !SbDigits(text, 14, 2, minute) || StringGetCharacter(text, 16) != ':' || !SbDigits(text, 17, 2, second))
      return false;
   if(month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60)
      return false;
   int pos = 19;
   if(StringGetCharacter(text, pos) == '.')
     {
      pos++;
      int start = pos;
      while(pos < StringLen(text) && StringGetCharacter(text, pos) >= '0' && StringGetCharacter(text, pos) <= '9')
         pos++;
      if(pos == start)
         return false;
     }
   long offset = 0;
   ushort zone = StringGetCharacter(text, pos);
   if(zone == 'Z' || zone == 'z')
      pos++;
   else if(zone == '+' || zone == '-')
     {
      long zh, zm;
      if(!SbDigits(text, pos + 1, 2, zh) || StringGetCharacter(text, pos + 3) != ':' || !SbDigits(text, pos + 4, 2, zm))
         return false;
      offset = (zh * 60 + zm) * 60;
      if(zone == '-')
         offset = -offset;
      pos += 6;
     }
   else
      return false;
   if(pos != StringLen(text))
      return false;
   value = (datetime)(SbDaysFromCivil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second - offset);
   return true;
  }

//--- a required string member; problem names the field when it is missing or not a string
bool SbMemberString(SbJson &json, const int node, const string key, string &value, string &problem)
  {
   if(json.MemberType(node, key) != SB_JSON_STRING)
     {
      problem = key + (json.Has(node, key) ? " is not a string" : " is missing");
      return false;
     }
   value = json.MemberText(node, key);
   return true;
  }

//--- a price member: a positive decimal string, or (when nullable) null or absent -> 0
bool SbMemberPrice(SbJson &json, const int node, const string key, const bool nullable, double &value, string &problem)
  {
   value = 0;
   int type = json.MemberType(node, key);
   if(type == SB_JSON_NULL || type < 0)
     {
      if(nullable)
         return true;
      problem = key + " is missing";
      return false;
     }
   if(type != SB_JSON_STRING || !SbParseDecimal(json.MemberText(node, key), value) || value <= 0)
     {
      problem = key + " must be a positive decimal string";
      return false;
     }
   return true;
  }

//--- take_profit: a list of positive decimal strings; value gets the first (0 when empty),
//--- all the list
bool SbMemberTakeProfit(SbJson &json, const int node, double &value, double &all[], string &problem)
  {
   value = 0;
   ArrayResize(all, 0);
   int list = json.Find(node, "take_profit");
   int type = json.Type(list);
   if(type == SB_JSON_NULL || list < 0)
      return true;
   if(type != SB_JSON_ARRAY)
     {
      problem = "take_profit must be a list of decimal strings";
      return false;
     }
   for(int i = 0; i < json.Count(list); i++)
     {
      int item = json.Item(list, i);
      double price = 0;
      if(json.Type(item) != SB_JSON_STRING || !SbParseDecimal(json.Text(item), price) || price <= 0)
        {
         problem = "take_profit[" + IntegerToString(i) + "] must be a positive decimal string";
         return false;
        }
      if(i == 0)
         value = price;
      ArrayResize(all, i + 1);
      all[i] = price;
     }
   return true;
  }

//--- a whole number of points: a JSON integer 0-1000000, or absent/null -> fallback
bool SbMemberPoints(SbJson &json, const int node, const string key, const int fallback, int &value, string &problem)
  {
   value = fallback;
   int type = json.MemberType(node, key);
   if(type == SB_JSON_NULL || type < 0)
      return true;
   string text = json.MemberText(node, key);
   long number = 0;
   if(type != SB_JSON_NUMBER || StringLen(text) < 1 || StringLen(text) > 7 || !SbDigits(text, 0, StringLen(text), number) ||
      number > 1000000)
     {
      problem = key + " must be a whole number of points (0 or more)";
      return false;
     }
   value = (int)number;
   return true;
  }

//--- a positive decimal string member (required)
bool SbMemberPositive(SbJson &json, const int node, const string where, const string key, double &value, string &problem)
  {
   if(json.MemberType(node, key) != SB_JSON_STRING || !SbParseDecimal(json.MemberText(node, key), value) || value <= 0)
     {
      problem = where + key + " must be a positive decimal string";
      return false;
     }
   return true;
  }

//--- an object member that may be absent or null: -1 then, else its node (or problem)
bool SbMemberObject(SbJson &json, const int node, const string key, int &child, string &problem)
  {
   child = json.Find(node, key);
   int type = json.Type(child);
   if(child < 0 || type == SB_JSON_NULL)
     {
      child = -1;
      return true;
     }
   if(type != SB_JSON_OBJECT)
     {
      problem = key + " must be an object";
      return false;
     }
   return true;
  }

//--- sizing of section 5.2: fixed, risk_percent or risk_money
bool SbParseSizing(SbJson &json, const int node, SbInstruction &out, string &problem)
  {
   int sizing;
   if(!SbMemberObject(json, node, "sizing", sizing, problem))
      return false;
   if(sizing < 0)
      return true;
   if(!SbMemberString(json, sizing, "mode", out.sizing_mode, problem))
     {
      problem = "sizing." + problem;
      return false;
     }
   if(out.sizing_mode == "fixed")
      return SbMemberPositive(json, sizing, "sizing.", "lots", out.sizing_lots, problem);
   if(out.sizing_mode != "risk_percent" && out.sizing_mode != "risk_money")
     {
      problem = "sizing.mode must be fixed, risk_percent or risk_money";
      return false;
     }
   int max_type = json.MemberType(sizing, "max_lots");
   if(max_type >= 0 && max_type != SB_JSON_NULL && !SbMemberPositive(json, sizing, "sizing.", "max_lots", out.sizing_max_lots, problem))
      return false;
   if(out.sizing_mode == "risk_money")
      return SbMemberPositive(json, sizing, "sizing.", "amount", out.sizing_amount, problem);
   if(!SbMemberPositive(json, sizing, "sizing.", "percent", out.sizing_percent, problem))
      return false;
   if(out.sizing_percent > 100)
     {
      problem = "sizing.percent must be at most 100";
      return false;
     }
   int of_type = json.MemberType(sizing, "of");
   string of = of_type == SB_JSON_STRING ? json.MemberText(sizing, "of") : (of_type < 0 || of_type == SB_JSON_NULL ? "balance" : "");
   if(of != "balance" && of != "equity")
     {
      problem = "sizing.of must be balance or equity";
      return false;
     }
   out.sizing_of_equity = of == "equity";
   return true;
  }

//--- legs of section 5.2: [{"take_profit", "share"}...], shares in (0, 1] adding up to 1
bool SbParseLegs(SbJson &json, const int node, SbInstruction &out, string &problem)
  {
   int list = json.Find(node, "legs");
   int type = json.Type(list);
   if(list < 0 || type == SB_JSON_NULL)
      return true;
   if(type != SB_JSON_ARRAY || json.Count(list) < 1 || json.Count(list) > SB_MAX_LEGS)
     {
      problem = "legs must be a list of 1-" + IntegerToString(SB_MAX_LEGS) + " legs";
      return false;
     }
   double total = 0;
   for(int i = 0; i < json.Count(list); i++)
     {
      int leg = json.Item(list, i);
      string where = "legs[" + IntegerToString(i) + "].";
      double price = 0, share = 0;
      if(json.Type(leg) != SB_JSON_OBJECT)
        {
         problem = "legs[" + IntegerToString(i) + "] must be an object";
         return false;
        }
      if(!SbMemberPositive(json, leg, where, "take_profit", price, problem) ||
         !SbMemberPositive(json, leg, where, "share", share, problem))
         return false;
      if(share > 1)
        {
         problem = where + "share must be at most 1";
         return false;
        }
      total += share;
      ArrayResize(out.leg_take_profit, i + 1);
      ArrayResize(out.leg_share, i + 1);
      out.leg_take_profit[i] = price;
      out.leg_share[i] = share;
     }
   if(MathAbs(total - 1) > 1e-6)
     {
      problem = "legs' shares must add up to 1";
      return false;
     }
   return true;
  }

//--- management and guards of section 5.2
bool SbParseManagement(SbJson &json, const int node, SbInstruction &out, string &problem)
  {
   int management, part;
   if(!SbMemberObject(json, node, "management", management, problem))
      return false;
   if(management >= 0)
     {
      if(!SbMemberObject(json, management, "breakeven", part, problem))
         return false;
      if(part >= 0)
        {
         if(!SbMemberPoints(json, part, "after_leg", 0, out.be_after_leg, problem) ||
            !SbMemberPoints(json, part, "offset_points", 0, out.be_offset, problem))
           {
            problem = "management.breakeven." + problem;
            return false;
           }
        }
      if(!SbMemberObject(json, management, "trailing", part, problem))
         return false;
      if(part >= 0)
        {
         if(!SbMemberPoints(json, part, "distance_points", 0, out.trail_distance, problem) ||
            !SbMemberPoints(json, part, "step_points", 0, out.trail_step, problem))
           {
            problem = "management.trailing." + problem;
            return false;
           }
         if(out.trail_distance < 1)
           {
            problem = "management.trailing.distance_points must be 1 or more";
            return false;
           }
         int start_type = json.MemberType(part, "start");
         string start = start_type == SB_JSON_STRING ? json.MemberText(part, "start") : (start_type < 0 || start_type == SB_JSON_NULL ? "at_open" : "");
         if(start != "at_open" && start != "after_breakeven")
           {
            problem = "management.trailing.start must be at_open or after_breakeven";
            return false;
           }
         out.trail_after_be = start == "after_breakeven";
        }
     }
   int guards;
   if(!SbMemberObject(json, node, "guards", guards, problem))
      return false;
   if(guards < 0)
      return true;
   if(!SbMemberPoints(json, guards, "max_spread_points", -1, out.max_spread, problem) ||
      !SbMemberPoints(json, guards, "max_distance_points", -1, out.max_distance, problem) ||
      !SbMemberPrice(json, guards, "reference_price", true, out.reference_price, problem))
     {
      problem = "guards." + problem;
      return false;
     }
   return true;
  }

//--- reads the instruction at node into out; false and problem (for error 90008) when it
//--- cannot be acted on. out.id is set whenever the instruction has a usable id.
bool SbParseInstruction(SbJson &json, const int node, SbInstruction &out, string &problem)
  {
   out.Clear();
   problem = "";
   if(json.Type(node) != SB_JSON_OBJECT)
     {
      problem = "the instruction is not a JSON object";
      return false;
     }
   string id;
   if(!SbMemberString(json, node, "id", id, problem))
      return false;
   if(!SbIsRecordId(id))
     {
      problem = "id must be 1-64 characters of [A-Za-z0-9_-]";
      return false;
     }
   out.id = id;
   if(json.MemberType(node, "action") == SB_JSON_STRING && json.MemberText(node, "action") == "close_all")
     {
      // Section 5.3: of no signal and no symbol.
      out.action = "close_all";
      string issued_all;
      if(!SbMemberString(json, node, "issued_at", issued_all, problem))
         return false;
      if(!SbParseIsoTime(issued_all, out.issued_at))
        {
         problem = "issued_at must be an ISO 8601 time with a zone";
         return false;
        }
      return true;
     }
   if(!SbMemberString(json, node, "signal_id", out.signal_id, problem) ||
      !SbMemberString(json, node, "action", out.action, problem) ||
      !SbMemberString(json, node, "symbol", out.symbol, problem))
      return false;
   if(StringLen(out.signal_id) < 1 || StringLen(out.signal_id) > 64)
     {
      problem = "signal_id must be 1-64 characters";
      return false;
     }
   int symbol_length = StringLen(out.symbol);
   if(symbol_length < 1 || symbol_length > 64)
     {
      problem = "symbol must be 1-64 characters";
      return false;
     }
   for(int i = 0; i < symbol_length; i++)
      if(StringGetCharacter(out.symbol, i) <= ' ')
        {
         problem = "symbol must not contain spaces or control characters";
         return false;
        }
   string issued;
   if(!SbMemberString(json, node, "issued_at", issued, problem))
      return false;
   if(!SbParseIsoTime(issued, out.issued_at))
     {
      problem = "issued_at must be an ISO 8601 time with a zone";
      return false;
     }
   if(out.action == "open")
     {
      if(!SbMemberString(json, node, "side", out.side, problem) ||
         !SbMemberString(json, node, "order_type", out.order_type, problem))
         return false;
      if(out.side != "buy" && out.side != "sell")
        {
         problem = "side must be buy or sell";
         return false;
        }
      if(out.order_type != "market" && out.order_type != "limit" && out.order_type != "stop")
        {
         problem = "order_type must be market, limit or stop";
         return false;
        }
      if(out.order_type == "market")
        {
         int entry_type = json.MemberType(node, "entry");
         if(entry_type != SB_JSON_NULL && entry_type >= 0)
           {
            problem = "entry must be null for a market order";
            return false;
           }
        }
      else if(!SbMemberPrice(json, node, "entry", false, out.entry, problem))
         return false;
      if(!SbMemberPrice(json, node, "stop_loss", true, out.stop_loss, problem) ||
         !SbMemberTakeProfit(json, node, out.take_profit, out.take_profits, problem) ||
         !SbMemberPrice(json, node, "volume", false, out.volume, problem) ||
         !SbParseSizing(json, node, out, problem) || !SbParseLegs(json, node, out, problem) ||
         !SbParseManagement(json, node, out, problem))
         return false;
      if(out.sizing_mode != "" && out.sizing_mode != "fixed" && out.stop_loss <= 0)
        {
         problem = "sizing." + out.sizing_mode + " needs a stop_loss";
         return false;
        }
      int comment_type = json.MemberType(node, "comment");
      if(comment_type == SB_JSON_STRING)
         out.comment = json.MemberText(node, "comment");
      else if(comment_type != SB_JSON_NULL && comment_type >= 0)
        {
         problem = "comment must be a string or null";
         return false;
        }
      int expires_type = json.MemberType(node, "expires_at");
      if(expires_type == SB_JSON_STRING)
        {
         if(!SbParseIsoTime(json.MemberText(node, "expires_at"), out.expires_at))
           {
            problem = "expires_at must be an ISO 8601 time with a zone";
            return false;
           }
        }
      else if(expires_type != SB_JSON_NULL && expires_type >= 0)
        {
         problem = "expires_at must be a time or null";
         return false;
        }
      return true;
     }
   if(out.action == "modify")
     {
      if(!json.Has(node, "stop_loss") && !json.Has(node, "take_profit"))
        {
         problem = "modify needs stop_loss or take_profit";
         return false;
        }
      return SbMemberPrice(json, node, "stop_loss", true, out.stop_loss, problem) &&
             SbMemberTakeProfit(json, node, out.take_profit, out.take_profits, problem);
     }
   if(out.action == "close")
     {
      int fraction_type = json.MemberType(node, "fraction");
      if(fraction_type == SB_JSON_NULL || fraction_type < 0)
        {
         out.fraction = 1;
         return true;
        }
      if(fraction_type != SB_JSON_STRING || !SbParseDecimal(json.MemberText(node, "fraction"), out.fraction) ||
         out.fraction <= 0 || out.fraction > 1)
        {
         problem = "fraction must be a decimal string in (0, 1]";
         return false;
        }
      return true;
     }
   if(out.action == "cancel")
      return true;
   problem = "action " + out.action + " is not one this EA knows (open, modify, close, cancel, close_all)";
   return false;
  }

#endif
