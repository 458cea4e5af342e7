//+------------------------------------------------------------------+
//| SignalBridge/BrokerMT5.mqh                                       |
//| The trade functions of MetaTrader 5 (MqlTradeRequest, OrderSend,  |
//| positions, orders and the deal history) behind Broker.mqh.        |
//| Written for hedging accounts; on a netting account one position   |
//| per symbol holds every EA's trades, see ea/README.md.             |
//+------------------------------------------------------------------+
#ifndef SB_BROKER_MT5_MQH
#define SB_BROKER_MT5_MQH

#include <SignalBridge/Broker.mqh>

#define SB_PLATFORM "mt5"
#define SB_WEBREQUEST_NOT_ALLOWED 4014

int SbSymbolDigits(const string symbol)
  {
   return (int)SymbolInfoInteger(symbol, SYMBOL_DIGITS);
  }

bool SbBrokerConnected(void)
  {
   return TerminalInfoInteger(TERMINAL_CONNECTED) != 0;
  }

bool SbBrokerSelectSymbol(const string symbol, string &why)
  {
   ResetLastError();
   if(!SymbolSelect(symbol, true))
     {
      why = "symbol " + symbol + " is not available on this account (SymbolSelect error " + IntegerToString(GetLastError()) + ")";
      return false;
     }
   if(SymbolInfoDouble(symbol, SYMBOL_VOLUME_STEP) <= 0)
     {
      why = "symbol " + symbol + " has no volume step (error " + IntegerToString(GetLastError()) + ")";
      return false;
     }
   return true;
  }

bool SbBrokerTradingAllowed(const string symbol, string &why)
  {
   if(!TerminalInfoInteger(TERMINAL_TRADE_ALLOWED))
      why = "algo trading is off in the terminal (press the Algo Trading button)";
   else if(!MQLInfoInteger(MQL_TRADE_ALLOWED))
      why = "this EA may not trade (its properties, Common tab: tick Allow Algo Trading)";
   else if(!AccountInfoInteger(ACCOUNT_TRADE_ALLOWED))
      why = "trading is disabled for this account (logged in with the investor password?)";
   else if(!AccountInfoInteger(ACCOUNT_TRADE_EXPERT))
      why = "the broker does not allow Expert Advisors to trade on this account";
   else if(symbol != "" && SymbolInfoInteger(symbol, SYMBOL_TRADE_MODE) == SYMBOL_TRADE_MODE_DISABLED)
      why = "trading " + symbol + " is disabled by the broker";
   else if(symbol != "" && SymbolInfoInteger(symbol, SYMBOL_TRADE_MODE) == SYMBOL_TRADE_MODE_CLOSEONLY)
      why = symbol + " is close-only at the broker";
   else
      return true;
   return false;
  }

void SbBrokerLimits(const string symbol, double &minimum, double &step, double &maximum)
  {
   minimum = SymbolInfoDouble(symbol, SYMBOL_VOLUME_MIN);
   step = SymbolInfoDouble(symbol, SYMBOL_VOLUME_STEP);
   maximum = SymbolInfoDouble(symbol, SYMBOL_VOLUME_MAX);
  }

//--- prices, point, tick size and value, volume limits; false when the symbol is unknown
bool SbBrokerSymbol(const string symbol, SbSymbolData &data)
  {
   MqlTick tick;
   ResetLastError();
   if(!SymbolInfoTick(symbol, tick))
      return false;
   data.bid = tick.bid;
   data.ask = tick.ask;
   data.point = SymbolInfoDouble(symbol, SYMBOL_POINT);
   data.digits = (int)SymbolInfoInteger(symbol, SYMBOL_DIGITS);
   data.tick_size = SymbolInfoDouble(symbol, SYMBOL_TRADE_TICK_SIZE);
   data.tick_value = SymbolInfoDouble(symbol, SYMBOL_TRADE_TICK_VALUE);
   SbBrokerLimits(symbol, data.volume_min, data.volume_step, data.volume_max);
   return true;
  }

