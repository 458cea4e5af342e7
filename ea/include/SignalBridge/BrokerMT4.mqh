//+------------------------------------------------------------------+
//| SignalBridge/BrokerMT4.mqh                                       |
//| The trade functions of MetaTrader 4 (OrderSend, OrderModify,      |
//| OrderClose, OrderDelete, the trade and history pools) behind      |
//| Broker.mqh. A partial close leaves the rest under a new ticket    |
//| whose comment is "from #<old ticket>"; SbBrokerFollow finds it.   |
//+------------------------------------------------------------------+
#ifndef SB_BROKER_MT4_MQH
#define SB_BROKER_MT4_MQH

#include <SignalBridge/Broker.mqh>

#define SB_PLATFORM "mt4"
#define SB_WEBREQUEST_NOT_ALLOWED 4060

int SbSymbolDigits(const string symbol)
  {
   return (int)MarketInfo(symbol, MODE_DIGITS);
  }

bool SbBrokerConnected(void)
  {
   return IsConnected();
  }

bool SbBrokerSelectSymbol(const string symbol, string &why)
  {
   ResetLastError();
   if(!SymbolSelect(symbol, true))
     {
      why = "symbol " + symbol + " is not available on this account (SymbolSelect error " + IntegerToString(GetLastError()) + ")";
      return false;
     }
   if(MarketInfo(symbol, MODE_LOTSTEP) <= 0)
     {
      why = "symbol " + symbol + " has no lot step (error " + IntegerToString(GetLastError()) + ")";
      return false;
     }
   return true;
  }

bool SbBrokerTradingAllowed(const string symbol, string &why)
  {
   // MetaTrader 4 has one trade thread: IsTradeAllowed() is false while another EA uses it.
   for(int waited = 0; IsTradeContextBusy() && waited < 50 && !IsStopped(); waited++)
      Sleep(100);
   if(!IsExpertEnabled())
      why = "Expert Advisors are off in the terminal (press the AutoTrading button)";
   else if(!IsTradeAllowed())
      why = "this EA may not trade (its properties, Common tab: tick Allow live trading)";
   else if(!AccountInfoInteger(ACCOUNT_TRADE_ALLOWED))
      why = "trading is disabled for this account (logged in with the investor password?)";
   else if(!AccountInfoInteger(ACCOUNT_TRADE_EXPERT))
      why = "the broker does not allow Expert Advisors to trade on this account";
   else if(symbol != "" && MarketInfo(symbol, MODE_TRADEALLOWED) == 0)
      why = "trading " + symbol + " is not allowed now";
   else
      return true;
   return false;
  }

void SbBrokerLimits(const string symbol, double &minimum, double &step, double &maximum)
  {
   minimum = MarketInfo(symbol, MODE_MINLOT);
   step = MarketInfo(symbol, MODE_LOTSTEP);
   maximum = MarketInfo(symbol, MODE_MAXLOT);
  }

//--- prices, point, tick size and value, volume limits; false when the symbol is unknown
bool SbBrokerSymbol(const string symbol, SbSymbolData &data)
  {
   ResetLastError();
   RefreshRates();
   data.point = MarketInfo(symbol, MODE_POINT);
   if(data.point <= 0)
      return false;
   data.bid = MarketInfo(symbol, MODE_BID);
   data.ask = MarketInfo(symbol, MODE_ASK);
   data.digits = (int)MarketInfo(symbol, MODE_DIGITS);
   data.tick_size = MarketInfo(symbol, MODE_TICKSIZE);
   data.tick_value = MarketInfo(symbol, MODE_TICKVALUE);
   SbBrokerLimits(symbol, data.volume_min, data.volume_step, data.volume_max);
   return true;
  }

//--- the floating profit of an open order (profit + swap + commission), 0 when not open
double SbBrokerProfit(const long ticket)
  {
   if(!OrderSelect((int)ticket, SELECT_BY_TICKET) || OrderCloseTime() != 0)
      return 0;
   return OrderProfit() + OrderSwap() + OrderCommission();
  }