//--- the floating profit of a position (profit + swap), 0 when it is not open
double SbBrokerProfit(const long ticket)
  {
   if(!PositionSelectByTicket((ulong)ticket))
      return 0;
   return PositionGetDouble(POSITION_PROFIT) + PositionGetDouble(POSITION_SWAP);
  }

//--- how a closed position ended: its latest closing deal (DEAL_REASON says who closed
//--- it); false when the history has no closing deal of it (yet)
bool SbBrokerClosed(const long ticket, const long magic, SbClosedInfo &closed)
  {
   ResetLastError();
   if(!HistorySelectByPosition((ulong)ticket))
     {
      SbLogError("trade", "HistorySelectByPosition #" + IntegerToString(ticket) + " failed, GetLastError " + IntegerToString(GetLastError()));
      return false;
     }
   long latest = -1;
   for(int i = 0; i < HistoryDealsTotal(); i++)
     {
      ulong deal = HistoryDealGetTicket(i);
      long entry = HistoryDealGetInteger(deal, DEAL_ENTRY);
      if(deal == 0 || (entry != DEAL_ENTRY_OUT && entry != DEAL_ENTRY_OUT_BY))
         continue;
      long time = HistoryDealGetInteger(deal, DEAL_TIME);
      if(time < latest)
         continue;
      latest = time;
      closed.time = (datetime)time;
      closed.price = HistoryDealGetDouble(deal, DEAL_PRICE);
      closed.volume = HistoryDealGetDouble(deal, DEAL_VOLUME);
      closed.profit = HistoryDealGetDouble(deal, DEAL_PROFIT) + HistoryDealGetDouble(deal, DEAL_SWAP) +
                      HistoryDealGetDouble(deal, DEAL_COMMISSION);
      long reason = HistoryDealGetInteger(deal, DEAL_REASON);
      if(reason == DEAL_REASON_TP)
         closed.reason = "tp";
      else if(reason == DEAL_REASON_SL)
         closed.reason = "sl";
      else if(reason == DEAL_REASON_SO)
         closed.reason = "stop_out";
      else if(reason == DEAL_REASON_EXPERT)
         closed.reason = "expert";
      else
         closed.reason = "manual";
     }
   return latest >= 0;
  }

ENUM_ORDER_TYPE_FILLING SbFilling(const string symbol)
  {
   long modes = SymbolInfoInteger(symbol, SYMBOL_FILLING_MODE);
   if((modes & SYMBOL_FILLING_FOK) != 0)
      return ORDER_FILLING_FOK;
   if((modes & SYMBOL_FILLING_IOC) != 0)
      return ORDER_FILLING_IOC;
   return ORDER_FILLING_RETURN;
  }

//--- a position or order that cannot be selected: the failure, logged with GetLastError()
void SbSelectFailed(SbTradeResult &result, const string what, const long ticket)
  {
   int error = GetLastError();
   string text = what + " #" + IntegerToString(ticket) + " cannot be selected (GetLastError " + IntegerToString(error) + ")";
   SbLogError("trade", text);
   SbTradeFailed(result, error, text, false, false);
  }