//--- how a closed order ended, from the order history: the trade server marks closes at
//--- the stop loss "[sl]", at the take profit "[tp]" and stop-outs "so:" in the comment;
//--- false when the ticket is not closed (yet)
bool SbBrokerClosed(const long ticket, const long magic, SbClosedInfo &closed)
  {
   if(!OrderSelect((int)ticket, SELECT_BY_TICKET) || OrderCloseTime() == 0 || OrderType() > OP_SELL)
      return false;
   closed.time = OrderCloseTime();
   closed.price = OrderClosePrice();
   closed.volume = OrderLots();
   closed.profit = OrderProfit() + OrderSwap() + OrderCommission();
   string comment = OrderComment();
   double half = MarketInfo(OrderSymbol(), MODE_POINT) / 2;
   if(StringFind(comment, "[tp]") >= 0)
      closed.reason = "tp";
   else if(StringFind(comment, "[sl]") >= 0)
      closed.reason = "sl";
   else if(StringFind(comment, "so:") >= 0)
      closed.reason = "stop_out";
   else if(OrderTakeProfit() > 0 && MathAbs(closed.price - OrderTakeProfit()) <= half)
      closed.reason = "tp";
   else if(OrderStopLoss() > 0 && MathAbs(closed.price - OrderStopLoss()) <= half)
      closed.reason = "sl";
   else
      closed.reason = "manual";
   return true;
  }

//--- a failed call's GetLastError() as the report's code; 90009 / 90006 where it says so
void SbMt4Failed(SbTradeResult &result, const int error, const string what)
  {
   string text = what + " failed: error " + IntegerToString(error);
   SbLogError("trade", text);
   SbTradeFailed(result, error, text, error == ERR_MARKET_CLOSED,
                 error == ERR_TRADE_DISABLED || error == ERR_TRADE_NOT_ALLOWED || error == ERR_LONGS_NOT_ALLOWED ||
                 error == ERR_SHORTS_NOT_ALLOWED || error == ERR_TRADE_EXPERT_DISABLED_BY_SERVER);
   result.unknown = error == ERR_TRADE_TIMEOUT;
  }

bool SbBrokerOpen(SbOrderRequest &order, SbTradeResult &result)
  {
   result.Clear();
   int digits = SbSymbolDigits(order.symbol);
   bool buy = order.side == "buy";
   int command = buy ? OP_BUY : OP_SELL;
   double price = 0;
   RefreshRates();
   if(order.order_type == "market")
      price = buy ? MarketInfo(order.symbol, MODE_ASK) : MarketInfo(order.symbol, MODE_BID);
   else
     {
      if(order.order_type == "limit")
         command = buy ? OP_BUYLIMIT : OP_SELLLIMIT;
      else
         command = buy ? OP_BUYSTOP : OP_SELLSTOP;
      price = NormalizeDouble(order.price, digits);
     }
   double stop_loss = order.stop_loss > 0 ? NormalizeDouble(order.stop_loss, digits) : 0;
   double take_profit = order.take_profit > 0 ? NormalizeDouble(order.take_profit, digits) : 0;
   string what = "OrderSend " + order.side + " " + order.order_type + " " + order.symbol + " " +
                 DoubleToString(order.volume, 2) + " @ " + DoubleToString(price, digits) + " (" + order.comment + ")";
   ResetLastError();
   int ticket = OrderSend(order.symbol, command, order.volume, price, order.slippage, stop_loss, take_profit,
                          order.comment, (int)order.magic, 0, clrNONE);
   if(ticket < 0)
     {
      SbMt4Failed(result, GetLastError(), what);
      return false;
     }
   result.ok = true;
   result.ticket = ticket;
   result.pending = order.order_type != "market";
   result.price = price;
   result.volume = order.volume;
   if(OrderSelect(ticket, SELECT_BY_TICKET))
     {
      result.price = OrderOpenPrice();
      result.volume = OrderLots();
     }
   SbLogInfo("trade", what + ": ticket " + IntegerToString(ticket) + ", price " + DoubleToString(result.price, digits) +
             ", GetLastError " + IntegerToString(GetLastError()));
   return true;
  }

int SbBrokerFind(const long ticket, const long magic, SbTicketInfo &info)
  {
   info.kind = SB_TICKET_NONE;
   info.ticket = ticket;
   if(!OrderSelect((int)ticket, SELECT_BY_TICKET) || OrderMagicNumber() != magic || OrderCloseTime() != 0)
      return SB_TICKET_NONE;
   info.kind = OrderType() <= OP_SELL ? SB_TICKET_POSITION : SB_TICKET_ORDER;
   info.symbol = OrderSymbol();
   info.comment = OrderComment();
   info.side = OrderType() % 2 == 0 ? "buy" : "sell";
   info.volume = OrderLots();
   info.price = OrderOpenPrice();
   info.stop_loss = OrderStopLoss();
   info.take_profit = OrderTakeProfit();
   return info.kind;
  }

//--- the live positions and pending orders of this EA (magic) on symbol
int SbBrokerOwnTickets(const long magic, const string symbol, long &tickets[])
  {
   ArrayResize(tickets, 0);
   for(int i = OrdersTotal() - 1; i >= 0; i--)
      if(OrderSelect(i, SELECT_BY_POS, MODE_TRADES) && OrderMagicNumber() == magic && OrderSymbol() == symbol)
        {
         ArrayResize(tickets, ArraySize(tickets) + 1);
         tickets[ArraySize(tickets) - 1] = OrderTicket();
        }
   return ArraySize(tickets);
  }

bool SbBrokerFindByComment(const string comment, const long magic, const datetime since, SbTicketInfo &info)
  {
   for(int i = OrdersTotal() - 1; i >= 0; i--)
      if(OrderSelect(i, SELECT_BY_POS, MODE_TRADES) && OrderMagicNumber() == magic && OrderComment() == comment)
         return SbBrokerFind(OrderTicket(), magic, info) != SB_TICKET_NONE;
   for(int i = OrdersHistoryTotal() - 1; i >= 0; i--)
      if(OrderSelect(i, SELECT_BY_POS, MODE_HISTORY) && OrderMagicNumber() == magic && OrderOpenTime() >= since - 2 * 86400 &&
         (OrderComment() == comment || StringFind(OrderComment(), comment) == 0) && OrderType() <= OP_SELL)
        {
         info.kind = SB_TICKET_CLOSED;
         info.ticket = OrderTicket();
         info.symbol = OrderSymbol();
         info.comment = comment;
         info.side = OrderType() % 2 == 0 ? "buy" : "sell";
         info.volume = OrderLots();
         info.price = OrderOpenPrice();
         return true;
        }
   return false;
  }

//--- the open ticket that holds what ticket held: itself, or after partial closes the
//--- order whose comment is "from #<ticket>" (followed along the chain)
long SbBrokerFollow(const long ticket, const long magic)
  {
   long current = ticket;
   for(int hops = 0; hops < 100; hops++)
     {
      if(OrderSelect((int)current, SELECT_BY_TICKET) && OrderCloseTime() == 0)
         return current;
      long next = 0;
      string mark = "from #" + IntegerToString(current);
      for(int i = OrdersTotal() - 1; i >= 0; i--)
         if(OrderSelect(i, SELECT_BY_POS, MODE_TRADES) && OrderMagicNumber() == magic && StringFind(OrderComment(), mark) >= 0)
           {
            next = OrderTicket();
            break;
           }
      if(next == 0)
         return current;
      current = next;
     }
   return current;
  }