//--- sends one request; result.ok when the trade server did it
bool SbSend(MqlTradeRequest &request, MqlTradeResult &reply, SbTradeResult &result, const string what)
  {
   ResetLastError();
   bool sent = OrderSend(request, reply);
   int error = GetLastError();
   string text = what + ": retcode " + IntegerToString(reply.retcode) + " (" + reply.comment + "), order " +
                 IntegerToString((long)reply.order) + ", deal " + IntegerToString((long)reply.deal) + ", price " +
                 DoubleToString(reply.price, 8) + ", volume " + DoubleToString(reply.volume, 8) +
                 ", GetLastError " + IntegerToString(error);
   uint code = reply.retcode;
   if((sent && (code == TRADE_RETCODE_DONE || code == TRADE_RETCODE_PLACED || code == TRADE_RETCODE_DONE_PARTIAL)) ||
      code == TRADE_RETCODE_NO_CHANGES)
     {
      SbLogInfo("trade", text);
      result.ok = true;
      return true;
     }
   SbLogError("trade", text);
   string reason = "trade server retcode " + IntegerToString(code) + " (" + reply.comment + ")";
   if(code == 0)
      reason = "OrderSend failed, GetLastError " + IntegerToString(error);
   SbTradeFailed(result, code != 0 ? (int)code : error, reason, code == TRADE_RETCODE_MARKET_CLOSED,
                 code == TRADE_RETCODE_TRADE_DISABLED || code == TRADE_RETCODE_CLIENT_DISABLES_AT ||
                 code == TRADE_RETCODE_SERVER_DISABLES_AT || code == TRADE_RETCODE_LONG_ONLY ||
                 code == TRADE_RETCODE_SHORT_ONLY || code == TRADE_RETCODE_CLOSE_ONLY);
   result.unknown = code == TRADE_RETCODE_TIMEOUT;
   return false;
  }

bool SbBrokerOpen(SbOrderRequest &order, SbTradeResult &result)
  {
   result.Clear();
   int digits = SbSymbolDigits(order.symbol);
   bool buy = order.side == "buy";
   MqlTradeRequest request;
   MqlTradeResult reply;
   ZeroMemory(request);
   ZeroMemory(reply);
   request.symbol = order.symbol;
   request.volume = order.volume;
   request.magic = (ulong)order.magic;
   request.comment = order.comment;
   request.deviation = (ulong)order.slippage;
   request.sl = order.stop_loss > 0 ? NormalizeDouble(order.stop_loss, digits) : 0;
   request.tp = order.take_profit > 0 ? NormalizeDouble(order.take_profit, digits) : 0;
   if(order.order_type == "market")
     {
      MqlTick tick;
      ResetLastError();
      if(!SymbolInfoTick(order.symbol, tick))
        {
         SbTradeFailed(result, GetLastError(), "no price for " + order.symbol + " (SymbolInfoTick error " + IntegerToString(GetLastError()) + ")", false, false);
         return false;
        }
      request.action = TRADE_ACTION_DEAL;
      request.type = buy ? ORDER_TYPE_BUY : ORDER_TYPE_SELL;
      request.price = buy ? tick.ask : tick.bid;
      request.type_filling = SbFilling(order.symbol);
     }
   else
     {
      request.action = TRADE_ACTION_PENDING;
      if(order.order_type == "limit")
         request.type = buy ? ORDER_TYPE_BUY_LIMIT : ORDER_TYPE_SELL_LIMIT;
      else
         request.type = buy ? ORDER_TYPE_BUY_STOP : ORDER_TYPE_SELL_STOP;
      request.price = NormalizeDouble(order.price, digits);
      request.type_time = ORDER_TIME_GTC;
      request.type_filling = ORDER_FILLING_RETURN;
     }
   if(!SbSend(request, reply, result, "OrderSend " + order.side + " " + order.order_type + " " + order.symbol +
              " " + DoubleToString(order.volume, 2) + " (" + order.comment + ")"))
      return false;
   result.pending = order.order_type != "market";
   result.ticket = (long)reply.order;
   result.price = result.pending ? request.price : reply.price;
   result.volume = reply.volume > 0 ? reply.volume : request.volume;
   if(!result.pending && reply.deal > 0 && HistoryDealSelect(reply.deal))
     {
      result.ticket = HistoryDealGetInteger(reply.deal, DEAL_POSITION_ID);
      if(result.price <= 0)
         result.price = HistoryDealGetDouble(reply.deal, DEAL_PRICE);
     }
   return true;
  }

//--- the position or pending order ticket of this EA (magic), or SB_TICKET_NONE
int SbBrokerFind(const long ticket, const long magic, SbTicketInfo &info)
  {
   info.kind = SB_TICKET_NONE;
   info.ticket = ticket;
   bool found = PositionSelectByTicket((ulong)ticket);
   if(!found)
      for(int i = PositionsTotal() - 1; i >= 0; i--)
        {
         ulong candidate = PositionGetTicket(i);
         if(candidate > 0 && PositionGetInteger(POSITION_IDENTIFIER) == ticket)
           {
            found = true;
            info.ticket = (long)candidate;
            break;
           }
        }
   if(found && PositionGetInteger(POSITION_MAGIC) == magic)
     {
      info.kind = SB_TICKET_POSITION;
      info.symbol = PositionGetString(POSITION_SYMBOL);
      info.comment = PositionGetString(POSITION_COMMENT);
      info.side = PositionGetInteger(POSITION_TYPE) == POSITION_TYPE_BUY ? "buy" : "sell";
      info.volume = PositionGetDouble(POSITION_VOLUME);
      info.price = PositionGetDouble(POSITION_PRICE_OPEN);
      info.stop_loss = PositionGetDouble(POSITION_SL);
      info.take_profit = PositionGetDouble(POSITION_TP);
      return info.kind;
     }
   if(OrderSelect((ulong)ticket) && OrderGetInteger(ORDER_MAGIC) == magic)
     {
      info.kind = SB_TICKET_ORDER;
      info.ticket = ticket;
      info.symbol = OrderGetString(ORDER_SYMBOL);
      info.comment = OrderGetString(ORDER_COMMENT);
      info.side = OrderGetInteger(ORDER_TYPE) % 2 == 0 ? "buy" : "sell";
      info.volume = OrderGetDouble(ORDER_VOLUME_CURRENT);
      info.price = OrderGetDouble(ORDER_PRICE_OPEN);
      info.stop_loss = OrderGetDouble(ORDER_SL);
      info.take_profit = OrderGetDouble(ORDER_TP);
     }
   return info.kind;
  }

//--- the live positions and pending orders of this EA (magic) on symbol
int SbBrokerOwnTickets(const long magic, const string symbol, long &tickets[])
  {
   ArrayResize(tickets, 0);
   for(int i = PositionsTotal() - 1; i >= 0; i--)
     {
      ulong ticket = PositionGetTicket(i);
      if(ticket > 0 && PositionGetInteger(POSITION_MAGIC) == magic && PositionGetString(POSITION_SYMBOL) == symbol)
        {
         ArrayResize(tickets, ArraySize(tickets) + 1);
         tickets[ArraySize(tickets) - 1] = (long)ticket;
        }
     }
   for(int i = OrdersTotal() - 1; i >= 0; i--)
     {
      ulong ticket = OrderGetTicket(i);
      if(ticket > 0 && OrderGetInteger(ORDER_MAGIC) == magic && OrderGetString(ORDER_SYMBOL) == symbol)
        {
         ArrayResize(tickets, ArraySize(tickets) + 1);
         tickets[ArraySize(tickets) - 1] = (long)ticket;
        }
     }
   return ArraySize(tickets);
  }