//--- after a crash during a close: the history record of the (partly) closed ticket
bool SbBrokerFindClose(const long ticket, const long magic, const double volume_before, SbTradeResult &result)
  {
   result.Clear();
   if(!OrderSelect((int)ticket, SELECT_BY_TICKET) || OrderMagicNumber() != magic || OrderCloseTime() == 0)
      return false;
   result.ok = true;
   result.ticket = ticket;
   result.price = OrderClosePrice();
   result.volume = OrderLots();
   result.profit = OrderProfit() + OrderSwap() + OrderCommission();
   result.has_profit = true;
   result.remainder = SbBrokerFollow(ticket, magic);
   if(result.remainder == ticket)
      result.remainder = 0;
   return true;
  }

bool SbBrokerModify(const long ticket, const int kind, const double stop_loss, const double take_profit, SbTradeResult &result)
  {
   result.Clear();
   ResetLastError();
   if(!OrderSelect((int)ticket, SELECT_BY_TICKET))
     {
      SbMt4Failed(result, GetLastError(), "select #" + IntegerToString(ticket));
      return false;
     }
   int digits = SbSymbolDigits(OrderSymbol());
   double sl = stop_loss > 0 ? NormalizeDouble(stop_loss, digits) : 0;
   double tp = take_profit > 0 ? NormalizeDouble(take_profit, digits) : 0;
   string what = "OrderModify #" + IntegerToString(ticket) + " sl " + DoubleToString(sl, digits) + " tp " + DoubleToString(tp, digits);
   ResetLastError();
   if(!OrderModify((int)ticket, OrderOpenPrice(), sl, tp, OrderExpiration(), clrNONE))
     {
      int error = GetLastError();
      if(error != ERR_NO_RESULT)
        {
         SbMt4Failed(result, error, what);
         return false;
        }
     }
   SbLogInfo("trade", what + ": done, GetLastError " + IntegerToString(GetLastError()));
   result.ok = true;
   result.ticket = ticket;
   return true;
  }

bool SbBrokerClose(const long ticket, const double volume, const int slippage, SbTradeResult &result)
  {
   result.Clear();
   ResetLastError();
   if(!OrderSelect((int)ticket, SELECT_BY_TICKET) || OrderCloseTime() != 0)
     {
      SbMt4Failed(result, GetLastError(), "select open #" + IntegerToString(ticket));
      return false;
     }
   string symbol = OrderSymbol();
   long magic = OrderMagicNumber();
   int digits = SbSymbolDigits(symbol);
   RefreshRates();
   double price = OrderType() == OP_BUY ? MarketInfo(symbol, MODE_BID) : MarketInfo(symbol, MODE_ASK);
   string what = "OrderClose #" + IntegerToString(ticket) + " " + DoubleToString(volume, 2) + " @ " + DoubleToString(price, digits);
   ResetLastError();
   if(!OrderClose((int)ticket, volume, price, slippage, clrNONE))
     {
      SbMt4Failed(result, GetLastError(), what);
      return false;
     }
   result.ok = true;
   result.ticket = ticket;
   result.price = price;
   result.volume = volume;
   if(OrderSelect((int)ticket, SELECT_BY_TICKET))
     {
      result.price = OrderClosePrice();
      result.volume = OrderLots();
      result.profit = OrderProfit() + OrderSwap() + OrderCommission();
      result.has_profit = true;
     }
   result.remainder = SbBrokerFollow(ticket, magic);
   if(result.remainder == ticket)
      result.remainder = 0;
   SbLogInfo("trade", what + ": done, closed " + DoubleToString(result.volume, 2) + " @ " + DoubleToString(result.price, digits) +
             (result.remainder > 0 ? ", the rest is #" + IntegerToString(result.remainder) : "") +
             ", GetLastError " + IntegerToString(GetLastError()));
   return true;
  }

bool SbBrokerDelete(const long ticket, SbTradeResult &result)
  {
   result.Clear();
   string what = "OrderDelete #" + IntegerToString(ticket);
   ResetLastError();
   if(!OrderDelete((int)ticket, clrNONE))
     {
      SbMt4Failed(result, GetLastError(), what);
      return false;
     }
   SbLogInfo("trade", what + ": done, GetLastError " + IntegerToString(GetLastError()));
   result.ok = true;
   result.ticket = ticket;
   return true;
  }

#endif