//--- after a crash: the position, pending order or (already closed) deal this EA opened
//--- with comment since a time; false when the terminal has none
bool SbBrokerFindByComment(const string comment, const long magic, const datetime since, SbTicketInfo &info)
  {
   for(int i = PositionsTotal() - 1; i >= 0; i--)
     {
      ulong ticket = PositionGetTicket(i);
      if(ticket > 0 && PositionGetInteger(POSITION_MAGIC) == magic && PositionGetString(POSITION_COMMENT) == comment)
         return SbBrokerFind((long)ticket, magic, info) != SB_TICKET_NONE;
     }
   for(int i = OrdersTotal() - 1; i >= 0; i--)
     {
      ulong ticket = OrderGetTicket(i);
      if(ticket > 0 && OrderGetInteger(ORDER_MAGIC) == magic && OrderGetString(ORDER_COMMENT) == comment)
         return SbBrokerFind((long)ticket, magic, info) != SB_TICKET_NONE;
     }
   ResetLastError();
   // Deal times are the trade server's clock, hours away from UTC: a wide window.
   if(!HistorySelect(since - 2 * 86400, TimeCurrent() + 86400))
     {
      SbLogError("reconcile", "HistorySelect failed, GetLastError " + IntegerToString(GetLastError()));
      return false;
     }
   for(int i = HistoryDealsTotal() - 1; i >= 0; i--)
     {
      ulong deal = HistoryDealGetTicket(i);
      if(deal > 0 && HistoryDealGetInteger(deal, DEAL_MAGIC) == magic && HistoryDealGetString(deal, DEAL_COMMENT) == comment &&
         HistoryDealGetInteger(deal, DEAL_ENTRY) == DEAL_ENTRY_IN)
        {
         info.kind = SB_TICKET_CLOSED;
         info.ticket = HistoryDealGetInteger(deal, DEAL_POSITION_ID);
         info.symbol = HistoryDealGetString(deal, DEAL_SYMBOL);
         info.comment = comment;
         info.side = HistoryDealGetInteger(deal, DEAL_TYPE) == DEAL_TYPE_BUY ? "buy" : "sell";
         info.volume = HistoryDealGetDouble(deal, DEAL_VOLUME);
         info.price = HistoryDealGetDouble(deal, DEAL_PRICE);
         return true;
        }
     }
   return false;
  }

//--- after a crash during a close: what the position lost since the call started (it had
//--- volume_before), with the price and profit of its latest closing deal; false when the
//--- position still has its volume
bool SbBrokerFindClose(const long ticket, const long magic, const double volume_before, SbTradeResult &result)
  {
   result.Clear();
   SbTicketInfo info;
   double left = SbBrokerFind(ticket, magic, info) == SB_TICKET_POSITION ? info.volume : 0;
   if(volume_before - left < 1e-9)
      return false;
   ResetLastError();
   if(!HistorySelectByPosition((ulong)ticket))
     {
      SbLogError("reconcile", "HistorySelectByPosition #" + IntegerToString(ticket) + " failed, GetLastError " + IntegerToString(GetLastError()));
      return false;
     }
   long latest = -1;
   for(int i = 0; i < HistoryDealsTotal(); i++)
     {
      ulong deal = HistoryDealGetTicket(i);
      long entry = HistoryDealGetInteger(deal, DEAL_ENTRY);
      if(deal == 0 || (entry != DEAL_ENTRY_OUT && entry != DEAL_ENTRY_OUT_BY))
         continue;
      long time = HistoryDealGetInteger(deal, DEAL_TIME);
      if(time < latest)
         continue;
      latest = time;
      result.price = HistoryDealGetDouble(deal, DEAL_PRICE);
      result.profit = HistoryDealGetDouble(deal, DEAL_PROFIT) + HistoryDealGetDouble(deal, DEAL_SWAP) +
                      HistoryDealGetDouble(deal, DEAL_COMMISSION);
      result.has_profit = true;
     }
   if(latest < 0)
      return false;
   result.ok = true;
   result.ticket = ticket;
   result.volume = NormalizeDouble(volume_before - left, 8);
   return true;
  }

//--- the ticket that now holds what ticket held (MetaTrader 5 keeps a position's ticket)
long SbBrokerFollow(const long ticket, const long magic)
  {
   return ticket;
  }

bool SbBrokerModify(const long ticket, const int kind, const double stop_loss, const double take_profit, SbTradeResult &result)
  {
   result.Clear();
   MqlTradeRequest request;
   MqlTradeResult reply;
   ZeroMemory(request);
   ZeroMemory(reply);
   string symbol = "";
   if(kind == SB_TICKET_POSITION)
     {
      ResetLastError();
      if(!PositionSelectByTicket((ulong)ticket))
        {
         SbSelectFailed(result, "position", ticket);
         return false;
        }
      symbol = PositionGetString(POSITION_SYMBOL);
      request.action = TRADE_ACTION_SLTP;
      request.position = (ulong)ticket;
      request.magic = (ulong)PositionGetInteger(POSITION_MAGIC);
     }
   else
     {
      ResetLastError();
      if(!OrderSelect((ulong)ticket))
        {
         SbSelectFailed(result, "order", ticket);
         return false;
        }
      symbol = OrderGetString(ORDER_SYMBOL);
      request.action = TRADE_ACTION_MODIFY;
      request.order = (ulong)ticket;
      request.price = OrderGetDouble(ORDER_PRICE_OPEN);
      request.type_time = (ENUM_ORDER_TYPE_TIME)OrderGetInteger(ORDER_TYPE_TIME);
      request.expiration = (datetime)OrderGetInteger(ORDER_TIME_EXPIRATION);
      request.magic = (ulong)OrderGetInteger(ORDER_MAGIC);
     }
   int digits = SbSymbolDigits(symbol);
   request.symbol = symbol;
   request.sl = stop_loss > 0 ? NormalizeDouble(stop_loss, digits) : 0;
   request.tp = take_profit > 0 ? NormalizeDouble(take_profit, digits) : 0;
   if(!SbSend(request, reply, result, "modify #" + IntegerToString(ticket) + " sl " + DoubleToString(request.sl, digits) +
              " tp " + DoubleToString(request.tp, digits)))
      return false;
   result.ticket = ticket;
   return true;
  }

bool SbBrokerClose(const long ticket, const double volume, const int slippage, SbTradeResult &result)
  {
   result.Clear();
   ResetLastError();
   if(!PositionSelectByTicket((ulong)ticket))
     {
      SbSelectFailed(result, "position", ticket);
      return false;
     }
   string symbol = PositionGetString(POSITION_SYMBOL);
   bool buy = PositionGetInteger(POSITION_TYPE) == POSITION_TYPE_BUY;
   MqlTick tick;
   if(!SymbolInfoTick(symbol, tick))
     {
      SbTradeFailed(result, GetLastError(), "no price for " + symbol + " (SymbolInfoTick error " + IntegerToString(GetLastError()) + ")", false, false);
      return false;
     }
   MqlTradeRequest request;
   MqlTradeResult reply;
   ZeroMemory(request);
   ZeroMemory(reply);
   request.action = TRADE_ACTION_DEAL;
   request.position = (ulong)ticket;
   request.symbol = symbol;
   request.volume = volume;
   request.type = buy ? ORDER_TYPE_SELL : ORDER_TYPE_BUY;
   request.price = buy ? tick.bid : tick.ask;
   request.deviation = (ulong)slippage;
   request.magic = (ulong)PositionGetInteger(POSITION_MAGIC);
   request.type_filling = SbFilling(symbol);
   if(!SbSend(request, reply, result, "close #" + IntegerToString(ticket) + " " + DoubleToString(volume, 2)))
      return false;
   result.ticket = ticket;
   result.price = reply.price;
   result.volume = reply.volume > 0 ? reply.volume : volume;
   if(reply.deal > 0 && HistoryDealSelect(reply.deal))
     {
      result.profit = HistoryDealGetDouble(reply.deal, DEAL_PROFIT) + HistoryDealGetDouble(reply.deal, DEAL_SWAP) +
                      HistoryDealGetDouble(reply.deal, DEAL_COMMISSION);
      result.has_profit = true;
      if(result.price <= 0)
         result.price = HistoryDealGetDouble(reply.deal, DEAL_PRICE);
     }
   else
      SbLogError("trade", "deal #" + IntegerToString((long)reply.deal) + " of the close is not in the history yet (GetLastError " +
                 IntegerToString(GetLastError()) + "); the fill goes without profit");
   return true;
  }

bool SbBrokerDelete(const long ticket, SbTradeResult &result)
  {
   result.Clear();
   MqlTradeRequest request;
   MqlTradeResult reply;
   ZeroMemory(request);
   ZeroMemory(reply);
   request.action = TRADE_ACTION_REMOVE;
   request.order = (ulong)ticket;
   if(!SbSend(request, reply, result, "delete order #" + IntegerToString(ticket)))
      return false;
   result.ticket = ticket;
   return true;
  }

#endif
